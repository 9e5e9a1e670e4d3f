"""Exact attacks through defended explanations: integrated gradients, absolute saliency, SmoothGrad.

Deployed explanation APIs rarely return the signed gradient.  The attacks here turn what a
defended explanation answers back into what the exact attacks consume, and charge every
query to the real oracle's ledger (the adapters are :class:`~modelrecon.oracle.Oracle` s
whose backend is the defended oracle; an attack run through them is billed what it cost).

Integrated gradients (Sundararajan et al. 2017) with the baseline x' and the quadrature
(nodes alpha_s, weights w_s) the oracle publishes answer
IG(x) = (x - x') * sum_s w_s grad f(x' + alpha_s (x - x')): divided by x - x' it is a known
weighted sum of gradients at known points.  For a two-layer ReLU network
f(x) = sum_i v_i relu(w_i.x + b_i) + c (:class:`IGRelu2Attack`):

1. *far field*: at x = x' + R u with R so large that every unit's switch on the path lies
   before the first node, all nodes share u's activation pattern, and the answer over R u
   is the gradient of the bias-free network f0(u) = sum_i v_i relu(w_i.u) (and u . that
   gradient its value).  :func:`far_field_oracle` offers those as ``value`` and ``gradient``
   (of f0 shifted by a random u0, so that no line passes through its kinks at 0); the
   relu2 attack (value+gradient mode) recovers the units' normals n_i and output weights
   g_i exactly, one IG query per point it asks.  A large R also divides away rounding of
   the answers.
2. *offsets by parallel bisection*: with the g_i n_i independent (h <= d) one IG answer at
   x = x' + delta gives, by least squares, each unit's weight c_i = sum of w_s over the
   nodes where it is active, hence its activation at every node: the comparisons
   e_i > -alpha_s n_i.delta for the unknown offset e_i of unit i (in path coordinates).
   delta = pinv(N) y sets every n_i.delta = y_i at once, so one query bisects every unit's
   offset: about 60 queries for all units together, to float64 precision.  Rounded answers:
   delta also steps along the null space of the normals (no unit sees it) until the rounding
   cannot move a c_i across half a quadrature weight.
3. c from one value query when values are offered (IG never depends on c), or from labels
   beside the explanations (bisection to the decision threshold, ~60 labels); the model is
   verified on fresh IG answers (and values) in the ``verify`` phase.

SmoothGrad: far out every noisy copy shares one piece, so its answers give the same far field
(``far_field_oracle(kind=SMOOTHGRAD)``: normals and jumps v_i w_i exactly; not the offsets).

Absolute saliency |grad f| (Captum's default): :func:`signed_gradient_oracle` offers the signed
gradient at x from |g| and values.  Within x's linear piece f(x + eps u) - f(x) = eps g.u; with
u_j = 2^-r_j / |g_j| for K coordinates ranked r_j = 0..K-1 by |g_j|, g.u = sum_j s_j 2^-r_j
and the signs s_j are its binary digits (read greedily).  Values at x + eps u and x - eps u must
give the same slope (else a kink is within the step: the clean side's slope, confirmed by one more
value on each side, is that of x's piece; kinks on both sides halve the block, which allows a
smaller step); eps is set from the values' float64 and rounding error.  Cost per gradient:
one saliency, one value and 2 ceil(d/K) values.  Any attack that consumes signed gradients
and values (linear, relu2) runs through it (:class:`Through`).

Noise: exact attacks first ask one input twice and stop on answers that differ;
:func:`averaged_oracle` is the adaptive attacker (the mean of repeated answers).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from modelrecon.attacks import Attack
from modelrecon.oracle import Oracle, OracleError, QueryBudgetExceeded
from modelrecon.result import Result

EPS = np.finfo(np.float64).eps
IG = "explanation:integrated-gradients"
SALIENCY = "explanation:saliency"
SMOOTHGRAD = "explanation:smoothgrad"


def quadrature(oracle: Oracle) -> tuple[np.ndarray, np.ndarray, float]:
    """The published IG quadrature: nodes alpha (ascending), weights, and the baseline."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    o = oracle.options
    if "ig_steps" not in o or "ig_baseline" not in o:
        raise OracleError("the oracle does not publish its integrated-gradients steps and baseline")
    method = o.get("ig_method", "gausslegendre")
    weights, alphas = (np.asarray(fn(int(o["ig_steps"])), dtype=np.float64) for fn in approximation_parameters(method))
    order = np.argsort(alphas)
    alphas, weights = alphas[order], weights[order]
    if alphas[0] <= 0:
        raise OracleError(f"IG quadrature {method!r} has a node at the baseline: not supported (use gausslegendre, "
                          "riemann_right or riemann_middle)")
    return alphas, weights, float(o["ig_baseline"])


class SigningError(OracleError):
    """|saliency| could not be signed at an input (kinks on both sides within the values' precision)."""


def randomness(real: Oracle, kind: str, output: int = 0, seed: int = 0) -> float:
    """Two answers of ``kind`` at one input: their largest relative difference (0 for a deterministic oracle).
    Costs two queries (more where the answer is 0: farther out); exact attacks stop here on noisy answers
    instead of searching noise for kinks."""
    u = np.random.default_rng((seed, 5)).normal(size=(1, real.input_dim))
    for radius in (1.0, 2.0 ** 8, 2.0 ** 16):
        x = (u * radius).reshape(1, *real.input_shape)
        a, b = (np.asarray(real.query(x, (kind,), output)[kind], dtype=np.float64) for _ in range(2))
        if np.max(np.abs(a)) > 0 or np.max(np.abs(b)) > 0:
            return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), float(np.max(np.abs(b)))))
    return 0.0


def _random_answers(real: Oracle, kind: str, output: int, seed: int) -> str | None:
    r = randomness(real, kind, output, seed)
    if r > 0:
        return (f"the oracle's {kind.split(':')[-1]} answers are random (two answers at one input differ by {r:.2g} "
                "relative): no exact extraction; the mean of repeated answers bounds the precision (averaged_oracle)")
    return None


def _adapter(real: Oracle, kinds: tuple[str, ...], answer: Callable, options: dict[str, Any], spec: str,
             n_outputs: int = 1, task: str = "regression") -> Oracle:
    """An Oracle answering ``kinds`` by ``answer(X, kinds)`` from queries to ``real`` in the same ledger phase;
    a budget running out on ``real`` ends the adapter's query too."""
    holder: dict[str, Oracle] = {}

    def backend(X: np.ndarray, asked: tuple[str, ...], output: Any):
        with real.ledger.phase(holder["self"].ledger.current_phase):
            try:
                return answer(X, asked), 0
            except QueryBudgetExceeded as e:
                raise QueryBudgetExceeded(str(e), {}, 0) from e

    adapter = Oracle(backend, spec=spec, input_shape=real.input_shape, n_outputs=n_outputs, task=task,
                     kinds=kinds, options=options, input_box=real.input_box)
    holder["self"] = adapter
    return adapter


# ----------------------------------------------------------------------------- integrated gradients
def _ig_ratio(real: Oracle, X: np.ndarray, base: float, output: int) -> np.ndarray:
    """IG(x) / (x - x'): sum_s w_s grad f at the nodes, for inputs with every coordinate off the baseline."""
    got = np.asarray(real.query(X.reshape(len(X), *real.input_shape), (IG,), output)[IG], dtype=np.float64)
    return got.reshape(len(X), -1) / (X - base)


def far_field_oracle(real: Oracle, output: int = 0, scale: float = 2.0 ** 60, seed: int = 0, kind: str = IG
                     ) -> Oracle:
    """value and gradient of f0(u + u0) = sum_i v_i relu(w_i.(u + u0)) from IG answers at x' + scale (u + u0)
    (``kind`` SmoothGrad: its answers at scale (u + u0), where every noisy copy shares the far piece)."""
    if kind == IG:
        alphas, weights, base = quadrature(real)
        total = float(weights.sum())
    elif kind == SMOOTHGRAD:
        base, total = 0.0, 1.0
    else:
        raise OracleError(f"the far field is read from integrated gradients or SmoothGrad, not {kind}")
    u0 = np.random.default_rng((seed, 1)).normal(size=real.input_dim)  # not the attack's own first line (seed)

    def answer(U: np.ndarray, asked: tuple[str, ...]) -> dict[str, np.ndarray]:
        D = U.reshape(len(U), -1) + u0
        if kind == IG:
            G = _ig_ratio(real, base + scale * D, base, output) / total
        else:
            X = (scale * D).reshape(len(D), *real.input_shape)
            G = np.asarray(real.query(X, (kind,), output)[kind], dtype=np.float64).reshape(len(D), -1)
        out = {"gradient": G}
        if "value" in asked:
            out["value"] = np.einsum("ij,ij->i", D, G)  # f0 is homogeneous: f0(u) = u . grad f0(u)
        return out

    opts = {"explain_space": "logit", "round_decimals": None, "through": f"{kind.split(':')[-1]} far field",
            "far_field_scale": scale}
    return _adapter(real, ("value", "gradient"), answer, opts, f"{real.spec} ({kind.split(':')[-1]} far field)")


class IGRelu2Attack(Attack):
    """Exact two-layer ReLU extraction from integrated gradients (module docstring: far field, then offsets)."""

    name = "relu2"

    def __init__(self, output: int = 0, scale: float = 2.0 ** 60, verify: int = 16, max_bisections: int = 200,
                 seed: int = 0, **relu2: Any):
        if not scale > 1 or verify < 0 or max_bisections < 1:
            raise ValueError("scale > 1, verify >= 0, max_bisections >= 1")
        self.output = output
        self.scale = scale
        self.verify = verify
        self.max_bisections = max_bisections
        self.seed = seed
        self.relu2 = relu2

    def execute(self, oracle: Oracle) -> Result:
        from modelrecon.attacks.relu2 import Relu2Attack, Relu2Model

        if IG not in oracle.kinds:
            raise OracleError(f"the oracle does not offer integrated gradients; it offers {', '.join(oracle.kinds)}")
        if oracle.explain_space != "logit":
            raise OracleError("IG through the relu2 attack needs explanations of the logits (explain_space='logit')")
        alphas, weights, base = quadrature(oracle)
        self._alphas, self._weights, self._base = alphas, weights, base
        noisy = _random_answers(oracle, IG, self.output, self.seed)
        if noisy:
            return Result(self.name, "failed", noisy, details={"through": "integrated-gradients"})
        # 1. units from the far field
        far = far_field_oracle(oracle, self.output, self.scale, self.seed)
        inner = Relu2Attack(mode="value+gradient", seed=self.seed, **self.relu2).run(far)
        details: dict[str, Any] = {"through": "integrated-gradients", "quadrature": {
            "method": oracle.options.get("ig_method", "gausslegendre"), "steps": len(alphas), "baseline": base},
            "far_field": {"status": inner.status, "message": inner.message, "queries": inner.queries,
                          "orientation": inner.details.get("orientation")}}
        p = inner.params
        if inner.status != "complete" or p.get("A") is not None or not len(p.get("b", [])):
            why = inner.message if inner.status != "complete" else "unit orientations not resolved (h > d?)"
            return Result(self.name, "failed" if inner.status == "failed" else "partial",
                          f"far field (bias-free network) not recovered: {why}", details=details)
        N, g = np.asarray(p["W"]), np.asarray(p["V"])[0]
        # 2. offsets
        e, info = self._offsets(oracle, N, g)
        details["offsets"] = info
        b = e - N @ np.full(N.shape[1], base)
        c = np.zeros(1)
        identified = "value" in oracle.kinds or ("label" in oracle.kinds and oracle.n_outputs == 1)
        if "value" in oracle.kinds:  # 3. c from one value
            x = np.random.default_rng((self.seed, 2)).uniform(-1, 1, size=N.shape[1])
            z = float(np.asarray(oracle.query(x.reshape(oracle.input_shape), ("value",))["value"]).reshape(-1)[self.output])
            c = np.array([z - float(np.maximum(N @ x + b, 0) @ g)])
        elif identified:  # or from labels beside the explanations: bisection on the threshold
            c = np.array([self._c_from_labels(oracle, N, b, g)])
            details["c_from"] = "labels: bisection to the decision threshold"
        details["bias_identified"] = identified
        details["hidden_units_found"] = len(b)
        model = Relu2Model(N, b, g[None], c, None, oracle.input_shape)
        result = Result(self.name, "complete", "", params={"W": N, "b": b, "V": g[None], "c": c, "A": None},
                        model=model, details=details)
        messages = [f"recovered {len(b)} hidden units from integrated gradients ({len(alphas)}-node "
                    f"{details['quadrature']['method']}, baseline {base:g}): far field, then offsets in "
                    f"{info['queries']} IG queries"]
        if info["unresolved"]:
            return Result(self.name, "failed", f"{info['unresolved']} of {len(b)} offsets not resolved: {info['why']}",
                          details=details)
        if not identified:
            messages.append("c is not identifiable from integrated gradients alone (set to 0)")
        if self.verify and result.status == "complete":
            self._verify(oracle, result, N, b, g, c, messages)
        result.message = "; ".join(messages)
        return result

    def _c_from_labels(self, oracle: Oracle, N: np.ndarray, b: np.ndarray, g: np.ndarray) -> float:
        """A scalar model's label is [F(x) + c > thr] with F = sum_i g_i relu(n_i.x + b_i) known: at a point
        where F(x) = thr - m it answers c > m.  Along a line where F is unbounded both ways (a far-field slope
        of one sign at both ends) such a point is found locally for any m: bisect m to float64 resolution."""
        thr = float(oracle.options.get("threshold", 0.0))
        rng = np.random.default_rng((self.seed, 7))
        F = lambda X: np.maximum(X @ N.T + b, 0) @ g  # noqa: E731
        for _ in range(64):
            x0, v = rng.normal(size=N.shape[1]), rng.normal(size=N.shape[1])
            up, down = (N @ v > 0) * g @ (N @ v), (N @ v < 0) * g @ (N @ v)  # slopes of F far along +v and -v
            if up * down > 0:
                break
        else:
            raise OracleError("no line on which the recovered network takes every value: c cannot be bisected")
        sign = 1.0 if up > 0 else -1.0

        def point(target: float) -> np.ndarray:  # x on the line with F(x) = target (F continuous, unbounded)
            lo, hi = -1.0, 1.0
            while sign * (F((x0 + lo * v)[None])[0] - target) > 0:
                lo *= 2
            while sign * (F((x0 + hi * v)[None])[0] - target) < 0:
                hi *= 2
            for _ in range(200):
                mid = (lo + hi) / 2
                if not lo < mid < hi:
                    break
                if sign * (F((x0 + mid * v)[None])[0] - target) < 0:
                    lo = mid
                else:
                    hi = mid
            return x0 + hi * v

        def above(m: float) -> bool:  # c > m
            x = point(thr - m)
            return bool(np.asarray(oracle.query(x.reshape(oracle.input_shape), ("label",))["label"]).reshape(-1)[0] == 1)

        lo, hi, step = -1.0, 1.0, 1.0
        while not above(lo):
            lo, step = lo - 2 * step, 2 * step
        step = 1.0
        while above(hi):
            hi, step = hi + 2 * step, 2 * step
        while True:
            mid = (lo + hi) / 2
            if not lo < mid < hi:
                return mid
            if above(mid):
                lo = mid
            else:
                hi = mid

    # ------------------------------------------------------------------ offsets
    @staticmethod
    def _padded(delta0: np.ndarray, Q: np.ndarray, Z: np.ndarray, unit: float, gap: float
                ) -> tuple[np.ndarray, np.ndarray]:
        """delta0 plus a step in the null space of the units' normals (it changes no unit's comparison) long
        enough that the answers' rounding (``unit``) moves no c_i by more than gap/8; and the weighted
        least-squares map from the IG answer to c (rows weighted by delta: the rounding is on IG)."""
        pad = 0.0
        while True:
            delta = delta0 + pad * Z
            delta = np.where(delta == 0, EPS * max(float(np.abs(delta).max()), 1.0), delta)
            P = np.linalg.pinv(delta[:, None] * Q)  # c = P @ IG
            bound = float(np.abs(P).sum(axis=1).max()) * unit
            if bound <= gap / 8 or not len(Z) or pad > 2.0 ** 40 * max(float(np.abs(delta0).max()), 1.0):
                return delta, P
            pad = max(2 * pad, float(np.sqrt(np.mean(delta0 ** 2))))

    def _offsets(self, oracle: Oracle, N: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Bisect every unit's offset e_i (n_i.(x - x') + e_i is its pre-activation along the path) at once."""
        alphas, weights, base = self._alphas, self._weights, self._base
        h, d = N.shape
        Q = (N * g[:, None]).T  # d x h
        Npinv = np.linalg.pinv(N)
        lo, hi = np.full(h, -np.inf), np.full(h, np.inf)
        scale = float(np.median(np.linalg.norm(N, axis=1))) * math.sqrt(d)  # |n_i.x| over the unit box
        # the unit's activation at the smallest node is the bit asked: the largest step off the baseline
        # (rounding of the answers divided by the most)
        a0 = alphas[0]
        # partial sums of weights a unit can carry: from the top nodes (y > 0) or the bottom ones (y < 0)
        gap = float(weights.min())
        queries, unresolved, why = 0, 0, ""
        rnd = oracle.options.get("round_decimals")
        unit = 0.5 * 10.0 ** -rnd if rnd is not None else 0.0
        # rounded answers: a direction that no unit sees, to step far from the baseline along
        Z = np.linalg.svd(N)[2][h:].T @ np.random.default_rng((self.seed, 4)).normal(size=d - h) if d > h else np.zeros(0)
        if len(Z):
            Z /= np.sqrt(np.mean(Z ** 2))
        m = np.full(h, -scale)  # the first comparison: e_i > m_i (and at every other node, a multiple of it)
        for _ in range(self.max_bisections):
            y = -m / a0
            delta, P = self._padded(Npinv @ y, Q, Z, unit, gap)
            G = _ig_ratio(oracle, (base + delta)[None], base, self.output)[0]
            queries += 1
            cw = P @ (G * delta)
            yy = N @ delta  # what the target sees (y up to rounding)
            fuzz = (d + 8) * EPS * (np.abs(N) @ np.abs(delta)) * a0  # float64 error of the bisected comparison
            # node s active for unit i  <=>  alpha_s yy_i + e_i > 0  <=>  e_i > -alpha_s yy_i
            thresholds = -np.outer(yy, alphas)  # h x S
            # the active set is the nodes above (yy > 0) or below (yy < 0) one switch: try every count k
            S = len(alphas)
            top = np.concatenate([[0.0], np.cumsum(weights[::-1])])  # top k nodes active
            bottom = np.concatenate([[0.0], np.cumsum(weights)])  # bottom k nodes active
            sums = np.where((yy > 0)[:, None], top[None], bottom[None])
            k = np.argmin(np.abs(cw[:, None] - sums), axis=1)
            off = np.abs(cw - sums[np.arange(h), k])
            if np.any(off > gap / 4):
                unresolved = int(np.sum(off > gap / 4))
                why = (f"an IG answer is not a sum of the recovered units' node weights (off by up to {off.max():.3g} "
                       f"against a smallest weight of {gap:.3g}): the far-field units are not the network's")
                break
            active = np.zeros((h, S), bool)
            for i in range(h):
                if yy[i] > 0:
                    active[i, S - k[i]:] = True
                elif yy[i] < 0:
                    active[i, :k[i]] = True
                else:
                    active[i, :] = k[i] == S
            lo = np.maximum(lo, np.where(active, thresholds, -np.inf).max(axis=1))
            hi = np.minimum(hi, np.where(~active, thresholds, np.inf).min(axis=1))
            # a comparison point -alpha yy_i is placed to (d + 8) eps of it (yy = N delta, a length-d dot product)
            floor = EPS * a0 * scale  # and an offset of 0 to the first comparisons' float64 step
            done = np.isfinite(lo) & np.isfinite(hi) & (
                hi - lo <= 2 * np.maximum((d + 8) * EPS * np.maximum(np.maximum(np.abs(lo), np.abs(hi)), floor), fuzz))
            done |= np.isfinite(lo) & np.isfinite(hi) & (lo >= hi)  # comparisons at float64 resolution
            if done.all():
                break
            width = np.maximum(np.where(np.isfinite(lo), np.abs(lo), 0), np.where(np.isfinite(hi), np.abs(hi), 0))
            width = np.maximum(width, scale)
            m = np.where(np.isfinite(lo) & np.isfinite(hi), (lo + hi) / 2,
                         np.where(np.isfinite(lo), lo + 2 * width, hi - 2 * width))
        else:
            left = ~(np.isfinite(lo) & np.isfinite(hi))
            unresolved = int(left.sum())
            why = f"no bracket after {self.max_bisections} queries"
        e = (lo + hi) / 2
        return e, {"queries": queries, "unresolved": unresolved, "why": why,
                   "max_bracket_relative": float(np.max((hi - lo) / np.maximum(np.abs(e), EPS))) if h else 0.0}

    # ------------------------------------------------------------------ verification
    def _ig_of(self, X: np.ndarray, N: np.ndarray, b: np.ndarray, g: np.ndarray) -> np.ndarray:
        """The recovered model's IG answers at X, with the published quadrature."""
        D = X - self._base
        total = np.zeros_like(X)
        for a, w in zip(self._alphas, self._weights):
            P = self._base + a * D
            total += w * ((P @ N.T + b > 0) * g) @ N
        return D * total

    def _verify(self, oracle: Oracle, result: Result, N, b, g, c, messages: list[str]) -> None:
        rng = np.random.default_rng((self.seed, 3))
        lo, hi = oracle.input_box or (-1.0, 1.0)
        X = rng.uniform(lo, hi, size=(self.verify, N.shape[1]))
        kinds = (IG,) + (("value",) if "value" in oracle.kinds else ())
        with oracle.ledger.phase("verify"):
            got = oracle.query(X.reshape(len(X), *oracle.input_shape), kinds, self.output)
        E = np.asarray(got[IG], dtype=np.float64).reshape(len(X), -1)
        Eh = self._ig_of(X, N, b, g)
        d, h = N.shape[1], N.shape[0]
        unit = oracle.options.get("round_decimals")
        rnd = 0.5 * 10.0 ** -unit if unit is not None else 0.0
        mag = np.abs(X - self._base) * (np.abs(g) @ np.abs(N))
        tol = 4 * (d + h + len(self._alphas) + 8) * EPS * (mag + np.abs(E)) + 2 * rnd
        ratio = float(np.max(np.abs(E - Eh) / tol))
        resid = float(np.max(np.abs(E - Eh)))
        if "value" in got:
            z = np.asarray(got["value"], dtype=np.float64).reshape(len(X), -1)[:, self.output]
            pre = X @ N.T + b
            zh = np.maximum(pre, 0) @ g + c[0]
            tolv = 4 * (d + h + 8) * EPS * ((np.abs(X) @ np.abs(N.T) + np.abs(b)) @ np.abs(g) + np.abs(z)) + 2 * rnd
            ratio = max(ratio, float(np.max(np.abs(z - zh) / tolv)))
            resid = max(resid, float(np.max(np.abs(z - zh))))
        result.details["verification"] = {"points": self.verify, "max_abs_residual": resid,
                                          "residual_over_tolerance": ratio}
        if not math.isfinite(ratio) or ratio > 1.0:
            result.status = "failed"
            messages.insert(0, f"the recovered network does not reproduce the oracle's answers: off by up to {resid:.3g} "
                               f"({ratio:.3g} x the float64 tolerance) on {self.verify} fresh queries")
        else:
            messages.append(f"verified on {self.verify} fresh queries (max residual {resid:.2g})")


# ----------------------------------------------------------------------------- absolute saliency
def signed_gradient_oracle(real: Oracle, output: int = 0, bits: int = 24) -> Oracle:
    """value and signed gradient from |saliency| and values (module docstring: signs as binary digits)."""
    if SALIENCY not in real.kinds or "value" not in real.kinds:
        raise OracleError(f"signing |saliency| needs saliency and value queries; the oracle offers {', '.join(real.kinds)}")
    if real.explain_space != "logit":
        raise OracleError("signing |saliency| needs explanations of the logits (explain_space='logit')")
    if not 1 <= bits <= 40:
        raise ValueError("bits must be in [1, 40]")
    shape, d = real.input_shape, real.input_dim
    rnd = real.options.get("round_decimals")
    round_unit = 0.5 * 10.0 ** -rnd if rnd is not None else 0.0

    def values(X: np.ndarray) -> np.ndarray:
        z = np.asarray(real.query(X.reshape(len(X), *shape), ("value",))["value"], dtype=np.float64)
        return z.reshape(len(X), -1)[:, output]

    def answer(X: np.ndarray, asked: tuple[str, ...]) -> dict[str, np.ndarray]:
        X = X.reshape(len(X), -1)
        if "gradient" not in asked:
            return {"value": values(X)}
        got = real.query(X.reshape(len(X), *shape), (SALIENCY, "value"), output)
        A = np.abs(np.asarray(got[SALIENCY], dtype=np.float64).reshape(len(X), -1))
        f = np.asarray(got["value"], dtype=np.float64).reshape(len(X), -1)[:, output]
        signs = np.ones_like(A)
        for n in range(len(X)):
            # the value's error: float64 over the terms behind it, and the oracle's rounding
            noise = (d + 8) * EPS * (abs(f[n]) + float(A[n] @ np.abs(X[n])) + 1.0) + round_unit
            order = [j for j in np.argsort(-A[n], kind="stable") if A[n, j] > 0]
            blocks = [order[i:i + bits] for i in range(0, len(order), bits)]
            while blocks:
                steps = []
                for blk in blocks:
                    rho = 2.0 ** -np.arange(len(blk))
                    eps = 8 * noise / rho[-1]  # the slope's error stays below a quarter of its last digit
                    u = np.zeros(d)
                    u[blk] = rho / A[n, blk]
                    steps.append((blk, rho, eps, u))
                P = np.vstack([X[n] + e * u for _, _, e, u in steps] + [X[n] - e * u for _, _, e, u in steps])
                z = values(P)
                nb = len(steps)
                slopes, split = {}, []
                for i, (blk, rho, eps, u) in enumerate(steps):
                    sp, sm = (z[i] - f[n]) / eps, (f[n] - z[nb + i]) / eps
                    if abs(sp - sm) <= rho[-1] / 2:
                        slopes[i] = (sp + sm) / 2
                    else:
                        split.append(i)
                if split:  # a kink within the step on one side: the slope of the clean side is x's piece's
                    far = values(np.vstack([X[n] + 2 * steps[i][2] * steps[i][3] for i in split]
                                           + [X[n] - 2 * steps[i][2] * steps[i][3] for i in split]))
                    for j, i in enumerate(split):
                        blk, rho, eps, u = steps[i]
                        sp, sm = (z[i] - f[n]) / eps, (f[n] - z[nb + i]) / eps
                        spp, smm = (far[j] - z[i]) / eps, (z[nb + i] - far[len(split) + j]) / eps
                        if abs(spp - sp) <= rho[-1] / 2:
                            slopes[i] = sp
                        elif abs(smm - sm) <= rho[-1] / 2:
                            slopes[i] = sm
                retry = []
                for i, (blk, rho, eps, u) in enumerate(steps):
                    s, rest = _digits(slopes.get(i, np.nan), rho)
                    if abs(rest) <= rho[-1] / 2:
                        signs[n, blk] = s
                    elif len(blk) > 1:  # kinks on both sides within the step: halve the block, and so the step
                        retry += [blk[:len(blk) // 2], blk[len(blk) // 2:]]
                    else:
                        raise SigningError(f"cannot sign the gradient at an input within reach of two kinks at the "
                                           f"values' precision (coordinate {blk[0]})")
                blocks = retry
        out = {"gradient": signs * A}
        if "value" in asked:
            out["value"] = f
        return out

    opts = {"explain_space": "logit", "round_decimals": rnd, "through": "absolute saliency signed from values",
            "sign_bits": bits}
    return _adapter(real, ("value", "gradient"), answer, opts, f"{real.spec} (|saliency| signed)")


def _digits(S: float, rho: np.ndarray) -> tuple[np.ndarray, float]:
    """Signs s with sum s_j rho_j = S (rho halving): greedy, largest first; the remainder."""
    s = np.ones(len(rho))
    if not math.isfinite(S):
        return s, math.inf
    for j, r in enumerate(rho):
        s[j] = 1.0 if S >= 0 else -1.0
        S -= s[j] * r
    return s, S


def averaged_oracle(real: Oracle, repeats: int, sigmas: float | None = None) -> Oracle:
    """The adaptive attacker's answer to explanation noise: every gradient or explanation is the mean of
    ``repeats`` answers to the same input (predictions are asked once); noise of S x RMS becomes S / sqrt(repeats).

    With ``sigmas``, the published noise is turned into a published rounding the exact attacks' tolerances
    understand: half a unit of the last decimal >= sigmas x S x RMS / sqrt(repeats), the RMS taken from one
    gradient at a random point (one query): they then run to a bounded precision instead of chasing noise."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    shape = real.input_shape
    declared = None
    noise = float(real.options.get("explanation_noise") or 0.0)
    if sigmas is not None and noise > 0:
        kind = next(k for k in real.kinds if k not in ("value", "probabilities", "label"))
        g = np.asarray(real.query(np.random.default_rng(6).normal(size=(1, *shape)), (kind,))[kind], dtype=np.float64)
        half = sigmas * noise * float(np.sqrt(np.mean(g ** 2))) / math.sqrt(repeats)
        declared = int(math.floor(-math.log10(2 * half))) if half > 0 else None

    def answer(X: np.ndarray, asked: tuple[str, ...]) -> dict[str, np.ndarray]:
        X = X.reshape(len(X), *shape)
        pred = tuple(k for k in asked if k in ("value", "probabilities", "label"))
        expl = tuple(k for k in asked if k not in pred)
        out = dict(real.query(X, pred)) if pred else {}
        if expl:  # each input asked `repeats` times, in batches of at most 4096 answers
            per = max(1, 4096 // len(X))
            sums = {k: 0.0 for k in expl}
            for start in range(0, repeats, per):
                n = min(per, repeats - start)
                got = real.query(np.repeat(X, n, axis=0), expl)
                for k in expl:
                    a = np.asarray(got[k], dtype=np.float64)
                    sums[k] = sums[k] + a.reshape(len(X), n, *a.shape[1:]).sum(axis=1)
            out.update({k: v / repeats for k, v in sums.items()})
        return out

    opts = {**real.options, "explanation_noise": noise / math.sqrt(repeats), "averaged_repeats": repeats}
    if declared is not None:
        opts["round_decimals"] = declared if real.options.get("round_decimals") is None \
            else min(declared, int(real.options["round_decimals"]))
    return _adapter(real, real.kinds, answer, opts, f"{real.spec} (mean of {repeats})", n_outputs=real.n_outputs,
                    task=real.task)


class Through(Attack):
    """Run an attack that consumes signed gradients and values through an adapter over the real oracle;
    the queries reported are the real oracle's (the adapter's own counts are in details)."""

    def __init__(self, attack: Attack, adapter: Callable[[Oracle], Oracle], via: str, exact_kind: str | None = None,
                 output: int | None = None):
        self.attack = attack
        self.output = output  # the target's output the adapter offers (the attack sees that one alone)
        self.adapter = adapter
        self.via = via
        self.exact_kind = exact_kind  # an exact attack: first check that this kind's answers are not random
        self.name = attack.name

    def hyperparameters(self) -> dict[str, Any]:
        followed = {} if self.output is None else {"output": self.output}
        return {"via": self.via, **self.attack.hyperparameters(), **followed}

    def execute(self, oracle: Oracle) -> Result:
        noisy = self.exact_kind and _random_answers(oracle, self.exact_kind, 0, 0)
        if noisy:
            return Result(self.name, "failed", noisy, details={"through": self.via})
        adapted = self.adapter(oracle)
        try:
            result = self.attack.run(adapted)
        except SigningError as e:
            return Result(self.name, "failed", str(e), details={"through": self.via})
        result.details["through"] = self.via
        result.details["hyperparameters"] = self.hyperparameters()  # the output followed is the adapter's
        result.details["adapter_queries"] = result.queries
        return result


def through_saliency(attack: Attack, output: int = 0, bits: int = 24) -> Through:
    return Through(attack, lambda o: signed_gradient_oracle(o, output, bits), "absolute saliency + values", SALIENCY,
                   output)


def relu2_through_saliency(output: int = 0, bits: int = 24, **relu2: Any) -> Through:
    """The relu2 attack (value+gradient mode) through |saliency| signed from values."""
    from modelrecon.attacks.relu2 import Relu2Attack

    return through_saliency(Relu2Attack(mode="value+gradient", output=output, **relu2), output, bits)

