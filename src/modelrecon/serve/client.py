"""The attacker's oracle over HTTP: :func:`http_oracle` (alias :class:`HTTPOracle`).

It is the ordinary :class:`modelrecon.oracle.Oracle` (ledger, budgets, journal) whose
backend closure talks to a modelrecon explanation service:

* the public metadata (input shape, outputs, task, kinds, options, box) is read from
  ``/v1/metadata``;
* a backend call is split into batches of at most ``batch_size`` inputs (the service's
  ``max_batch`` and body limit by default), sent ``concurrency`` at a time, each with its
  own ``request_id`` so that a retry is answered from the service's log and not charged
  twice; with a journal the ids are written to it before the requests are sent, so a run
  killed with requests in flight and resumed sends them again under the same ids and is
  not charged for them again;
* time-outs (and 408), connection errors, 5xx, 409 (in progress) and 429 (rate limited) are retried
  with exponential backoff (honouring ``Retry-After``); other 4xx raise
  :class:`OracleError` with the service's message;
* an exhausted quota (403 ``quota_exhausted``) answers the prefix that still fits and
  raises :class:`QueryBudgetExceeded` carrying it: the oracle counts and journals that
  prefix, the attack returns a partial result, and a re-run with the same journal after
  the quota is raised replays every answered query for free;
* the ledger counts N x |kinds| per batch, as the service does: after a run
  ``oracle.ledger.total()`` equals the service's count for the key (``usage(...)``),
  provided no one else spends on the same key meanwhile.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from modelrecon.oracle import PREDICTION_KINDS, Journal, Oracle, OracleError, QueryBudgetExceeded


def _wire(kind: str) -> str:
    return kind.split(":", 1)[1] if kind.startswith("explanation:") else kind


class _Quota(Exception):
    def __init__(self, remaining: int, message: str):
        super().__init__(message)
        self.remaining = remaining


class Connection:
    """An API key at a service URL: JSON requests with retries and backoff."""

    def __init__(self, url: str, key: str, *, timeout: float = 60.0, retries: int = 8, backoff: float = 0.1,
                 max_backoff: float = 5.0, transport: Any = None):
        import httpx

        self.url = url.rstrip("/")
        self.retries, self.backoff, self.max_backoff = retries, backoff, max_backoff
        self.http = httpx.Client(base_url=self.url, headers={"X-API-Key": key}, timeout=timeout,
                                 limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
                                 transport=transport)
        self.retried = 0  # requests sent again after a failure (never charged twice)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        d = min(self.max_backoff, self.backoff * 2 ** attempt) * (0.5 + random.random())
        return max(d, retry_after or 0.0)

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        import httpx

        last = ""
        for attempt in range(self.retries + 1):
            retry_after = None
            try:
                r = self.http.request(method, path, json=body)
            except (httpx.TimeoutException, httpx.TransportError) as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if r.status_code == 200:
                    return r.json()
                try:
                    err = r.json().get("error", {})
                except ValueError:
                    err = {"message": r.text[:200]}
                code, msg = err.get("code", ""), err.get("message", r.text[:200])
                if r.status_code == 403 and code == "quota_exhausted":
                    raise _Quota(int(err.get("quota_remaining", 0)), msg)
                if r.status_code in (401, 403):
                    raise OracleError(f"the service refused the key ({r.status_code} {code}): {msg}")
                if r.status_code in (408, 429) or r.status_code >= 500 or (r.status_code == 409 and code == "in_progress"):
                    last = f"{r.status_code} {code}: {msg}"
                    ra = r.headers.get("Retry-After")
                    retry_after = float(err.get("retry_after", ra or 0) or 0)
                else:
                    raise OracleError(f"the service refused the request ({r.status_code} {code}): {msg}")
            if attempt < self.retries:
                self.retried += 1
                time.sleep(self._delay(attempt, retry_after))
        raise OracleError(f"{method} {self.url}{path} failed after {self.retries + 1} attempts; last: {last}")

    def close(self) -> None:
        self.http.close()


def http_oracle(url: str, key: str, *, budget: int | None = None, budgets: dict[str, int] | None = None,
                journal: str | Path | None = None, kinds: list[str] | None = None, batch_size: int | None = None,
                concurrency: int = 4, timeout: float = 60.0, retries: int = 8, backoff: float = 0.1,
                transport: Any = None, cache: Journal | None = None,
                transform: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]] | None = None,
                options: dict[str, Any] | None = None, spend_cap: dict[str, int] | None = None) -> Oracle:
    """An :class:`Oracle` over the explanation service at ``url`` with API key ``key``.

    ``kinds`` narrows the kinds the attack may use (default: all the service offers);
    ``budget``/``budgets`` and ``journal`` are the oracle's own.  The connection is at
    ``oracle.connection`` (its ``retried`` counter, ``usage()``).

    For what-if studies (the audit): ``cache`` is a journal of the service's raw answers
    consulted before asking and filled after; ``transform`` post-processes every answer
    (a simulated service option) and ``options`` are merged into the published options.
    ``spend_cap`` (``{"left": N}``, shared between oracles) caps what the service may charge
    them together; running into it behaves like an exhausted quota."""
    conn = Connection(url, key, timeout=timeout, retries=retries, backoff=backoff, transport=transport)
    meta = conn.request("GET", "/v1/metadata")
    offered = list(meta["kinds"])
    if kinds is not None:
        for k in kinds:
            if k not in offered:
                raise OracleError(f"the service does not offer {k!r}; it offers {', '.join(offered)}")
        offered = list(kinds)
    input_shape = tuple(meta["input_shape"])
    d = int(np.prod(input_shape))
    # ~25 bytes per float in JSON: keep a request well under the body limit
    by_body = max(1, int(meta["limits"]["max_body_bytes"] * 0.8) // (25 * d + 16))
    size = min(batch_size or meta["limits"]["max_batch"], meta["limits"]["max_batch"], by_body)
    state = {"quota_remaining": conn.request("GET", "/v1/usage").get("quota_remaining")}  # None: no quota
    pool = ThreadPoolExecutor(max_workers=max(1, concurrency))

    cap_lock = threading.Lock()

    recorder: dict[str, Journal | None] = {"journal": None}  # the oracle's journal, set below

    def request_ids(chunks: list[np.ndarray], kinds: tuple[str, ...], output: Any) -> list[str]:
        """Fresh ids, or with a journal the ids recorded for these very requests (written before sending)."""
        if recorder["journal"] is None:
            return [uuid.uuid4().hex for _ in chunks]
        return recorder["journal"].request_ids([Journal.key(",".join(kinds), output, c) for c in chunks])

    def one(x: np.ndarray, kinds: tuple[str, ...], output: Any, request_id: str) -> tuple[dict[str, np.ndarray], int]:
        cost = len(x) * len(kinds)
        if spend_cap is not None:
            with cap_lock:
                if cost > spend_cap["left"]:
                    raise _Quota(spend_cap["left"], f"the spending cap leaves {spend_cap['left']} queries")
                spend_cap["left"] -= cost  # reserved; the unspent part is given back below
        try:
            return _one(x, kinds, output, request_id)
        except BaseException:
            if spend_cap is not None:
                with cap_lock:
                    spend_cap["left"] += cost
            raise

    def _one(x: np.ndarray, kinds: tuple[str, ...], output: Any, request_id: str) -> tuple[dict[str, np.ndarray], int]:
        preds = [_wire(k) for k in kinds if k in PREDICTION_KINDS]
        expl = [_wire(k) for k in kinds if k not in PREDICTION_KINDS]
        body: dict[str, Any] = {"inputs": x.reshape(len(x), -1).tolist(), "request_id": request_id}
        if expl:
            body.update(methods=expl, predictions=preds,
                        output=output if output == "predicted" else int(output))
            r = conn.request("POST", "/v1/explain", body)
        else:
            body.update(outputs=preds)
            r = conn.request("POST", "/v1/predict", body)
        if r.get("quota_remaining") is not None:
            state["quota_remaining"] = r["quota_remaining"]
        if spend_cap is not None and r.get("charged", 0) < len(x) * len(kinds):  # a replayed request_id
            with cap_lock:
                spend_cap["left"] += len(x) * len(kinds) - r.get("charged", 0)
        out = {}
        for k in kinds:
            src = r["predictions"] if k in PREDICTION_KINDS else r["explanations"]
            a = np.asarray(src[_wire(k)])
            a = a.astype(np.int64) if k == "label" else a.astype(np.float64)
            out[k] = a.reshape(len(x), *input_shape) if k not in PREDICTION_KINDS else a
        return out, int(r.get("evaluations", 0) or 0)

    def fetch(x: np.ndarray, kinds: tuple[str, ...], output: Any) -> tuple[dict[str, np.ndarray], int]:
        chunks = [x[i:i + size] for i in range(0, len(x), size)]
        ids = request_ids(chunks, kinds, output)
        rem = state["quota_remaining"]
        need = len(x) * len(kinds)
        parallel = (concurrency > 1 and len(chunks) > 1 and (rem is None or rem >= need)
                    and (spend_cap is None or spend_cap["left"] >= need))
        results: list[Any] = []
        quota: _Quota | None = None
        if parallel:  # the quota covers every chunk: no gap can open in the answered prefix
            futures = [pool.submit(one, c, kinds, output, i) for c, i in zip(chunks, ids)]
            for f in futures:
                try:
                    results.append(f.result())
                except _Quota as e:  # someone else spent on the key meanwhile
                    quota = quota or e
                    results.append(None)
            if quota is not None:
                first = results.index(None)
                later = [r for r in results[first:] if r is not None]
                if later:
                    raise OracleError("the quota ran out while concurrent batches were in flight and a later batch "
                                      "was answered: the ledger can no longer match the service (another client "
                                      "is spending on this key?)")
                results = results[:first]
        else:
            for c, i in zip(chunks, ids):
                try:
                    results.append(one(c, kinds, output, i))
                except _Quota as e:
                    quota = e
                    break
        if quota is not None:  # answer the prefix that still fits, then stop
            done = sum(len(next(iter(r[0].values()))) for r in results)
            fit = quota.remaining // len(kinds)
            if fit > 0 and done < len(x):
                rest = x[done:done + min(fit, len(x) - done)]
                try:
                    results.append(one(rest, kinds, output, request_ids([rest], kinds, output)[0]))
                except _Quota:
                    pass
        answers = {k: np.concatenate([r[0][k] for r in results]) if results else
                   np.empty((0,) + (input_shape if k not in PREDICTION_KINDS else ())) for k in kinds}
        evaluations = sum(r[1] for r in results)
        if quota is not None:
            answered = len(answers[kinds[0]])
            e = QueryBudgetExceeded(f"the service's quota for this key is exhausted: {quota}", answers, answered)
            e.evaluations = evaluations
            raise e
        return answers, evaluations

    def cached(x: np.ndarray, kinds: tuple[str, ...], output: Any) -> tuple[dict[str, np.ndarray], int]:
        out_key = lambda k: output if k not in PREDICTION_KINDS else None  # noqa: E731
        found: dict[int, dict[str, np.ndarray]] = {}
        for i in range(len(x)):
            got = {k: cache.lookup(Journal.key(k, out_key(k), x[i])) for k in kinds}
            if all(v is not None for v in got.values()):
                found[i] = got
        missing = [i for i in range(len(x)) if i not in found]
        fresh: dict[str, np.ndarray] = {}
        evaluations, stop = 0, None
        if missing:
            try:
                fresh, evaluations = fetch(x[missing], kinds, output)
            except QueryBudgetExceeded as e:
                fresh, evaluations, stop = e.answers, int(getattr(e, "evaluations", 0)), e
            n_fresh = len(fresh[kinds[0]]) if fresh else 0
            cache.append([(Journal.key(k, out_key(k), x[i]), k, out_key(k), "raw", x[i], fresh[k][j])
                          for k in kinds for j, i in enumerate(missing[:n_fresh])])
            for j, i in enumerate(missing[:n_fresh]):
                found[i] = {k: fresh[k][j] for k in kinds}
        upto = next((i for i in range(len(x)) if i not in found), len(x))
        answers = {k: np.stack([found[i][k] for i in range(upto)]) if upto else np.empty((0,)) for k in kinds}
        if stop is not None:
            e = QueryBudgetExceeded(str(stop), answers, upto)
            e.evaluations = evaluations
            raise e
        return answers, evaluations

    raw = cached if cache is not None else fetch

    def backend(x: np.ndarray, kinds: tuple[str, ...], output: Any) -> tuple[dict[str, np.ndarray], int]:
        if transform is None:
            return raw(x, kinds, output)
        try:
            answers, evaluations = raw(x, kinds, output)
        except QueryBudgetExceeded as e:
            e.answers = transform(e.answers) if e.answered else e.answers
            raise
        return transform(answers), evaluations

    oracle = Oracle(backend, spec=conn.url, input_shape=input_shape, n_outputs=int(meta["n_outputs"]),
                    task=meta["task"], kinds=offered, options={**meta["options"], **(options or {})},
                    input_box=tuple(meta["input_box"]) if meta.get("input_box") else None,
                    enforce_box=bool((meta.get("limits") or {}).get("enforce_input_box")), budget=budget, budgets=budgets, journal=journal)
    recorder["journal"] = oracle.journal
    oracle.connection = conn
    oracle.metadata = meta
    oracle.usage = lambda: conn.request("GET", "/v1/usage")
    return oracle


HTTPOracle = http_oracle
