"""Span recovery: the row span of a network's first layer from its query interface.

Jayaram, Woodruff, Zhang, "Span Recovery for Deep Neural Networks with Applications to
Input Obfuscation" (ICLR 2020, arXiv 2002.08202).  For M(x) = sigma(Ax + b) with
A in R^{k x n}, k < n, and sigma any network on top, every gradient of M is
A^T grad sigma(Ax + b): it lies in rowspan(A).  So does the normal of every level set
{M = tau}, i.e. of a thresholded model's decision boundary.  Collecting enough of these
vectors spans rowspan(A).

Every setting grows an orthonormal basis Q (r x n) one direction at a time and measures,
at each fresh point, only the component of the gradient *outside* span(Q): a gradient
g = Q^T(Qg) + w adds a direction iff w != 0, and w lives in the (n - r)-dimensional
complement, so the j-th direction costs n - j + 2 value queries instead of n + 1.
Mathematically span(Q) is the span of the noisy gradients themselves (w and g differ by
a vector of span(Q)).  The rank decision, though, needs a bound on what the basis' own
error leaves over in w, and that needs ||Qg||: the value setting measures the in-span part
too (about n + 2 queries per direction in all, see below); the label and gradient settings
do the same.

Settings (hyperparameter ``setting``):

``relu-value`` (value queries, ReLU networks: M is piecewise linear)
    1. at a random point x, p random unit directions u in the complement of span(Q):
       forward differences (M(x + h u) - M(x)) / h (a membership test: all zero within
       the noise -> the gradient is already in the span, a "miss");
    2. otherwise the remaining n - r - p directions of the complement, plus one check
       point z = x + h/sqrt(m) * sum(+-u): on a linear piece M(z) equals the linear
       prediction from the stencil up to float64 rounding; a larger residual means the
       stencil crossed a ReLU boundary and the point is re-drawn (re-centred);
    3. w = sum_i d_i u_i is added to the basis when ||w|| exceeds the noise threshold
       2 m delta_f / h, delta_f = n eps F (F the largest |M| seen: float64 eps x output
       scale; half a unit of the last digit more when the oracle rounds): the bound on
       an error that passes the check (one undetected crossing or the rounding of m
       differences).  The bound falls as 1/h while crossings are caught by the check: the
       default h = 1e-4 x input scale is cheap on random networks (few crossings), but on a
       trained MNIST MLP the threshold outgrew its weakest units (104 of 128 directions);
       ``step`` = 1e-2 x scale found all 128 (more crossings re-drawn: more queries);
    4. a candidate is confirmed by one fresh difference along its own direction (a real
       component reads ||w|| again, noise of m coordinates about ||w||/sqrt(m));
    5. stop after ``patience`` consecutive misses (the span stopped growing), at the
       dimension ``k`` when given, or when the budget runs out (partial result);
    6. refit: the r directions are replaced by the top-r right singular vectors of every full
       gradient measured (the accepted ones and those that added nothing): the same dimension,
       the weak directions' tilt averaged down (least squares, Eckart-Young).
    The in-span part Qg is measured too (r more queries per measured point) and the threshold
    gains eps_Q ||Qg||, eps_Q = ||noise|| / sigma_min(gradients) (Wedin): what a slightly
    tilted basis leaves over in later gradients.  It matters at float64 precision too: on thin
    networks (a layer narrower than k) some directions are weak (||w|| ~ 1e-5 of the gradient),
    each is tilted by noise / ||w||, and without the term the residue of that tilt was accepted
    as a false direction (k = 10, width 2: 11 of 10).  ``measure_in_span=False`` skips it
    (cheaper by about k^2/2 queries, unsafe on thin networks).
    ``design="full"`` is the paper's non-adaptive variant for comparison: full gradients
    (n + 2 queries each) stacked, numerical rank by the singular values.

``threshold`` (label queries: 0/1 or +-1 against a threshold, or "is the top class
``output``" for a multi-class model; differentiable activations)
    1. random inputs until both labels occur; a boundary point p by bisection between
       two inputs of different labels (to precision ``precision`` x h);
    2. with v the unit direction of that segment, for each direction u of the
       complement, bisection along the lines p +- h u + t v finds where the label flips:
       t_+- = -+h (g.u)/(g.v) - h^2 q, so (t_- - t_+)/(2h) = (g.u)/(g.v) + O(h^2)
       (central difference) and |t_+ + t_-|/(2h) = h|q| estimates the first-order
       error, a conservative noise level for the rank decision;
    3. as above: a membership test on p directions, then the whole complement and the
       basis directions; accept w = sum_i c_i u_i when ||w|| exceeds the norm of the noise
       levels plus eps_Q ||Qg|| (Wedin, as above), confirm it; stop after ``patience`` misses.

``data``: the attacker's own unlabeled inputs to centre the queries on (default: random
inputs in the input box, or standard normal without one).

``source``: a gradient or explanation oracle, when offered ("auto" prefers it), turns
every query into a vector of the span directly (explanations of the form
(x - baseline) * gradient are divided back); the same incremental rank decision with
threshold n eps G (G the largest gradient norm seen).  Same API, far fewer queries.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelrecon.attacks import Attack
from modelrecon.oracle import Oracle, OracleError, QueryBudgetExceeded
from modelrecon.result import Result
from modelrecon.verdict import passes, worst_ratio

EPS = np.finfo(np.float64).eps
SETTINGS = ("relu-value", "threshold")
DESIGNS = ("complement", "full")
# explanation kinds whose answer is (x - baseline) * v with v in the span, or v itself
IN_SPAN = {
    "gradient": None, "explanation:saliency-signed": None, "explanation:guided-backprop": None,
    "explanation:smoothgrad": None, "explanation:integrated-gradients": "ig_baseline",
    "explanation:deeplift": "deeplift_baseline", "explanation:input-x-gradient": 0.0,
}
GRADIENT_PREFERENCE = tuple(IN_SPAN)


class _Stop(Exception):
    """Internal: the search ended early (unresolvable target); carries the reason."""


class SpanRecovery(Attack):
    """Recover rowspan(A) of M(x) = sigma(Ax + b); ``params["basis"]`` is (r x n) with orthonormal rows."""

    name = "span"

    def __init__(self, setting: str = "relu-value", source: str = "auto", output: int | None = None,
                 k: int | None = None, design: str = "complement", step: float | None = None,
                 precision: float = 1e-7, test_directions: int = 3, patience: int = 6,
                 max_points: int | None = None, seed: int = 0, data: np.ndarray | None = None,
                 measure_in_span: bool | None = None):
        if setting not in SETTINGS:
            raise ValueError(f"unknown setting {setting!r}; known: {', '.join(SETTINGS)}")
        if design not in DESIGNS:
            raise ValueError(f"unknown design {design!r}; known: {', '.join(DESIGNS)}")
        if k is not None and k < 1:
            raise ValueError(f"k (the expected span dimension) must be >= 1, got {k}")
        if step is not None and not step > 0:
            raise ValueError(f"step must be > 0, got {step}")
        if not 0 < precision < 1:
            raise ValueError(f"precision must be in (0, 1), got {precision}")
        if test_directions < 1 or patience < 1:
            raise ValueError("test_directions and patience must be >= 1")
        self.setting = setting
        self.source = source
        self.output = output
        self.k = k
        self.design = design
        self.step = step
        self.precision = precision
        self.test_directions = test_directions
        self.patience = patience
        self.max_points = max_points
        self.seed = seed
        self.measure_in_span = measure_in_span
        # the attacker's own unlabeled inputs to centre queries on (default: random inputs)
        self._data = None if data is None else np.asarray(data, dtype=np.float64).reshape(len(data), -1)
        self.data_points = 0 if data is None else len(self._data)

    # -- planning --------------------------------------------------------------------------
    def _plan(self, oracle: Oracle) -> str:
        n = oracle.input_dim
        if self.k is not None and self.k >= n:
            raise ValueError(f"k={self.k} >= n={n}: a first layer of rank >= n spans all of R^{n}; "
                             "there is no subspace to recover")
        if oracle.n_outputs > 1:
            if self.output is None:
                raise OracleError(f"this target has {oracle.n_outputs} outputs: choose one with output=INDEX "
                                  f"(0..{oracle.n_outputs - 1}); span recovery follows one scalar output")
            if not 0 <= int(self.output) < oracle.n_outputs:
                raise OracleError(f"output={self.output} is not a class index in [0, {oracle.n_outputs})")
        elif self.output not in (None, 0):
            raise OracleError(f"this target has a scalar output; output={self.output} does not exist")
        source = self.source
        if source == "auto":
            source = next((s for s in GRADIENT_PREFERENCE if s in oracle.kinds), None)
            if source is None:
                source = "value" if self.setting == "relu-value" else "label"
        elif source not in ("value", "label", "gradient") and not source.startswith("explanation:"):
            source = f"explanation:{source}"
        if source not in ("value", "label") and source not in IN_SPAN:
            raise OracleError(f"source {source!r} does not answer vectors of the span "
                              f"(usable: value, label, {', '.join(IN_SPAN)}); absolute saliency loses the signs")
        if source not in oracle.kinds:
            raise OracleError(f"the oracle does not offer {source!r}; it offers {', '.join(oracle.kinds)}")
        if source == "value" and self.setting != "relu-value":
            raise OracleError("the threshold setting uses label queries (or a gradient source), not values")
        if source == "label" and self.setting != "threshold":
            raise OracleError("label queries belong to the threshold setting; use --setting threshold")
        return source

    def execute(self, oracle: Oracle) -> Result:
        source = self._plan(oracle)
        n = oracle.input_dim
        self._oracle = oracle
        self._rng = np.random.default_rng(self.seed)
        self._order: list[int] = []
        self._n = n
        self._F = 0.0
        self._G = 0.0
        lo, hi = oracle.input_box if oracle.input_box else (None, None)
        self._box = (lo, hi)
        self._scale = (hi - lo) / 2.0 if lo is not None else 1.0
        self._out = int(self.output) if self.output is not None else 0
        self._basis = np.zeros((0, n))
        self._log: dict[str, Any] = {"source": source, "setting": self.setting, "design": self.design,
                                     "accepted_norms": [], "accepted_thresholds": [], "rejected_max_ratio": 0.0,
                                     "points": 0, "misses": 0, "recentred": 0, "reference_queries_per_dim": n + 1}
        try:
            if source in ("value",) and self.design == "full":
                self._run_full_values()
            elif source == "value":
                self._run_values()
            elif source == "label":
                self._run_labels()
            else:
                self._run_gradients(source)
            status, message = "complete", ""
        except QueryBudgetExceeded as e:
            status, message = "partial", f"query budget exhausted: {e}"
        except _Stop as e:
            status, message = "failed", str(e)
        return self._result(status, message)

    def _result(self, status: str, message: str) -> Result:
        Q = self._basis
        r, n = Q.shape
        log = self._log
        spent = self._oracle.ledger.total("attack")
        log["recovered_dim"] = r
        log["queries_per_dim"] = spent / r if r else None
        log["reference_queries"] = (n + 1) * r
        if status == "complete" and r == 0:
            status, message = "failed", "no direction of the span was found: every point measured left nothing above the noise"
        if status == "complete":
            if r >= n:
                message = f"the gradients span all of R^{n}: the first layer hides no subspace (k >= n)"
            elif self.k is not None and r == self.k:
                message = f"recovered a {r}-dimensional span (the expected k={self.k})"
            else:
                message = (f"recovered a {r}-dimensional span; it stopped growing on {self.patience} consecutive "
                           f"fresh points")
            message += f" ({spent} {log['source']} queries, {spent / max(r, 1):.1f} per dimension vs the (n+1)={n + 1} reference)"
        elif status == "partial":
            message = f"{message}; returning the {r}-dimensional span found so far"
        return Result(self.name, status, message, params={"basis": Q.copy()}, details=log)

    # -- common pieces ---------------------------------------------------------------------
    def _points(self, m: int) -> np.ndarray:
        if self._data is not None:  # the attacker's inputs, in a random order, then again in another
            if self._data.shape[1] != self._n:
                raise OracleError(f"data points have {self._data.shape[1]} features; the target takes {self._n}")
            out = []
            for _ in range(m):
                if not getattr(self, "_order", None):
                    self._order = list(self._rng.permutation(len(self._data)))
                out.append(self._data[self._order.pop()])
            return np.array(out)
        lo, hi = self._box
        if lo is None:
            X = self._rng.normal(size=(m, self._n))
        else:  # stay a margin inside the box so the stencils do not leave it
            mid, half = (lo + hi) / 2.0, (hi - lo) / 2.0
            X = mid + 0.8 * half * self._rng.uniform(-1.0, 1.0, size=(m, self._n))
        return X

    def _shape(self, X: np.ndarray) -> np.ndarray:
        return X.reshape(len(X), *self._oracle.input_shape)

    def _complement(self, p: int) -> np.ndarray:
        """p random orthonormal rows in the complement of span(Q)."""
        Q = self._basis
        R = self._rng.normal(size=(p, Q.shape[1]))
        for _ in range(2):
            R -= (R @ Q.T) @ Q
        return np.linalg.qr(R.T)[0].T

    def _complement_after(self, U: np.ndarray) -> np.ndarray:
        """The rest of the complement of span(Q) once the rows of U are used."""
        Q = np.vstack([self._basis, U])
        full = np.linalg.qr(Q.T, mode="complete")[0]
        return full[:, len(Q):].T

    def _accept(self, w: np.ndarray, threshold: float) -> bool:
        norm = float(np.linalg.norm(w))
        if norm <= threshold:
            self._log["rejected_max_ratio"] = max(self._log["rejected_max_ratio"], norm / threshold if threshold else np.inf)
            return False
        q = w / norm
        for _ in range(2):  # re-orthogonalise against the basis (w is in the complement up to rounding)
            q -= (q @ self._basis.T) @ self._basis
            q /= np.linalg.norm(q)
        self._basis = np.vstack([self._basis, q])
        self._log["accepted_norms"].append(norm)
        self._log["accepted_thresholds"].append(threshold)
        return True

    def _confirmed(self, w: np.ndarray, measured: float) -> bool:
        """A candidate w (a vector of noise-level size, or a real new component) is re-measured
        along its own direction from fresh queries: a real component reads ||w|| again, noise
        of m coordinates reads about ||w||/sqrt(m).  Decide for the nearer hypothesis."""
        norm = float(np.linalg.norm(w))
        ok = abs(measured - norm) <= 0.5 * norm
        self._log["confirmations"] = self._log.get("confirmations", 0) + 1
        if not ok:
            self._log["confirmations_failed"] = self._log.get("confirmations_failed", 0) + 1
        return ok

    def _done(self, misses: int) -> bool:
        r = len(self._basis)
        if r >= self._n or (self.k is not None and r >= self.k) or misses >= self.patience:
            return True
        if self.max_points is not None and self._log["points"] >= self.max_points:
            self._log["stopped_by"] = "max_points"
            return True
        return False

    # -- value queries (ReLU, piecewise linear) ----------------------------------------------
    def _values(self, X: np.ndarray) -> np.ndarray:
        v = np.asarray(self._oracle.query(self._shape(X), ("value",))["value"], dtype=np.float64)
        if v.ndim == 2:
            v = v[:, self._out]
        if not np.all(np.isfinite(v)):
            raise _Stop("the oracle returned non-finite values")
        self._F = max(self._F, float(np.abs(v).max()))
        return v

    def _delta_f(self) -> float:
        """Bound on the rounding error of one answer: float64 eps x output scale x n (the length
        of the first dot product), plus half a unit of the last digit when the oracle rounds."""
        d = self._n * EPS * max(self._F, np.finfo(np.float64).tiny)
        rounding = self._oracle.options.get("round_decimals")
        if rounding is not None:
            d += 0.5 * 10.0 ** (-rounding)
        return d

    def _h(self) -> float:
        return self.step if self.step is not None else 1e-4 * self._scale

    def _run_values(self) -> None:
        h = self._h()
        p = self.test_directions
        log = self._log
        log["step"] = h
        # Measure the in-span part Qg too (r more queries per measured point): the Wedin term
        # eps_Q ||Qg|| is what a tilted basis leaves over in the complement of every later gradient.
        # It is not covered by the noise bound: a weak direction (a rare activation pattern of a thin
        # layer, ||w|| ~ 1e-5) is tilted by noise / ||w||, and the residue of that tilt in the next
        # gradient, tilt x ||Qg||, reads as a new direction (issue 5).  Only an explicit
        # measure_in_span=False skips it (the old, cheaper variant, for comparison).
        in_span = self.measure_in_span is not False
        log["measure_in_span"] = in_span
        measured: list[np.ndarray] = []  # every full gradient that passed the linearity check
        try:
            self._grow_values(h, p, in_span, measured)
        finally:  # also for a partial result: the refit keeps the dimension, it only re-fits the directions
            self._refit(measured)

    def _refit(self, measured: list[np.ndarray]) -> None:
        """Least-squares refit of the r accepted directions to every full gradient measured.

        The incremental basis is exactly the span of the r gradients that added a direction; a
        weak one (||w|| small next to ||Qg||) also carries the residue of the earlier directions'
        tilt, so its own tilt is noise / ||w|| plus that residue / ||w||.  The gradients measured
        at the points that added nothing lie in rowspan(A) just as well: the top-r right singular
        vectors of all of them (Eckart-Young: the r-dimensional subspace closest to every measured
        gradient) average that error down.  r is kept, so no direction is added or dropped here."""
        r = len(self._basis)
        if r == 0 or len(measured) <= r:  # nothing beyond the gradients the basis already spans
            return
        _, s, Vt = np.linalg.svd(np.array(measured), full_matrices=False)
        self._basis = Vt[:r]
        self._log["refit_gradients"] = len(measured)
        self._log["refit_singular_values"] = s.tolist()

    def _grow_values(self, h: float, p: int, in_span: bool, measured: list[np.ndarray]) -> None:
        log = self._log
        eps_q = 0.0
        grads: list[np.ndarray] = []
        noises: list[float] = []
        misses = 0
        failures_in_a_row = 0
        worst_residual = 0.0
        while not self._done(misses):
            x = self._points(1)[0]
            log["points"] += 1
            r = len(self._basis)
            m_all = self._n - r
            Up = self._complement(min(p, m_all))
            y = self._values(np.vstack([x, x + h * Up]))
            d_p = (y[1:] - y[0]) / h
            delta = self._delta_f()
            if r > 0 and np.max(np.abs(d_p)) <= 2 * delta / h:
                misses += 1
                log["misses"] += 1
                log["rejected_max_ratio"] = max(log["rejected_max_ratio"], float(np.max(np.abs(d_p)) / (2 * delta / h)))
                continue
            rest = self._complement_after(Up) if m_all > len(Up) else np.zeros((0, self._n))
            m = len(Up) + len(rest)
            if in_span:  # the basis directions too: the full gradient, to bound what the basis error leaves
                rest = np.vstack([rest, self._basis])
            U = np.vstack([Up, rest])
            signs = self._rng.choice([-1.0, 1.0], size=len(U)) / np.sqrt(len(U))
            z = x + h * (signs @ U)
            y2 = self._values(np.vstack([x + h * rest, z])) if len(rest) else self._values(z[None])
            d = np.concatenate([d_p, (y2[:-1] - y[0]) / h])
            delta = self._delta_f()
            predicted = y[0] + h * (signs @ d)
            residual = abs(y2[-1] - predicted)
            tolerance = delta * (2.0 + 2.0 * np.abs(signs).sum())
            if not passes(worst_ratio(residual, tolerance)):  # the stencil crossed a ReLU boundary (or M is not piecewise linear)
                log["recentred"] += 1
                failures_in_a_row += 1
                worst_residual = max(worst_residual, residual / tolerance)
                if failures_in_a_row >= 10:
                    raise _Stop(f"10 stencils in a row were not linear: the check residual reached "
                                f"{worst_residual:.3g} x its float64 tolerance; the target is not a piecewise-linear "
                                f"(ReLU) network at step {h:g}, or its answers are noisier than float64 "
                                "(use --setting threshold or a gradient source)")
                continue
            failures_in_a_row = 0
            log["max_check_residual_over_tolerance"] = max(log.get("max_check_residual_over_tolerance", 0.0),
                                                          residual / tolerance)
            w = d[:m] @ U[:m]
            if in_span:  # U = complement + basis: d @ U is the whole measured gradient
                measured.append(d @ U)
            threshold = 2 * m * delta / h
            if in_span:
                threshold += eps_q * float(np.linalg.norm(d[m:]))
            if np.linalg.norm(w) > threshold:  # confirm along the candidate with a fresh half step
                q = w / np.linalg.norm(w)
                d_q = (self._values((x + 0.5 * h * q)[None])[0] - y[0]) / (0.5 * h)
                if not self._confirmed(w, d_q):
                    misses += 1
                    log["misses"] += 1
                    if in_span:  # a stencil that did not reproduce itself: keep it out of the refit
                        measured.pop()
                    continue
            basis_before = self._basis
            if self._accept(w, threshold):
                if in_span:  # Wedin: sin(largest angle) <= ||noise|| / sigma_min(measured gradients)
                    grads.append(d[m:] @ basis_before + w if len(basis_before) else w)
                    noises.append(2 * len(U) * delta / h)
                    eps_q = float(np.linalg.norm(noises) / np.linalg.svd(np.array(grads), compute_uv=False)[-1])
                misses = 0
            else:
                misses += 1
                log["misses"] += 1

    def _run_full_values(self) -> None:
        """Non-adaptive: full gradients (n + 2 queries each) at random points; rank by SVD."""
        h = self._h()
        n = self._n
        log = self._log
        log["step"] = h
        grads: list[np.ndarray] = []
        rank_before, misses, failures_in_a_row = 0, 0, 0
        eye = np.eye(n)
        while True:
            if (self.k is not None and rank_before >= self.k) or misses >= self.patience or rank_before >= n:
                break
            if self.max_points is not None and log["points"] >= self.max_points:
                break
            x = self._points(1)[0]
            log["points"] += 1
            signs = self._rng.choice([-1.0, 1.0], size=n) / np.sqrt(n)
            try:
                y = self._values(np.vstack([x, x + h * eye, x + h * signs]))
            except QueryBudgetExceeded:
                self._set_full_basis(grads)
                raise
            g = (y[1:-1] - y[0]) / h
            delta = self._delta_f()
            if not passes(worst_ratio(y[-1] - (y[0] + h * signs @ g), delta * (2.0 + 2.0 * np.abs(signs).sum()))):
                log["recentred"] += 1
                failures_in_a_row += 1
                if failures_in_a_row >= 10:
                    raise _Stop("10 stencils in a row were not linear: the target is not piecewise linear here")
                continue
            failures_in_a_row = 0
            grads.append(g)
            rank = self._set_full_basis(grads)
            misses = 0 if rank > rank_before else misses + 1
            log["misses"] += int(rank <= rank_before)
            rank_before = rank

    def _set_full_basis(self, grads: list[np.ndarray]) -> int:
        if not grads:
            return 0
        G = np.array(grads)
        _, s, Vt = np.linalg.svd(G, full_matrices=False)
        # each row's error is at most 2 n delta_f / h in norm (n differences, one crossing passing the check)
        threshold = np.sqrt(len(G)) * 2 * self._n * self._delta_f() / self._h()
        rank = int(np.sum(s > threshold))
        self._basis = Vt[:rank]
        self._log["singular_values"] = s.tolist()
        self._log["threshold"] = threshold
        return rank

    # -- gradient / explanation queries --------------------------------------------------------
    def _run_gradients(self, kind: str) -> None:
        oracle = self._oracle
        base = IN_SPAN[kind]
        baseline = float(oracle.options[base]) if isinstance(base, str) else base
        out = self._out if oracle.n_outputs > 1 else "predicted"
        misses = 0
        eps_q = 0.0
        grads: list[np.ndarray] = []
        noises: list[float] = []
        log = self._log
        while not self._done(misses):
            x = self._points(1)[0]
            if baseline is not None:  # keep every coordinate away from the baseline we divide by
                gap = x - baseline
                x = np.where(np.abs(gap) < 0.1 * self._scale, baseline + np.copysign(0.1 * self._scale, gap), x)
            log["points"] += 1
            e = np.asarray(oracle.query(self._shape(x[None]), (kind,), out)[kind], dtype=np.float64).reshape(-1)
            g = e / (x - baseline) if baseline is not None else e
            if not np.all(np.isfinite(g)):
                raise _Stop(f"the {kind} answer is not finite")
            self._G = max(self._G, float(np.linalg.norm(g)))
            w = g.copy()
            for _ in range(2):
                w -= (w @ self._basis.T) @ self._basis
            rounding = oracle.options.get("round_decimals")
            noise = self._n * EPS * self._G  # float64 rounding of one answer
            if rounding is not None:
                noise += 0.5 * 10.0 ** (-rounding) * np.sqrt(self._n) / (
                    1.0 if baseline is None else float(np.min(np.abs(x - baseline))))
            # plus what the basis' own error leaves over of the in-span part (Wedin bound, as for labels)
            threshold = noise + eps_q * float(np.linalg.norm(self._basis @ g))
            if self._accept(w, threshold):
                grads.append(g)
                noises.append(noise)
                eps_q = float(np.linalg.norm(noises) / np.linalg.svd(np.array(grads), compute_uv=False)[-1])
                misses = 0
            else:
                misses += 1
                log["misses"] += 1
        log["threshold_rule"] = "n eps max||g|| + basis error (||noise|| / sigma_min(G)) x ||Q g||"
        log["basis_error_estimate"] = eps_q
        if grads:
            log["singular_values"] = np.linalg.svd(np.array(grads), compute_uv=False).tolist()

    # -- label queries (thresholded output) -----------------------------------------------------
    def _labels(self, X: np.ndarray) -> np.ndarray:
        lab = np.asarray(self._oracle.query(self._shape(X), ("label",))["label"])
        if self._oracle.n_outputs > 1:
            return lab == self._out
        return lab == 1

    def _bisect(self, base: np.ndarray, direction: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                width: float) -> np.ndarray:
        """Where the label flips on base + t direction, t in [lo, hi] (label False at lo, True at hi)."""
        lo, hi = lo.copy(), hi.copy()
        while True:
            todo = np.flatnonzero(hi - lo > width)
            if not len(todo):
                return (lo + hi) / 2.0
            mid = (lo[todo] + hi[todo]) / 2.0
            pos = self._labels(base[todo] + mid[:, None] * direction[todo])
            hi[todo[pos]] = mid[pos]
            lo[todo[~pos]] = mid[~pos]

    def _boundary_point(self) -> tuple[np.ndarray, np.ndarray]:
        """A point on the decision boundary (bisection between a fresh random input and the
        nearest stored input of the other label) and the unit direction of that segment
        (towards the positive side)."""
        pool = self._pool
        while True:
            if self._pool_used >= len(pool["x"]):
                X = self._points(8)
                pool["x"].extend(X)
                pool["pos"].extend(self._labels(X).tolist())
                if (all(pool["pos"]) or not any(pool["pos"])) and len(pool["x"]) >= self._pool_limit:
                    side = "positive" if pool["pos"][0] else "negative"
                    raise _Stop(f"all {len(pool['x'])} random inputs got the {side} label: no decision boundary "
                                "was found (a threshold outside the range of the outputs, or a class never predicted)")
            i = self._pool_used
            self._pool_used += 1
            xs, pos = np.array(pool["x"]), np.array(pool["pos"])
            other = np.flatnonzero(pos != pos[i])
            if not len(other):
                continue
            j = other[np.argmin(np.linalg.norm(xs[other] - xs[i], axis=1))]
            a, b = (xs[j], xs[i]) if pos[i] else (xs[i], xs[j])  # a negative, b positive
            length = float(np.linalg.norm(b - a))
            v = (b - a) / length
            t = self._bisect(a[None], v[None], np.zeros(1), np.array([length]), self._eps_t)[0]
            return a + t * v, v

    def _normal_coefficients(self, p: np.ndarray, v: np.ndarray, U: np.ndarray,
                             h: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Central-difference coefficients c_i = (g.u_i)/(g.v) for the rows u_i of U and their
        noise levels (first-order asymmetry + bisection resolution)."""
        h = self._h_label if h is None else h
        m = len(U)
        base = np.vstack([p + h * U, p - h * U])
        dirs = np.repeat(v[None], 2 * m, axis=0)
        T = np.full(2 * m, 2.0 * h)
        lo, hi = -T, T.copy()
        todo = np.arange(2 * m)
        for _ in range(24):  # widen the brackets until the label flips inside
            neg = ~self._labels(base[todo] + lo[todo, None] * dirs[todo])
            pos = self._labels(base[todo] + hi[todo, None] * dirs[todo])
            ok = neg & pos
            todo = todo[~ok]
            if not len(todo):
                break
            lo[todo] *= 2.0
            hi[todo] *= 2.0
        else:
            raise _Stop("no label flip near a boundary point along its segment direction: the boundary is not "
                        "a smooth surface there")
        t = self._bisect(base, dirs, lo, hi, self._eps_t)
        t_plus, t_minus = t[:m], t[m:]
        coef = (t_minus - t_plus) / (2.0 * h)
        # the first-order term h q (read off the asymmetry) cancels in the central difference; what is
        # left is of second order, h q scaled by h over the input scale, plus the bisection resolution
        # (each t within eps_t / 2; doubled for the float64 jitter of the flip itself)
        noise = np.abs(t_plus + t_minus) / (2.0 * h) * (h / self._scale) + self._eps_t / h
        return coef, noise

    def _run_labels(self) -> None:
        log = self._log
        self._h_label = self.step if self.step is not None else 1e-4 * self._scale
        self._eps_t = self.precision * self._h_label
        self._pool = {"x": [], "pos": []}
        self._pool_used = 0
        self._pool_limit = 1024
        log["step"] = self._h_label
        log["bisection_width"] = self._eps_t
        p = self.test_directions
        misses = 0
        eps_q = 0.0  # estimated sine of the basis' largest angle to the true span (error propagation)
        in_span_max = 0.0  # the largest in-span part ||Q g||/|g.v| measured so far
        normals: list[np.ndarray] = []
        noises: list[float] = []
        while not self._done(misses):
            point, v = self._boundary_point()
            log["points"] += 1
            Q = self._basis
            r = len(Q)
            m_all = self._n - r
            Up = self._complement(min(p, m_all))
            c_p, s_p = self._normal_coefficients(point, v, Up)
            # a direction of the complement reads noise, plus what the basis' own error leaves over
            if r > 0 and np.all(np.abs(c_p) <= s_p + eps_q * in_span_max):
                misses += 1
                log["misses"] += 1
                log["rejected_max_ratio"] = max(log["rejected_max_ratio"], float(np.max(
                    np.abs(c_p) / (s_p + eps_q * in_span_max))))
                continue
            rest = self._complement_after(Up) if m_all > len(Up) else np.zeros((0, self._n))
            # the rest of the complement, and the basis directions (to bound the error the basis leaves over)
            c_r, s_r = self._normal_coefficients(point, v, np.vstack([rest, Q]))
            c = np.concatenate([c_p, c_r[:len(rest)]])
            s = np.concatenate([s_p, s_r[:len(rest)]])
            in_span = float(np.linalg.norm(c_r[len(rest):]))
            in_span_max = max(in_span_max, in_span)
            w = c @ np.vstack([Up, rest])
            threshold = float(np.linalg.norm(s)) + eps_q * in_span
            if np.linalg.norm(w) > threshold:  # confirm along the candidate with fresh lines at half the step
                c_q, _ = self._normal_coefficients(point, v, (w / np.linalg.norm(w))[None], 0.5 * self._h_label)
                if not self._confirmed(w, float(c_q[0])):
                    misses += 1
                    log["misses"] += 1
                    continue
            if self._accept(w, threshold):
                # span(Q) is the span of the measured normals G (rows g/(g.v)), each off by its noise:
                # sin(largest angle) <= ||noise|| / sigma_min(G) (Wedin), the leftover a new normal shows
                normals.append(c_r[len(rest):] @ Q + w)
                noises.append(float(np.linalg.norm(s)))
                sigma_min = np.linalg.svd(np.array(normals), compute_uv=False)[-1]
                eps_q = float(np.linalg.norm(noises) / sigma_min)
                misses = 0
            else:
                misses += 1
                log["misses"] += 1
        log["basis_error_estimate"] = eps_q
        if normals:
            log["singular_values"] = np.linalg.svd(np.array(normals), compute_uv=False).tolist()
