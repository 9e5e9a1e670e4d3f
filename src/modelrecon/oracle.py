"""The attacker's only view of a target.

An :class:`Oracle` answers batched queries of several kinds, counts every one of them
in a :class:`Ledger`, enforces budgets, and can journal questions and answers to an
SQLite file so that a run can be audited, replayed offline and resumed without paying
twice.  It holds no handle to the model: answers come from a backend closure built by
:func:`local_oracle` (a model in this process) or by a remote client (the service).

Query kinds
-----------
``value``            raw outputs: (N,) for a scalar model, (N, K) logits otherwise
``probabilities``    sigmoid of a scalar logit (N,), softmax of logits (N, K)
``label``            top-1 class; for a scalar output 0/1 (or -1/+1) against a threshold
``gradient``         signed input gradient of one output (a class index or the predicted class)
``explanation:M``    a Captum explanation computed on the target side, M in
                     :data:`modelrecon.explain.METHODS`
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sqlite3
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from modelrecon.explain import METHODS
from modelrecon.store import connect

PREDICTION_KINDS = ("value", "probabilities", "label")
KINDS = PREDICTION_KINDS + ("gradient",) + tuple(f"explanation:{m}" for m in METHODS)


class OracleError(ValueError):
    """A query the oracle cannot answer as asked (shape, values, kind, target type)."""


class QueryBudgetExceeded(RuntimeError):
    """A budget ran out.  ``answers`` holds what was answered of the last batch (its
    first ``answered`` inputs); ``partial`` may be set by an attack to its partial Result."""

    def __init__(self, message: str, answers: dict[str, np.ndarray], answered: int):
        super().__init__(message)
        self.answers = answers
        self.answered = answered
        self.partial = None


@dataclass
class Ledger:
    """Exact query counts per phase and kind, model evaluations behind them, budgets.

    ``phase`` separates the queries an attack needs from those it spends verifying its
    result (``with ledger.phase("verify"):``); budgets apply to all phases together.
    Answers replayed from a journal are counted apart: they cost the target nothing.
    """

    budget: int | None = None
    budgets: dict[str, int] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(int)))
    replayed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    evaluations: int = 0
    current_phase: str = "attack"

    @contextlib.contextmanager
    def phase(self, name: str):
        previous, self.current_phase = self.current_phase, name
        try:
            yield self
        finally:
            self.current_phase = previous

    def by_kind(self, phase: str | None = None) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for ph, kinds in self.counts.items():
            if phase is None or ph == phase:
                for k, n in kinds.items():
                    out[k] += n
        return dict(out)

    def total(self, phase: str | None = None) -> int:
        return sum(self.by_kind(phase).values())

    def remaining(self, kinds: Iterable[str]) -> int | None:
        """How many more inputs can be asked for all of ``kinds`` at once (None: no limit)."""
        kinds = list(kinds)
        limits = []
        spent = self.by_kind()
        if self.budget is not None:
            limits.append((self.budget - sum(spent.values())) // max(len(kinds), 1))
        for k in kinds:
            if k in self.budgets:
                limits.append(self.budgets[k] - spent.get(k, 0))
        return max(min(limits), 0) if limits else None

    def record(self, kinds: Iterable[str], n: int, evaluations: int = 0) -> None:
        for k in kinds:
            self.counts[self.current_phase][k] += n
        self.evaluations += evaluations

    def recharge(self, kinds: Iterable[str], n: int, source: str, target: str) -> None:
        """Count n inputs already asked for ``kinds`` in phase ``target`` instead of ``source`` (a verification whose
        answers an attack went on to use)."""
        for k in kinds:
            self.counts[source][k] -= n
            self.counts[target][k] += n

    def to_dict(self) -> dict[str, Any]:
        phases = {ph: {"total": self.total(ph), "by_kind": self.by_kind(ph)} for ph in self.counts if ph != "attack"}
        out = {"total": self.total("attack"), "by_kind": self.by_kind("attack"), "evaluations": self.evaluations}
        out.update(phases)
        if self.replayed:
            out["replayed"] = dict(self.replayed)
        out["all_phases_total"] = self.total()
        return out


def _encode(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _decode(b: bytes) -> np.ndarray:
    return np.load(io.BytesIO(b), allow_pickle=False)


class Journal:
    """Every question and answer appended to an SQLite file, keyed by (kind, output, input bytes).

    The file carries the oracle's fingerprint (target spec and output options); opening
    it for a different oracle is refused rather than replaying answers of another model.
    """

    def __init__(self, path: str | Path, fingerprint: dict[str, Any]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = connect(self.path, "query journal", {"meta", "answers", "requests"})
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, seq INTEGER, kind TEXT, output TEXT,"
            " phase TEXT, time REAL, x BLOB, answer BLOB)"
        )
        self.db.execute("CREATE TABLE IF NOT EXISTS requests (digest TEXT PRIMARY KEY, request_id TEXT, time REAL)")
        fp = json.dumps(fingerprint, sort_keys=True)
        row = self.db.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()
        if row is None:
            self.db.execute("INSERT INTO meta VALUES ('fingerprint', ?)", (fp,))
            self.db.commit()
        elif row[0] != fp:
            raise OracleError(
                f"journal {self.path} was recorded for another oracle:\n  recorded {row[0]}\n  this     {fp}"
            )
        self.fingerprint = json.loads(fp)

    @staticmethod
    def key(kind: str, output: Any, x: np.ndarray) -> str:
        h = hashlib.sha256(f"{kind}|{output}|{x.dtype}|{x.shape}".encode())
        h.update(np.ascontiguousarray(x).tobytes())
        return h.hexdigest()

    def lookup(self, key: str) -> np.ndarray | None:
        row = self.db.execute("SELECT answer FROM answers WHERE key=?", (key,)).fetchone()
        return None if row is None else _decode(row[0])

    def append(self, rows: list[tuple[str, str, Any, str, np.ndarray, np.ndarray]]) -> None:
        seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM answers").fetchone()[0]
        now = time.time()
        self.db.executemany(
            "INSERT OR IGNORE INTO answers VALUES (?,?,?,?,?,?,?,?)",
            [(key, seq + i + 1, kind, str(output), phase, now, _encode(x), _encode(a))
             for i, (key, kind, output, phase, x, a) in enumerate(rows)],
        )
        self.db.commit()

    def request_ids(self, digests: list[str]) -> list[str]:
        """The idempotency key of each remote request (by its digest), recorded before it is sent:
        a run resumed after a crash sends the same request again under the same id, and a service
        that answered it already replays the answer without charging."""
        ids = []
        for d in digests:
            row = self.db.execute("SELECT request_id FROM requests WHERE digest=?", (d,)).fetchone()
            if row is None:
                row = (uuid.uuid4().hex,)
                self.db.execute("INSERT INTO requests VALUES (?,?,?)", (d, row[0], time.time()))
            ids.append(row[0])
        self.db.commit()
        return ids

    def summary(self) -> dict[str, Any]:
        """What the journal holds, for an audit: answers per phase and kind, and the time span."""
        rows = self.db.execute("SELECT phase, kind, COUNT(*), MIN(time), MAX(time) FROM answers GROUP BY phase, kind")
        out: dict[str, Any] = {"fingerprint": self.fingerprint, "answers": {}, "first": None, "last": None}
        for phase, kind, n, first, last in rows:
            out["answers"].setdefault(phase, {})[kind] = n
            out["first"] = first if out["first"] is None else min(out["first"], first)
            out["last"] = last if out["last"] is None else max(out["last"], last)
        return out

    def __len__(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        self.db.close()


Backend = Callable[[np.ndarray, tuple[str, ...], Any], tuple[dict[str, np.ndarray], int]]


class Oracle:
    """Counted, budgeted, journaled access to a target.

    Public metadata (what a real API documents): ``input_shape``, ``n_outputs``,
    ``task`` (regression | binary | multiclass), ``kinds`` offered, ``input_box``
    (the valid input range, if any), ``enforce_box`` (whether inputs outside it are refused;
    else the box is a hint and the model answers anywhere), ``explain_space`` (logit |
    probability), and ``options`` (the output post-processing in force).  Nothing else.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        spec: str,
        input_shape: tuple[int, ...],
        n_outputs: int,
        task: str,
        kinds: Iterable[str],
        options: dict[str, Any],
        input_box: tuple[float, float] | None = None,
        enforce_box: bool = False,
        budget: int | None = None,
        budgets: dict[str, int] | None = None,
        journal: str | Path | None = None,
        dtype: Any = np.float64,
    ):
        self._backend = backend
        self.spec = spec
        self.input_shape = tuple(input_shape)
        self.n_outputs = int(n_outputs)
        self.task = task
        self.kinds = tuple(kinds)
        self.options = dict(options)
        self.input_box = input_box
        self.enforce_box = bool(enforce_box and input_box)
        self.explain_space = self.options.get("explain_space", "logit")
        self.dtype = np.dtype(dtype)
        for k, n in {"total": budget, **(budgets or {})}.items():
            if k != "total" and k not in KINDS:
                raise OracleError(f"a budget for unknown query kind {k!r}; known kinds: {', '.join(KINDS)}")
            if n is not None and not (isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0):
                raise OracleError(f"budget ({k}) must be an integer >= 0, got {n!r}")
        self.ledger = Ledger(budget=budget, budgets=dict(budgets or {}))
        self.journal = Journal(journal, self.describe()) if journal else None

    # -- public metadata -------------------------------------------------------------
    @property
    def input_dim(self) -> int:
        return int(np.prod(self.input_shape))

    def describe(self) -> dict[str, Any]:
        out = {"spec": self.spec, "input_shape": list(self.input_shape), "n_outputs": self.n_outputs,
               "task": self.task, "kinds": list(self.kinds), "options": self.options,
               "input_box": list(self.input_box) if self.input_box else None}
        if self.enforce_box:  # only then: journals of oracles that answer anywhere keep their fingerprint
            out["enforce_box"] = True
        return out

    # -- queries -----------------------------------------------------------------------
    def _check_inputs(self, x: Any) -> tuple[np.ndarray, bool]:
        x = np.asarray(x, dtype=self.dtype)
        single = x.shape == self.input_shape
        if single:
            x = x[None]
        if x.shape[1:] != self.input_shape:
            raise OracleError(
                f"input of shape {tuple(x.shape)} does not fit this target: it takes inputs of shape "
                f"{self.input_shape} (one) or (N, {', '.join(map(str, self.input_shape))}) (a batch)"
            )
        bad = ~np.isfinite(x.reshape(len(x), -1)).all(axis=1)
        if bad.any():
            raise OracleError(f"inputs contain NaN or Inf (rows {np.flatnonzero(bad)[:10].tolist()}); nothing was asked")
        if self.enforce_box:
            lo, hi = self.input_box
            out = ((x < lo) | (x > hi)).reshape(len(x), -1).any(axis=1)
            if out.any():
                raise OracleError(f"inputs outside the input box [{lo:g}, {hi:g}] (rows {np.flatnonzero(out)[:10].tolist()}); "
                                  "this oracle refuses them; nothing was asked")
        return x, single

    def _check_kinds(self, kinds: Iterable[str]) -> tuple[str, ...]:
        kinds = tuple(dict.fromkeys(kinds))
        if not kinds:
            raise OracleError("a query must ask for at least one kind")
        for k in kinds:
            if k not in KINDS:
                raise OracleError(f"unknown query kind {k!r}; known kinds: {', '.join(KINDS)}")
            if k not in self.kinds:
                raise OracleError(f"this oracle does not answer {k!r} queries; it offers: {', '.join(self.kinds)}")
        return kinds

    def query(self, x: Any, kinds: Iterable[str] = ("value",), output: int | str = "predicted") -> dict[str, np.ndarray]:
        """Ask ``kinds`` at every input of ``x``; N inputs cost N queries of each kind.

        ``output`` picks what gradients and explanations explain: a class index or
        ``"predicted"`` (the top-1 class; the only output of a scalar model).
        On a budget running out the answered prefix is recorded and
        :class:`QueryBudgetExceeded` is raised carrying it.
        """
        x, single = self._check_inputs(x)
        kinds = self._check_kinds(kinds)
        if output != "predicted" and not (isinstance(output, (int, np.integer)) and 0 <= output < self.n_outputs):
            raise OracleError(f"output must be 'predicted' or a class index in [0, {self.n_outputs}), got {output!r}")
        output = output if output == "predicted" else int(output)
        n = len(x)
        answers = {k: [None] * n for k in kinds}
        missing: dict[tuple[str, ...], list[int]] = defaultdict(list)
        keys = {}
        for i in range(n):
            todo = []
            for k in kinds:
                if self.journal is not None:
                    keys[i, k] = key = Journal.key(k, output if _explains(k) else None, x[i])
                    found = self.journal.lookup(key)
                    if found is not None:
                        answers[k][i] = found
                        self.ledger.replayed[k] += 1
                        continue
                todo.append(k)
            if todo:
                missing[tuple(todo)].append(i)

        exhausted = None
        remote: QueryBudgetExceeded | None = None
        for group_kinds, idx in missing.items():
            allowed = self.ledger.remaining(group_kinds)
            if allowed is not None and allowed < len(idx):
                exhausted = (group_kinds, idx[allowed])
                idx = idx[:allowed]
            if not idx:
                continue
            try:
                got, evaluations = self._backend(x[idx], group_kinds, output)
            except QueryBudgetExceeded as e:
                # a remote quota ran out: the backend answered (and was charged for) a prefix of
                # the batch; count and journal that prefix like any answer, then stop
                remote = e
                idx = idx[:e.answered]
                got, evaluations = e.answers, int(getattr(e, "evaluations", 0))
                exhausted = (group_kinds, None)
            self.ledger.record(group_kinds, len(idx), evaluations)
            rows = []
            for k in group_kinds:
                for j, i in enumerate(idx):
                    answers[k][i] = got[k][j]
                    if self.journal is not None:
                        rows.append((keys[i, k], k, output if _explains(k) else None, self.ledger.current_phase, x[i], got[k][j]))
            if rows:
                self.journal.append(rows)
            if exhausted:
                break

        if exhausted:
            first_missing = min(i for i in range(n) if any(answers[k][i] is None for k in kinds))
            partial = {k: np.stack(v[:first_missing]) if first_missing else np.empty((0,)) for k, v in answers.items()}
            where = (f"remote quota: {remote}" if remote is not None else
                     f"budget total={self.ledger.budget}, per kind={self.ledger.budgets}")
            raise QueryBudgetExceeded(
                f"query budget exhausted after {first_missing} of {n} inputs asking {', '.join(kinds)} "
                f"(spent {self.ledger.by_kind()}, {where})",
                partial, first_missing)
        out = {k: np.stack(v) for k, v in answers.items()}
        return {k: v[0] for k, v in out.items()} if single else out

    def value(self, x: Any) -> np.ndarray:
        return self.query(x, ("value",))["value"]

    def probabilities(self, x: Any) -> np.ndarray:
        return self.query(x, ("probabilities",))["probabilities"]

    def label(self, x: Any) -> np.ndarray:
        return self.query(x, ("label",))["label"]

    def gradient(self, x: Any, output: int | str = "predicted") -> np.ndarray:
        return self.query(x, ("gradient",), output)["gradient"]

    def explanation(self, x: Any, method: str, output: int | str = "predicted") -> np.ndarray:
        return self.query(x, (f"explanation:{method}",), output)[f"explanation:{method}"]

    def __repr__(self) -> str:
        return f"Oracle({self.spec!r}, kinds={list(self.kinds)}, queries={self.ledger.total()})"


def _explains(kind: str) -> bool:
    return kind == "gradient" or kind.startswith("explanation:")


def _as_logits(raw: np.ndarray, outputs: str | None) -> np.ndarray:
    """Outputs declared as probabilities (softmax) or sigmoid, back on the logit scale, so that
    probabilities and labels are those of the model (softmax of log p is p; logit of a sigmoid is its input)."""
    with np.errstate(divide="ignore"):
        if outputs == "probabilities":
            return np.log(raw)
        if outputs == "sigmoid":
            return np.log(raw) - np.log1p(-raw)
    return raw


def replay_oracle(journal: str | Path, **kwargs: Any) -> Oracle:
    """An oracle answering only from a journal file: audit or re-run an attack offline.

    A question the journal does not hold raises :class:`OracleError`."""
    path = Path(journal)
    if not path.exists():
        raise OracleError(f"no journal at {path}")
    db = connect(path, "query journal", {"meta", "answers", "requests"})
    try:
        row = db.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()
    except sqlite3.OperationalError:  # an empty SQLite file
        row = None
    db.close()
    if row is None:
        raise OracleError(f"{path} is not a modelrecon journal")
    fp = json.loads(row[0])

    def offline(x: np.ndarray, kinds: tuple[str, ...], output: Any):
        raise OracleError(f"the journal holds no answer for {len(x)} of the inputs asked ({', '.join(kinds)}); "
                          "an offline replay can only repeat the recorded run")

    return Oracle(offline, spec=fp["spec"], input_shape=tuple(fp["input_shape"]), n_outputs=fp["n_outputs"],
                  task=fp["task"], kinds=fp["kinds"], options=fp["options"],
                  input_box=tuple(fp["input_box"]) if fp["input_box"] else None,
                  enforce_box=bool(fp.get("enforce_box")), journal=path, **kwargs)


def local_oracle(target: Any, kinds: Iterable[str] | None = None, *, round_decimals: int | None = None,
                 top_k: int | None = None, label_only: bool = False, threshold: float = 0.0,
                 label_format: str = "01", budget: int | None = None, budgets: dict[str, int] | None = None,
                 journal: str | Path | None = None, explanation_noise: float = 0.0, enforce_box: bool = False,
                 **explain_options: Any) -> Oracle:
    """An oracle over a :class:`modelrecon.targets.Target` in this process.

    Output post-processing that real APIs apply is set here: ``round_decimals``
    (every numeric answer), ``top_k`` (probabilities outside the top k set to 0),
    ``label_only`` (only ``label`` is answered), ``explanation_noise`` (Gaussian noise of
    that size times each gradient's or explanation's RMS, fresh per answer, seeded by ``seed``).  ``enforce_box``:
    inputs outside the target's input box are refused (as a service run with ``--enforce-box``); by default the
    box is a hint and the model answers anywhere.  ``explain_options`` override
    :data:`modelrecon.explain.DEFAULT_OPTIONS` (explain_space, ig_steps, ...).
    """
    from modelrecon import explain

    unknown = set(explain_options) - set(explain.DEFAULT_OPTIONS)
    if unknown:
        raise OracleError(f"unknown oracle options {sorted(unknown)}; known: {sorted(explain.DEFAULT_OPTIONS)}")
    if round_decimals is not None and not (isinstance(round_decimals, (int, np.integer))
                                           and not isinstance(round_decimals, bool) and 0 <= round_decimals <= 15):
        raise OracleError(f"rounding must be to an integer number of decimals in [0, 15], got {round_decimals!r}")
    if top_k is not None and not (isinstance(top_k, (int, np.integer)) and not isinstance(top_k, bool) and top_k >= 1):
        raise OracleError(f"top_k must be an integer >= 1, got {top_k!r}")
    if label_format not in ("01", "sign"):
        raise OracleError(f"label_format must be '01' or 'sign', got {label_format!r}")
    if explain_options.get("explain_space", "logit") not in ("logit", "probability"):
        raise OracleError("explain_space must be 'logit' or 'probability'")
    if not (np.isfinite(explanation_noise) and explanation_noise >= 0):
        raise OracleError(f"explanation_noise must be a finite number >= 0, got {explanation_noise!r}")
    options = {**explain.DEFAULT_OPTIONS, **explain_options, "round_decimals": round_decimals, "top_k": top_k,
               "label_only": label_only, "threshold": threshold, "label_format": label_format,
               "explanation_noise": float(explanation_noise),
               "outputs": getattr(target, "outputs", None)}  # declared: what the values are (public metadata)
    if options["ig_method"] not in explain.IG_METHODS:
        raise OracleError(f"unknown ig_method {options['ig_method']!r}; known: {', '.join(explain.IG_METHODS)}")
    noise = np.random.default_rng(int(options["seed"]))
    if target.task == "regression" and options["explain_space"] == "probability":
        raise OracleError("a regression target has no probabilities to explain; use explain_space='logit'")
    offered = [k for k in KINDS if (target.differentiable or k in PREDICTION_KINDS)
               and not (k == "probabilities" and target.task == "regression")]
    if label_only or options["outputs"] == "label":
        offered = ["label"]
    if kinds is not None:
        kinds = [k.strip() for k in kinds]
        for k in kinds:
            if k not in KINDS:
                raise OracleError(f"unknown query kind {k!r}; known kinds: {', '.join(KINDS)}")
            if k not in offered:
                why = (f"target {target.spec} is not differentiable here ({target.backend}): it answers values only"
                       if not target.differentiable else f"this oracle offers only {', '.join(offered)}")
                raise OracleError(f"cannot offer {k!r}: {why}")
        offered = kinds
    model = target.model
    forward = target.forward_numpy
    task = target.task

    def answer(x: np.ndarray, asked: tuple[str, ...], output: Any) -> tuple[dict[str, np.ndarray], int]:
        got: dict[str, np.ndarray] = {}
        evaluations = 0
        pred = tuple(k for k in asked if k in PREDICTION_KINDS)
        if pred:
            raw = forward(x)
            got.update(explain.predictions(_as_logits(raw, options["outputs"]), pred, task, options))
            if "value" in got:  # the value is what the model returns, whatever its outputs are
                got["value"] = raw[:, 0] if raw.shape[1] == 1 else raw
            if options["outputs"] == "label":
                got["label"] = raw[:, 0].astype(np.int64)
            evaluations += len(x)
        grads = tuple(k for k in asked if k not in PREDICTION_KINDS)
        if grads:
            more, cost = explain.explanations(model, x, grads, output, options)
            if explanation_noise:
                more = {k: _noisy(v, explanation_noise, noise) for k, v in more.items()}
            got.update(more)
            evaluations += cost
        if round_decimals is not None:
            got = {k: v if k == "label" else np.round(v, round_decimals) for k, v in got.items()}
        return got, evaluations

    return Oracle(answer, spec=target.spec, input_shape=target.input_shape, n_outputs=target.n_outputs,
                  task=target.task, kinds=offered, options=options, input_box=target.input_box,
                  enforce_box=enforce_box, budget=budget, budgets=budgets, journal=journal)


def _noisy(e: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """e plus Gaussian noise of sigma times each answer's root-mean-square (as the service adds it)."""
    flat = e.reshape(len(e), -1)
    rms = np.sqrt(np.mean(flat ** 2, axis=1)).reshape((len(e),) + (1,) * (e.ndim - 1))
    return e + sigma * rms * rng.standard_normal(e.shape)
