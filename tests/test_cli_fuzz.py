"""No traceback reaches a user (issue 13): property-based runs of every command over target
specs, option values, config files and corrupt files.  Each run either succeeds honestly (exit
0; a complete result has finite metrics) or ends with one `error: ...` line and a non-zero exit
(or, for an attack that ran and failed, exit 2 with a result whose status says so)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelrecon.cli import main

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            main(argv)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue()


def check(argv: list[str], json_path: Path | None = None) -> str:
    """Run and check the outcome; returns the error line ('' on success)."""
    if json_path is not None and json_path.exists():
        json_path.unlink()
    code, text = run(argv)
    assert "Traceback" not in text and "internal error" not in text, (argv, text)
    if json_path is not None and json_path.exists():  # the command ran to a result: is it honest?
        result = json.loads(json_path.read_text())
        assert code == (2 if result["status"] == "failed" else 0), (argv, code, result["status"])
        if result["status"] == "complete":
            bad = {k: v for k, v in result["metrics"].items() if isinstance(v, float) and not math.isfinite(v)}
            assert not bad, (argv, bad)
        return ""
    if code == 0:
        return ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("error: ") and len(lines[-1]) > 20, (argv, code, text[-2000:])
    return lines[-1]


@pytest.fixture(autouse=True)
def _no_server(monkeypatch):
    """`serve` builds everything and checks every option, but does not listen."""
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)


NUMBERS = st.one_of(st.integers(-10 ** 12, 10 ** 12), st.sampled_from([-1, 0, 1, 2, 3, 5, 8]),
                    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["", "x", "1e3", "3,0", "-"]))
SMALL = {"d": st.sampled_from([-5, 0, 1, 3, 6, 10 ** 6 + 1, 10 ** 11]), "h": st.sampled_from([-1, 0, 1, 4, 200_000]),
         "k": st.sampled_from([-1, 0, 1, 3]), "widths": st.sampled_from(["0,5", "3,4", "", "a", "-1", "4"]),
         "act": st.sampled_from(["relu", "tanh", "nosuch"]), "bias": st.sampled_from([0, 1, 2, -1]),
         "bias_scale": st.sampled_from([0.5, -1, "nan", "inf"]), "seed": st.sampled_from([0, -1, 2 ** 70, "x"])}


@st.composite
def target_specs(draw) -> str:
    kind = draw(st.sampled_from(["builtin", "builtin", "builtin", "factory", "garbage"]))
    if kind == "factory":
        return draw(st.sampled_from(["math:pi", "torch.nn:Linear", "torch.nn:ReLU", "os:getcwd", "nosuch.mod:f",
                                     "modelrecon:nothing", "torch.nn:ReLU?d=4", "json:loads", ":", "a:b:c"]))
    if kind == "garbage":
        return draw(st.text(max_size=20))
    name = draw(st.sampled_from(["linear", "logistic", "relu2", "mlp", "nosuch"]))
    keys = draw(st.lists(st.sampled_from(list(SMALL) + ["nosuch"]), max_size=3))
    parts = [f"{k}={draw(SMALL[k]) if k in SMALL else draw(NUMBERS)}" for k in keys]
    return f"builtin:{name}" + ("?" + "&".join(parts) if parts else "")


@FUZZ
@given(spec=target_specs())
def test_attack_over_fuzzed_target_specs(tmp_path, spec):
    out = tmp_path / "r.json"
    check(["attack", "linear", "--target", spec, "--verify", "1", "--json", str(out)], out)


@FUZZ
@given(round_=st.one_of(st.none(), st.integers(-5, 400)), budget=st.one_of(st.none(), st.integers(-10, 30)),
       per_kind=st.one_of(st.none(), st.sampled_from(["nosuch=5", "value=-1", "value=3", "gradient=1", "=", "x",
                                                      "value=1,gradient=0"])),
       oracle=st.one_of(st.none(), st.sampled_from(["value", "gradient", "nosuch", "", "label,value"])),
       method=st.sampled_from(["auto", "equations", "gradient", "nosuch"]), verify=st.integers(-3, 3))
def test_attack_over_fuzzed_options(tmp_path, round_, budget, per_kind, oracle, method, verify):
    argv = ["attack", "linear", "--target", "builtin:logistic?d=5", "--method", method, "--verify", str(verify)]
    for flag, v in (("--round", round_), ("--budget", budget), ("--budget-per-kind", per_kind), ("--oracle", oracle)):
        if v is not None:
            argv += [flag, str(v)]
    out = tmp_path / "r.json"
    line = check(argv + ["--json", str(out)], out)
    if round_ is not None and not 0 <= round_ <= 15:
        assert line  # refused, never a result


SERVE_OPTIONS = st.fixed_dictionaries({}, optional={
    "--port": st.sampled_from(["0", "70000", "-1", "8000", "x"]), "--max-batch": st.sampled_from(["0", "-3", "16"]),
    "--max-body-bytes": st.sampled_from(["-1", "0", "100000"]), "--quota": st.sampled_from(["-5", "0", "100"]),
    "--rate": st.sampled_from(["-1", "0", "inf", "nan", "10"]), "--round": st.sampled_from(["-1", "16", "3"]),
    "--top-k": st.sampled_from(["0", "2"]), "--explanation-noise": st.sampled_from(["-1", "nan", "0.1"]),
    "--explanations": st.sampled_from(["gradient", "nosuch", "", "smoothgrad,gradient"]),
    "--predictions": st.sampled_from(["value", "nosuch", "probabilities"]),
    "--header-timeout": st.sampled_from(["0", "5", "-1"]), "--address-rate": st.sampled_from(["0", "100"])})
KEYS = st.one_of(st.binary(max_size=40), st.sampled_from([
    b'{"a": {"key": "aaaaaaaaaa", "quota": "lots"}}', b'{"a": {"key": "aaaaaaaaaa", "rate": -1}}', b"[]", b"{}",
    b'{"a": {"key": "aaaaaaaaaa", "quota": 100000000000000000000000}}', b'{"a": {"key": "short"}}',
    b'{"a": {"key": "aaaaaaaaaa"}, "b": {"key": "aaaaaaaaaa"}}', b'{"a": {"key": "aaaaaaaaaa", "admin": 1}}',
    b'{"a": {"key": "aaaaaaaaaa", "quota": 10, "rate": 2.5, "burst": 3}}']))


@FUZZ
@given(options=SERVE_OPTIONS, keys=KEYS, spec=st.sampled_from(["builtin:logistic?d=4", "builtin:relu2?d=4&h=2"]))
def test_serve_over_fuzzed_options_and_keys_files(tmp_path, options, keys, spec):
    path = tmp_path / "keys.json"
    path.write_bytes(keys)
    argv = ["serve", spec, "--keys", str(path), "--db", str(tmp_path / "log.sqlite")]
    for k, v in options.items():
        argv += [k, v]
    check(argv)


def _other_sqlite(path: Path) -> None:
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE IF NOT EXISTS queries (id INTEGER PRIMARY KEY, charged INTEGER)")
    db.commit()
    db.close()


CORRUPT = st.one_of(st.binary(max_size=64), st.sampled_from(["sqlite", "empty", "npy-strings", "npy-3d", "json"]))


def _write(path: Path, content) -> None:
    if content == "sqlite":
        _other_sqlite(path)
    elif content == "empty":
        path.write_bytes(b"")
    elif content == "npy-strings":
        with open(path, "wb") as f:
            np.save(f, np.array(["a", "b"]))
    elif content == "npy-3d":
        with open(path, "wb") as f:
            np.save(f, np.zeros((2, 2, 2)))
    elif content == "json":
        path.write_text('{"a": 1}')
    else:
        path.write_bytes(content)


@FUZZ
@given(content=CORRUPT, command=st.sampled_from(["onnx", "pt", "journal", "results", "sweep", "sweep-db",
                                                 "attack-journal", "span", "serve-onnx", "serve-db", "pool"]))
def test_every_command_over_corrupt_files(tmp_path, content, command):
    ext = {"onnx": ".onnx", "serve-onnx": ".onnx", "pt": ".pt", "span": ".npz", "pool": ".npy", "sweep": ".toml"}
    path = tmp_path / f"f{ext.get(command, '.sqlite')}"
    if path.exists():
        path.unlink()
    _write(path, content)
    study = tmp_path / "study.toml"
    study.write_text('[study]\nname = "s"\nattack = "linear"\ntarget = "builtin:linear?d=3"\n')
    argv = {"onnx": ["attack", "linear", "--target", str(path)], "pt": ["attack", "linear", "--target", str(path)],
            "journal": ["journal", str(path)], "results": ["results", str(path)], "sweep": ["sweep", str(path)],
            "sweep-db": ["sweep", str(study), "--workers", "0", "--db", str(path)],
            "attack-journal": ["attack", "linear", "--target", "builtin:logistic?d=3", "--journal", str(path)],
            "span": ["obfuscate", "--target", "builtin:mlp?d=64&widths=8&k=10", "--span", str(path), "--n-inputs", "2",
                     "--out", str(tmp_path / "o")],
            "serve-onnx": ["serve", str(path), "--db", str(tmp_path / "log.sqlite")],
            "serve-db": ["serve", "builtin:logistic?d=3", "--db", str(path)],
            "pool": ["attack", "surrogate", "--target", "builtin:mlp?d=3&widths=2&k=2", "--pool", str(path),
                     "--budget", "4", "--steps", "2"]}[command]
    check(argv)


STUDY_KEYS = st.fixed_dictionaries(
    {"name": st.sampled_from(['"s"', '""', None, "3"]), "attack": st.sampled_from(['"linear"', '"nosuch"', '"math:pi"']),
     "target": st.sampled_from(['"builtin:linear?d={d}"', '"builtin:linear?d=-5"', '"nosuch:x"'])},
    optional={"threads": st.sampled_from(["1", '"many"', "0", "2.5", "true"])})
SECTIONS = st.fixed_dictionaries({}, optional={
    "attack": st.sampled_from(['verify = 1', 'nosuch = 1', 'verify = "x"', 'method = "nosuch"']),
    "oracle": st.sampled_from(["budget = -5", "budget = 30", 'budget = "x"', "nosuch = 1", "round_decimals = 99",
                               "budgets = { nosuch = 5 }", "budgets = { value = -1 }"]),
    "grid": st.sampled_from(["d = [2, 3]", "d = []", "nothing = [1]", "d = [2, 2]", 'd = "x"'])})


@FUZZ
@given(study=STUDY_KEYS, sections=SECTIONS)
def test_sweep_over_fuzzed_configs(tmp_path, study, sections):
    lines = ["[study]"] + [f"{k} = {v}" for k, v in study.items() if v is not None]
    for name, body in sections.items():
        lines += [f"[{name}]", body]
    if "grid" not in sections:
        lines = [line.replace("{d}", "3") for line in lines]
    config = tmp_path / "study.toml"
    config.write_text("\n".join(lines) + "\n")
    db = tmp_path / "results.sqlite"
    if db.exists():
        db.unlink()
    line = check(["sweep", str(config), "--workers", "0", "--db", str(db)])
    if study["name"] is None or study["name"] == '""':
        assert "[study] needs name" in line  # the section's name is printed, not eaten as markup
    if db.exists():  # a run happened: the config was accepted whole
        assert "nosuch = 1" not in sections.values() and "budget = -5" not in sections.values()
        assert study.get("threads") in (None, "1")


def _onnx_file(path: Path, elem_type: int) -> None:
    import onnx
    from onnx import helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", elem_type, ["N", 3])],
                              [helper.make_tensor_value_info("y", elem_type, ["N", 3])])
    onnx.save(helper.make_model(graph), str(path))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The issue's corrupt and foreign files."""
    from onnx import TensorProto

    from modelrecon.serve.app import Service
    from modelrecon.targets import load

    d = tmp_path_factory.mktemp("files")
    (d / "corrupt.onnx").write_bytes(b"\x08\x07garbage" * 10)
    (d / "empty.onnx").write_bytes(b"")
    _onnx_file(d / "int.onnx", TensorProto.INT64)
    (d / "text.sqlite").write_text("not a database at all, just text" * 10)
    Service(load("builtin:logistic?d=3"), db=d / "service.sqlite").close()
    (d / "corrupt.npz").write_bytes(b"PK\x03\x04 truncated zip")
    for name, body in {"unknown-hp": '[attack]\nnosuch = 1', "negative-budget": "[oracle]\nbudget = -5",
                       "threads": 'threads = "many"'}.items():
        head = '[study]\nname = "s"\nattack = "linear"\ntarget = "builtin:linear?d=3"\n'
        (d / f"{name}.toml").write_text(head + body + "\n" if name == "threads" else head + body + "\n")
    (d / "no-name.toml").write_text('[study]\nattack = "linear"\ntarget = "builtin:linear?d=3"\n')
    return d


CASES = [  # (argv with {d} for the files' folder, a fragment of the expected error line)
    (["attack", "linear", "--target", "builtin:logistic?d=-5"], "d=-5"),
    (["attack", "relu2", "--target", "builtin:relu2?h=-1"], "h=-1"),
    (["attack", "linear", "--target", "builtin:logistic?d=100000000000"], "d=100000000000"),
    (["attack", "linear", "--target", "builtin:logistic?d=0"], "d=0"),
    (["attack", "linear", "--target", "builtin:logistic?d=10&d=20"], "given twice"),
    (["attack", "span", "--target", "builtin:mlp?widths=0,5"], "widths=0,5"),
    (["attack", "linear", "--target", "{d}/corrupt.onnx"], "corrupt.onnx"),
    (["attack", "linear", "--target", "{d}/empty.onnx"], "empty.onnx"),
    (["attack", "linear", "--target", "{d}/int.onnx"], "int64"),
    (["serve", "{d}/corrupt.onnx", "--db", "{d}/s1.sqlite"], "corrupt.onnx"),
    (["serve", "{d}/int.onnx", "--db", "{d}/s2.sqlite"], "int64"),
    (["attack", "linear", "--target", "math:pi"], "math:pi"),
    (["attack", "linear", "--target", "torch.nn:Linear"], "torch.nn:Linear"),
    (["attack", "linear", "--target", "builtin:logistic?d=3", "--journal", "{d}/text.sqlite"], "text.sqlite"),
    (["attack", "linear", "--target", "builtin:logistic?d=3", "--journal", "{d}/service.sqlite"], "other tables"),
    (["serve", "builtin:logistic?d=3", "--db", "{d}/text.sqlite"], "text.sqlite"),
    (["journal", "{d}/text.sqlite"], "text.sqlite"),
    (["journal", "{d}/service.sqlite"], "other tables"),
    (["results", "{d}/text.sqlite"], "text.sqlite"),
    (["results", "{d}/service.sqlite"], "other tables"),
    (["sweep", "{d}/unknown-hp.toml", "--workers", "0", "--db", "{d}/service.sqlite"], "nosuch"),
    (["sweep", "{d}/threads.toml", "--workers", "0", "--db", "{d}/text.sqlite"], "many"),
    (["sweep", "{d}/negative-budget.toml", "--workers", "0", "--db", "{d}/r.sqlite"], "-5"),
    (["sweep", "{d}/no-name.toml", "--workers", "0", "--db", "{d}/r.sqlite"], "[study] needs name"),
    (["serve", "builtin:logistic?d=3", "--db", "{d}/no/such/dir/log.sqlite"], "no/such/dir"),
    (["obfuscate", "--target", "builtin:mlp?d=64&widths=8&k=10", "--span", "{d}/corrupt.npz"], "corrupt.npz"),
    (["attack", "linear", "--target", "builtin:logistic?d=3", "--budget", "-5"], "-5"),
    (["attack", "linear", "--target", "builtin:logistic?d=3", "--budget-per-kind", "nosuch=5"], "nosuch"),
    (["attack", "linear", "--target", "builtin:logistic?d=10", "--round", "400"], "400"),
    (["attack", "linear", "--target", "builtin:logistic?d=10", "--round", "-1", "--method", "equations"], "-1"),
]


@pytest.mark.parametrize("argv, fragment", CASES, ids=[" ".join(a[:2]) + f" {f}" for a, f in CASES])
def test_the_issues_cases_end_with_one_error_line_naming_the_value(files, argv, fragment):
    line = check([a.replace("{d}", str(files)) for a in argv])
    assert line and fragment in line, line
    assert not (files / "r.sqlite").exists()  # refused before any run
