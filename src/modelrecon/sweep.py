"""Studies at scale: a grid of independent, seeded runs, executed by local worker
processes or on a Dask distributed cluster, with one SQLite row per run.

A study is a TOML file (stdlib ``tomllib``)::

    [study]
    name = "linear-queries-vs-d"
    attack = "linear"                      # a name in ATTACKS, or "package.module:Class"
    target = "builtin:logistic?d={d}&seed={seed}"   # {KEY} = a grid value

    [oracle]                               # local_oracle(target, kinds, **options)
    kinds = ["gradient", "probabilities"]
    round_decimals = 6                     # any other local_oracle option (budget, top_k, ...)

    [attack]                               # hyperparameters: Class(**attack)
    verify = 2
    seed = "{seed}"                        # a string that is one placeholder keeps the value's type

    [evaluate]                             # optional
    data = {data = "digits", split = "test"}   # evaluate(result, target, X=that split)
    n_inputs = 1000000                     # any other key: an option of the attack's evaluator

    [grid]                                 # the cartesian product of these lists
    d = [10, 100, 1000]
    seed = [0, 1, 2]
    oracle.budget = [10, 100]              # a dotted key sets an oracle option / hyperparameter
    attack.method = ["gradient", "equations"]
    interface = [                          # a table per value sets several things at once;
      {name = "gradient", oracle = {kinds = ["gradient", "value"]}},  # its name is the label
      {name = "values", oracle = {kinds = ["value"]}, attack = {method = "equations"}},
    ]                                      # labels = {k = 10, ...}: more columns of the point

    [metrics]
    keep = ["parameter_relative_error", "agreement"]   # absent: keep every metric

    [results]                              # defaults of `modelrecon results` for this study
    group_by = ["interface", "d"]
    metric = ["queries", "parameter_relative_error"]
    plot = {x = "d", y = "queries", logx = true, logy = true}   # y: a metric or a list of them
    recipe = "modelrecon.studies.span:figures"   # optional: fn(rows, out) -> [paths]; `results --figures`

A run is the dict :meth:`Study.runs` builds for one grid point (attack, hyperparameters,
resolved target spec, oracle options, evaluation, the point's labels); its key is the
SHA-256 of its canonical JSON.  :func:`execute_run` is what a worker does with it: seed
the global RNGs from the key, load the target, build the local oracle, run the attack,
evaluate against the truth, return a JSON-able record (an exception becomes a ``failed``
record with its traceback; only KeyboardInterrupt/SystemExit escape).  The parent
process alone writes to the database, a row per key, so a sweep that is interrupted
or loses a worker resumes by running exactly the keys that have no result yet.

Backends (no home-made scheduler): ``workers=N`` uses a
:class:`concurrent.futures.ProcessPoolExecutor` (``workers=0``: in this process, one run
after another); ``scheduler="tcp://HOST:PORT"`` or a ``dask.distributed.Client`` /
cluster object sends the same runs to Dask.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import importlib
import inspect
import itertools
import json
import math
import multiprocessing
import os
import random
import re
import socket
import sqlite3
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from modelrecon.report import save_figure
from modelrecon.result import jsonable
from modelrecon.store import connect

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# Short attack names -> "module:attribute".  The attribute is an Attack subclass (built with
# the [attack] table as keyword arguments, then ``.run(oracle)``) or a function
# ``fn(oracle, **hyperparameters)`` returning a Result or a dict of metrics.
ATTACKS: dict[str, str] = {
    "linear": "modelrecon.attacks.linear:LinearAttack",
    "relu2": "modelrecon.attacks.relu2:Relu2Attack",
    "span": "modelrecon.attacks.span:SpanRecovery",
    "surrogate": "modelrecon.attacks.surrogate:SurrogateAttack",
    "obfuscate": "modelrecon.attacks.obfuscate:Obfuscation",
}



def register_attack(name: str, path: str) -> None:
    """Make ``attack = NAME`` in a study mean ``path`` ("package.module:Class")."""
    if ":" not in path:
        raise StudyError(f"an attack path is 'package.module:Class', got {path!r}")
    ATTACKS[name] = path


SECTIONS = {"study", "oracle", "attack", "evaluate", "grid", "metrics", "results"}
STUDY_KEYS = {"name", "attack", "target", "description", "db", "threads"}
AXIS_TABLE_KEYS = {"name", "attack", "oracle", "target", "evaluate", "labels"}
EVALUATE_KEYS = {"enabled", "data"}  # and the options of the attack's evaluator (evaluate.evaluator_options)
PSEUDO_METRICS = ("queries", "all_queries", "wall_time_s", "run_time_s")
SCHEMA_VERSION = "1"
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][\w.\-]*)\}")


class StudyError(ValueError):
    """A study config that cannot be run as written."""


# ----------------------------------------------------------------------------- config
def resolve_attack(name: str) -> Any:
    """The class or function a study's ``attack`` names (a short name or "module:attr")."""
    path = ATTACKS.get(name, name)
    if ":" not in path:
        raise StudyError(f"unknown attack {name!r}: use one of {', '.join(sorted(ATTACKS))} "
                         "or an importable 'package.module:Class'")
    module, _, attr = path.partition(":")
    try:
        obj = importlib.import_module(module)
    except ImportError as e:
        raise StudyError(f"attack {name!r} is {path}, whose module cannot be imported: {e}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise StudyError(f"attack {name!r} is {path}, but {module} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise StudyError(f"attack {name!r} ({path}) is not a class or function")
    return obj


def _check_run(run: dict[str, Any]) -> None:
    """A run's attack hyperparameters (names, and values the constructor checks) and oracle options
    (names, budgets, rounding), checked before any run: StudyError names the bad one."""
    from modelrecon import explain
    from modelrecon.oracle import KINDS, local_oracle

    where = f"run {json.dumps(run['point'])}" if run["point"] else "the study"
    attack, hp = resolve_attack(run["attack"]), run["hyperparameters"]
    params = inspect.signature(attack.__init__ if _is_attack_class(attack) else attack).parameters
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        takes = [n for n in list(params)[1:] if params[n].kind is not params[n].VAR_POSITIONAL]
        unknown = sorted(set(hp) - set(takes))
        if unknown:
            raise StudyError(f"[attack] {where}: {run['attack']} has no hyperparameter {', '.join(unknown)}; "
                             f"it takes: {', '.join(takes)}")
    if _is_attack_class(attack) and not any(isinstance(v, dict) for v in hp.values()):  # data refs need the target
        try:
            attack(**hp)
        except (TypeError, ValueError) as e:
            raise StudyError(f"[attack] {where}: {e}") from None
    options = dict(run["oracle"])
    options.pop("kinds", None)
    known = (set(inspect.signature(local_oracle).parameters) - {"target", "kinds", "explain_options"}) \
        | set(explain.DEFAULT_OPTIONS)
    unknown = sorted(set(options) - known)
    if unknown:
        raise StudyError(f"[oracle] {where}: unknown options {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    budgets = options.get("budgets") or {}
    if not isinstance(budgets, dict):
        raise StudyError(f"[oracle] {where}: budgets is a table kind = N, got {budgets!r}")
    for name, n in {"budget": options.get("budget"), **{f"budgets.{k}": v for k, v in budgets.items()}}.items():
        if n is not None and not (isinstance(n, int) and not isinstance(n, bool) and n >= 0):
            raise StudyError(f"[oracle] {where}: {name} must be an integer >= 0, got {n!r}")
    for k in budgets:
        if k not in KINDS:
            raise StudyError(f"[oracle] {where}: a budget for unknown query kind {k!r}")
    r = options.get("round_decimals")
    if r is not None and not (isinstance(r, int) and not isinstance(r, bool) and 0 <= r <= 15):
        raise StudyError(f"[oracle] {where}: round_decimals must be an integer in [0, 15], got {r!r}")
    _check_evaluate(run, attack, where)


def _check_evaluate(run: dict[str, Any], attack: Any, where: str) -> None:
    """[evaluate]: enabled, data, and the options of the attack's evaluator (names and integer values)."""
    from modelrecon.evaluate import EVALUATORS, evaluator_options

    ev = run.get("evaluate", {})
    if not isinstance(ev.get("enabled", True), bool):
        raise StudyError(f"[evaluate] {where}: enabled must be true or false, got {ev['enabled']!r}")
    options = {k: v for k, v in ev.items() if k not in EVALUATE_KEYS}
    if not options:
        return
    name = getattr(attack, "name", None) if _is_attack_class(attack) else None
    if name not in EVALUATORS:
        raise StudyError(f"[evaluate] {where}: options {', '.join(sorted(options))} need an attack class whose "
                         f"evaluator is known; {run['attack']} has none (allowed here: {', '.join(sorted(EVALUATE_KEYS))})")
    known = evaluator_options(name)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise StudyError(f"[evaluate] {where}: unknown keys {', '.join(unknown)}; the {name} evaluator takes: "
                         f"{', '.join(sorted(EVALUATE_KEYS | set(known)))}")
    for k, v in options.items():
        if isinstance(known[k], int) and not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
            raise StudyError(f"[evaluate] {where}: {k} must be an integer >= 1, got {v!r}")


def _is_attack_class(obj: Any) -> bool:
    return inspect.isclass(obj) and callable(getattr(obj, "run", None))


def _fill(value: Any, labels: dict[str, Any]) -> Any:
    """Replace {KEY} placeholders in strings (recursively); a string that is exactly one
    placeholder takes the grid value itself, keeping its type."""
    if isinstance(value, str):
        whole = _PLACEHOLDER.fullmatch(value)
        if whole and whole.group(1) in labels:
            return labels[whole.group(1)]

        def sub(m: re.Match) -> str:
            if m.group(1) not in labels:
                raise StudyError(f"placeholder {{{m.group(1)}}} in {value!r} is not a grid key; "
                                 f"grid keys: {', '.join(labels) or 'none'}")
            return str(labels[m.group(1)])
        return _PLACEHOLDER.sub(sub, value)
    if isinstance(value, dict):
        return {k: _fill(v, labels) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, labels) for v in value]
    return value


def _flatten_grid(grid: dict[str, Any], prefix: str = "") -> dict[str, list]:
    axes: dict[str, list] = {}
    for k, v in grid.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            axes.update(_flatten_grid(v, f"{name}."))
        elif isinstance(v, list):
            if not v:
                raise StudyError(f"grid axis {name!r} is an empty list")
            for item in v:
                if isinstance(item, dict):
                    if "name" not in item:
                        raise StudyError(f"grid axis {name!r}: a table value needs a 'name' (its label)")
                    extra = set(item) - AXIS_TABLE_KEYS
                    if extra:
                        raise StudyError(f"grid axis {name!r}: unknown keys {sorted(extra)} in a table value; "
                                         f"allowed: {', '.join(sorted(AXIS_TABLE_KEYS))}")
            axes[name] = v
        else:
            axes[name] = [v]
    return axes


def canonical(obj: Any) -> str:
    return json.dumps(jsonable(obj), sort_keys=True, separators=(",", ":"))


def run_key(run: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(run).encode()).hexdigest()[:24]


@dataclass
class Study:
    """A parsed study config: what to run on which grid, and what to keep."""

    name: str
    attack: str
    target: str
    oracle: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    evaluate: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    keep: list[str] | None = None
    results: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    db: str | None = None
    threads: int = 1
    source: str | None = None

    @classmethod
    def from_dict(cls, cfg: dict[str, Any], source: str | None = None) -> "Study":
        unknown = set(cfg) - SECTIONS
        if unknown:
            raise StudyError(f"unknown sections {sorted(unknown)}; a study has: {', '.join(sorted(SECTIONS))}")
        s = cfg.get("study", {})
        extra = set(s) - STUDY_KEYS
        if extra:
            raise StudyError(f"unknown keys in [study]: {sorted(extra)}; allowed: {', '.join(sorted(STUDY_KEYS))}")
        for key in ("name", "attack", "target"):
            if not isinstance(s.get(key), str) or not s[key].strip():
                raise StudyError(f"[study] needs {key} = \"...\"")
        metrics = cfg.get("metrics", {})
        keep = metrics.get("keep")
        if keep is not None and (not isinstance(keep, list) or not all(isinstance(m, str) for m in keep)):
            raise StudyError("[metrics] keep must be a list of metric names")
        recipe = cfg.get("results", {}).get("recipe")
        if recipe is not None:
            resolve_recipe(recipe)
        threads = s.get("threads", 1)
        if not (isinstance(threads, int) and not isinstance(threads, bool) and threads >= 1):
            raise StudyError(f"[study] threads must be an integer >= 1, got {threads!r}")
        study = cls(name=s["name"], attack=s["attack"], target=s["target"], oracle=dict(cfg.get("oracle", {})),
                    hyperparameters=dict(cfg.get("attack", {})), evaluate=dict(cfg.get("evaluate", {})),
                    grid=_flatten_grid(cfg.get("grid", {})), keep=keep, results=dict(cfg.get("results", {})),
                    description=s.get("description", ""), db=s.get("db"), threads=threads, source=source)
        used = set(_PLACEHOLDER.findall(json.dumps([s["target"], cfg.get("oracle", {}), cfg.get("attack", {}),
                                                    cfg.get("evaluate", {}), cfg.get("grid", {})], default=str)))
        for name, values in study.grid.items():
            if "." not in name and not any(isinstance(v, dict) for v in values) and name not in used:
                raise StudyError(f"grid key {name!r} changes nothing: write {{{name}}} in the target or a "
                                 f"hyperparameter, or use attack.{name} / oracle.{name}")
        for run in study.runs():  # placeholders, axes, the attack and its options are checked now, not on a worker
            _check_run(run)
        return study

    def default_db(self) -> Path:
        """[study] db (relative to the working directory), else out/sweeps/NAME.sqlite."""
        if self.db:
            return Path(self.db)
        return Path("out") / "sweeps" / f"{self.name}.sqlite"

    def runs(self) -> list[dict[str, Any]]:
        """One run config per grid point, in grid order (the first axis varies slowest)."""
        names = list(self.grid)
        out = []
        for values in itertools.product(*(self.grid[n] for n in names)):
            labels: dict[str, Any] = {}
            hp, oracle, ev, target = dict(self.hyperparameters), dict(self.oracle), dict(self.evaluate), self.target
            point = {}
            for name, value in zip(names, values):
                label = value["name"] if isinstance(value, dict) else value
                labels[name] = point[name] = label
                labels.setdefault(name.rpartition(".")[2], label)  # {method} for attack.method too
                section, _, key = name.partition(".")
                if isinstance(value, dict):
                    for column, v in value.get("labels", {}).items():
                        if column in point or column in self.grid:
                            raise StudyError(f"grid axis {name!r}: label {column!r} is also a grid key")
                        labels[column] = point[column] = v
                    hp.update(value.get("attack", {}))
                    oracle.update(value.get("oracle", {}))
                    ev.update(value.get("evaluate", {}))
                    target = value.get("target", target)
                elif key and section == "attack":
                    hp[key] = value
                elif key and section == "oracle":
                    oracle[key] = value
                elif key and section == "evaluate":
                    ev[key] = value
                elif key:
                    raise StudyError(f"grid key {name!r}: a dotted key starts with attack., oracle. or evaluate.")
            run = {"study": self.name, "attack": self.attack, "target": _fill(target, labels),
                   "oracle": _fill(oracle, labels), "hyperparameters": _fill(hp, labels),
                   "evaluate": _fill(ev, labels), "point": point, "threads": self.threads}
            out.append(run)
        keys = [run_key(r) for r in out]
        if len(set(keys)) != len(keys):
            raise StudyError("two grid points give the same run (an axis has a repeated value)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"name": self.name, "attack": self.attack, "target": self.target, "oracle": self.oracle,
                         "hyperparameters": self.hyperparameters, "evaluate": self.evaluate, "grid": self.grid,
                         "keep": self.keep, "results": self.results, "description": self.description,
                         "threads": self.threads, "source": self.source})


def load_study(path: str | Path) -> Study:
    """A study from a TOML file, or from ``package.module:function`` returning the same config as a dict
    (a named study whose grid is built in code, e.g. ``modelrecon.studies.span:sweep_config``), with
    ``?key=value&...`` its keyword arguments as text (``modelrecon.studies.queries:study?target=...``)."""
    text = str(path)
    path = Path(path)
    named = re.fullmatch(r"([A-Za-z_][\w.]*):([A-Za-z_]\w*)(?:\?(.*))?", text)
    if not path.exists() and named:
        from urllib.parse import parse_qsl

        module, attr, query = named.groups()
        try:
            build = getattr(importlib.import_module(module), attr)
            cfg = build(**dict(parse_qsl(query or "", keep_blank_values=True, strict_parsing=bool(query))))
        except (ImportError, AttributeError, TypeError, ValueError) as e:
            raise StudyError(f"{text} is not a study: no TOML file there, and not a function that returns a study "
                             f"config from these arguments ({type(e).__name__}: {e})") from None
        if not isinstance(cfg, dict):
            raise StudyError(f"{text} returned {type(cfg).__name__}, not a study config (a dict)")
        return Study.from_dict(cfg, source=text)
    if not path.exists():
        raise StudyError(f"no study config at {path}")
    try:
        cfg = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise StudyError(f"{path} is not valid TOML: {e}") from None
    return Study.from_dict(cfg, source=str(path))


# ------------------------------------------------------------------------ one run
def _data_ref(value: Any, target: Any) -> Any:
    """{data = NAME, split = train|pool|test} -> that split's inputs shaped as the target's;
    {data = "file.npy"} -> the inputs in that file."""
    if isinstance(value, dict) and str(value.get("data", "")).endswith(".npy"):
        import numpy as np

        X = np.load(value["data"], allow_pickle=False).astype(np.float64)
        return X.reshape(len(X), *target.input_shape)
    if isinstance(value, dict) and "data" in value and set(value) <= {"data", "split", "labels"}:
        from modelrecon import data

        name, split = value["data"], value.get("split", "test")
        if split not in ("train", "pool", "test"):
            raise StudyError(f"data split must be train, pool or test, got {split!r}")
        ds = data.digits(image=len(target.input_shape) == 3) if name == "digits" else data.load(name)
        X = getattr(ds, f"X_{split}")
        X = X.reshape(len(X), *target.input_shape)
        return (X, getattr(ds, f"y_{split}")) if value.get("labels") else X
    if isinstance(value, dict):
        return {k: _data_ref(v, target) for k, v in value.items()}
    return value


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _worker_name() -> str:
    """host:pid, and the Dask worker's address when the run is a Dask task."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    if "distributed" in sys.modules:
        try:
            from distributed import get_worker

            name += f" dask {get_worker().address}"
        except ValueError:  # not inside a Dask task
            pass
    return name


def run_attack(run: dict[str, Any]) -> tuple[Any, Any]:
    """(Result, target) of one run: load the target, build its local oracle, run the attack, evaluate.

    Seeded from the run's key, so the same run gives the same answer on any worker (and a plot
    recipe that needs more than the database holds, such as pictures, can run it again)."""
    import torch

    from modelrecon.evaluate import EVALUATORS, evaluate
    from modelrecon.oracle import local_oracle
    from modelrecon.result import Result
    from modelrecon.targets import load

    torch.set_num_threads(int(run.get("threads", 1)))
    _seed_everything(int(run_key(run)[:15], 16))
    target = load(run["target"])
    options = dict(run["oracle"])
    kinds = options.pop("kinds", None)
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.split(",") if k.strip()]
    oracle = local_oracle(target, kinds, **options)
    attack = resolve_attack(run["attack"])
    hp = _data_ref(run["hyperparameters"], target)
    if _is_attack_class(attack):
        result = attack(**hp).run(oracle)
    else:
        start = time.perf_counter()
        result = attack(oracle, **hp)
        if isinstance(result, dict):
            result = Result(run["attack"], "complete", "", metrics=dict(result))
        result.wall_time_s = result.wall_time_s or time.perf_counter() - start
        result.queries = result.queries or oracle.ledger.to_dict()
    ev = run.get("evaluate", {})
    if ev.get("enabled", True) and result.attack in EVALUATORS:
        X = _data_ref(ev.get("data"), target) if ev.get("data") is not None else None
        evaluate(result, target, X, **{k: v for k, v in ev.items() if k not in EVALUATE_KEYS})
    return result, target


def execute_run(run: dict[str, Any]) -> dict[str, Any]:
    """What a worker does with a run: :func:`run_attack`, as a JSON-able record (an exception is a
    ``failed`` record with its traceback)."""
    started, t0 = _now(), time.perf_counter()
    record: dict[str, Any] = {"key": run_key(run), "started_at": started, "worker": _worker_name(),
                              "error": None, "metrics": {}, "ledger": {}, "details": {}, "message": ""}
    try:
        result, _ = run_attack(run)
        record.update(status=result.status, message=result.message, metrics=result.metrics,
                      ledger=result.queries, details=result.details, wall_time_s=result.wall_time_s)
    except Exception as e:  # a failing run is a result, not the end of the sweep
        record.update(status="failed", message=f"{type(e).__name__}: {e}", error=traceback.format_exc())
    record["run_time_s"] = time.perf_counter() - t0
    record["finished_at"] = _now()
    return jsonable(record)


# ------------------------------------------------------------------------- the database
class ResultsDB:
    """One row per run, keyed by the hash of its config; ``pending`` until a result is in."""

    COLUMNS = ("key", "study", "attack", "target", "point", "config", "status", "message", "error", "metrics",
               "ledger", "details", "queries", "wall_time_s", "run_time_s", "started_at", "finished_at", "worker",
               "attempts", "created_at")

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = connect(self.path, "sweep results database", {"meta", "studies", "runs"}, timeout=60)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE IF NOT EXISTS studies (name TEXT PRIMARY KEY, config TEXT, updated_at TEXT);
            CREATE TABLE IF NOT EXISTS runs (
              key TEXT PRIMARY KEY, study TEXT NOT NULL, attack TEXT, target TEXT, point TEXT, config TEXT,
              status TEXT NOT NULL DEFAULT 'pending', message TEXT, error TEXT, metrics TEXT, ledger TEXT,
              details TEXT, queries INTEGER, wall_time_s REAL, run_time_s REAL, started_at TEXT,
              finished_at TEXT, worker TEXT, attempts INTEGER NOT NULL DEFAULT 0, created_at TEXT);
            CREATE INDEX IF NOT EXISTS runs_study ON runs (study, status);
        """)
        version = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if version is None:
            self.db.execute("INSERT INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        elif version[0] != SCHEMA_VERSION:
            raise StudyError(f"{self.path} has results schema {version[0]}; this modelrecon writes {SCHEMA_VERSION}")
        self.db.commit()

    def register(self, study: Study, runs: list[dict[str, Any]]) -> list[str]:
        """Insert the study and a pending row for every run not yet in the database."""
        now = _now()
        self.db.execute("INSERT OR REPLACE INTO studies VALUES (?, ?, ?)", (study.name, canonical(study.to_dict()), now))
        keys = []
        for run in runs:
            key = run_key(run)
            keys.append(key)
            self.db.execute("INSERT OR IGNORE INTO runs (key, study, attack, target, point, config, created_at) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (key, study.name, run["attack"], run["target"], canonical(run["point"]), canonical(run), now))
        self.db.commit()
        return keys

    def todo(self, keys: Iterable[str], retry_failed: bool = False) -> list[str]:
        """The keys among ``keys`` that still need running (pending; with retry_failed, raised too)."""
        keys = list(keys)
        status = {r["key"]: (r["status"], r["error"]) for r in self.db.execute("SELECT key, status, error FROM runs")}
        return [k for k in keys if status.get(k, ("pending", None))[0] == "pending"
                or (retry_failed and status[k][0] == "failed" and status[k][1] is not None)]

    def mark_dispatched(self, key: str) -> None:
        self.db.execute("UPDATE runs SET attempts = attempts + 1 WHERE key = ?", (key,))
        self.db.commit()

    def record(self, rec: dict[str, Any], keep: list[str] | None = None) -> None:
        metrics = rec.get("metrics") or {}
        if keep is not None:
            metrics = {k: v for k, v in metrics.items() if k in keep}
        ledger = rec.get("ledger") or {}
        self.db.execute(
            "UPDATE runs SET status=?, message=?, error=?, metrics=?, ledger=?, details=?, queries=?, wall_time_s=?, "
            "run_time_s=?, started_at=?, finished_at=?, worker=? WHERE key=?",
            (rec["status"], rec.get("message"), rec.get("error"), canonical(metrics), canonical(ledger),
             canonical(rec.get("details") or {}), ledger.get("total"), rec.get("wall_time_s"), rec.get("run_time_s"),
             rec.get("started_at"), rec.get("finished_at"), rec.get("worker"), rec["key"]))
        self.db.commit()

    def rows(self, study: str | None = None) -> list[dict[str, Any]]:
        q, args = "SELECT * FROM runs", ()
        if study:
            q, args = q + " WHERE study = ?", (study,)
        out = []
        for r in self.db.execute(q + " ORDER BY created_at, rowid", args):
            row = dict(r)
            for col in ("point", "config", "metrics", "ledger", "details"):
                row[col] = json.loads(row[col]) if row[col] else {}
            out.append(row)
        return out

    def studies(self) -> dict[str, dict[str, Any]]:
        return {r["name"]: json.loads(r["config"]) for r in self.db.execute("SELECT name, config FROM studies")}

    def close(self) -> None:
        self.db.close()


# ---------------------------------------------------------------------------- the sweep
@dataclass
class SweepSummary:
    study: str
    db: str
    total: int
    already_done: int
    ran: int = 0
    complete: int = 0
    partial: int = 0
    failed: int = 0
    errors: int = 0
    wall_time_s: float = 0.0
    backend: str = ""
    interrupted: bool = False

    @property
    def remaining(self) -> int:
        return self.total - self.already_done - self.ran


def _pool_context() -> multiprocessing.context.BaseContext:
    """forkserver where there is one (children fork from a clean server that has imported
    the library once; no fork of a threaded parent), spawn elsewhere."""
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if "forkserver" in methods:
        ctx.set_forkserver_preload(["modelrecon.sweep", "modelrecon.oracle", "modelrecon.explain",
                                    "modelrecon.evaluate", "modelrecon.targets", "modelrecon.attacks", "captum.attr"])
    return ctx


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:  # no /proc: trust kill
        return True


def _die_with(parent: int) -> None:
    """Worker initializer: a thread that ends the worker as soon as the sweep's process is gone
    (``kill -9`` included), so that no worker outlives the sweep and keeps running its grid."""

    def watch() -> None:
        while _alive(parent):
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="sweep-parent-watch", daemon=True).start()


def _run_local(todo: list[tuple[str, dict]], workers: int, on_dispatch: Callable, on_result: Callable) -> None:
    if workers == 0:
        for key, run in todo:
            on_dispatch(key)
            on_result(execute_run(run))
        return
    pending = iter(todo)
    # at most `workers` runs are handed out at a time: an interrupted sweep leaves nothing
    # queued inside the pool that would run after the parent stopped listening
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(), initializer=_die_with,
                                initargs=(os.getpid(),)) as pool:
        inflight: dict[cf.Future, str] = {}

        def submit_next() -> None:
            for key, run in pending:
                on_dispatch(key)
                inflight[pool.submit(execute_run, run)] = key
                return

        for _ in range(workers):
            submit_next()
        try:
            while inflight:
                done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                for f in done:
                    inflight.pop(f)
                    on_result(f.result())
                    submit_next()
        except BaseException:
            for f in list(inflight):  # keep what finished before the interruption
                if f.done() and not f.cancelled() and f.exception() is None:
                    on_result(f.result())
            _stop_workers(pool)
            raise


def _stop_workers(pool: cf.ProcessPoolExecutor) -> None:
    """End the pool's workers now (SIGTERM), the runs in flight with them: an interrupted sweep
    stops at once instead of waiting for them, and they stay pending, to run again on resume."""
    if hasattr(pool, "terminate_workers"):  # Python >= 3.14
        pool.terminate_workers()
        return
    workers = list((pool._processes or {}).values())  # shutdown forgets them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        process.terminate()


def _dask_client(scheduler: Any) -> tuple[Any, bool]:
    from distributed import Client

    if isinstance(scheduler, Client):
        return scheduler, False
    if isinstance(scheduler, str):
        return Client(scheduler, set_as_default=False), True
    if hasattr(scheduler, "scheduler_address"):  # LocalCluster, SpecCluster, a job-queue cluster ...
        return Client(scheduler, set_as_default=False), True
    raise StudyError(f"scheduler must be 'tcp://HOST:PORT', a dask.distributed Client or a cluster, got {scheduler!r}")


def _run_dask(todo: list[tuple[str, dict]], scheduler: Any, on_dispatch: Callable, on_result: Callable) -> None:
    from distributed import as_completed

    client, owned = _dask_client(scheduler)
    futures = {}
    try:
        for key, run in todo:
            on_dispatch(key)
            # the run's hash as the task key: the cluster never computes the same run twice at once
            futures[client.submit(execute_run, run, key=f"modelrecon-run-{key}", pure=False)] = (key, run)
        try:
            with client.as_current():
                completed = as_completed(list(futures))
            for f in completed:
                key, run = futures.pop(f)
                try:
                    on_result(f.result())
                except Exception as e:  # the task itself catches run errors: this is a lost worker or a cancel
                    on_result({"key": key, "status": "failed", "message": f"{type(e).__name__}: {e}",
                               "error": f"dask: {type(e).__name__}: {e}\n" + traceback.format_exc(),
                               "finished_at": _now()})
        except BaseException:
            client.cancel(list(futures))
            raise
    finally:
        if owned:
            client.close()


def run_sweep(study: Study | str | Path, db: str | Path | None = None, workers: int | None = None,
              scheduler: Any = None, retry_failed: bool = False, progress: bool = True) -> SweepSummary:
    """Run every grid point of ``study`` that has no result in ``db`` yet; results go to ``db``.

    ``workers``: local worker processes (default: the machine's cores; 0 = in this process).
    ``scheduler``: a Dask scheduler address, ``Client`` or cluster object instead."""
    from modelrecon import report

    if not isinstance(study, Study):
        study = load_study(study)
    db_path = Path(db) if db else study.default_db()
    store = ResultsDB(db_path)
    runs = study.runs()
    keys = store.register(study, runs)
    by_key = dict(zip(keys, runs))
    todo_keys = store.todo(keys, retry_failed)
    todo = [(k, by_key[k]) for k in todo_keys]
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 0:
        raise StudyError("workers must be >= 0")
    backend = f"dask {scheduler if isinstance(scheduler, str) else type(scheduler).__name__}" if scheduler is not None \
        else ("in-process" if workers == 0 else f"{workers} local process{'es' if workers != 1 else ''}")
    summary = SweepSummary(study.name, str(db_path), len(keys), len(keys) - len(todo), backend=backend)
    start = time.perf_counter()
    bar = report.progress() if progress else None
    task = None

    def on_dispatch(key: str) -> None:
        store.mark_dispatched(key)

    def on_result(rec: dict[str, Any]) -> None:
        store.record(rec, study.keep)
        summary.ran += 1
        status = rec["status"]
        setattr(summary, status, getattr(summary, status) + 1)
        summary.errors += rec.get("error") is not None
        if bar is not None:
            bar.advance(task)

    try:
        if bar is not None:
            bar.start()
            task = bar.add_task(f"{study.name} ({backend})", total=len(keys), completed=summary.already_done)
        if scheduler is not None:
            _run_dask(todo, scheduler, on_dispatch, on_result)
        else:
            _run_local(todo, workers, on_dispatch, on_result)
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        summary.wall_time_s = time.perf_counter() - start
        if bar is not None:
            bar.stop()
        store.close()
    return summary


# --------------------------------------------------------------------------- results
def field_value(row: dict[str, Any], name: str) -> Any:
    """A grid label, a run column or a metric of one row, by name."""
    point = row["point"]
    if name in point:
        return point[name]
    short = [k for k in point if k.rpartition(".")[2] == name]
    if len(short) == 1:
        return point[short[0]]
    if name == "queries":
        return row["queries"]
    if name == "all_queries":
        return row["ledger"].get("all_phases_total")
    if name in ("wall_time_s", "run_time_s", "status", "attack", "target", "study", "worker", "attempts"):
        return row[name]
    return row["metrics"].get(name)


def _sort_key(v: Any) -> tuple:
    return (0, v, "") if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, 0, str(v))


def group_rows(rows: list[dict[str, Any]], group_by: list[str], metrics: list[str]) -> list[dict[str, Any]]:
    """Per group: runs, complete/partial/failed/pending counts, and per metric
    mean, min, max and n over the runs where it is a finite number."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(field_value(r, g) for g in group_by), []).append(r)
    out = []
    for gkey in sorted(groups, key=lambda t: tuple(_sort_key(v) for v in t)):
        rs = groups[gkey]
        entry: dict[str, Any] = dict(zip(group_by, gkey))
        entry["runs"] = len(rs)
        for st in ("complete", "partial", "failed", "pending"):
            entry[st] = sum(r["status"] == st for r in rs)
        for m in metrics:
            vals = [v for v in (field_value(r, m) for r in rs if r["status"] != "pending")
                    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
            entry[m] = {"n": len(vals), "mean": sum(vals) / len(vals) if vals else None,
                        "min": min(vals) if vals else None, "max": max(vals) if vals else None}
        out.append(entry)
    return out


def metric_names(rows: list[dict[str, Any]]) -> list[str]:
    names: dict[str, None] = {}
    for r in rows:
        names.update(dict.fromkeys(r["metrics"]))
    return ["queries"] + list(names)


def plot_groups(rows: list[dict[str, Any]], x: str, y: str | list[str], path: str | Path,
                hue: list[str] | None = None, logx: bool = False, logy: bool = False, title: str | None = None) -> Path:
    """Mean of ``y`` against ``x`` (over the runs of each point, min-max band), a line per hue
    (and per metric, where ``y`` is a list of metrics drawn on the same axes).  An ``x`` whose values
    are not all numbers (network names) is categorical: one tick per value, in grid order."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ys = [y] if isinstance(y, str) else list(y)
    hue = [h for h in (hue or []) if h != x]
    table = group_rows(rows, hue + [x], ys)
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    lines: dict[tuple, list[dict]] = {}
    for e in table:
        lines.setdefault(tuple(e[h] for h in hue), []).append(e)
    values = [v for v in dict.fromkeys(field_value(r, x) for r in rows) if v is not None]
    categories = None if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) else \
        {v: i for i, v in enumerate(values)}
    i = 0
    for label, es in lines.items():
        if categories:
            es = sorted(es, key=lambda e: categories[e[x]])
        for metric in ys:
            pts = [(categories[e[x]] if categories else e[x], e[metric]) for e in es
                   if e[metric]["n"] and e[x] is not None]
            if not pts:
                continue
            xs = [p[0] for p in pts]
            name = ", ".join(map(str, label + ((metric,) if len(ys) > 1 else ()))) or metric
            (line,) = ax.plot(xs, [p[1]["mean"] for p in pts], marker="os^Dv<>p"[i % 8],
                              linestyle=("-", "--", ":", "-.")[i % 4], label=name)
            if any(p[1]["n"] > 1 for p in pts):  # the band in its line's colour
                ax.fill_between(xs, [p[1]["min"] for p in pts], [p[1]["max"] for p in pts],
                                color=line.get_color(), alpha=0.2)
            i += 1
    ax.set_xlabel(x)
    ax.set_ylabel(ys[0] if len(ys) == 1 else "value")
    if categories:
        ax.set_xticks(range(len(categories)), [str(v) for v in categories], rotation=30, ha="right", fontsize=8)
    elif logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    if hue or len(ys) > 1:
        ax.legend(title=", ".join(hue) or None, fontsize=8)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title or f"{', '.join(ys)} vs {x}")
    return save_figure(fig, path, dpi=120)


def resolve_recipe(recipe: Any) -> Callable:
    """The function a ``[results] recipe = "package.module:function"`` names."""
    if not (isinstance(recipe, str) and ":" in recipe):
        raise StudyError(f"[results] recipe is 'package.module:function', got {recipe!r}")
    module, _, attr = recipe.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise StudyError(f"plot recipe {recipe!r} cannot be loaded: {e}") from None


def run_recipe(db: str | Path, study: str, out: str | Path) -> list[Path]:
    """The study's plot recipe (``[results] recipe = "module:function"``, called as
    ``function(rows, out)``) over its rows in ``db``: the figures and tables it wrote into ``out``."""
    store = ResultsDB(db)
    try:
        config, rows = store.studies().get(study), store.rows(study)
    finally:
        store.close()
    if config is None:
        raise StudyError(f"no study {study!r} in {db}")
    recipe = config.get("results", {}).get("recipe")
    if not recipe:
        raise StudyError(f"study {study!r} has no plot recipe ([results] recipe); use --plot with --x and --y")
    fn = resolve_recipe(recipe)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [Path(p) for p in fn(rows, out)]
