"""The sweep runner: grid expansion, local processes vs a Dask LocalCluster (same numbers),
interruption and resume (each run finished exactly once), failing runs recorded, results."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelrecon.sweep import ResultsDB, Study, StudyError, group_rows, run_key, run_sweep

HERE = Path(__file__).parent
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

SMALL = {
    "study": {"name": "small", "attack": "linear", "target": "builtin:logistic?d={d}&seed={seed}"},
    "attack": {"seed": "{seed}", "verify": 2},
    "grid": {"d": [3, 12], "seed": [0, 1], "attack": {"method": ["gradient", "equations"]}},
    "metrics": {"keep": ["parameter_relative_error", "agreement", "fidelity_max_abs_error"]},
}


def scripted(tmp_path: Path, seeds: int, **hp) -> Study:
    return Study.from_dict({
        "study": {"name": "scripted", "attack": "sweep_helpers:Scripted", "target": "builtin:linear?d=4&seed={seed}"},
        "attack": {"seed": "{seed}", "tag": "{seed}", "log": str(tmp_path / "executions.log"),
                   "marker": str(tmp_path / "interrupted"), **hp},
        "grid": {"seed": list(range(seeds))},
    })


def executions(tmp_path: Path) -> list[str]:
    p = tmp_path / "executions.log"
    return p.read_text().split() if p.exists() else []


def scripted_config(tmp_path: Path, name: str, seeds: int, **attack) -> Path:
    """A TOML study of the Scripted attack, for `modelrecon sweep` in another process."""
    extra = "\n".join(f"{k} = {json.dumps(v)}" for k, v in attack.items())
    cfg = tmp_path / f"{name}.toml"
    cfg.write_text(f"""[study]
name = "{name}"
attack = "sweep_helpers:Scripted"
target = "builtin:linear?d=4&seed={{seed}}"
[attack]
seed = "{{seed}}"
tag = "{{seed}}"
log = "{tmp_path / 'executions.log'}"
{extra}
[grid]
seed = {list(range(seeds))}
""")
    return cfg


def cli_env() -> dict[str, str]:
    """The environment of a `modelrecon sweep` subprocess: it imports sweep_helpers."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}


def table(db: Path) -> dict[str, dict]:
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    out = {r["key"]: dict(r) for r in con.execute("SELECT * FROM runs")}
    con.close()
    return out


def test_grid_expansion_and_validation():
    study = Study.from_dict({
        **SMALL, "grid": {"d": [3, 12], "seed": [0, 1], "attack": {"method": ["gradient", "equations"]},
                          "interface": [{"name": "grad", "oracle": {"kinds": ["gradient", "probabilities"]}},
                                        {"name": "probs", "oracle": {"kinds": ["probabilities"]}}]}})
    runs = study.runs()
    assert len(runs) == 2 * 2 * 2 * 2
    first = runs[0]
    assert first["target"] == "builtin:logistic?d=3&seed=0"
    assert first["hyperparameters"] == {"seed": 0, "verify": 2, "method": "gradient"}  # "{seed}" kept its type
    assert first["oracle"] == {"kinds": ["gradient", "probabilities"]}
    assert first["point"] == {"d": 3, "seed": 0, "attack.method": "gradient", "interface": "grad"}
    assert runs[-1]["oracle"] == {"kinds": ["probabilities"]} and runs[-1]["hyperparameters"]["method"] == "equations"
    keys = [run_key(r) for r in runs]
    assert len(set(keys)) == len(keys) and keys == [run_key(r) for r in study.runs()]  # stable
    # data references: the attacker's pool as a hyperparameter, held-out data for the evaluator
    from modelrecon.sweep import _data_ref, execute_run

    pool = _data_ref({"pool": {"data": "digits", "split": "pool"}}, type("T", (), {"input_shape": (1, 8, 8)}))["pool"]
    assert pool.shape[1:] == (1, 8, 8) and len(pool) > 100 and 0 <= pool.min() and pool.max() <= 1
    rec = execute_run({**runs[0], "target": "builtin:logistic?d=64&seed=0",
                       "evaluate": {"data": {"data": "digits", "split": "test"}}})
    assert rec["status"] == "complete" and rec["metrics"]["data_fidelity_agreement"] == 1.0
    with pytest.raises(StudyError, match="placeholder {h}"):
        Study.from_dict({**SMALL, "study": {**SMALL["study"], "target": "builtin:relu2?d={d}&h={h}"}})
    with pytest.raises(StudyError, match="unknown attack"):
        Study.from_dict({**SMALL, "study": {**SMALL["study"], "attack": "no-such-attack"}})
    with pytest.raises(StudyError, match="cannot be imported"):
        Study.from_dict({**SMALL, "study": {**SMALL["study"], "attack": "modelrecon.attacks.nope:Nope"}})
    with pytest.raises(StudyError, match="unknown sections"):
        Study.from_dict({**SMALL, "grids": {}})
    with pytest.raises(StudyError, match="same run"):
        Study.from_dict({**SMALL, "grid": {"d": [3, 3], "seed": [0]}})


def test_local_processes_and_dask_localcluster_give_identical_results(tmp_path):
    from distributed import LocalCluster

    study = Study.from_dict(SMALL)
    local = run_sweep(study, db=tmp_path / "local.sqlite", workers=2, progress=False)
    assert (local.ran, local.complete) == (8, 8)
    # two single-thread workers in this process (quick to start); the benchmark uses worker processes
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        remote = run_sweep(study, db=tmp_path / "dask.sqlite", scheduler=cluster, progress=False)
        # the same through the scheduler's address, as `--scheduler tcp://HOST:PORT` does; half done already
        half = Study.from_dict({**SMALL, "grid": {**SMALL["grid"], "seed": [0]}})
        run_sweep(half, db=tmp_path / "tcp.sqlite", workers=0, progress=False)
        by_address = run_sweep(study, db=tmp_path / "tcp.sqlite", scheduler=cluster.scheduler_address, progress=False)
    assert (remote.ran, remote.complete) == (8, 8)
    assert (by_address.already_done, by_address.ran) == (4, 4)
    a, b = table(tmp_path / "local.sqlite"), table(tmp_path / "dask.sqlite")
    c = table(tmp_path / "tcp.sqlite")
    assert {k: (r["metrics"], r["ledger"]) for k, r in c.items()} == {k: (r["metrics"], r["ledger"]) for k, r in a.items()}
    assert a.keys() == b.keys() and len(a) == 8
    for key in a:
        for col in ("status", "metrics", "ledger", "queries", "config", "point"):
            assert a[key][col] == b[key][col], (key, col)
        metrics = json.loads(a[key]["metrics"])
        assert set(metrics) == set(SMALL["metrics"]["keep"])  # only the kept metrics
        assert metrics["parameter_relative_error"] < 1e-12 and metrics["agreement"] == 1.0
    workers = {r["worker"] for r in b.values()}
    assert len(workers) == 2, workers  # both Dask workers took runs
    queries = {json.loads(r["point"])["attack.method"]: r["queries"] for r in a.values() if json.loads(r["point"])["d"] == 12}
    assert queries == {"gradient": 2, "equations": 13}  # one gradient + one probability vs d+1 equations


def test_interrupted_sweep_resumes_each_run_finished_once(tmp_path):
    study = scripted(tmp_path, seeds=5, interrupt_at=2)
    db = tmp_path / "r.sqlite"
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C arriving while run 2 executes on a worker
        run_sweep(study, db=db, workers=1, progress=False)
    rows = table(db)
    assert sorted(r["status"] for r in rows.values()) == ["complete", "complete", "pending", "pending", "pending"]
    assert executions(tmp_path) == ["0", "1"]
    again = run_sweep(study, db=db, workers=1, progress=False)
    assert (again.already_done, again.ran, again.complete) == (2, 3, 3)
    rows = table(db)
    assert all(r["status"] == "complete" for r in rows.values())
    assert sorted(executions(tmp_path)) == ["0", "1", "2", "3", "4"]  # each run finished exactly once
    attempts = {json.loads(r["point"])["seed"]: r["attempts"] for r in rows.values()}
    assert attempts == {0: 1, 1: 1, 2: 2, 3: 1, 4: 1}  # only the interrupted run was handed out twice
    third = run_sweep(study, db=db, workers=1, progress=False)
    assert (third.already_done, third.ran) == (5, 0)


def test_killed_sweep_process_resumes(tmp_path):
    """kill -9 a `modelrecon sweep` process (runs in-process: --workers 0) after two results;
    the restart runs only the rest and never re-runs a recorded one."""
    cfg = scripted_config(tmp_path, "slow", 8, sleep=0.3)
    db = tmp_path / "k.sqlite"
    env = cli_env()
    proc = subprocess.Popen([sys.executable, "-m", "modelrecon.cli", "sweep", str(cfg), "--db", str(db), "--workers", "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.time() + 40
    done_before: set[str] = set()
    try:
        while time.time() < deadline and proc.poll() is None:
            if db.exists():
                try:
                    done_before = {k for k, r in table(db).items() if r["status"] == "complete"}
                except sqlite3.OperationalError:
                    done_before = set()
                if len(done_before) >= 2:
                    break
            time.sleep(0.05)
        assert proc.poll() is None, f"the sweep ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    rows = table(db)
    done_before = {k for k, r in rows.items() if r["status"] == "complete"}
    assert 2 <= len(done_before) < 8
    finished_before = {k: rows[k]["finished_at"] for k in done_before}
    sys.path.insert(0, str(HERE))
    try:
        from modelrecon.sweep import load_study

        again = run_sweep(load_study(cfg), db=db, workers=1, progress=False)
    finally:
        sys.path.remove(str(HERE))
    assert again.already_done == len(done_before) and again.ran == 8 - len(done_before)
    rows = table(db)
    assert all(r["status"] == "complete" for r in rows.values())
    assert {k: rows[k]["finished_at"] for k in done_before} == finished_before  # not re-run
    log = executions(tmp_path)
    seeds_before = {json.loads(rows[k]["point"])["seed"] for k in done_before}
    for s in seeds_before:
        assert log.count(str(s)) == 1
    assert set(log) == {str(s) for s in range(8)}


def test_failing_run_is_recorded_not_fatal(tmp_path):
    study = scripted(tmp_path, seeds=4, fail_at=1)
    db = tmp_path / "f.sqlite"
    s = run_sweep(study, db=db, workers=0, progress=False)
    assert (s.ran, s.complete, s.failed, s.errors) == (4, 3, 1, 1)
    rows = {json.loads(r["point"])["seed"]: r for r in table(db).values()}
    assert rows[1]["status"] == "failed" and "RuntimeError: scripted failure at seed 1" in rows[1]["error"]
    assert all(rows[i]["status"] == "complete" and rows[i]["error"] is None for i in (0, 2, 3))
    assert run_sweep(study, db=db, workers=0, progress=False).ran == 0  # a failure is a result
    retry = run_sweep(study, db=db, workers=0, retry_failed=True, progress=False)
    assert (retry.ran, retry.failed) == (1, 1)  # --retry-failed re-runs only what raised
    # an attack's own verdict is a failure without an error: a ReLU net is not linear
    verdict = Study.from_dict({"study": {"name": "verdict", "attack": "linear", "target": "builtin:relu2?d=4&h=3&seed=0"},
                               "attack": {"method": "equations"}})
    v = run_sweep(verdict, db=db, workers=0, progress=False)
    assert (v.failed, v.errors) == (1, 0)
    row = ResultsDB(db).rows("verdict")[0]
    assert row["status"] == "failed" and row["error"] is None and "not a linear model" in row["message"]


def test_results_table_and_plot(tmp_path):
    from typer.testing import CliRunner

    from modelrecon.cli import app

    db = tmp_path / "small.sqlite"
    run_sweep(Study.from_dict(SMALL), db=db, workers=0, progress=False)
    rows = ResultsDB(db).rows("small")
    groups = group_rows(rows, ["method", "d"], ["queries", "parameter_relative_error"])
    assert [(g["method"], g["d"], g["runs"], g["queries"]["mean"]) for g in groups] == [
        ("equations", 3, 2, 4), ("equations", 12, 2, 13), ("gradient", 3, 2, 2), ("gradient", 12, 2, 2)]
    png = tmp_path / "q.png"
    res = CliRunner().invoke(app, ["results", str(db), "--group-by", "method,d", "--metric", "queries,agreement",
                                   "--plot", str(png), "--x", "d", "--y", "queries", "--logy"])
    assert res.exit_code == 0, res.output
    assert "equations" in res.output and "gradient" in res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_grid_key_that_changes_nothing_is_refused():
    cfg = {"study": {"name": "x", "attack": "linear", "target": "builtin:linear?d=3"}, "grid": {"noise": [1, 2]}}
    with pytest.raises(StudyError, match="changes nothing.*attack.noise"):
        Study.from_dict(cfg)


def _session(sid: int) -> list[int]:
    """Live processes (zombies excluded) of session ``sid``."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def _left_after(sid: int, seconds: float) -> list[int]:
    """The processes of session ``sid`` still alive after waiting up to ``seconds`` for them to go."""
    deadline = time.time() + seconds
    while _session(sid) and time.time() < deadline:
        time.sleep(0.1)
    return _session(sid)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_workers_die_with_a_killed_sweep(tmp_path):
    """kill -9 of the sweep's own process: its workers, the forkserver and the resource tracker
    exit too (issue 13, defect 10) instead of running on as orphans."""
    cfg = scripted_config(tmp_path, "orphans", 4, sleep=30)
    db = tmp_path / "o.sqlite"
    env = cli_env()
    proc = subprocess.Popen([sys.executable, "-m", "modelrecon.cli", "sweep", str(cfg), "--db", str(db), "--workers",
                             "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 120
        while len(_session(proc.pid)) < 4:  # the sweep, the forkserver and two workers (and the tracker)
            assert time.time() < deadline and proc.poll() is None, "the sweep did not start its workers"
            time.sleep(0.1)
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)  # the sweep alone, not its process group
        proc.wait()
        left = _left_after(proc.pid, 30)
    finally:
        for pid in _session(proc.pid):
            os.kill(pid, signal.SIGKILL)
    assert left == [], f"orphans after kill -9 of the sweep: {left}"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_ctrl_c_stops_at_once_and_resumes(tmp_path):
    """SIGINT to the sweep while a worker is in a long run: the sweep exits within seconds (it waited
    for that run to finish), keeps what finished, leaves no process behind, and a resume runs the rest.
    (Ctrl-C in a terminal also interrupts the workers themselves; SIGINT to the sweep alone does not.)"""
    cfg = scripted_config(tmp_path, "hang", 3, marker=str(tmp_path / "hung"), hang_at=1)
    db = tmp_path / "h.sqlite"
    env = cli_env()
    command = [sys.executable, "-m", "modelrecon.cli", "sweep", str(cfg), "--db", str(db), "--workers", "1"]
    # SIGINT as a terminal's shell leaves it (a test run in the background inherits it ignored)
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.time() + 120
        while not (tmp_path / "hung").exists():  # run 0 is done, run 1 hangs on the worker
            assert time.time() < deadline and proc.poll() is None, "the sweep did not reach the long run"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGINT)
        start = time.time()
        code = proc.wait(timeout=30)
        stopped_in = time.time() - start
        output = proc.stdout.read().decode()
        left = _left_after(proc.pid, 10)
    finally:
        for pid in _session(proc.pid):
            os.kill(pid, signal.SIGKILL)
    assert code == 130 and "interrupted" in output, output
    assert stopped_in < 10, f"Ctrl-C took {stopped_in:.1f} s"
    assert left == [], f"processes left after Ctrl-C: {left}"
    status = {json.loads(r["point"])["seed"]: r["status"] for r in table(db).values()}
    assert status == {0: "complete", 1: "pending", 2: "pending"}
    assert executions(tmp_path) == ["0"]
    sys.path.insert(0, str(HERE))
    try:
        from modelrecon.sweep import load_study

        again = run_sweep(load_study(cfg), db=db, workers=0, progress=False)
    finally:
        sys.path.remove(str(HERE))
    assert (again.already_done, again.ran, again.complete) == (1, 2, 2)
    assert sorted(executions(tmp_path)) == ["0", "1", "2"]  # each run finished exactly once


def test_axis_labels_plot_recipe_and_several_metrics_on_one_plot(tmp_path):
    from typer.testing import CliRunner

    from modelrecon.cli import app

    cfg = {**SMALL, "grid": {"size": [{"name": "small", "labels": {"d": 3}}, {"name": "large", "labels": {"d": 12}}],
                             "seed": [0], "attack": {"method": ["gradient", "equations"]}},
           "results": {"recipe": "sweep_helpers:count_recipe",
                       "plot": {"x": "d", "y": ["queries", "agreement"], "hue": ["method"]}}}
    study = Study.from_dict(cfg)
    assert [r["target"] for r in study.runs()][:2] == ["builtin:logistic?d=3&seed=0"] * 2  # {d} from the labels
    assert study.runs()[0]["point"] == {"size": "small", "d": 3, "seed": 0, "attack.method": "gradient"}
    with pytest.raises(StudyError, match="label 'seed' is also a grid key"):
        Study.from_dict({**cfg, "grid": {**cfg["grid"], "size": [{"name": "x", "labels": {"seed": 1}}]}})
    with pytest.raises(StudyError, match="recipe is 'package.module:function'"):
        Study.from_dict({**cfg, "results": {"recipe": "nothing"}})
    with pytest.raises(StudyError, match="cannot be loaded"):
        Study.from_dict({**cfg, "results": {"recipe": "sweep_helpers:no_such_recipe"}})
    db = tmp_path / "l.sqlite"
    run_sweep(study, db=db, workers=0, progress=False)
    png, out = tmp_path / "two.png", tmp_path / "figs"
    res = CliRunner().invoke(app, ["results", str(db), "--group-by", "method,d", "--plot", str(png), "--figures", str(out)])
    assert res.exit_code == 0, res.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "done.txt").read_text() == "equations equations gradient gradient"
    res = CliRunner().invoke(app, ["results", str(db), "--plot", str(png), "--x", "size", "--y", "queries"])
    assert res.exit_code == 0, res.output  # a categorical x: one tick per size
    res = CliRunner().invoke(app, ["results", str(db), "--plot", str(png), "--y", "queries,nope"])
    assert res.exit_code != 0 and "'nope' is neither a grid key" in str(res.exception or res.output)
    bare = tmp_path / "bare.sqlite"
    run_sweep(Study.from_dict(SMALL), db=bare, workers=0, progress=False)
    res = CliRunner().invoke(app, ["results", str(bare), "--figures", str(out)])
    assert res.exit_code != 0 and "no plot recipe" in str(res.exception or res.output)


def test_every_shipped_study_loads():
    """configs/*.toml and the named studies (study span) are valid: attacks, hyperparameters, oracle
    options, placeholders, recipes (loading builds no target and runs nothing)."""
    from modelrecon.studies.span import sweep_config
    from modelrecon.sweep import load_study

    configs = sorted((HERE.parent / "configs").glob("*.toml"))
    assert len(configs) >= 14
    runs = {path.stem: len(load_study(path).runs()) for path in configs}
    assert runs["defences-precision"] == 105 and runs["defences-exact"] == 20 and runs["linear-interfaces"] == 24
    assert len(Study.from_dict(sweep_config()).runs()) == 139


def test_each_seed_band_takes_its_lines_colour(tmp_path, monkeypatch):
    import matplotlib.colors as mcolors

    import modelrecon.sweep as sweep

    db = tmp_path / "small.sqlite"
    run_sweep(Study.from_dict(SMALL), db=db, workers=0, progress=False)
    figures = []
    monkeypatch.setattr(sweep, "save_figure", lambda fig, path, dpi=120: figures.append(fig) or Path(path))
    rows = [r for r in ResultsDB(db).rows("small")  # 'equations' (drawn first): one seed, so no band
            if not (r["point"]["attack.method"] == "equations" and r["point"]["seed"] == 1)]
    sweep.plot_groups(rows, "d", "queries", tmp_path / "q.png", hue=["method"])
    (ax,) = figures[0].axes
    (equations, gradient), (band,) = ax.get_lines(), ax.collections
    assert equations.get_label() == "equations" and gradient.get_label() == "gradient"
    assert mcolors.to_rgb(equations.get_color()) != mcolors.to_rgb(gradient.get_color())
    assert mcolors.to_rgb(band.get_facecolor()[0]) == mcolors.to_rgb(gradient.get_color())


def test_evaluator_options_come_from_the_config():
    """[evaluate] n_inputs reaches the relu evaluator (the worst output error over that many inputs);
    unknown keys, options of an attack whose evaluator takes none, and bad values are refused at load."""
    from modelrecon.sweep import execute_run

    deep = {"study": {"name": "deep", "attack": "modelrecon.attacks.relu:ReluAttack",
                      "target": "builtin:deep?d=6&widths=4,1&init=random&seed={seed}"},
            "oracle": {"kinds": ["value", "gradient"]}, "attack": {"mode": "gradient"},
            "evaluate": {"n_inputs": 1234}, "grid": {"seed": [0]}}
    run = Study.from_dict(deep).runs()[0]
    assert run["evaluate"] == {"n_inputs": 1234}
    rec = execute_run(run)
    assert rec["status"] == "complete" and rec["metrics"]["worst_output_inputs"] == 1234
    assert rec["metrics"]["worst_output_error"] < 1e-9
    assert execute_run({**run, "evaluate": {}})["metrics"]["worst_output_inputs"] == 10_000  # the default
    with pytest.raises(StudyError, match=r"unknown keys n_input; the relu evaluator takes: data, enabled, n_inputs"):
        Study.from_dict({**deep, "evaluate": {"n_input": 10}})
    with pytest.raises(StudyError, match="n_inputs must be an integer >= 1, got 0"):
        Study.from_dict({**deep, "evaluate": {"n_inputs": 0}})
    with pytest.raises(StudyError, match="n_inputs must be an integer >= 1"):
        Study.from_dict({**deep, "grid": {"seed": [0], "evaluate": {"n_inputs": [10, 1.5]}}})
    with pytest.raises(StudyError, match="unknown keys n_inputs; the linear evaluator takes: data, enabled$"):
        Study.from_dict({**SMALL, "evaluate": {"n_inputs": 10}})
    with pytest.raises(StudyError, match="enabled must be true or false"):
        Study.from_dict({**SMALL, "evaluate": {"enabled": "no"}})


def test_a_named_study_is_loaded_from_the_function_that_builds_its_config():
    """`modelrecon sweep modelrecon.studies.span:sweep_config` runs the named study span (its grid built in code);
    `modelrecon.studies.queries:study?target=...` the named study queries with its options."""
    from modelrecon.studies.span import sweep_config
    from modelrecon.sweep import load_study

    study = load_study("modelrecon.studies.span:sweep_config")
    assert study.name == "span-study" and study.runs() == Study.from_dict(sweep_config()).runs()
    # `study queries` through `modelrecon sweep`: its options as text, the same runs (the same keys)
    from modelrecon.studies.queries import StudyConfig, resolved_config

    named = load_study("modelrecon.studies.queries:study?target=builtin:digits-mlp&budgets=10,30&seeds=2&arch=mlp:16")
    same = Study.from_dict(resolved_config(StudyConfig(target="builtin:digits-mlp", budgets=(10, 30), seeds=2,
                                                       arch="mlp:16")))
    assert [run_key(r) for r in named.runs()] == [run_key(r) for r in same.runs()] and len(same.runs()) == 24
    with pytest.raises(StudyError, match=r"not a function that returns a study config .*TypeError"):
        load_study("modelrecon.studies.queries:sweep_config")  # it takes a StudyConfig
    with pytest.raises(StudyError, match=r"TypeError: .*unexpected keyword argument 'budget'"):
        load_study("modelrecon.studies.queries:study?budget=10")
    with pytest.raises(StudyError, match=r"ValueError: invalid literal for int\(\) with base 10: 'many'"):
        load_study("modelrecon.studies.queries:study?target=builtin:digits-mlp&seeds=many")
    with pytest.raises(StudyError, match="not a function that returns a study config"):
        load_study("modelrecon.studies.nope:sweep_config")
    with pytest.raises(StudyError, match="returned str, not a study config"):
        load_study("modelrecon.sweep:_now")
    with pytest.raises(StudyError, match="no study config at nothing.toml"):
        load_study("nothing.toml")
