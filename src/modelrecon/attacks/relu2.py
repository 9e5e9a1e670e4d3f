"""Exact reconstruction of two-layer ReLU networks z(x) = V relu(W x + b) + c.

Milli, Schmidt, Dragan, Hardt, "Model Reconstruction from Model Explanations" (FAT* 2019,
arXiv 1807.05185), section on two-layer ReLU networks; the value-only setting is that of
Jagielski et al. (USENIX Security 2020) and Carlini, Jagielski, Mironov (CRYPTO 2020),
the one IBM ART's ``FunctionallyEquivalentExtraction`` implements.

Along a line x(t) = x0 + t v every hidden unit i switches exactly once, at
t_i = -(w_i.x0 + b_i) / (w_i.v); between switches the network is affine, so the gradient
is piecewise constant and the value piecewise linear in t.  Crossing t_i from left to right
changes the gradient of output k by J = sigma_i V_ki w_i (sigma_i = sign(w_i.v)).  Writing
n_i = J sign(J.v) (the unit's normal, oriented to be active on the right) the network is,
exactly, sum_i gamma_i relu(n_i.x + d_i) + A.x + c with d_i = -n_i.x(t_i), gamma_i = J.n_i/|n_i|^2
and A, c the affine map on the far-left piece.  A unit whose true orientation is the other one
is absorbed into A, since relu(-z) = relu(z) - z; the orientations are resolved by asking for
the flip set F with A + sum_{i in F} gamma_i n_i = 0 (a least-squares problem when the n_i are
independent, h <= d; a 0/1 program otherwise, tried with a time limit).  When it cannot be
resolved the recovered model keeps the affine term: the function is still exact.

Every mode searches its lines with the piecewise-linear core (``piecewise.py``: ``reach`` grows
the interval, ``critical_points`` finds the kinks); the mode is the probe it passes, reading the
residual (the target minus the units found so far): ``_ResidualGradients``,
``_ResidualValueGradients`` (the core's lazy value+gradient probe) or ``_ResidualValues``.

Modes (``mode``):

1. ``gradient`` (the paper): gradient queries only.  Grow the search interval by doubling
   until the end gradients stop changing, then bisect every interval whose end gradients
   differ until it is shorter than ``resolution`` times its position; each remaining change
   is one unit (J and t_i).  One value query, if offered, gives c (else c is reported as not
   identifiable).  O(h log(1/resolution)) queries, independent of d.
2. ``value+gradient`` (beyond the paper): a value and a gradient at t fix the whole affine
   piece through t, so the kink between two sampled pieces is the intersection of their two
   lines.  The kink is confirmed (``confirm='pair'``, the default) by gradients at t* - delta and
   t* + delta (the left and the right piece's: a gradient is the activation pattern, so this holds
   however close the two lines are); a failed check is a new sample (a gradient that is a
   neighbouring piece's gives its value for free; a midpoint is asked its gradient first).  About
   4.5-6 queries per hidden unit.  ``confirm='side'`` asks one gradient just beyond t* on the longer
   side of the gap; fooled when every kink of the gap lies on the other side, the composite unit is
   cancelled on a residual line from the box centre through the failing check point nearest it
   (confirmed soundly there).  About 4 queries per unit; an option, used only on unrounded answers
   and without an input box (far check points are what show a composite); else 'pair' runs.
3. ``value``: values only.  The same search with the slope along the line taken from values at
   t - delta, t, t + delta (a point within delta of a kink takes its clean side's slope); a kink
   is checked at t* -/+ delta' with delta' wide enough that the two lines differ there by more
   than their rounding (else the gap is bisected).  Then one finite-difference Jacobian per piece
   (d + 1 value queries, all outputs at once) gives the jumps; once all stencils are inside their
   cells, those whose units would carry more than ``value_precision`` are redone with per-coordinate
   steps half way to the nearest recovered hyperplane (a unit still over it: its jump again from two
   stencils across its hyperplane where the cells are larger).  Each offset is re-measured across its
   hyperplane at its point nearest the origin (four values).  About 1.15-1.4 (h + 1)(d + 1) + 15h
   queries.

Every mode: a few fresh check queries (attack phase) compare the recovered model with the
target; units missed (kinks beyond the searched interval) or merged (kinks closer than the
resolution) leave a residual, which is searched along a new random line (``max_lines``).
Finally the model is verified on fresh queries in the ``verify`` ledger phase; a target
outside the family gets status ``failed`` with the measured residual.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from modelrecon.attacks import Attack
from modelrecon.attacks.piecewise import (GradientProbe, Kink, LazyValueGradientProbe, Line, NotPiecewiseLinear, Piece,
                                          Probe, critical_points, reach)
from modelrecon.oracle import Oracle, OracleError, QueryBudgetExceeded
from modelrecon.result import Result
from modelrecon.verdict import passes, worst_ratio

EPS = np.finfo(np.float64).eps
MODES = ("gradient", "value+gradient", "value")
# value+gradient: how a candidate kink t* is confirmed ('pair': gradients at t* - delta and t* + delta,
# not fooled; 'side': one gradient just beyond t* on the gap's longer side, optimistic: it relies on
# residual lines to cancel composite units)
CONFIRMS = ("side", "pair")
# explanation kinds equal to the signed gradient of a ReLU network (input x gradient divided by x)
GRADIENT_KINDS = {"gradient": "g", "explanation:saliency-signed": "g", "explanation:input-x-gradient": "xg"}


def _search_result(kinks: list[Kink], pieces: list[Piece], clusters: int = 0) -> dict[str, Any]:
    """A line's search: its kinks and pieces (sorted by t), its interval, near-coincident kink clusters."""
    return {"kinks": sorted(kinks, key=lambda k: k.t), "pieces": pieces, "t_left": pieces[0].t if pieces else 0.0,
            "t_right": pieces[-1].t if pieces else 0.0, "clusters": clusters}


class _Residual:
    """A probe of the target minus the units found so far (values of every output, the gradient of the followed
    one), each gradient with its rounding: that of the full answers (float64 sums, the oracle's rounding)."""

    def __init__(self, attack: "Relu2Attack"):
        super().__init__(attack._oracle, attack.output, attack._grad_kind)
        self.kinds = tuple(k for k in self.kinds if k == "value") + (attack._grad_kind,)
        self.attack = attack

    def ask(self, X: np.ndarray, kinds: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        a, X, kinds = self.attack, np.atleast_2d(X), kinds or self.kinds
        Z, G = a._ask(X, "value" in kinds, self.grad_kind in kinds)
        self.points += len(X)
        out = {} if Z is None else {"f": Z}
        if G is not None:
            out.update(g=G, err=(a._d + 4) * EPS * a._gmag + a._round_grad)
        return out


class _ResidualGradients(_Residual, GradientProbe):
    """gradient mode: bisection on gradient changes (Milli et al.)."""


class _ResidualValueGradients(_Residual, LazyValueGradientProbe):
    """value+gradient mode: kinks where two pieces' lines meet, confirmed 2^-10 of the gap beside t* ('pair': by
    gradients on both sides; ``side``: by one gradient on the gap's longer side, optimistic).  With ``bump`` (a
    residual line through a failing check point) a gap whose ends share a gradient but not a line is searched too:
    a composite unit and its parts leave such a bump."""

    def __init__(self, attack: "Relu2Attack", side: bool, bump: bool):
        super().__init__(attack)
        self.side, self.bump = side, bump

    def same(self, a: Piece, b: Piece, line: Line) -> bool:
        if not self.same_gradient(a, b):
            return False
        return not (self.bump and a.f is not None and b.f is not None and self.attack._off_line(a, b))

    def locate(self, a: Piece, b: Piece, line: Line) -> tuple[float, float] | None:
        guess = super().locate(a, b, line)
        if guess is None:
            return None
        t = guess[0]
        delta = min(t - a.t, b.t - t) * 2.0 ** -10
        return (t, delta) if t - delta < t < t + delta else None  # else t* is within rounding of an end: bisect

    def confirm(self, line: Line, checks: list[tuple[Piece, Piece, float, float]]) -> list[tuple[bool, list[Piece]]]:
        """'side': the expected piece's gradient just beyond t* on the gap's longer side accepts the kink (fooled
        when every kink of the gap lies on the other side: the composite unit shows at far check points and a
        residual line cancels it); the near piece's puts the point on that piece, a new gradient is a new piece."""
        if not self.side:
            return super().confirm(line, checks)
        right = [b.t - t > t - a.t for a, b, t, _ in checks]
        got = self.glance(line, [t + (delta if r else -delta) for (_, _, t, delta), r in zip(checks, right)])
        single = [self.same_gradient(p, b if r else a) for (a, b, *_), r, p in zip(checks, right, got)]
        self.fill(line, [p for p, s in zip(got, single) if not s], [c[:2] for c, s in zip(checks, single) if not s])
        return [(s, [] if s else [p]) for s, p in zip(single, got)]


class _ResidualValues(Probe):
    """value mode: a piece is read as its value r.z (a random mix of the outputs) and its slope along the line from
    values at t - delta, t, t + delta (a point within delta of a kink takes its clean side's slope; ``g`` is that
    slope, a 1-vector); a kink is checked at t* -/+ delta', delta' wide enough that the two lines differ there by
    more than their rounding (else the gap is bisected)."""

    kinds = ("value",)
    name = "value"

    def __init__(self, attack: "Relu2Attack"):
        super().__init__(attack._oracle, attack.output)
        self.attack = attack

    def read(self, line: Line, ts, kinds=None, deltas=None) -> list[Piece]:
        ts = [float(t) for t in ts]
        if not ts:
            return []
        f, F, e = self.attack._values_and_slopes(ts, deltas)
        self.points += len(ts)
        return [Piece(t, F[i], float(f[i]), err=float(e[i])) for i, t in enumerate(ts)]

    def same(self, a: Piece, b: Piece, line: Line) -> bool:
        return self.same_gradient(a, b)

    def locate(self, a: Piece, b: Piece, line: Line) -> tuple[float, float] | None:
        sa, sb = float(a.g[0]), float(b.g[0])
        if sa == sb:
            return None
        t = (b.f - a.f + sa * a.t - sb * b.t) / (sa - sb)
        if not a.t < t < b.t:
            return None
        delta = self.attack._value_check_margin(a, b, t, min(t - a.t, b.t - t) * 2.0 ** -10)
        return (t, delta) if t - delta < t < t + delta else None  # nan: bisect

    def confirm(self, line: Line, checks: list[tuple[Piece, Piece, float, float]]) -> list[tuple[bool, list[Piece]]]:
        """The piece on the left must reach t* - delta (its slope there, from a pair of values reaching left, away
        from t*, and its value) and the right line must hold at t* + delta.  A value at t* alone is fooled when
        every kink of the gap lies on one side of t*.  Confirmed, the check points bound the kink: its two lines
        meet right next to them."""
        at = self.attack
        if not checks:
            return []
        tl = [t - delta for _, _, t, delta in checks]
        lefts = self.read(line, tl, deltas=[-min(at._delta * max(abs(x), 1.0), (t - x) / 2)
                                            for (_, _, t, _), x in zip(checks, tl)])
        tr = [t + delta for _, _, t, delta in checks]
        fR = at._values_at(tr)
        out = []
        for (a, b, *_), left, xr, fr in zip(checks, lefts, tr, fR):
            la = lambda u: a.f + float(a.g[0]) * (u - a.t)  # noqa: E731
            lb = lambda u: b.f + float(b.g[0]) * (u - b.t)  # noqa: E731
            tol = lambda fv, u: at._value_tol(fv, a.f, b.f, la(u), lb(u), u, a.t, b.t, a.err, b.err)  # noqa: E731
            # the value at t* - delta is known too: it must be on the left line
            left_a = self.same_gradient(left, a) and abs(left.f - la(left.t)) <= tol(left.f, left.t)
            left_b = self.same_gradient(left, b)
            right_b = abs(fr - lb(xr)) <= tol(fr, xr)
            right_a = abs(fr - la(xr)) <= tol(fr, xr) and not right_b
            if left_a and right_b:
                out.append((True, [Piece(left.t, a.g, left.f, err=a.err), Piece(xr, b.g, fr, err=b.err)]))
                continue
            got = [left]  # a measured value and slope: a piece like any other
            if right_a or right_b and not left_b:
                on = a if right_a else b
                got.append(Piece(xr, on.g, fr, err=on.err))
            out.append((False, got))
        return out


class Relu2Model(nn.Module):
    """z(x) = V relu(W x + b) + A x + c in float64 (A = 0 once orientations are resolved)."""

    def __init__(self, W: np.ndarray, b: np.ndarray, V: np.ndarray, c: np.ndarray, A: np.ndarray | None, shape):
        super().__init__()
        self.shape = tuple(shape)
        t = lambda a: torch.as_tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
        d = int(np.prod(self.shape))
        self.register_buffer("W", t(W).reshape(len(b), d))
        self.register_buffer("b", t(b))
        self.register_buffer("V", t(V).reshape(len(c), len(b)))
        self.register_buffer("c", t(c))
        self.register_buffer("A", t(A).reshape(len(c), d) if A is not None else torch.zeros(len(c), d, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(len(x), -1).to(torch.float64)
        z = torch.relu(x @ self.W.T + self.b) @ self.V.T + x @ self.A.T + self.c
        return z[:, 0] if z.shape[1] == 1 else z

    def exportable(self) -> nn.Module:
        """Flatten, Linear, ReLU, Linear when there is no affine term: the plain form a saved file has
        (and whose graph the evaluator reads); the module itself otherwise."""
        if bool(self.A.any()):
            return self
        h, k = self.W.shape[0], self.V.shape[0]
        net = nn.Sequential(nn.Flatten(), nn.Linear(self.W.shape[1], h), nn.ReLU(), nn.Linear(h, k)).double()
        with torch.no_grad():
            net[1].weight.copy_(self.W)
            net[1].bias.copy_(self.b)
            net[3].weight.copy_(self.V)
            net[3].bias.copy_(self.c)
        return net.eval()


class _Net:
    """The recovered network in numpy, in the 'right-active' form used during the search."""

    def __init__(self, d: int, k: int):
        self.N = np.zeros((0, d))
        self.dv = np.zeros(0)
        self.G = np.zeros((k, 0))  # output coefficients per unit
        self.A = np.zeros((k, d))
        self.c = np.zeros(k)

    @property
    def h(self) -> int:
        return len(self.dv)

    def pre(self, X: np.ndarray) -> np.ndarray:
        return X @ self.N.T + self.dv

    def value(self, X: np.ndarray) -> np.ndarray:
        return np.maximum(self.pre(X), 0.0) @ self.G.T + X @ self.A.T + self.c

    def sums(self, X: np.ndarray) -> np.ndarray:
        """Size of the sums behind the values at X (per point; their rounding is a few eps times it)."""
        pre = np.abs(X) @ np.abs(self.N.T) + np.abs(self.dv)
        return (pre @ np.abs(self.G.T) + np.abs(X) @ np.abs(self.A.T) + np.abs(self.c)).max(axis=1, initial=0.0)

    def grad(self, X: np.ndarray, k: int) -> np.ndarray:
        return ((self.pre(X) > 0) * self.G[k]) @ self.N + self.A[k]

    def add(self, N, dv, G, A, c) -> None:
        self.N = np.vstack([self.N, N])
        self.dv = np.concatenate([self.dv, dv])
        self.G = np.hstack([self.G, G])
        self.A = self.A + A
        self.c = self.c + c

    def flip(self, idx: np.ndarray) -> None:
        """relu(z) = relu(-z) + z: move units idx to the other orientation, same function."""
        for i in np.flatnonzero(idx):
            self.A += np.outer(self.G[:, i], self.N[i])
            self.c += self.G[:, i] * self.dv[i]
            self.N[i], self.dv[i] = -self.N[i], -self.dv[i]

    def merge(self, tol: float) -> int:
        """Units on the same hyperplane (found twice, or a merged pair and its parts) combine."""
        if self.h < 2:
            return 0
        norms = np.linalg.norm(self.N, axis=1)
        keep = np.ones(self.h, bool)
        merged = 0
        U = self.N / norms[:, None]
        off = self.dv / norms
        for i in range(self.h):
            if not keep[i]:
                continue
            for j in range(i + 1, self.h):
                if not keep[j]:
                    continue
                cos = U[i] @ U[j]
                if abs(abs(cos) - 1) < tol and abs(off[i] - np.sign(cos) * off[j]) < tol * (1 + abs(off[i])):
                    lam = norms[j] / norms[i]
                    if cos > 0:
                        self.G[:, i] += self.G[:, j] * lam
                    else:  # relu(-z) = relu(z) - z
                        self.G[:, i] += self.G[:, j] * lam
                        self.A -= np.outer(self.G[:, j] * lam, self.N[i])
                        self.c -= self.G[:, j] * lam * self.dv[i]
                    keep[j] = False
                    merged += 1
        live = keep & (np.abs(self.G).max(axis=0) * norms > tol * max(np.abs(self.G).max() * norms.max(), EPS))
        self.N, self.dv, self.G = self.N[live], self.dv[live], self.G[:, live]
        return merged + int((keep & ~live).sum())


class Relu2Attack(Attack):
    """Recover V relu(W x + b) + c exactly (up to permutation and positive rescaling of units)."""

    name = "relu2"

    def __init__(self, mode: str = "value+gradient", output: int = 0, explanation: str | None = None,
                 max_lines: int = 4, checks: int = 16, patience: int = 4, verify: int = 16, resolution: float = 2.0 ** -44,
                 max_pieces: int | None = None, sign_time_limit: float = 20.0, seed: int = 0,
                 confirm: str = "pair", value_precision: float = 2.0 ** -27):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; known: {', '.join(MODES)}")
        if max_pieces is None:  # a safety cap for targets that are not piecewise linear; bisection needs more
            max_pieces = 200_000 if mode == "gradient" else 20_000
        if max_lines < 1 or checks < 1 or verify < 0 or max_pieces < 2:
            raise ValueError("max_lines, checks >= 1, verify >= 0, max_pieces >= 2")
        if not 0 < resolution < 1:
            raise ValueError("resolution must be in (0, 1)")
        if confirm not in CONFIRMS:
            raise ValueError(f"unknown confirm {confirm!r}; known: {', '.join(CONFIRMS)}")
        self.confirm = confirm
        if not 0 < value_precision < 1:
            raise ValueError("value_precision must be in (0, 1)")
        self.value_precision = value_precision
        self.mode = mode
        self.output = output
        self.explanation = explanation
        self.max_lines = max_lines
        self.checks = checks
        self.patience = patience
        self.verify = verify
        self.resolution = resolution
        self.max_pieces = max_pieces
        self.sign_time_limit = sign_time_limit
        self.seed = seed

    # ---------------------------------------------------------------- planning
    def _plan(self, oracle: Oracle) -> None:
        kinds = oracle.kinds
        self._value_kind = "value" if "value" in kinds else None
        if oracle.explain_space != "logit":
            raise OracleError("the relu2 attack needs explanations of the logits (explain_space='logit')")
        if self.mode == "value":
            if not self._value_kind:
                raise OracleError(f"mode 'value' needs value queries; the oracle offers {', '.join(kinds)}")
            self._grad_kind = None
            return
        if self.explanation:
            kind = self.explanation if self.explanation == "gradient" else f"explanation:{self.explanation}"
            if kind not in kinds:
                raise OracleError(f"the oracle does not offer {kind!r}; it offers {', '.join(kinds)}")
            candidates = [kind]
        else:
            candidates = [k for k in GRADIENT_KINDS if k in kinds]
        usable = [k for k in candidates if k in GRADIENT_KINDS]
        if not usable:
            why = (f"{candidates[0]} does not give the signed gradient of a ReLU network exactly "
                   "(absolute saliency loses signs; integrated gradients and SmoothGrad average gradients over "
                   "a path or noise)" if candidates else f"the oracle offers no gradient-like kind ({', '.join(kinds)})")
            raise OracleError(f"mode {self.mode!r}: {why}; use mode 'value' when value queries are offered")
        if self.mode == "value+gradient" and not self._value_kind:
            raise OracleError("mode 'value+gradient' needs value queries too; use mode 'gradient'")
        self._grad_kind = usable[0]
        if not 0 <= self.output < oracle.n_outputs:
            raise OracleError(f"output {self.output} out of range: the target has {oracle.n_outputs} outputs")

    # ---------------------------------------------------------------- queries
    def _t_of(self, X: np.ndarray) -> list[float]:
        """Line positions of points asked (points off the line map to nan and are not remembered)."""
        vv = float(self._v @ self._v)
        return [float(t) for t in (X - self._x0) @ self._v / vv]

    def _x(self, ts) -> np.ndarray:
        return self._x0 + np.outer(np.atleast_1d(np.asarray(ts, dtype=np.float64)), self._v)

    def _ask(self, X: np.ndarray, value: bool, grad: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Values (N, K) and gradients of the chosen output (N, d) of the target minus the model so far."""
        kinds = ((self._value_kind,) if value else ()) + ((self._grad_kind,) if grad else ())
        o = self._oracle
        got = o.query(X.reshape(len(X), *o.input_shape), kinds, self.output)
        Z = G = None
        if value:
            raw, model = np.asarray(got["value"], dtype=np.float64).reshape(len(X), -1), self._net.value(X)
            Z = raw - model
            # residuals carry the rounding of the full answers: remember their size for the tolerances
            mags = (np.abs(raw) + np.abs(model)) @ np.abs(self._r)
            # a stencil's rounding: that of the answers and of the model's sums (the target's are about the model's)
            if self.mode == "value":
                self._answer_mag = float(np.abs(Z).max() + 2 * self._net.sums(X).max())
            for t, m in zip(self._t_of(X), mags):
                self._fmag[t] = float(m)
        if grad:
            G = np.asarray(got[self._grad_kind], dtype=np.float64).reshape(len(X), -1)
            if GRADIENT_KINDS[self._grad_kind] == "xg":
                with np.errstate(divide="ignore", invalid="ignore"):
                    G = np.where(X != 0, G / np.where(X != 0, X, 1.0), 0.0)
            model = self._net.grad(X, self.output)
            self._gmag = np.abs(G).sum(axis=1) + np.abs(model).sum(axis=1)
            G = G - model
        return Z, G

    # ---------------------------------------------------------------- line search
    def _values_and_slopes(self, ts, deltas=None):
        """value mode: (f, F, err) at points x(ts): f = r.z and F (n, 1) its slope along the line from a pair of
        values (steps ``deltas``, signed, or a step growing with |t|), err the slope's rounding."""
        X = self._x(ts)
        # the pair's step grows with |t|: the values' rounding grows with |t| too (|slope t| terms), and a
        # step fixed in t would leave far-out slopes (and the small slope changes of far kinks) unresolved
        # (rounded answers: at least 2^20 rounding units, so that the rounding costs the slope ~2^-19 of it)
        base = max(self._delta, 2.0 ** 20 * self._round_value)
        delta = (base * np.maximum(np.abs(np.asarray(ts, dtype=np.float64)), 1.0) if deltas is None
                 else np.asarray(deltas, dtype=np.float64))
        # values at t - delta, t, t + delta: the two one-sided slopes agree unless a kink lies within delta of t
        # (a pair straddling a kink gives a slope of neither piece, and the search would take it for a piece)
        ta = np.asarray(ts, dtype=np.float64)
        Z3, _ = self._ask(np.vstack([X, self._x(ta + delta), self._x(ta - delta)]), True, False)
        z = Z3 @ self._r
        n = len(X)
        f, fp, fm = z[:n], z[n:2 * n], z[2 * n:]
        sp, sm = (fp - f) / delta, (f - fm) / delta
        # each value carries float64 error ~ (d + 8) eps times the size of the sums behind it,
        # at least |f| + |slope t| (an affine function of t evaluated at t)
        mag = (np.abs(f) + np.abs(fp) + np.abs(fm) + 2 * np.maximum(np.abs(sp), np.abs(sm)) * (np.abs(ta) + 1)
               + self._fscale)
        err = (self._d + 8) * EPS * mag / np.abs(delta) + 2 * self._round_value / np.abs(delta)
        slope = (sp + sm) / 2
        bad = np.flatnonzero(np.abs(sp - sm) > 2 * err)
        if len(bad):  # which side is clean: one more value on each side of the bad points
            tb, db = ta[bad], delta[bad] if np.ndim(delta) else np.full(len(bad), delta)
            Zb, _ = self._ask(np.vstack([self._x(tb + 2 * db), self._x(tb - 2 * db)]), True, False)
            zb = Zb @ self._r
            spp, smm = (zb[:len(bad)] - fp[bad]) / db, (fm[bad] - zb[len(bad):]) / db
            right_clean = np.abs(spp - sp[bad]) <= 2 * err[bad]  # the kink lies left of t: t is on the right piece
            left_clean = np.abs(smm - sm[bad]) <= 2 * err[bad]
            slope[bad] = np.where(right_clean | ~left_clean, sp[bad], sm[bad])
        return f, slope[:, None], err

    def _search(self) -> dict[str, Any]:
        """Every kink of the (residual) line output, by the piecewise core with this mode's probe: {"kinks": [Kink],
        "pieces": [Piece] sorted by t, "t_left", "t_right", "clusters"}."""
        line = Line(self._x0, self._v)
        # value+gradient residual line: it passes through the failing check point nearest the centre (asked
        # too), where a composite unit and its parts leave a bump that may vanish (value and gradient) on both sides
        bump = self._residual_line_through_check()
        # a residual line looks for what the first missed: far-out kinks, so it looks much farther (not a line aimed
        # at an unexplained affine part: its unit is near, and far out the found units' own float64 error shows)
        patience, grow = (self.patience if not self._net.h or self._aimed else 40), 2.0
        resolution = 8 * EPS  # value modes: kinks closer than float64 can tell apart on this line are one cluster
        if self.mode == "gradient":
            probe, resolution = _ResidualGradients(self), self.resolution
        elif self.mode == "value":
            # two values per probe, next to (d + 1) per piece: look as far (2^40) at once, in steps of 2^8 (a wide
            # gap costs nothing extra: two lines meet there)
            probe, patience, grow = _ResidualValues(self), 5, 256.0
        else:  # the optimistic one-query checks on the first line only; a residual line holds a few kinks (missed
            # units and composites to cancel) and confirms each soundly, so it cannot be fooled again
            probe = _ResidualValueGradients(self, side=self._optimistic() and not self._net.h, bump=bump)
            if self._net.h and self._optimistic():
                # the residual holds only the few missed or composite units: the same reach (2^40) in steps of 2^4;
                # a wide gap costs nothing extra, its kinks follow from the two pieces
                patience, grow = 10, 16.0
        start = {p.t: p for p in probe.read(line, sorted({-1.0, 0.0, 1.0, self._t_worst}) if bump else [-1.0, 1.0])}
        pieces = list(start.values()) + [p for t in (-1.0, 1.0) for p in reach(probe, line, start[t], grow, patience)]
        ts = [p.t for p in pieces]
        try:
            kinks, pieces = critical_points(probe, line, min(ts), max(ts), pieces, resolution,
                                            max_points=self.max_pieces, relative_to="position")
        except NotPiecewiseLinear:
            raise _TooManyPieces(self.max_pieces + 1) from None
        # a bump narrower than float64 (the same gradient on both sides) is left to the check
        kinks = [k for k in kinks if not probe.same_gradient(k.left, k.right)]
        # near-coincident kinks: a gap narrower than float64 resolved (its kink is the gap's middle)
        clusters = 0 if self.mode == "gradient" else sum(k.right.t - k.left.t <= 2 * k.width for k in kinks)
        if self.mode == "value":  # a confirmed kink is bounded by its check points
            ts = [p.t for p in pieces]
            for k in kinks:
                i = int(np.searchsorted(ts, k.t))
                k.left, k.right = pieces[i - 1], pieces[i]
        return _search_result(kinks, pieces, clusters)

    def _residual_line_through_check(self) -> bool:
        return bool(self._optimistic() and self._net.h and getattr(self, "_worst_x", None) is not None)

    def _optimistic(self) -> bool:
        """One-query kink checks: value+gradient on exact answers of an unboxed input space (a composite
        unit accepted on the first line shows at far check points and is cancelled exactly on a residual
        line; with rounded answers the residual is too coarse for that, and inside an input box two units
        with nearly equal hyperplanes may agree at every check point: the two-query check is used)."""
        return (self.mode == "value+gradient" and self.confirm != "pair" and self._round_value == 0
                and self._oracle.input_box is None)

    def _off_line(self, a: Piece, b: Piece) -> bool:
        """Equal gradients at a and b but b's value off a's line: the gap holds at least two kinks."""
        la = a.f + self._slope(a.g) * (b.t - a.t)
        return abs(b.f - la) > self._value_tol(b.f, a.f, b.f, la, b.f, b.t, a.t, b.t, a.err, b.err)

    def _value_check_margin(self, a: Piece, b: Piece, t: float, delta: float) -> float:
        """value mode: the check points t* -/+ delta (delta = 2^-10 of the gap) must lie far enough from t* that
        the two lines differ there by more than their rounding (else a gap whose kinks all lie beyond t* + delta
        passes the check); nan (bisect the gap instead) when they do not."""
        sa, sb = self._slope(a.g), self._slope(b.g)
        la, lb = a.f + sa * (t - a.t), b.f + sb * (t - b.t)
        # the tolerance at t* -/+ delta (the slope terms grow by a factor 1 + 2^-10 at most there), 3x over
        tol = self._value_tol(lb, a.f, b.f, la, lb, t, a.t, b.t, a.err, b.err)
        # a margin wider than 2^-10 of the gap would let two kinks that close to t* pass as one: bisect instead
        # (nearer samples know the lines better)
        return delta if 3 * tol / abs(sa - sb) <= delta else math.nan

    def _refine_kinks(self, found: dict[str, Any]) -> int:
        """A kink found as the intersection of two nearly parallel pieces (a tiny |a_i w_i.v|) is only
        known to eps |f| / |slope change|; bisect on the gradient (exact) down to ``resolution``."""
        line = Line(self._x0, self._v)
        probe = _ResidualGradients(self)
        refined = 0
        for k in found["kinks"]:
            t, a, b = k.t, k.left.t, k.right.t
            sa, sb = self._slope(k.left.g), self._slope(k.right.g)
            # rounding of the two lines where they meet, over the angle between them
            mag = abs(k.left.f) + abs(k.right.f) + abs(sa * (t - a)) + abs(sb * (t - b))
            sigma = (4 * EPS * mag + 3 * self._round_value) / max(abs(sb - sa), np.finfo(float).tiny)
            vn = np.linalg.norm(self._v)
            # refine when the unit's offset would carry a relative error above 2^8 resolution (~1.5e-11)
            if sigma * vn <= 256 * self.resolution * (np.linalg.norm(self._x(t)) + vn):
                continue
            # the bracket t* -/+ 8 sigma within the gap (the gap's ends where the bracket does not hold the change)
            bracket = probe.read(line, [max(a, t - 8 * sigma), min(b, t + 8 * sigma)])
            kinks, _ = critical_points(probe, line, a, b, [k.left, k.right] + bracket, self.resolution,
                                       relative_to="position")
            if kinks:
                k.t = min(kinks, key=lambda q: abs(q.t - t)).t
            refined += 1
        return refined

    def _mag_near(self, t: float) -> float:
        """Size of the full (not residual) answer at the asked line point nearest to t."""
        if not self._fmag:
            return 0.0
        if t in self._fmag:
            return self._fmag[t]
        keys = np.fromiter(self._fmag.keys(), float)
        return self._fmag[float(keys[np.argmin(np.abs(keys - t))])]

    def _slope(self, F: np.ndarray) -> float:
        return float(F[0]) if self.mode == "value" else float(F @ self._v)

    def _values_at(self, ts) -> np.ndarray:
        """value mode: r.z at x(ts)."""
        Z, _ = self._ask(self._x(ts), True, False)
        return Z @ self._r

    def _value_tol(self, fv, fa, fb, la, lb, t, a, b, ea, eb) -> float:
        """float64 rounding of the values and of the two lines at t (plus the oracle's rounding)."""
        vs = np.abs(self._v).sum()
        local = max(self._mag_near(a), self._mag_near(b), self._mag_near(t))
        scale = abs(fv) + abs(fa) + abs(fb) + abs(la - fa) + abs(lb - fb) + local + (self._fscale if self.mode == "value" else 0)
        slope_err = (ea * abs(t - a) + eb * abs(t - b)) * (1.0 if self.mode == "value" else vs)
        return (self._d + 16) * EPS * scale + slope_err + 3 * self._round_value

    # ---------------------------------------------------------------- units from kinks
    def _units_from_kinks(self, found: dict[str, Any]) -> tuple[int, int]:
        kinks = sorted(found["kinks"], key=lambda k: k.t)
        K, d = self._K, self._d
        if self.mode == "value":
            return self._units_value_mode(found)
        k = self.output
        N, dv, Gc = [], [], []
        for kink in kinks:
            J = kink.jump
            s = float(J @ self._v)
            n = J * (np.sign(s) if s != 0 else 1.0)
            N.append(n)
            dv.append(-float(n @ self._x(kink.t)[0]))
            g = np.zeros(K)
            g[k] = float(J @ n) / float(n @ n)
            Gc.append(g)
        left = found["pieces"][0]
        fl, Fl = left.f, left.g
        xl = self._x(left.t)[0]
        A = np.zeros((K, d))
        A[k] = Fl
        c = np.zeros(K)
        if fl is not None:
            c[k] = fl - Fl @ xl
        self._net.add(np.array(N).reshape(-1, d), np.array(dv), np.array(Gc).reshape(-1, K).T, A, c)
        return len(kinks), found["clusters"]

    def _units_value_mode(self, found: dict[str, Any]) -> tuple[int, int]:
        """One finite-difference Jacobian per piece (all outputs at once), exact pieces, kinks re-intersected."""
        kinks = sorted(found["kinks"], key=lambda k: k.t)
        samples = {p.t: p for p in found["pieces"]}
        d, K = self._d, self._K
        kt = np.array([k.t for k in kinks])
        edges = np.concatenate([[-np.inf], kt, [np.inf]])
        # a representative point per piece: the sample inside it farthest from both kinks
        reps = []
        for p in range(len(edges) - 1):
            inside = [t for t in samples if edges[p] < t < edges[p + 1]]
            if not inside:
                raise _TooManyPieces(-1)
            lo, hi = edges[p], edges[p + 1]
            reps.append(max(inside, key=lambda t: min(t - lo, hi - t)))
        line_slope = np.array([samples[t].g[0] for t in reps])  # the piece's slope, measured on the line
        line_err = np.array([samples[t].err for t in reps])
        # the stencil's base: the middle of the piece's segment (farthest from both kinks; its value is asked anyway)
        # (the end pieces: as far beyond their kink as the kink is from the line's origin, at least T0 = 1)
        if len(kt):
            edges[0], edges[-1] = kt[0] - 2 * max(abs(kt[0]), 1.0), kt[-1] + 2 * max(abs(kt[-1]), 1.0)
        reps = np.array([(edges[p] + edges[p + 1]) / 2 if np.isfinite(edges[p]) and np.isfinite(edges[p + 1])
                         else reps[p] for p in range(len(reps))])
        edges[0], edges[-1] = -np.inf, np.inf
        X = self._x(reps)
        # first step: a quarter of the distance to the nearest kink along the line, scaled to the typical
        # angle between the line and a hyperplane; stencils that still cross a recovered hyperplane are redone
        gap = np.minimum(np.abs(reps - edges[:-1]), np.abs(edges[1:] - reps))
        gap = np.where(np.isfinite(gap), gap, np.abs(reps) + 1.0)
        steps = 0.25 * gap * np.linalg.norm(self._v) / math.sqrt(d)
        S = np.repeat(steps[:, None], d, axis=1)  # signed step per piece and coordinate
        Jacs = np.empty((len(reps), K, d))
        vals = np.empty((len(reps), K))
        mag = np.zeros(len(reps))
        terms = np.zeros(len(reps))
        todo = np.arange(len(reps))
        self._fd_rounds = 0
        refined = False
        # hyperplanes of the model so far: the residual has kinks there too unless they cancel exactly
        N0, dv0 = self._net.N, self._net.dv
        cap = np.maximum(np.abs(X).max(axis=1), self._box[1] - self._box[0])
        while len(todo):
            self._fd_rounds += 1
            for p in todo:
                P = np.repeat(X[p][None], d + 1, axis=0)  # the base, then the base plus a step per coordinate
                P[np.arange(1, d + 1), np.arange(d)] += S[p]
                Z, _ = self._ask(P, True, False)
                vals[p] = Z[0]
                Jacs[p] = ((Z[1:] - Z[0]) / S[p][:, None]).T
                # size of the values and of the sums behind them: the rounding of a value is a few eps times it
                mag[p] = self._answer_mag + np.abs(P).max() * np.abs(Jacs[p]).sum(axis=1).max()
                # the sums behind the values at the stencil (first-order size of their rounding: eps times it)
                terms[p] = (self._answer_mag + (np.abs(Jacs[p]) @ np.abs(X[p])).max()
                            + (np.abs(Jacs[p]) * np.abs(S[p])).max())
            N, dv, Gc = self._units_from_jacobians(kinks, reps, X, vals, Jacs)
            if self._fd_rounds >= 8 or not len(N):
                break
            Nall, dvall = np.vstack([N0, N]), np.concatenate([dv0, dv])
            # a stencil point on the other side of a recovered hyperplane: the stencil mixes two pieces
            Zp = X @ Nall.T + dvall  # (pieces, units)
            crossed = np.array([np.any(Zp[p][:, None] * (Zp[p][:, None] + Nall * S[p]) <= 0) for p in range(len(reps))])
            # the Jacobian must also reproduce the slope measured along the line (free check of a stencil
            # that crossed a hyperplane the recovered units do not show yet); forward differences err by
            # (d + 8) eps mag / step per column
            colerr = ((d + 8) * EPS * mag[:, None] + 2 * self._round_value) / np.abs(S)
            jac_slope = np.einsum("k,pkd,d->p", self._r, Jacs, self._v)
            off = np.abs(jac_slope - line_slope) > line_err + 4 * (colerr @ np.abs(self._v)) * np.abs(self._r).sum()
            todo = np.flatnonzero(crossed | off)
            # redo (uniform steps: the hyperplanes next to a failed stencil are not reliable yet): a quarter of the
            # way to the nearest recovered hyperplane, or (a hyperplane not recovered yet) 16 x smaller
            reach = np.maximum(-np.sign(Zp)[:, :, None] * Nall[None], 0).max(axis=2)  # worst coordinate step
            with np.errstate(divide="ignore"):
                safe = np.where(reach > 0, np.abs(Zp) / np.where(reach > 0, reach, 1), np.inf).min(axis=1)
            for p in todo:
                small = np.abs(S[p]).min()
                S[p] = 0.25 * min(safe[p], small) if crossed[p] else small / 16
            if not len(todo) and not refined:
                # all stencils valid: redo once those whose units would carry a relative error above
                # ``value_precision`` (expected rounding: eps times the sums behind the values, over the step, per
                # column) with per-coordinate steps half way to the nearest recovered hyperplane (error ~ 1/step)
                refined = True
                best = np.array([self._coord_steps(X[p], Nall, dvall, cap[p]) for p in range(len(reps))])
                noise = EPS * terms[:, None] + self._round_value  # (plus half a unit of the last digit if rounded)
                now = np.sqrt(((noise / np.abs(S)) ** 2).sum(axis=1))
                then = np.sqrt(((noise / np.abs(best)) ** 2).sum(axis=1))
                size = np.linalg.norm(np.diff(Jacs, axis=0).reshape(len(reps) - 1, K * d), axis=1)
                # per unit over the precision, the fewest of its two pieces to redo: the noisier one if that
                # suffices, else both (each redo costs d + 1 values)
                goal = self.value_precision * np.maximum(size, np.finfo(float).tiny)
                redo = np.zeros(len(reps), bool)
                for i in np.flatnonzero(now[:-1] + now[1:] > goal):
                    est = lambda r: (then if r[0] else now)[i] + (then if r[1] else now)[i + 1]  # noqa: E731
                    first = (True, False) if now[i] >= now[i + 1] else (False, True)
                    for choice in (first, (True, True)):
                        if est(choice) <= goal[i] or choice == (True, True):
                            redo[i] |= choice[0]
                            redo[i + 1] |= choice[1]
                            break
                todo = np.flatnonzero(redo & (then < now / 4))
                for p in todo:  # the base point: where on the piece's segment the steps reach farthest
                    lo, hi = edges[p], edges[p + 1]
                    lo, hi = (lo if np.isfinite(lo) else reps[p]), (hi if np.isfinite(hi) else reps[p])
                    cand = lo + (hi - lo) * np.arange(1, 8) / 8
                    Xc = self._x(cand)
                    # expected error of the stencil there: the sums behind the values over the steps
                    size_c = (np.abs(vals[p] + (Xc - X[p]) @ Jacs[p].T).max(axis=1)
                              + (np.abs(Xc) @ np.abs(Jacs[p]).T).max(axis=1))
                    Sc = [self._coord_steps(x, Nall, dvall, cap[p]) for x in Xc]
                    cost = [m ** 2 * np.sum(1.0 / sc ** 2) for m, sc in zip(size_c, Sc)]
                    k = int(np.argmin(cost))
                    if cost[k] < (terms[p] ** 2) * np.sum(1.0 / best[p] ** 2):
                        reps[p], X[p], best[p] = cand[k], Xc[k], Sc[k]
                S[todo] = best[todo]
        # the units' error (bound): forward differences err by (d + 8) eps mag / step per column
        colerr = ((d + 8) * EPS * mag[:, None] + 2 * self._round_value) / np.abs(S)
        jump_err = np.linalg.norm(colerr[:-1], axis=1) + np.linalg.norm(colerr[1:], axis=1)
        jumps = np.diff(Jacs, axis=0)
        size = np.linalg.norm(jumps.reshape(len(reps) - 1, K * d), axis=1)
        # (on the first line only: on a residual line the kinks the model's own errors leave between two pieces,
        # each below what a search can see, add to the jump a rank of their size)
        composite = self._composite(jumps, jump_err) if self._net.h == 0 else np.zeros(len(N), bool)
        if len(N) and refined:
            # units still over the precision (a small cell on the line and a small |u_i|): their jump again,
            # from two stencils on either side of their hyperplane where the cells are larger
            noise = EPS * terms[:, None] + self._round_value
            now = np.sqrt(((noise / np.abs(S)) ** 2).sum(axis=1))
            est = (now[:-1] + now[1:]) / np.maximum(size, np.finfo(float).tiny)
            for i in np.flatnonzero((est > self.value_precision) & ~composite):
                N[i], Gc[i], jump_err[i] = self._jump_elsewhere(i, N, dv, Gc, est[i] * size[i], jump_err[i])
        # a kink whose jump is several units' is no unit: left out (the line's check then asks for a residual line)
        self._composites = int(composite.sum())
        keep = ~composite
        N, dv, Gc, jump_err, size = N[keep], dv[keep], Gc[keep], jump_err[keep], size[keep]
        # relative error of the units (bound), weighted by their size: the model's values err by about this
        # much relative to the sums of |unit| |x| behind them; summed over the units of every line so far (a
        # residual line's few small units, known to fewer digits, must not set the tolerance of the whole model)
        if self._net.h == 0:
            self._vm_err = [0.0, 0.0]
        self._vm_err[0] += float(jump_err.sum()) * math.sqrt(K)
        self._vm_err[1] += float(size.sum())
        if self._vm_err[1] > 0:
            self._rel_err = self._vm_err[0] / self._vm_err[1]
        dv = self._offsets_across(N, dv, Gc)
        A = Jacs[0].copy()
        # c from the value nearest the origin (far out, the error of A times |x| would swamp it)
        p = int(np.argmin(np.linalg.norm(X, axis=1)))
        c = vals[p] - A @ X[p] - np.maximum(N @ X[p] + dv, 0.0) @ Gc
        self._net.add(N, dv, Gc.T, A, c)
        return len(kinks), found["clusters"]

    def _jump_elsewhere(self, i: int, N: np.ndarray, dv: np.ndarray, Gc: np.ndarray, err: float, bound: float):
        """Unit i's jump from a stencil on each side of its hyperplane, at the point of the hyperplane (among
        its point nearest the origin and a few around it) where the two cells leave the stencils the most room;
        kept only if that is expected 4x more precise and agrees with the jump from the line (within the two
        expected errors).  Returns its normal, output weights and error bound (``bound``: the line's)."""
        d = self._d
        Nall, dvall = np.vstack([self._net.N, N]), np.concatenate([self._net.dv, dv])
        own = self._net.h + i
        norm = float(np.linalg.norm(N[i]))
        u = N[i] / norm
        xs = -dv[i] / norm * u
        scale = max(float(np.linalg.norm(xs)), self._box[1] - self._box[0])
        cands = [xs]
        for _ in range(8):
            g = self._rng.normal(size=d)
            g -= (g @ u) * u
            cands.append(xs + g / np.linalg.norm(g) * scale * self._rng.uniform(0.1, 1.0))
        best = None
        for y in cands:
            z, rate = y @ Nall.T + dvall, Nall @ u
            with np.errstate(divide="ignore", invalid="ignore"):
                reach = np.abs(np.where(rate != 0, z / rate, np.inf))
            reach[own] = np.inf
            L = 0.5 * min(float(reach.min()), scale)
            if not L > 0:
                continue
            sides = [y + L * u, y - L * u]
            steps = [self._coord_steps(x, Nall, dvall, scale) for x in sides]
            cost = sum(np.sum(1.0 / st ** 2) for st in steps)
            if best is None or cost < best[0]:
                best = (cost, sides, steps)
        if best is None:
            return N[i], Gc[i], bound
        _, sides, steps = best
        J, terms, colerr = [], [], []
        for x, st in zip(sides, steps):
            P = np.repeat(x[None], d + 1, axis=0)
            P[np.arange(1, d + 1), np.arange(d)] += st
            Z, _ = self._ask(P, True, False)
            Jx = ((Z[1:] - Z[0]) / st[:, None]).T
            J.append(Jx)
            terms.append(self._answer_mag + (np.abs(Jx) @ np.abs(x)).max() + (np.abs(Jx) * np.abs(st)).max())
            mag = self._answer_mag + np.abs(P).max() * np.abs(Jx).sum(axis=1).max()
            colerr.append(((d + 8) * EPS * mag + 2 * self._round_value) / np.abs(st))
        Jk = J[0] - J[1]  # the active side minus the other: G_i n_i
        new_err = sum(float(np.sqrt(((EPS * m + self._round_value) / st) ** 2).sum()) for m, st in zip(terms, steps))
        old = Gc[i][:, None] * N[i][None, :]
        if not (new_err < err / 4 and np.linalg.norm(Jk - old) <= 4 * (err + new_err)):
            return N[i], Gc[i], bound
        Jl = Jk[int(np.argmax(np.linalg.norm(Jk, axis=1)))]
        n = Jl * (1.0 if Jl @ N[i] >= 0 else -1.0)
        n = n / np.linalg.norm(n) * norm  # the same scale as before (the offset stays valid)
        return n, Jk @ n / float(n @ n), float(sum(np.linalg.norm(e) for e in colerr))

    def _offsets_across(self, N: np.ndarray, dv: np.ndarray, Gc: np.ndarray) -> np.ndarray:
        """Each unit's offset again, measured across its hyperplane at the hyperplane's point nearest the
        origin, along its normal: four values, two on each side, give the two lines and their intersection.
        On the search line a unit that crosses it at a shallow angle (a kink far out) has its offset from
        a point far out, where the error of its normal times |x| swamps it; across the hyperplane the
        intersection is known to the values' rounding over the full slope change |u_i|."""
        if not len(N):
            return dv
        Nall, dvall = np.vstack([self._net.N, N]), np.concatenate([self._net.dv, dv])
        h0 = self._net.h
        norms = np.linalg.norm(N, axis=1)
        U = N / norms[:, None]
        Xs = -(dv / norms)[:, None] * U  # nearest points to the origin
        Zs = Xs @ Nall.T + dvall  # (units, all units)
        rate = U @ Nall.T
        with np.errstate(divide="ignore", invalid="ignore"):
            reach = np.abs(np.where(rate != 0, Zs / rate, np.inf))
        reach[np.arange(len(N)), h0 + np.arange(len(N))] = np.inf  # its own hyperplane
        # half way to the nearest other hyperplane along the normal (at most the scale of the box and of x*)
        L = 0.5 * np.minimum(reach.min(axis=1), np.maximum(np.linalg.norm(Xs, axis=1), self._box[1] - self._box[0]))
        ok = L > 0
        offs = np.array([-1.0, -0.5, 0.5, 1.0])
        P = (Xs[:, None, :] + (L[:, None] * offs)[:, :, None] * U[:, None, :])[ok].reshape(-1, self._d)
        if not len(P):
            return dv
        Z, _ = self._ask(P, True, False)
        # per unit the output it moves most (its slope change across the hyperplane is largest there)
        f = Z.reshape(-1, 4, self._K)[np.arange(int(ok.sum())), :, np.argmax(np.abs(Gc[ok]), axis=1)]
        Lk = L[ok]
        sl, sr = (f[:, 1] - f[:, 0]) / (Lk / 2), (f[:, 3] - f[:, 2]) / (Lk / 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            s0 = (f[:, 2] - f[:, 1] - (sr + sl) * Lk / 2) / (sl - sr)
        new = dv.copy()
        idx = np.flatnonzero(ok)
        inside = np.isfinite(s0) & (np.abs(s0) < Lk / 2)  # else the kink is not where the units say: keep
        new[idx[inside]] = dv[idx[inside]] - norms[idx[inside]] * s0[inside]
        return new

    @staticmethod
    def _composite(jumps: np.ndarray, err: np.ndarray) -> np.ndarray:
        """Kinks whose jump (K x d over the outputs) is not one unit's: a unit's is V[:, i] w_i, of rank 1, so a
        second singular value above the jump's error (Frobenius bound: sqrt(K) times its per-column bound) means
        several units, a kink the search could not tell from its neighbour (its slope change along the line
        within the rounding of the slopes read there) charged to it.  Never with one output."""
        if jumps.shape[1] < 2 or not len(jumps):
            return np.zeros(len(jumps), bool)
        second = np.linalg.svd(jumps, compute_uv=False)[:, 1]
        return second > math.sqrt(jumps.shape[1]) * err

    @staticmethod
    def _coord_steps(x, N, dv, cap) -> np.ndarray:
        """Per coordinate j, the signed step along +e_j or -e_j (whichever reaches farther) that goes half
        way to the nearest hyperplane N.x + dv = 0 (at most ``cap``): the point stays in the cell of x."""
        z = x @ N.T + dv
        with np.errstate(divide="ignore", invalid="ignore"):
            r = -z[:, None] / N  # step along e_j at which hyperplane i is reached
        plus = np.where(r > 0, r, np.inf).min(axis=0, initial=np.inf)
        minus = np.where(r < 0, -r, np.inf).min(axis=0, initial=np.inf)
        return np.where(plus >= minus, 0.5 * np.minimum(plus, cap), -0.5 * np.minimum(minus, cap))

    def _units_from_jacobians(self, kinks, reps, X, vals, Jacs):
        N, dv, Gc = [], [], []
        d = self._d
        for i in range(len(kinks)):
            Jk = Jacs[i + 1] - Jacs[i]  # (K, d): sigma_i V[:, i] w_i
            # the normal from the output whose row of the jump is largest (a random combination of the outputs
            # may nearly cancel V[:, i] and lose digits)
            Jl = Jk[int(np.argmax(np.linalg.norm(Jk, axis=1)))]
            s = float(Jl @ self._v)
            n = Jl * (np.sign(s) if s != 0 else 1.0)
            a, b = reps[i], reps[i + 1]
            fa, fb = vals[i] @ self._r, vals[i + 1] @ self._r
            # the samples that bound the kink's gap (the search's, in the pieces left and right of the kink): the two
            # lines meet close to them
            left, right = kinks[i].left, kinks[i].right
            if left.t < right.t:
                a, b, fa, fb = left.t, right.t, left.f, right.f
            sa, sb = (self._r @ Jacs[i]) @ self._v, (self._r @ Jacs[i + 1]) @ self._v
            t = (fb - fa + sa * a - sb * b) / (sa - sb) if sa != sb else kinks[i].t
            if not (a < t < b):
                t = kinks[i].t
            N.append(n)
            dv.append(-float(n @ self._x(t)[0]))
            Gc.append(Jk @ n / float(n @ n))
        return np.array(N).reshape(-1, d), np.array(dv), np.array(Gc).reshape(-1, self._K)

    # ---------------------------------------------------------------- orientation and outputs
    def _orientation_problem(self):
        """M alpha = target, tol: the flip set alpha (0/1 per unit) that makes the affine term vanish."""
        net = self._net
        k = self.output if self.mode != "value" else None
        if k is not None:
            M = (net.G[k][:, None] * net.N).T  # d x h
            target = -net.A[k]
        else:
            M = np.vstack([(net.G[j][:, None] * net.N).T for j in range(self._K)])
            target = -net.A.reshape(-1)
        scale = np.abs(M).sum(axis=1).max() + np.abs(target).max() + EPS
        tol = ((net.h + self._d + 8) * EPS * 64 + 8 * self._rel_err) * scale + 4 * self._round_grad * net.h
        return M, target, tol

    def _unexplained_direction(self) -> np.ndarray | None:
        """When no flip set cancels the affine term (h <= d), what is left of it, target - M alpha with alpha the
        least-squares solution, is the part of a missed unit's v_i w_i outside the found units' normals: a unit
        the line never crossed (one nearly parallel to its hyperplane) that is, in the input box, always on or
        always off.  A line in that direction crosses it near the box.  None when the orientation resolves."""
        if self.mode == "value" or not 0 < self._net.h <= self._d:
            return None
        M, target, tol = self._orientation_problem()
        sol, *_ = np.linalg.lstsq(M, target, rcond=None)
        cand = np.round(sol)
        if np.all((cand == 0) | (cand == 1)) and np.max(np.abs(M @ cand - target)) <= tol:
            return None
        rest = target - M @ sol
        return rest if np.max(np.abs(rest)) > tol else None

    def _resolve_orientation(self) -> str:
        """Find the units whose true orientation is 'active on the left' so that A vanishes."""
        net = self._net
        if net.h == 0:
            return "no units"
        M, target, tol = self._orientation_problem()
        alpha = None
        if net.h <= M.shape[0]:
            sol, *_ = np.linalg.lstsq(M, target, rcond=None)
            cand = np.round(sol)
            if np.all((cand == 0) | (cand == 1)) and np.max(np.abs(M @ cand - target)) <= tol:
                alpha = cand
        if alpha is None:
            alpha = self._milp_orientation(M, target, tol)
        if alpha is None:
            return "unresolved"
        net.flip(alpha.astype(bool))
        if self.mode != "value":
            net.A[self.output] = 0.0
        else:
            net.A[:] = 0.0
        return "resolved"

    def _milp_orientation(self, M, target, tol):
        try:
            from scipy.optimize import Bounds, LinearConstraint, milp
        except ImportError:  # pragma: no cover
            return None
        h = M.shape[1]
        res = milp(np.zeros(h), constraints=LinearConstraint(M, target - tol, target + tol),
                   integrality=np.ones(h), bounds=Bounds(0, 1),
                   options={"time_limit": self.sign_time_limit, "disp": False})
        if res.x is None:
            return None
        cand = np.round(res.x)
        if np.max(np.abs(M @ cand - target)) <= tol:
            return cand
        return None

    def _fit_outputs(self, resolved: bool) -> dict[str, Any]:
        """Rows of V of the outputs the search did not follow, from their gradients at the line's two ends
        (exact: a least-squares fit on known normals), and c from one value (value mode: the search found
        every output's jumps at once)."""
        if self.mode == "value":
            return {}
        others = [j for j in range(self._K) if j != self.output]
        net = self._net
        info: dict[str, Any] = {}
        if others:
            # gradients of the other outputs at the two ends of each line searched: every unit found on a line is
            # active at one of its ends
            P = np.array(self._line_ends)
            if not resolved:
                P = np.vstack([P, self._random_points(max(2, math.ceil((net.h + self._d) / self._d)))])
            Mx = self._gradient_design(P, resolved)
            cond = self._condition(Mx)
            if not math.isfinite(cond):
                # units on parallel hyperplanes are on together at the ends: add, per unit, a point just on its
                # active side of its hyperplane (at its foot from the box centre), where the others differ
                centre = np.full(self._d, sum(self._box) / 2.0)
                norms2 = (net.N ** 2).sum(axis=1)
                step = 2.0 ** -20 * (self._box[1] - self._box[0])
                feet = centre - ((net.pre(centre[None])[0] / norms2)[:, None] - step / np.sqrt(norms2)[:, None]) * net.N
                P = np.vstack([P, feet])
                Mx = self._gradient_design(P, resolved)
                cond = self._condition(Mx)
            # relative error of a least-squares fit: condition number times the relative error of the data
            # (rank-deficient, numpy's own cutoff: some unit's row is not determined by these gradients)
            self._rel_err = max(self._rel_err, cond * (net.h + 8) * EPS if math.isfinite(cond) else 1.0)
            for j in others:
                Gj = np.asarray(self._oracle.query(P.reshape(len(P), *self._oracle.input_shape), (self._grad_kind,), j)
                                [self._grad_kind], dtype=np.float64).reshape(len(P), -1)
                if GRADIENT_KINDS[self._grad_kind] == "xg":
                    Gj = np.where(P != 0, Gj / np.where(P != 0, P, 1.0), 0.0)
                sol, *_ = np.linalg.lstsq(Mx, Gj.reshape(-1), rcond=None)
                net.G[j] = sol[:net.h]
                net.A[j] = sol[net.h:] if not resolved else 0.0
        if self._value_kind:
            # c from the box centre: at a far point (the line's end) the units' own float64 error, times |x|,
            # would pass into c
            x = np.full((1, self._d), sum(self._box) / 2.0)
            z = np.asarray(self._oracle.query(x.reshape(1, *self._oracle.input_shape), ("value",))["value"],
                           dtype=np.float64).reshape(-1)
            net.c = np.zeros(self._K)
            net.c = z - net.value(x)[0]
            info["bias_identified"] = True
        else:
            net.c = np.zeros(self._K)
            info["bias_identified"] = False
        return info

    def _gradient_design(self, P: np.ndarray, resolved: bool) -> np.ndarray:
        """Gradients of an output at points P as a linear map of its row of V (and of A when unresolved)."""
        net = self._net
        mask = net.pre(P) > 0
        Mx = np.vstack([(mask[p][:, None] * net.N).T for p in range(len(P))])
        return Mx if resolved else np.hstack([Mx, np.tile(np.eye(self._d), (len(P), 1))])

    @staticmethod
    def _condition(M: np.ndarray) -> float:
        """Condition number of M; inf when it is rank-deficient by numpy's own cutoff."""
        sv = np.linalg.svd(M, compute_uv=False)
        return float(sv[0] / sv[-1]) if len(sv) == M.shape[1] and sv[-1] > sv[0] * max(M.shape) * EPS else math.inf

    def _curvature_probe(self, points: int = 2) -> dict[str, Any] | None:
        """A piecewise-linear network has, at a random x and at x + eta u (eta = 2^-20 of the box width), the
        same gradient (one activation pattern: bit for bit), and zero second difference of the values at
        x - eta u, x, x + eta u (eta = 2^-10 of the width; to rounding);
        a smooth one differs by eta times its curvature.  When every probe point shows a change over its
        tolerance the target is not piecewise linear: returned with the smallest change (else None)."""
        lo, hi = self._box
        # values: a wider step, so that eta^2 times the curvature clears the values' rounding
        eta = (hi - lo) * 2.0 ** (-20 if self._grad_kind else -10)
        rng = np.random.default_rng([self.seed, 12])  # its own stream: the search's random lines stay as they were
        X = rng.uniform(lo, hi, size=(points, self._d))
        U = rng.normal(size=X.shape)
        U *= eta / np.linalg.norm(U, axis=1, keepdims=True)
        o = self._oracle
        shape = lambda A: A.reshape(len(A), *o.input_shape)  # noqa: E731
        if self._grad_kind:
            got = o.query(shape(np.vstack([X, X + U])), (self._grad_kind,), self.output)[self._grad_kind]
            G = np.asarray(got, dtype=np.float64).reshape(2 * points, -1)
            if GRADIENT_KINDS[self._grad_kind] == "xg":
                Xa = np.vstack([X, X + U])
                G = np.where(Xa != 0, G / np.where(Xa != 0, Xa, 1.0), 0.0)
            tol = (self._d + 4) * EPS * (np.abs(G[:points]).sum(1) + np.abs(G[points:]).sum(1)) + 2 * self._round_grad
            change = np.abs(G[:points] - G[points:]).max(axis=1)
        else:
            got = o.query(shape(np.vstack([X - U, X, X + U])), ("value",))["value"]
            Z = np.asarray(got, dtype=np.float64).reshape(3 * points, -1) @ self._r
            fm, f0, fp = Z[:points], Z[points:2 * points], Z[2 * points:]
            tol = 4 * (self._d + 8) * EPS * (np.abs(fm) + 2 * np.abs(f0) + np.abs(fp)) + 4 * self._round_value
            change = np.abs(fp - 2 * f0 + fm)
        ratios = [worst_ratio(c, t) for c, t in zip(change, tol)]
        if all(math.isfinite(r) and r > 1.0 for r in ratios):
            return {"points": points, "step": eta, "min_change_over_tolerance": float(min(ratios))}
        return None

    def _random_points(self, n: int, far: bool = False) -> np.ndarray:
        """Uniform in the input box (or [-1, 1]^d); with ``far``, three points in four on a random ray from
        the box centre at a radius up to 2^20 box widths: a missed unit is active at each of them with
        probability about 1/2, so 12 far points miss it with probability 2^-12."""
        lo, hi = self._box
        X = self._rng.uniform(lo, hi, size=(n, self._d))
        if far and self._oracle.input_box is None:
            for i in (i for i in range(n) if i % 4):
                u = self._rng.normal(size=self._d)
                X[i] = (lo + hi) / 2 + u / np.linalg.norm(u) * (hi - lo) * math.sqrt(self._d) * 2.0 ** self._rng.uniform(0, 20)
        return X

    # ---------------------------------------------------------------- checks
    def _discrepancy(self, X: np.ndarray, Z: np.ndarray | None, G: np.ndarray | None) -> float:
        """Largest residual of the model over the tolerance (<= 1: consistent; inf: nothing
        compared, a NaN, or a zero tolerance)."""
        worst = 0.0 if Z is not None or G is not None else math.inf
        net = self._net
        if Z is not None:
            Zh = net.value(X)
            scale = np.abs(np.maximum(net.pre(X), 0)) @ np.abs(net.G.T) + np.abs(X) @ np.abs(net.A.T) \
                + np.abs(net.c) + np.abs(Z)
            scale = scale + (np.abs(X) @ np.abs(net.N.T) + np.abs(net.dv)) @ np.abs(net.G.T)
            # rounded answers: each unit's offset is off by about a rounding unit of the values, and its jump
            # (a difference of two rounded gradients) by a rounding unit per coordinate, which grows with |x|_1
            tol = (4 * (self._d + net.h + 8) * EPS + 8 * self._rel_err) * scale \
                + (self._round_value + self._round_grad * np.abs(X).sum(axis=1, keepdims=True)) * (2 + net.h)
            worst = max(worst, worst_ratio(Zh - Z, tol))
            # what the tolerance hides per unit of |x|: a missed unit of size |v_i| |w_i| shows as about that
            # times |x| / sqrt(d) at the best of the check points
            self._value_tol_per_norm = float(np.max(tol.max(axis=1) / np.maximum(np.linalg.norm(X, axis=1), 1.0)))
        if G is not None:
            Gh = net.grad(X, self.output)
            tol = 4 * (net.h + 8) * EPS * (np.abs(net.G[self.output]) @ np.abs(net.N) + np.abs(net.A[self.output])) \
                + self._round_grad * (2 + net.h) + (self._d + 4) * EPS * np.abs(G)
            worst = max(worst, worst_ratio(Gh - G, tol))
            self._grad_tol = float(np.max(tol))
        return worst

    def _check_points(self, n: int, phase: str) -> tuple[float, float]:
        X = self._random_points(n, far=True)
        o = self._oracle
        kinds = []
        if self._value_kind and (self.mode != "gradient" or phase == "verify"):
            kinds.append("value")
        if self._grad_kind and not (phase == "attack" and self.mode == "value+gradient"):
            kinds.append(self._grad_kind)  # with values, a missed or wrong unit shows in the values far out
        with o.ledger.phase(phase):
            got = o.query(X.reshape(n, *o.input_shape), tuple(kinds), self.output)
        Z = np.asarray(got["value"], dtype=np.float64).reshape(n, -1) if "value" in got else None
        G = None
        if self._grad_kind in got:
            G = np.asarray(got[self._grad_kind], dtype=np.float64).reshape(n, -1)
            if GRADIENT_KINDS[self._grad_kind] == "xg":
                G = np.where(X != 0, G / np.where(X != 0, X, 1.0), 0.0)
        if Z is not None and phase == "attack" and self.mode != "value":
            Z = Z[:, [self.output]]  # the other outputs are fitted after the search
        if Z is not None and self.mode == "gradient" and not self._value_kind:
            Z = None
        return self._check_arrays(X, Z, G)

    def _check_arrays(self, X, Z, G) -> tuple[float, float]:
        net = self._net
        if Z is not None and Z.shape[1] != net.G.shape[0]:
            k = self.output
            sub = _Net(self._d, 1)
            sub.N, sub.dv, sub.G, sub.A, sub.c = net.N, net.dv, net.G[[k]], net.A[[k]], net.c[[k]]
            self._net, saved, out_k = sub, net, self.output
            self.output = 0
            try:
                return self._check_arrays(X, Z, G)
            finally:
                self._net, self.output = saved, out_k
        ratio = self._discrepancy(X, Z, G)
        if not passes(ratio):  # the point a residual line will pass through: the failing one nearest the box centre
            per = [self._discrepancy(X[j:j + 1], None if Z is None else Z[j:j + 1], None if G is None else G[j:j + 1])
                   for j in range(len(X))]
            # (far out, the kinks of the line are far out too and their offsets lose digits to |x|)
            centre = sum(self._box) / 2.0
            failing = [j for j in range(len(X)) if not passes(per[j])]
            self._worst_x = X[min(failing, key=lambda j: np.linalg.norm(X[j] - centre))].copy()
        resid = 0.0
        if Z is not None:
            resid = float(np.max(np.abs(net.value(X) - Z)))
        if G is not None:
            resid = max(resid, float(np.max(np.abs(net.grad(X, self.output) - G))))
        return ratio, resid

    # ---------------------------------------------------------------- main
    def execute(self, oracle: Oracle) -> Result:
        self._plan(oracle)
        self._oracle = oracle
        self._d, self._K = oracle.input_dim, oracle.n_outputs
        self._rng = np.random.default_rng(self.seed)
        self._box = oracle.input_box or (-1.0, 1.0)
        rounding = oracle.options.get("round_decimals")
        unit = 0.5 * 10.0 ** (-rounding) if rounding is not None else 0.0
        self._round_value = unit
        self._round_grad = unit / (1.0 if self._grad_kind != "explanation:input-x-gradient" else
                                   max(abs(self._box[0]), abs(self._box[1]), 1.0) * 1e-3) if self._grad_kind else 0.0
        self._round_grad = unit if self._grad_kind == "gradient" or self._grad_kind == "explanation:saliency-signed" \
            else self._round_grad
        self._fscale = 0.0
        self._rel_err = 0.0  # relative error of finite-difference Jacobians (value mode)
        self._composites = 0  # value mode: kinks of the last line whose jump was several units' (left out)
        self._net = _Net(self._d, self._K)
        self._found = None
        self._worst_x = None
        self._net_bias_known = True
        self._line_ends: list[np.ndarray] = []
        self._r = np.zeros(self._K)
        if self.mode == "value":
            self._r = self._rng.normal(size=self._K) if self._K > 1 else np.ones(1)
        else:
            self._r[self.output] = 1.0
        details: dict[str, Any] = {"mode": self.mode, "explanation_kind": self._grad_kind, "lines": []}
        if self.mode == "value+gradient":  # 'side' falls back to 'pair' on rounded answers or inside an input box
            details["kink_check"] = "side" if self._optimistic() else "pair"
        status, messages = "complete", []
        lo, hi = self._box
        try:
            curved = self._curvature_probe()
            if curved is not None:
                details["curvature_probe"] = curved
                raise _NotPiecewiseLinear()
            unexplained = None
            for line in range(self.max_lines):
                self._x0 = np.full(self._d, (lo + hi) / 2.0) + (self._rng.uniform(-0.05, 0.05, self._d) * (hi - lo)
                                                               if line else 0.0)
                v = self._rng.normal(size=self._d)
                self._t_worst = None
                if line and self._residual_line_through_check():
                    # from the box centre through the failing check point: the kinks that matter lie between,
                    # and near the centre their offsets keep their digits (a line through a far point in a random
                    # direction meets every hyperplane far out)
                    self._x0 = np.full(self._d, (lo + hi) / 2.0)
                    if np.linalg.norm(self._worst_x - self._x0) > 0:
                        v = self._worst_x - self._x0
                self._v = v / np.linalg.norm(v) * (hi - lo) / 2.0 * math.sqrt(self._d)
                if line and self._residual_line_through_check():
                    self._t_worst = self._t_of(self._worst_x[None])[0]
                self._aimed = unexplained is not None
                if unexplained is not None:  # along what the found units leave of the affine term
                    self._x0 = np.full(self._d, (lo + hi) / 2.0)
                    self._v = unexplained / np.linalg.norm(unexplained) * (hi - lo) / 2.0 * math.sqrt(self._d)
                self._delta = 2.0 ** -20  # value mode: slope from values at t and t + delta
                if self.mode == "value":
                    probe = self._oracle.query(self._x([0.0]).reshape(1, *oracle.input_shape), ("value",))["value"]
                    self._fscale = float(np.abs(np.asarray(probe, dtype=np.float64)).max())
                self._fmag = {}
                found = self._found = self._search()
                refined = self._refine_kinks(found) if self.mode == "value+gradient" else 0
                self._line_ends += list(self._x([found["t_left"], found["t_right"]]))
                n_kinks, clusters = self._units_from_kinks(found)
                self._found = None
                # units closer than their own precision (rounded answers: a unit and its cancelling copy) merge
                merged = self._net.merge(max(1e3 * (self._d + 8) * EPS ** 0.5 * 1e-4, 8 * self._rel_err))
                details["lines"].append({"kinks": n_kinks, "near_coincident_clusters": clusters, "merged": merged,
                                         "refined_by_bisection": refined,
                                         "samples": len(found["pieces"]), "interval": [found["t_left"], found["t_right"]]})
                if self.mode == "gradient" and not self._value_kind:
                    self._net_bias_known = False
                ratio, resid = self._check_points(self.checks, "attack")
                details["lines"][-1]["check_residual_over_tolerance"] = ratio
                if self._composites:
                    details["lines"][-1]["composite_kinks_left_out"] = self._composites
                unexplained = self._unexplained_direction() if passes(ratio) and line + 1 < self.max_lines else None
                if passes(ratio) and unexplained is None and not self._composites:
                    break
        except _NotPiecewiseLinear:
            status = "failed"
            what = "gradient" if self._grad_kind else "slope"
            messages.append(f"the target is not piecewise linear: its {what} changes between points "
                            f"{details['curvature_probe']['step']:.2g} apart at every one of "
                            f"{details['curvature_probe']['points']} random points (by at least "
                            f"{details['curvature_probe']['min_change_over_tolerance']:.3g} x the float64 tolerance): "
                            "a smooth activation (sigmoid, tanh, softmax) has no kinks to find; relu2 recovers "
                            "two-layer ReLU networks (try the surrogate attack, or span --setting threshold)")
        except _TooManyPieces as e:
            status = "failed"
            messages.append(f"the line search found more than {self.max_pieces} linear pieces on one line"
                            if e.n > 0 else "a linear piece of the line was not sampled")
        except QueryBudgetExceeded as e:
            status = "partial"
            messages.append(f"budget exhausted: {e}; the units found so far form the model")
            found = self._found or (_search_result(*e.found) if getattr(e, "found", None) else None)
            if found and found["kinks"] and self.mode != "value":
                self._units_from_kinks(found)
                self._line_ends += list(self._x([found["t_left"], found["t_right"]]))
        orient = "not attempted"
        fit_info: dict[str, Any] = {}
        if self._net.h and status != "failed":
            orient = self._resolve_orientation()
            try:
                fit_info = self._fit_outputs(orient == "resolved")
            except QueryBudgetExceeded as e:
                status = "partial"
                messages.append(f"budget exhausted while fitting the other outputs: {e}")
        net = self._net
        details.update(fit_info)
        details["orientation"] = orient
        details["hidden_units_found"] = net.h
        params = {"W": net.N, "b": net.dv, "V": net.G, "c": net.c, "A": None if orient == "resolved" else net.A}
        model = Relu2Model(net.N, net.dv, net.G, net.c, None if orient == "resolved" else net.A, oracle.input_shape)
        result = Result(self.name, status, "", params=params, model=model, details=details)
        if orient == "unresolved":
            messages.append(f"orientation of units not resolved ({net.h} units for d={self._d}): the model keeps an "
                            "affine term A x, exact as a function but not in pure two-layer form")
        if self.mode == "gradient" and not self._value_kind:
            messages.append("c is not identifiable from gradients alone (set to 0)")
        if self.verify and status != "failed" or (status == "failed" and self._net.h and self.verify):
            try:
                ratio, resid = self._check_points(self.verify, "verify")
                details["verification"] = {"points": self.verify, "max_abs_residual": resid,
                                           "residual_over_tolerance": ratio}
                if not passes(ratio) and status == "complete":
                    status = "failed"
                    messages.insert(0, f"the target is not a two-layer ReLU network (or a unit was missed): on "
                                       f"{self.verify} fresh queries the recovered model is off by up to {resid:.3g} "
                                       f"({ratio:.3g} x the float64 tolerance)")
                elif status == "failed":
                    messages.append(f"residual on {self.verify} fresh queries: {resid:.3g} ({ratio:.3g} x tolerance)")
                # the tolerance carries the units' own relative error: when that much of all units together is as
                # large as the smallest unit found, a missed unit of that size would pass unseen
                sizes = np.linalg.norm(net.G, axis=0) * np.linalg.norm(net.N, axis=1)
                blind = 8 * self._rel_err * float(sizes.sum())
                # a missed unit shows at a check point x as |v_i| |w_i| |x| |cos|, and the largest |cos| over the
                # check points is only about 1/sqrt(d): what the values' tolerance could hide, a bound reported with
                # the result; when it reaches the typical unit found, a unit like the others could have been missed
                hidden = getattr(self, "_value_tol_per_norm", 0.0) * math.sqrt(self._d)
                details["verification"]["missed_unit_bound"] = hidden
                if len(sizes) and hidden >= float(np.median(sizes)):
                    blind = max(blind, hidden)
                # with gradients of the followed output checked too, the bound is theirs: a missed unit i adds
                # v_i w_i to that gradient wherever it is active (about half the far check points), at least
                # |v_i| |w_i| / sqrt(d) in some coordinate, against a float64 tolerance of that coordinate
                seen = np.abs(net.G[self.output]) * np.linalg.norm(net.N, axis=1) / math.sqrt(self._d)
                grad_tol = getattr(self, "_grad_tol", math.inf) if self._grad_kind else math.inf
                if len(seen) and math.isfinite(grad_tol) and seen.min() > grad_tol:
                    details["verification"]["missed_unit_bound"] = min(hidden, grad_tol * math.sqrt(self._d))
                    blind = 0.0
                if status == "complete" and len(sizes) and blind >= sizes.min():
                    status = "failed"
                    messages.insert(0, f"the answers leave the units known only to {self._rel_err:.2g} relative and "
                                       f"the verification's tolerance could hide a missed unit of |v| |w| up to "
                                       f"{blind:.2g}, against {sizes.min():.2g} for the smallest one found and "
                                       f"{np.median(sizes):.2g} for the typical one")
                # rounded answers: a unit under the bound can hide (two did, at 8 decimals), and the units found do
                # not say the network has none that small, so 'complete' only when the bound is below every unit
                # found, else a partial network with the bound (float64 keeps its tolerance-derived bound reported
                # only: there it over-states what can hide by orders of magnitude, see docs/relu2.md)
                bound = details["verification"]["missed_unit_bound"]
                if status == "complete" and self._round_value and len(sizes) and bound >= sizes.min():
                    status = "partial"
                    messages.append(f"the verification could hide a missed unit of |v| |w| up to {bound:.2g}, not "
                                    f"below the smallest unit found ({sizes.min():.2g}): units that small may be missing")
            except QueryBudgetExceeded:
                if status == "complete":
                    status = "partial"
                messages.append("no budget left to verify")
        if status == "complete" and self._rel_err >= 1:
            status = "failed"
            messages.insert(0, "the other outputs' rows are not determined by the gradients asked (a unit active at "
                               "none of the fit's points)")
        last_check = details["lines"][-1].get("check_residual_over_tolerance", math.inf) if details["lines"] else math.inf
        if status == "complete" and not net.h:
            status = "failed"
            messages.insert(0, "no hidden unit found: the target is affine along every searched line, or not a "
                               "two-layer ReLU network")
        elif status == "complete" and "verification" not in details and not passes(last_check):
            status = "failed"
            messages.insert(0, f"the recovered model does not match the target on the {self.checks} check points "
                               f"({last_check:.3g} x the float64 tolerance) and verify=0 asked no more")
        if status == "complete":
            how = "exactly" if rounding is None else f"to the precision of answers rounded to {rounding} decimals"
            bound = details.get("verification", {}).get("missed_unit_bound")
            if bound is not None:
                messages.append(f"a unit missed would have |v_i| |w_i| below {bound:.2g} on output {self.output}")
            messages.insert(0, f"recovered {net.h} hidden units {how} from {len(details['lines'])} line(s)"
                            + (f"; verified on {self.verify} fresh queries (max residual "
                               f"{details['verification']['max_abs_residual']:.2g})" if "verification" in details else
                               f"; checked on {self.checks} attack-phase points only (verify=0)"))
        elif status == "partial":
            messages.insert(0, f"partial network: {net.h} hidden units found so far")
        result.status = status
        result.message = "; ".join(messages)
        return result


class _NotPiecewiseLinear(RuntimeError):
    pass


class _TooManyPieces(RuntimeError):
    def __init__(self, n: int):
        super().__init__(str(n))
        self.n = n
