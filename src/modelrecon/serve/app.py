"""The explanation service: a target's predictions and explanations over HTTP.

``create_app(Service(...))`` returns a FastAPI application (OpenAPI schema at
``/openapi.json``, docs at ``/docs``) with

``GET  /v1/metadata``  what the service publishes: input shape and box, outputs, task,
                       predictions and explanations offered, output options, limits
``POST /v1/predict``   predictions (value / probabilities / label) for a batch
``POST /v1/explain``   explanations (gradient, saliency, smoothgrad, ...) for a batch, the
                       requested predictions returned with them
``GET  /v1/usage``     the calling key's spent queries, by kind, and its quota
``GET  /admin``        admin key: every key's usage, refusals and extraction warnings
``PUT  /admin/keys/{name}``  admin key: change a key's quota or rate limit

Counting is the oracle's: a batch of N inputs asking for kinds K costs N x |K| queries, the
same number :class:`modelrecon.oracle.Ledger` counts on the client.  A request carries an
optional ``request_id``; a retried request with the same id is answered from the log and
not charged again, so a client that retries on time-outs never pays twice.

Answers are computed by :func:`modelrecon.oracle.local_oracle` over the loaded target, with
the operator's output options (rounding, top-k, label only) applied there, and two more
applied here to explanations: absolute values, and Gaussian noise of a given size relative
to each explanation's root-mean-square.

Every request (answered or refused) is logged to SQLite: who (key name, client address),
when, what (endpoint, kinds, output, batch size, the inputs themselves for answered ones),
the queries charged and the HTTP status.  An answer's charge and its stored response are one
transaction, so a ``kill -9`` never leaves a charge without the answer a retry replays.
Usage and quotas are rebuilt from the log on start, so they survive restarts; admin changes
to a key are kept apart from the keys file and win over it.  Before anything else each
request takes a token of its client address (rate limit before authentication); refusals
are logged at a bounded rate per address; every 4xx is ``{"error": {code, message}}``; the
HTTP protocol closes connections that stall in their headers or body (see docs/serve.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import secrets
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, Union

import numpy as np
from fastapi import Body, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelrecon.oracle import KINDS, PREDICTION_KINDS, OracleError, _decode, _encode, local_oracle
from modelrecon.serve.detect import Detector
from modelrecon.store import connect

API_VERSION = "1"


# -- configuration -----------------------------------------------------------------------------
@dataclass
class OutputOptions:
    """Post-processing of answers, as operators use it to defend a model."""

    round_decimals: int | None = None
    top_k: int | None = None
    label_only: bool = False
    abs_explanations: bool = False
    explanation_noise: float = 0.0  # std of Gaussian noise, relative to each explanation's RMS
    explain_space: str = "logit"

    def __post_init__(self) -> None:
        if self.round_decimals is not None and not 0 <= self.round_decimals <= 15:
            raise ValueError("round_decimals must be in [0, 15]")
        if self.top_k is not None and self.top_k < 1:
            raise ValueError("top_k must be >= 1")
        if not (np.isfinite(self.explanation_noise) and self.explanation_noise >= 0):
            raise ValueError("explanation_noise must be a finite number >= 0")


MAX_QUOTA = 2 ** 53  # queries; larger quotas are refused (SQLite integers, exact JSON numbers)
MAX_RATE = 1e6  # requests per second


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_quota(v: Any, what: str = "quota") -> None:
    if v is not None and not (_is_int(v) and 0 <= v <= MAX_QUOTA):
        raise ValueError(f"{what} must be an integer in [0, {MAX_QUOTA}] (or null: no quota), got {v!r}")


def check_rate(v: Any, what: str = "rate") -> None:
    if v is not None and not (isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= MAX_RATE):
        raise ValueError(f"{what} must be a number of requests per second in (0, {MAX_RATE:g}], got {v!r}")


def check_count(v: Any, what: str, low: int = 1, high: int = 2 ** 31) -> None:
    if v is not None and not (_is_int(v) and low <= v <= high):
        raise ValueError(f"{what} must be an integer in [{low}, {high}], got {v!r}")


@dataclass
class Limits:
    max_batch: int = 256
    max_body_bytes: int = 4_000_000
    default_quota: int | None = None  # queries per key; None: unlimited
    default_rate: float = 50.0  # requests per second per key (token bucket)
    default_burst: int = 100
    address_rate: float = 200.0  # requests per second per client address, before authentication
    address_burst: int = 400
    logged_refusals_rate: float = 5.0  # refusals logged per second per client address (the rest counted)
    logged_refusals_burst: int = 50
    header_timeout: float = 10.0  # seconds to send the request line and headers
    body_timeout: float = 30.0  # seconds to send the body

    def __post_init__(self) -> None:
        check_count(self.max_batch, "max_batch")
        check_count(self.max_body_bytes, "max_body_bytes", 64)
        check_quota(self.default_quota, "default quota")
        for name in ("default_rate", "address_rate", "logged_refusals_rate"):
            check_rate(getattr(self, name), name)
        for name in ("default_burst", "address_burst", "logged_refusals_burst"):
            check_count(getattr(self, name), name)
        for name in ("header_timeout", "body_timeout"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 < v <= 3600):
                raise ValueError(f"{name} must be a number of seconds in (0, 3600], got {v!r}")


@dataclass
class ApiKey:
    name: str
    key: str
    quota: int | None = None
    rate: float | None = None
    burst: int | None = None
    admin: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not 1 <= len(self.name) <= 128 or self.name == "?":
            raise ValueError(f"a key's name must be a string of 1 to 128 characters other than '?', got {self.name!r}")
        if not isinstance(self.key, str) or len(self.key) < 8:
            raise ValueError(f"key {self.name!r} needs a 'key' string of at least 8 characters")
        check_quota(self.quota, f"key {self.name!r}: quota")
        check_rate(self.rate, f"key {self.name!r}: rate")
        check_count(self.burst, f"key {self.name!r}: burst")
        if not isinstance(self.admin, bool):
            raise ValueError(f"key {self.name!r}: admin must be true or false, got {self.admin!r}")


def read_keys(path: str | Path) -> list[ApiKey]:
    """A keys file: JSON ``{"NAME": {"key": "...", "quota": 1000, "rate": 20, "burst": 40, "admin": false}}``.

    Every field is checked (a quota is an integer >= 0 or null, a rate a number > 0, a burst an
    integer >= 1, admin a boolean, keys distinct); a bad file raises ValueError naming the value."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(f"keys file {path}: cannot read it as JSON ({e})") from None
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"keys file {path}: a keys file is a non-empty JSON object name -> "
                         "{key, quota, rate, burst, admin}")
    out = []
    for name, v in raw.items():
        if not isinstance(v, dict):
            raise ValueError(f"keys file {path}: key {name!r} must be an object {{key, quota, rate, burst, admin}}")
        unknown = set(v) - {"key", "quota", "rate", "burst", "admin"}
        if unknown:
            raise ValueError(f"keys file {path}: key {name!r} has unknown fields {sorted(unknown)}")
        try:
            out.append(ApiKey(name, v.get("key"), v.get("quota"), v.get("rate"), v.get("burst"), v.get("admin", False)))
        except ValueError as e:
            raise ValueError(f"keys file {path}: {e}") from None
    if len({k.key for k in out}) < len(out):
        raise ValueError(f"keys file {path}: two names share one key")
    return out


def _sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


class ServiceError(Exception):
    """A refusal: HTTP status, machine-readable code, human message, extra fields."""

    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def wire_name(kind: str) -> str:
    return kind.split(":", 1)[1] if kind.startswith("explanation:") else kind


def kind_of(name: str) -> str:
    return name if name in PREDICTION_KINDS or name == "gradient" else f"explanation:{name}"


# -- the service (no HTTP in here) ---------------------------------------------------------------
class Service:
    """A target behind keys, quotas, rate limits, output options, a query log and a detector."""

    def __init__(self, target: Any, *, explanations: list[str] | tuple[str, ...] | None = None,
                 predictions: list[str] | tuple[str, ...] | None = None, options: OutputOptions | None = None,
                 limits: Limits | None = None, keys: list[ApiKey] | None = None, db: str | Path = ":memory:",
                 detector: Detector | None = None, name: str | None = None, seed: int = 0,
                 enforce_box: bool = False):
        self.target = target
        self.options = options or OutputOptions()
        self.limits = limits or Limits()
        self.name = name or "modelrecon explanation service"
        self.enforce_box = enforce_box
        o = self.options
        pred_ok = [k for k in PREDICTION_KINDS if not (k == "probabilities" and target.task == "regression")]
        predictions = list(predictions) if predictions is not None else pred_ok
        explanations = list(explanations) if explanations is not None else (["gradient"] if target.differentiable else [])
        for p in predictions:
            if p not in pred_ok:
                raise ValueError(f"cannot offer prediction {p!r}; this target offers {', '.join(pred_ok)}")
        exp_kinds = [kind_of(e.strip()) for e in explanations if e.strip()]
        for k in exp_kinds:
            if k not in KINDS or k in PREDICTION_KINDS:
                raise ValueError(f"unknown explanation {wire_name(k)!r}; known: gradient, "
                                 + ", ".join(wire_name(x) for x in KINDS if x.startswith("explanation:")))
            if not target.differentiable:
                raise ValueError(f"target {target.spec} is not differentiable: it can offer predictions only")
        kinds = ["label"] if o.label_only else predictions + exp_kinds
        if not kinds:
            raise ValueError("the service must offer at least one prediction or explanation")
        self.oracle = local_oracle(target, kinds, round_decimals=o.round_decimals, top_k=o.top_k,
                                   label_only=o.label_only, explain_space=o.explain_space)
        self.kinds = tuple(self.oracle.kinds)
        self.input_shape = tuple(target.input_shape)
        self.input_dim = int(np.prod(self.input_shape))
        self.detector = detector or Detector(self.input_dim, target.input_box)
        self.rng = np.random.default_rng(seed)
        self.started = time.time()
        self._lock = threading.RLock()  # log, usage, quotas, buckets
        self._compute = threading.Lock()  # the model (Captum hooks are not re-entrant)
        self._inflight: set[tuple[str, str]] = set()
        self._buckets: dict[str, tuple[float, float]] = {}
        self.refusals_not_logged: dict[str, int] = {}  # per client address, since its last logged refusal
        self.db = connect(db, "service log", {"keys", "queries", "responses", "key_changes", "warnings"},
                          check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL") if str(db) != ":memory:" else None
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS keys (name TEXT PRIMARY KEY, key_sha TEXT UNIQUE, quota INTEGER,
                rate REAL, burst INTEGER, admin INTEGER);
            CREATE TABLE IF NOT EXISTS queries (id INTEGER PRIMARY KEY, time REAL, key_name TEXT, client TEXT,
                endpoint TEXT, request_id TEXT, status INTEGER, code TEXT, n_inputs INTEGER, kinds TEXT,
                output TEXT, charged INTEGER, charged_by_kind TEXT, evaluations INTEGER, inputs BLOB,
                message TEXT);
            CREATE INDEX IF NOT EXISTS queries_key ON queries (key_name);
            CREATE TABLE IF NOT EXISTS responses (key_name TEXT, request_id TEXT, body_sha TEXT, response BLOB,
                PRIMARY KEY (key_name, request_id));
            CREATE TABLE IF NOT EXISTS key_changes (name TEXT, field TEXT, value, time REAL,
                PRIMARY KEY (name, field));
            CREATE TABLE IF NOT EXISTS warnings (id INTEGER PRIMARY KEY, time REAL, key_name TEXT, signal TEXT,
                at_query INTEGER, detail TEXT);
        """)
        if keys is not None:
            self._load_keys(keys)
        self.spent: dict[str, int] = {}
        self.spent_by_kind: dict[str, dict[str, int]] = {}
        for name, charged, by_kind in self.db.execute(
                "SELECT key_name, charged, charged_by_kind FROM queries WHERE charged > 0"):
            self.spent[name] = self.spent.get(name, 0) + charged
            d = self.spent_by_kind.setdefault(name, {})
            for kind, n in json.loads(by_kind).items():
                d[kind] = d.get(kind, 0) + n

        self._restore_detector()

    KEY_FIELDS = ("quota", "rate", "burst")

    def _load_keys(self, keys: list[ApiKey]) -> None:
        """The keys file says which keys exist, their secrets and admin flags, and their quota, rate
        and burst, except where an admin changed one through the API: that change (kept in the
        ``key_changes`` table) wins over the file, across restarts.  A key no longer in the file
        is revoked."""
        with self._transaction():
            names = [k.name for k in keys]
            self.db.execute(f"DELETE FROM keys WHERE name NOT IN ({','.join('?' * len(names))})", names)
            for k in keys:
                self.db.execute("INSERT INTO keys VALUES (?,?,?,?,?,?) ON CONFLICT(name) DO UPDATE SET "
                                "key_sha=excluded.key_sha, quota=excluded.quota, rate=excluded.rate, "
                                "burst=excluded.burst, admin=excluded.admin",
                                (k.name, _sha(k.key), k.quota, k.rate, k.burst, int(k.admin)))
            for name, field, value in self.db.execute("SELECT name, field, value FROM key_changes").fetchall():
                if field in self.KEY_FIELDS:
                    self.db.execute(f"UPDATE keys SET {field}=? WHERE name=?", (value, name))

    def _restore_detector(self) -> None:
        """After a restart: refill each key's detector window from the log (its last inputs), and
        mark the warnings already raised so they are not raised again."""
        window = getattr(self.detector, "window", 0)
        for (name,) in self.db.execute("SELECT DISTINCT key_name FROM queries WHERE inputs IS NOT NULL").fetchall():
            rows = self.db.execute("SELECT inputs, kinds FROM queries WHERE key_name=? AND inputs IS NOT NULL "
                                   "ORDER BY id DESC LIMIT ?", (name, max(window, 1))).fetchall()
            X = [_decode(r[0]).reshape(-1, self.input_dim) for r in reversed(rows)]
            if X:
                self.detector.observe(name, np.concatenate(X)[-window:] if window else np.concatenate(X))
            st = self.detector.states.get(name)
            if st is not None:
                st.flagged = {r[0] for r in self.db.execute("SELECT DISTINCT signal FROM warnings WHERE key_name=?",
                                                            (name,))}

    # -- metadata ---------------------------------------------------------------------------
    def metadata(self) -> dict[str, Any]:
        t = self.target
        public_options = {**self.oracle.options, "abs_explanations": self.options.abs_explanations,
                          "explanation_noise": self.options.explanation_noise}
        public_options.pop("seed", None)
        return {
            "service": self.name, "api_version": API_VERSION, "input_shape": list(self.input_shape),
            "input_dim": self.input_dim, "input_box": list(t.input_box) if t.input_box else None,
            "n_outputs": t.n_outputs, "classes": None if t.task == "regression" else ([0, 1] if t.task == "binary" else list(range(t.n_outputs))),
            "task": t.task,
            "predictions": [k for k in self.kinds if k in PREDICTION_KINDS],
            "explanations": [wire_name(k) for k in self.kinds if k not in PREDICTION_KINDS],
            "kinds": list(self.kinds), "options": public_options,
            "limits": {"max_batch": self.limits.max_batch, "max_body_bytes": self.limits.max_body_bytes,
                       "enforce_input_box": self.enforce_box},
            "counting": "a batch of N inputs asking for K kinds costs N*K queries; a retried request_id is free",
        }

    # -- keys, quotas, rate limits ----------------------------------------------------------
    def authenticate(self, key: str | None) -> dict[str, Any]:
        if not key:
            raise ServiceError(401, "missing_key", "send your API key in the X-API-Key header")
        row = self.db.execute("SELECT name, quota, rate, burst, admin FROM keys WHERE key_sha=?",
                              (_sha(key),)).fetchone()
        if row is None:
            raise ServiceError(401, "bad_key", "this API key is not known to the service")
        name, quota, rate, burst, admin = row
        return {"name": name, "quota": quota if quota is not None else self.limits.default_quota,
                "rate": rate if rate is not None else self.limits.default_rate,
                "burst": burst if burst is not None else self.limits.default_burst, "admin": bool(admin)}

    def _token(self, bucket: str, rate: float, burst: float) -> float:
        """Take a token from a bucket; 0 when taken, else the seconds until one is there."""
        with self._lock:
            now = time.monotonic()
            tokens, last = self._buckets.get(bucket, (burst, now))
            tokens = min(burst, tokens + (now - last) * rate)
            if tokens < 1.0:
                self._buckets[bucket] = (tokens, now)
                return (1.0 - tokens) / rate
            self._buckets[bucket] = (tokens - 1.0, now)
            return 0.0

    def _take_token(self, key: dict[str, Any]) -> None:
        rate = float(key["rate"])
        wait = self._token("key:" + key["name"], rate, float(key["burst"]))
        if wait:
            raise ServiceError(429, "rate_limited", f"rate limit of {rate:g} requests/s exceeded; retry later",
                               retry_after=round(wait, 3))

    def check_address(self, client: str) -> None:
        """The per-address limit, taken by every request before anything else (authentication included)."""
        rate = self.limits.address_rate
        wait = self._token("address:" + client, rate, float(self.limits.address_burst))
        if wait:
            raise ServiceError(429, "rate_limited", f"more than {rate:g} requests/s from {client}; retry later",
                               retry_after=round(wait, 3))

    def remaining(self, key: dict[str, Any]) -> int | None:
        return None if key["quota"] is None else max(int(key["quota"]) - self.spent.get(key["name"], 0), 0)

    def set_key(self, name: str, quota: Any = "keep", rate: Any = "keep", burst: Any = "keep") -> dict[str, Any]:
        with self._lock:
            row = self.db.execute("SELECT quota, rate, burst FROM keys WHERE name=?", (name,)).fetchone()
            if row is None:
                raise ServiceError(404, "no_such_key", f"no key named {name!r}")
            changes = {f: v for f, v in zip(self.KEY_FIELDS, (quota, rate, burst)) if v != "keep"}
            try:
                check_quota(changes.get("quota"))
                check_rate(changes.get("rate"))
                check_count(changes.get("burst"), "burst")
            except ValueError as e:
                raise ServiceError(422, "bad_request", str(e)) from None
            with self._transaction():  # kept apart from the keys file's values: it survives restarts
                for field, value in changes.items():
                    self.db.execute(f"UPDATE keys SET {field}=? WHERE name=?", (value, name))
                    self.db.execute("INSERT OR REPLACE INTO key_changes VALUES (?,?,?,?)",
                                    (name, field, value, time.time()))
            q, r, b = (changes.get(f, old) for f, old in zip(self.KEY_FIELDS, row))
            return {"name": name, "quota": q, "rate": r, "burst": b}

    # -- validation ---------------------------------------------------------------------------
    def parse_inputs(self, inputs: Any) -> np.ndarray:
        if not isinstance(inputs, list) or not inputs:
            raise ServiceError(422, "bad_inputs", "'inputs' must be a non-empty list of inputs (a batch)")
        if len(inputs) > self.limits.max_batch:
            raise ServiceError(413, "batch_too_large",
                               f"batch of {len(inputs)} inputs exceeds the limit of {self.limits.max_batch}; split it")
        try:
            x = np.asarray(inputs)
        except (ValueError, TypeError):
            x = None
        if x is None or x.dtype.kind not in "iuf":
            raise ServiceError(422, "bad_dtype", "inputs must be a rectangular array of numbers "
                                                 "(no strings, booleans, nulls or ragged rows)")
        x = x.astype(np.float64)
        n = len(x)
        if x.shape[1:] == self.input_shape:
            pass
        elif x.shape[1:] == (self.input_dim,):
            x = x.reshape(n, *self.input_shape)
        else:
            raise ServiceError(422, "bad_shape", f"inputs of shape {list(x.shape)}: this model takes a batch of "
                                                 f"shape [N, {', '.join(map(str, self.input_shape))}] "
                                                 f"(or [N, {self.input_dim}] flattened)")
        bad = ~np.isfinite(x.reshape(n, -1)).all(axis=1)
        if bad.any():
            raise ServiceError(422, "non_finite", f"inputs contain NaN or Infinity (rows {np.flatnonzero(bad)[:10].tolist()})")
        if self.enforce_box and self.target.input_box is not None:
            lo, hi = self.target.input_box
            out = ((x < lo) | (x > hi)).reshape(n, -1).any(axis=1)
            if out.any():
                raise ServiceError(422, "outside_box", f"inputs outside the input box [{lo}, {hi}] "
                                                       f"(rows {np.flatnonzero(out)[:10].tolist()})")
        return x

    def parse_kinds(self, names: list[str] | None, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
        offered = [k for k in self.kinds if k in allowed]
        if names is None:
            return tuple(offered)
        kinds = []
        for n in names:
            k = kind_of(n) if isinstance(n, str) else None
            if k not in offered:
                raise ServiceError(422, "not_offered", f"{what} {n!r} is not offered; this service offers: "
                                   + (", ".join(wire_name(x) for x in offered) or "none"))
            if k not in kinds:
                kinds.append(k)
        return tuple(kinds)

    # -- answering ------------------------------------------------------------------------------
    def _postprocess(self, got: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        o = self.options
        for k in list(got):
            if k in PREDICTION_KINDS:
                continue
            e = np.asarray(got[k], dtype=np.float64)
            if o.explanation_noise > 0:
                flat = e.reshape(len(e), -1)
                rms = np.sqrt(np.mean(flat ** 2, axis=1)).reshape((len(e),) + (1,) * (e.ndim - 1))
                with self._lock:
                    noise = self.rng.standard_normal(e.shape)
                e = e + o.explanation_noise * rms * noise
                if o.round_decimals is not None:
                    e = np.round(e, o.round_decimals)
            if o.abs_explanations:
                e = np.abs(e)
            got[k] = e
        return got

    def answer(self, key: dict[str, Any], endpoint: str, body: dict[str, Any], client: str = "") -> dict[str, Any]:
        """Validate, charge, compute, log.  Raises :class:`ServiceError` on a refusal (logged too)."""
        name = key["name"]
        request_id = body.get("request_id")
        body_sha = hashlib.sha256(json.dumps({k: v for k, v in body.items() if k != "request_id"},
                                             sort_keys=True).encode()).hexdigest()
        reserved = 0
        x = None
        kinds: tuple[str, ...] = ()
        output: Any = None
        try:
            with self._lock:
                self._take_token(key)
                if request_id is not None:
                    row = self.db.execute("SELECT body_sha, response FROM responses WHERE key_name=? AND request_id=?",
                                          (name, request_id)).fetchone()
                    if row is not None:
                        if row[0] != body_sha:
                            raise ServiceError(409, "request_id_reused",
                                               f"request_id {request_id!r} was used for a different request")
                        resp = json.loads(zlib.decompress(row[1]))
                        resp["replayed"] = True
                        resp["charged"] = 0
                        self._log(name, client, endpoint, request_id, 200, "replayed", resp["n"], (), None, 0, {}, 0,
                                  None, "answered again from the log (retried request_id), not charged")
                        return resp
                    if (name, request_id) in self._inflight:
                        raise ServiceError(409, "in_progress", f"request_id {request_id!r} is being answered; retry",
                                           retry_after=0.05)
                    self._inflight.add((name, request_id))  # from here on, a retry waits for this answer
            x = self.parse_inputs(body.get("inputs"))
            if endpoint == "predict":
                kinds = self.parse_kinds(body.get("outputs"), PREDICTION_KINDS, "prediction")
            else:
                methods = body.get("methods")
                exp = self.parse_kinds(methods, tuple(k for k in KINDS if k not in PREDICTION_KINDS), "explanation")
                pred = self.parse_kinds(body.get("predictions"), PREDICTION_KINDS, "prediction")
                kinds = exp + pred
                output = body.get("output", "predicted")
                if not (output == "predicted" or (isinstance(output, int) and not isinstance(output, bool)
                                                  and 0 <= output < self.target.n_outputs)):
                    raise ServiceError(422, "bad_output", f"'output' must be \"predicted\" or a class index in "
                                                          f"[0, {self.target.n_outputs})")
                if not exp:
                    raise ServiceError(422, "no_explanation", "an explain request needs at least one method; "
                                                              "use /v1/predict for predictions only")
            if not kinds:
                raise ServiceError(422, "no_kinds", "nothing asked: name at least one output")
            n = len(x)
            cost = n * len(kinds)
            with self._lock:
                rem = self.remaining(key)
                if rem is not None and cost > rem:
                    raise ServiceError(403, "quota_exhausted",
                                       f"this request costs {cost} queries ({n} inputs x {len(kinds)} kinds); "
                                       f"the key has {rem} left of its quota of {key['quota']}",
                                       quota_remaining=rem, cost=cost)
                self.spent[name] = self.spent.get(name, 0) + cost
                reserved = cost
            with self._compute:
                evaluations = self.oracle.ledger.evaluations
                try:
                    got = self.oracle.query(x, kinds, output if output is not None else "predicted")
                except OracleError as e:
                    raise ServiceError(422, "bad_request", str(e)) from None
                evaluations = self.oracle.ledger.evaluations - evaluations
            got = self._postprocess(got)
            for k, v in got.items():
                if not np.all(np.isfinite(v)):
                    raise ServiceError(422, "non_finite_output", f"the model's {wire_name(k)} overflow at these "
                                       "inputs (too large); nothing was charged")
            resp = {"request_id": request_id or str(uuid.uuid4()), "n": n, "charged": cost,
                    "charged_by_kind": {wire_name(k): n for k in kinds},
                    "predictions": {k: got[k].tolist() for k in kinds if k in PREDICTION_KINDS},
                    "explanations": {wire_name(k): got[k].tolist() for k in kinds if k not in PREDICTION_KINDS},
                    "output": output, "evaluations": int(evaluations)}
            with self._lock:
                before = self.spent[name] - cost
                resp["quota_remaining"] = self.remaining(key)
                with self._transaction():  # the charge and the stored answer: both or neither, even on kill -9
                    self._log(name, client, endpoint, request_id, 200, "ok", n, kinds, output, cost,
                              {k: n for k in kinds}, evaluations, x, "")
                    if request_id is not None:
                        self.db.execute("INSERT INTO responses VALUES (?,?,?,?)", (name, request_id, body_sha,
                                        zlib.compress(json.dumps(resp).encode())))
                    for flag in self.detector.observe(name, x.reshape(n, -1), before, len(kinds)):
                        self.db.execute("INSERT INTO warnings (time, key_name, signal, at_query, detail) "
                                        "VALUES (?,?,?,?,?)", (flag.time, name, flag.signal, flag.at_query, flag.detail))
                reserved = 0
                by_kind = self.spent_by_kind.setdefault(name, {})
                for k in kinds:
                    by_kind[k] = by_kind.get(k, 0) + n
                if request_id is not None:
                    self._inflight.discard((name, request_id))
            return resp
        except ServiceError as e:
            with self._lock:
                if reserved:
                    self.spent[name] -= reserved
                if request_id is not None:
                    self._inflight.discard((name, request_id)) if e.code != "in_progress" else None
                self._log(name, client, endpoint, request_id, e.status, e.code, len(x) if x is not None else 0, kinds,
                          output, 0, {}, 0, None, e.message)
            raise
        except Exception as e:  # a bug or a model failure: refund, log, answer 500
            with self._lock:
                if reserved:
                    self.spent[name] -= reserved
                if request_id is not None:
                    self._inflight.discard((name, request_id))
                self._log(name, client, endpoint, request_id, 500, "internal", len(x) if x is not None else 0, kinds,
                          output, 0, {}, 0, None, repr(e))
            raise ServiceError(500, "internal", "the service failed to answer; nothing was charged") from e

    @contextlib.contextmanager
    def _transaction(self):
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def _log(self, name, client, endpoint, request_id, status, code, n, kinds, output, charged, by_kind,
             evaluations, x, message) -> None:
        if status >= 400:  # refusals: at most logged_refusals_rate rows/s per address, the rest counted
            if self._token("log:" + client, self.limits.logged_refusals_rate, float(self.limits.logged_refusals_burst)):
                self.refusals_not_logged[client] = self.refusals_not_logged.get(client, 0) + 1
                return
            skipped = self.refusals_not_logged.pop(client, 0)
            if skipped:
                message = f"{message} [{skipped} earlier refusals from {client} not logged: over the log's rate]"
        self.db.execute(
            "INSERT INTO queries (time, key_name, client, endpoint, request_id, status, code, n_inputs, kinds, output,"
            " charged, charged_by_kind, evaluations, inputs, message) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (time.time(), name, client, endpoint, request_id, status, code, n, json.dumps(list(kinds)),
             None if output is None else str(output), charged, json.dumps(by_kind), evaluations,
             None if x is None else _encode(x), message))

    def log_refusal(self, name: str, client: str, endpoint: str, status: int, code: str, message: str) -> None:
        with self._lock:
            self._log(name, client, endpoint, None, status, code, 0, (), None, 0, {}, 0, None, message)

    # -- usage and admin -------------------------------------------------------------------------
    def usage(self, key: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = key["name"]
            return {"key": name, "spent": self.spent.get(name, 0),
                    "by_kind": {wire_name(k): v for k, v in self.spent_by_kind.get(name, {}).items()},
                    "quota": key["quota"], "quota_remaining": self.remaining(key)}

    def logged_total(self, name: str) -> int:
        return int(self.db.execute("SELECT COALESCE(SUM(charged), 0) FROM queries WHERE key_name=?",
                                   (name,)).fetchone()[0])

    def logged_inputs(self, name: str) -> np.ndarray:
        """Every input answered for key ``name``, in order (what the log says was asked)."""
        rows = self.db.execute("SELECT inputs FROM queries WHERE key_name=? AND inputs IS NOT NULL ORDER BY id",
                               (name,)).fetchall()
        return np.concatenate([_decode(r[0]).reshape(-1, self.input_dim) for r in rows]) if rows else \
            np.empty((0, self.input_dim))

    def admin_summary(self) -> dict[str, Any]:
        with self._lock:
            keys = {}
            for name, quota, rate, burst, admin in self.db.execute("SELECT name, quota, rate, burst, admin FROM keys"):
                keys[name] = {"quota": quota if quota is not None else self.limits.default_quota,
                              "rate": rate if rate is not None else self.limits.default_rate, "admin": bool(admin),
                              "requests": 0, "refused": {}, "queries": self.spent.get(name, 0),
                              "by_kind": {wire_name(k): v for k, v in self.spent_by_kind.get(name, {}).items()},
                              "warnings": [], "first_warning_at_query": None}
            for name, status, code, n, charged in self.db.execute(
                    "SELECT key_name, status, code, COUNT(*), SUM(charged) FROM queries GROUP BY key_name, status, code"):
                k = keys.setdefault(name, {"requests": 0, "refused": {}, "queries": 0, "warnings": [],
                                           "first_warning_at_query": None, "unknown_key": True})
                k["requests"] += n
                k["queries_logged"] = k.get("queries_logged", 0) + int(charged or 0)
                if status >= 400:
                    k["refused"][code] = k["refused"].get(code, 0) + n
            for name, signal, at, detail, t in self.db.execute(
                    "SELECT key_name, signal, at_query, detail, time FROM warnings ORDER BY id"):
                if name in keys:
                    keys[name]["warnings"].append({"signal": signal, "at_query": at, "detail": detail, "time": t})
                    if keys[name]["first_warning_at_query"] is None:
                        keys[name]["first_warning_at_query"] = at
            total = self.db.execute("SELECT COUNT(*), COALESCE(SUM(charged), 0), "
                                    "COALESCE(SUM(status >= 400), 0) FROM queries").fetchone()
            return {"service": self.name, "uptime_s": time.time() - self.started,
                    "requests": total[0], "queries_charged": total[1], "refused": total[2],
                    "refusals_not_logged": sum(self.refusals_not_logged.values()),
                    "flagged_keys": sorted(n for n, k in keys.items() if k.get("warnings")),
                    "detector": self.detector.settings(), "keys": keys, "metadata": self.metadata()}

    def close(self) -> None:
        self.db.close()


# -- HTTP ---
class PredictRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[Any] = Field(..., description="a batch: N inputs of the input shape, or flattened to input_dim")
    outputs: list[StrictStr] | None = Field(None, description="value, probabilities, label (default: all offered)")
    request_id: StrictStr | None = Field(None, max_length=128, description="idempotency key: a retry is not charged")

class ExplainRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inputs: list[Any] = Field(..., description="a batch: N inputs of the input shape, or flattened")
    methods: list[StrictStr] | None = Field(None, description="explanations, e.g. gradient, smoothgrad, "
                                                              "integrated-gradients (default: all offered)")
    output: Union[StrictInt, Literal["predicted"]] = Field("predicted", description="class explained: an integer "
                                                           "(not a string, not a boolean) or \"predicted\"")
    predictions: list[StrictStr] | None = Field(None, description="predictions returned with the explanation "
                                                                  "(default: all offered; [] for none)")
    request_id: StrictStr | None = Field(None, max_length=128)

class KeyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    quota: int | None = Field(None, ge=0, le=MAX_QUOTA)
    rate: float | None = Field(None, gt=0, le=MAX_RATE, allow_inf_nan=False)
    burst: int | None = Field(None, ge=1, le=2 ** 31)


# the app ----------------------------------------------------------------------------------------
def create_app(service: Service):
    """The FastAPI application around a :class:`Service`."""

    app = FastAPI(title=service.name, version=API_VERSION,
                  description="Predictions and explanations of a model, counted per API key. "
                              "A batch of N inputs asking K kinds costs N*K queries.")
    app.state.service = service
    header = APIKeyHeader(name="X-API-Key", auto_error=False)

    def refuse(e: ServiceError) -> JSONResponse:
        headers = {"Retry-After": str(max(1, int(np.ceil(e.extra["retry_after"]))))} if "retry_after" in e.extra else None
        return JSONResponse(e.body(), status_code=e.status, headers=headers)

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, e: ServiceError):
        return refuse(e)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, e: RequestValidationError):
        errors = e.errors()
        malformed = any(err.get("type") == "json_invalid" for err in errors)
        msg = "; ".join(f"{'.'.join(str(p) for p in err.get('loc', ()))}: {err.get('msg')}" for err in errors[:5])
        err = ServiceError(400 if malformed else 422, "malformed_json" if malformed else "bad_request", msg)
        service.log_refusal("?", request.client.host if request.client else "", request.url.path, err.status,
                            err.code, msg)
        return refuse(err)

    codes = {400: "malformed_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        # FastAPI's own refusals: a body it cannot parse (JSON nested too deep, invalid UTF-8), no route
        err = ServiceError(e.status_code, codes.get(e.status_code, f"http_{e.status_code}"), str(e.detail))
        service.log_refusal("?", request.client.host if request.client else "", request.url.path, err.status,
                            err.code, err.message)
        return refuse(err)

    @app.exception_handler(Exception)
    async def _internal(request: Request, e: Exception):
        service.log_refusal("?", request.client.host if request.client else "", request.url.path, 500,
                            "internal", repr(e)[:500])
        return refuse(ServiceError(500, "internal", "the service failed to answer; nothing was charged"))

    app.add_middleware(RequestGuard, service=service)

    def caller(request: Request, key: str | None = Depends(header)) -> dict[str, Any]:
        try:
            return service.authenticate(key)
        except ServiceError as e:
            service.log_refusal("?", request.client.host if request.client else "", request.url.path, e.status,
                                e.code, e.message)
            raise

    def admin(request: Request, key: dict[str, Any] = Depends(caller)) -> dict[str, Any]:
        if not key["admin"]:
            service.log_refusal(key["name"], request.client.host if request.client else "", request.url.path, 403,
                                "not_admin", "admin endpoint")
            raise ServiceError(403, "not_admin", "this key is not an admin key")
        return key

    def dumps(obj: Any) -> Response:
        return Response(json.dumps(obj, allow_nan=False), media_type="application/json")

    @app.get("/v1/metadata", summary="What the service offers: shapes, outputs, explanations, options, limits")
    def metadata() -> dict[str, Any]:
        return service.metadata()

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, Any]:
        return {"ok": True}

    @app.post("/v1/predict", summary="Predictions for a batch")
    def predict(request: Request, body: PredictRequest = Body(...), key: dict = Depends(caller)):
        return dumps(service.answer(key, "predict", body.model_dump(), request.client.host if request.client else ""))

    @app.post("/v1/explain", summary="Explanations for a batch, with the requested predictions")
    def explain(request: Request, body: ExplainRequest = Body(...), key: dict = Depends(caller)):
        return dumps(service.answer(key, "explain", body.model_dump(), request.client.host if request.client else ""))

    @app.get("/v1/usage", summary="The calling key's spent queries and quota")
    def usage(key: dict = Depends(caller)) -> dict[str, Any]:
        return service.usage(key)

    @app.get("/admin", summary="Every key's usage, refusals and extraction warnings (admin key)")
    def admin_summary(key: dict = Depends(admin)):
        return dumps(service.admin_summary())

    @app.put("/admin/keys/{name}", summary="Change a key's quota or rate limit (admin key)")
    def admin_key(name: str, update: KeyUpdate, key: dict = Depends(admin)) -> dict[str, Any]:
        changes = {k: v for k, v in update.model_dump(exclude_unset=True).items()}
        return service.set_key(name, **changes)

    return app


class RequestGuard:
    """ASGI middleware, first on every request: the per-address rate limit (429, before
    authentication); the body size limit (413, by Content-Length up front or as soon as the
    bytes of a chunked body pass it); the body timeout (408 when the body is not complete
    ``limits.body_timeout`` seconds after the headers)."""

    def __init__(self, app: Any, service: Service):
        self.app, self.service = app, service

    async def _refuse(self, scope: dict, send: Any, e: ServiceError, what: str) -> None:
        client = (scope.get("client") or ("", 0))[0]
        self.service.log_refusal("?", client, scope.get("path", ""), e.status, e.code, what)
        body = json.dumps(e.body()).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"connection", b"close")]
        if "retry_after" in e.extra:
            headers.append((b"retry-after", str(max(1, int(np.ceil(e.extra["retry_after"])))).encode()))
        await send({"type": "http.response.start", "status": e.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limits = self.service.limits
        try:
            self.service.check_address((scope.get("client") or ("", 0))[0])
        except ServiceError as e:
            return await self._refuse(scope, send, e, e.message)
        too_large = ServiceError(413, "body_too_large", f"request body over the limit of {limits.max_body_bytes} "
                                 "bytes; send smaller batches")
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limits.max_body_bytes):
            return await self._refuse(scope, send, too_large, f"content-length {length.decode(errors='replace')}")
        state = {"received": 0, "refused": False, "complete": False}
        deadline = asyncio.get_running_loop().time() + limits.body_timeout

        async def guarded_receive() -> dict:
            if state["complete"] or state["refused"]:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - asyncio.get_running_loop().time(), 0.0))
            except asyncio.TimeoutError:
                state["refused"] = True
                await self._refuse(scope, send, ServiceError(408, "body_timeout", "the request body was not sent "
                                   f"within {limits.body_timeout:g} s"), "body timeout")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                state["complete"] = not message.get("more_body", False)
                if state["received"] > limits.max_body_bytes:
                    state["refused"] = True
                    await self._refuse(scope, send, too_large, f"chunked body over {limits.max_body_bytes} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: dict) -> None:
            if not state["refused"]:
                await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if not state["refused"]:
                raise


def http_protocol(service: Service) -> type:
    """uvicorn's HTTP/1.1 protocol (h11) with a header timeout: a connection that has not sent a
    complete request line and headers ``limits.header_timeout`` seconds after it opened (or after
    its last response) is closed, with a 408 JSON refusal when it had sent part of a request.  Its
    own 400 for unparseable HTTP is the service's JSON refusal too."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    timeout = service.limits.header_timeout

    class TimedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(timeout, self._header_timeout)

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            super().connection_lost(exc)

        def _write_refusal(self, e: ServiceError) -> None:
            client = self.client[0] if self.client else ""
            service.log_refusal("?", client, "", e.status, e.code, e.message)
            body = json.dumps(e.body()).encode()
            self.transport.write(b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
                                 b"connection: close\r\n\r\n" % (e.status, HTTPStatus(e.status).phrase.encode(), len(body)) + body)
            self.transport.close()

        def _header_timeout(self) -> None:
            if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
                return
            if self.conn.trailing_data[0]:  # part of a request line or headers, never finished
                self._write_refusal(ServiceError(408, "header_timeout", "the request line and headers were not "
                                                 f"sent within {timeout:g} s"))
            else:
                self.transport.close()

        def send_400_response(self, msg: str) -> None:
            self._write_refusal(ServiceError(400, "malformed_http", msg))

    return TimedH11Protocol


def server_options(service: Service) -> dict[str, Any]:
    """uvicorn settings of the service: its timed protocol, a connection cap, no access log."""
    return {"http": http_protocol(service), "limit_concurrency": 256, "timeout_keep_alive": 5,
            "access_log": False, "log_level": "warning"}


# -- running ---------------------------------------------------------------------------------------
def new_keys(path: str | Path, names: tuple[str, ...] = ("admin", "user")) -> list[ApiKey]:
    """Write a keys file with fresh random keys (the first one admin) and return them."""
    keys = [ApiKey(n, secrets.token_urlsafe(24), admin=(i == 0)) for i, n in enumerate(names)]
    Path(path).write_text(json.dumps({k.name: {"key": k.key, "quota": k.quota, "admin": k.admin} for k in keys},
                                     indent=2) + "\n")
    return keys


class ServerThread:
    """uvicorn on loopback in a background thread (tests, benchmarks, the audit's self-check)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        import socket

        import uvicorn

        if port == 0:
            with socket.socket() as s:
                s.bind((host, 0))
                port = s.getsockname()[1]
        self.host, self.port = host, port
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                                    **{**server_options(app.state.service), "log_level": log_level}))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the service did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
