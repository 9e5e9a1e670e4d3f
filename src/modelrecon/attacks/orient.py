"""Orientation of an expansive first layer's neurons, read exactly from the next layer's rows.

A first-layer row known up to scale w_i (pre-activation z_i = w_i . x + b_i) may be the true neuron
relu(z_i) or its mirror relu(-z_i).  No test at one kink tells them apart when the layer is wider than
the input (its rows are not independent: Carlini, Jagielski, Mironov, CRYPTO 2020, sign recovery for
expansive layers; Canales-Martinez et al., EUROCRYPT 2024, "neuron wiggle", a statistical test).  This
one is exact and linear: relu(-z) = relu(z) - z, so with the rows in an arbitrary orientation every
second-layer pre-activation is, exactly,

    F_k(x) = w_k . relu(z(x)) - u_k . x + c_k,   u_k = W_1^T (w_k o delta),

delta_i = 1 where row i is mirrored.  Steps:

1. **Follow a second-layer surface** (the zero set of F_k) from one of its kinks, in closed form along
   its local plane, across the first layer's walls.  Crossing wall j adds w_k[j] W_1[j] to the
   plane's normal (whatever the orientation: relu(z_j) and relu(z_j) - z_j change alike); a known
   w_k[j] costs nothing, an unknown one costs one short line search in the new cell along the old
   normal, kept at constant z_j: the kink there has a jump in span{normal, W_1[j]} (relative
   residual <= 1e-6) and lies on the predicted plane; the ratio of the two coefficients is w_k[j].  With
   gradients, several walls at once first: from a corner where walls S meet the surface, one short line in
   the cell across all of them (constant z_S) reads a jump in span{n, W_1[j]: j in S unknown}, whose
   coefficients give every unknown w_k[j] of S (up to d - 2 of them per 2 points).
2. When every w_k[j] is known, the plane's normal n in the current cell (pattern a) gives
   u_k = W_1^T (w_k o a) - n, and one more crossing is searched although predicted (the row must
   hold in a cell it was not measured in: a deeper neuron's surface bends at the second layer).
3. **Solve** W_1^T diag(w_k) delta = u_k over every followed neuron k (least squares).  A neuron's
   orientation is resolved only when the system pins delta_i (no null direction through it), delta_i
   rounds to 0 or 1 within 1e-6 and the rounded solution leaves a relative residual <= 1e-6;
   otherwise it stays open (None) and the caller says so.

The followed rows, re-expressed on the oriented first layer, are the second layer's whole rows: no
pull-back through the (non-injective) first layer is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from modelrecon.attacks.piecewise import Kink, Line, Piece, Probe, ValueGradientProbe, critical_points
from modelrecon.attacks.value_probe import ValueProbe

TOL = 1e-6  # relative: a jump in a span, a point on a plane, a 0/1 rounding (relu.py's SAME_ROW)
MAX_CROSSINGS = 64  # walls crossed walking to one target wall
MAX_REJECTED = 3  # seeds in a row whose surface could not be followed end a run (a neuron not crossing every wall)


@dataclass
class SurfaceRow:
    """A next-layer neuron followed along its surface: weights on relu(z) of the (unoriented) rows, the input-space
    term u and offset c of F(x) = w . relu(W x + b) - u . x + c, and a point of its surface."""

    w: np.ndarray
    u: np.ndarray
    c: float
    x: np.ndarray

    def value(self, W: np.ndarray, b: np.ndarray, X: np.ndarray) -> np.ndarray:
        return np.maximum(X @ W.T + b, 0.0) @ self.w - X @ self.u + self.c

    def grad(self, W: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
        return W.T @ (self.w * (W @ x + b > 0)) - self.u


@dataclass
class Orientation:
    signs: list[int | None]
    rows: list[SurfaceRow] = field(default_factory=list)
    next_W: np.ndarray | None = None  # the next layer on the oriented rows (all signs resolved)
    next_b: np.ndarray | None = None
    kinks: list[Kink] = field(default_factory=list)
    samples: list[tuple[np.ndarray, Piece]] = field(default_factory=list)
    searches: int = 0
    points: int = 0  # distinct input points asked by the searches
    residual: float = math.inf
    seeds_rejected: int = 0


class ExpansiveOrientation:
    """Orient the rows W, b (first layer, up to sign) from the surfaces of the next layer's neurons."""

    def __init__(self, probe: Probe, W: np.ndarray, b: np.ndarray, box: tuple[float, float] | None = None,
                 max_points: int = 50_000):
        self.probe, self.W, self.b, self.box, self.max_points = probe, W, b, box, max_points
        self.out = Orientation([None] * len(W))
        self._tried: dict[int, Kink] = {}  # seed kinks followed (or rejected) already (kept: their ids stay theirs)
        self._dead: list[tuple[int, np.ndarray]] = []  # (wall j, unit normal): a crossing searched for in vain

    # ------------------------------------------------------------------ following one surface
    def _cross(self, y: np.ndarray, p: np.ndarray, n: np.ndarray, j: int, s: int):
        """Cross wall j at y (on the surface's plane, moving along p): one short search in the new cell along the old
        normal, at constant z_j.  (w_j, a point on the surface, the new normal) or None; by values, None at once where
        the same plane (normal n) was searched for across wall j in vain before (from another point of the wall: on
        10-20-20-1 and 6-12-6-1 such a retry never succeeded, 43 retries and 5,580 values on 10-20-20-1 seed 0)."""
        unit = n / np.linalg.norm(n)
        if any(i == j and np.linalg.norm(m - unit) <= TOL for i, m in self._dead):
            return None  # the same surface's plane failed to cross wall j before (a retry never found it: measured)
        try:
            got = self._search_cross(y, p, n, j, s)
        finally:
            if isinstance(self.probe, FiniteDifferenceProbe):
                self.probe.dirs = None
        if got is None and isinstance(self.probe, FiniteDifferenceProbe):  # values only: gradient mode as it was
            self._dead.append((j, unit))
        return got

    def _search_cross(self, y: np.ndarray, p: np.ndarray, n: np.ndarray, j: int, s: int):
        W, b = self.W, self.b
        norms = np.linalg.norm(W, axis=1)
        zy = W @ y + b
        dist = np.abs(zy) / norms
        dist[j] = np.inf
        room = float(dist.min())
        if not math.isfinite(room) or room <= 0:
            room = float(np.linalg.norm(y)) + 1.0
        y1 = y + 0.01 * room * p
        q = n - (n @ W[j]) / (W[j] @ W[j]) * W[j]
        qn = float(np.linalg.norm(q))
        if qn <= TOL * float(np.linalg.norm(n)):
            return None
        q /= qn
        z1, rq = W @ y1 + b, W @ q
        lo, hi = -100 * room, 100 * room  # inside the new cell: no first-layer wall but j's (constant) is crossed
        with np.errstate(divide="ignore", invalid="ignore"):
            t0 = np.where(rq != 0, -z1 / rq, np.nan)
        t0[j] = np.nan
        if np.any(t0 > 0):
            hi = min(hi, 0.999 * float(np.nanmin(np.where(t0 > 0, t0, np.nan))))
        if np.any(t0 < 0):
            lo = max(lo, 0.999 * float(np.nanmax(np.where(t0 < 0, t0, np.nan))))
        line = Line(y1, q)
        if self.box is not None and (np.any(line.at(np.array([lo, hi])) < self.box[0])
                                     or np.any(line.at(np.array([lo, hi])) > self.box[1])):
            return None
        self.out.searches += 1
        if isinstance(self.probe, FiniteDifferenceProbe):  # differences short enough to stay inside the cell
            self.probe.limit = 0.1 * min(room, abs(float(W[j] @ y1 + b[j])) / float(norms[j]))
        B, P = np.stack([n, W[j]], axis=1), None
        if isinstance(self.probe, FiniteDifferenceProbe):
            # by values, derivatives along q and W_j only (3 values a read instead of d + 1): the surface's jump lies in
            # span{n, W_j} = span{q, W_j}; its two parts give w_j, checked by where the two ends' lines meet
            D = np.linalg.qr(np.stack([q, W[j]], axis=1))[0]
            self.probe.dirs, P = D, D @ D.T
        # first the two ends of a short piece (the surface crosses it near t = 0 unless w_j is large): when their
        # gradients differ by a jump in span{n, W_j}, that is the surface's jump (2 points); else every kink of the cell
        short = (max(lo, -0.1 * room), min(hi, 0.1 * room))
        # (with a gradient-first probe their gradients alone, as in gradient mode: values only where the search goes on)
        ends = self.probe.glance(line, short)
        self.out.samples += [(line.at(pc.t), pc) for pc in ends]
        got = self._weight(B, ends[1].g - ends[0].g, s, n, j, P)
        noise = self.probe.values.noise if isinstance(self.probe, FiniteDifferenceProbe) else None
        if got is not None and (ends[0].f is None or self._on_plane(line, ends, got[1], y, noise)):
            return got[0], y, got[1]
        ends = self.probe.fill(line, ends, [(), ()])

        def fits(k: Kink):  # the surface's kink: a jump in span{n, W_j}, on the plane predicted through y
            got = self._weight(B, k.jump, s, n, j, P)
            step = k.x - y
            if got is None or abs(got[1] @ step) > np.linalg.norm(got[1]) * (TOL * np.linalg.norm(step) + self._located(k, y)):
                return None
            return got[0], k.x, got[1]

        if isinstance(self.probe, FiniteDifferenceProbe):  # by values: the near part of the cell first, then the rest
            kinks, pieces = [], []
            near = (max(lo, -room), min(hi, room))
            for a, b_ in (near, (lo, near[0]), (near[1], hi)):
                if b_ > a and not any(fits(k) is not None for k in kinks):
                    got_k, got_p = self.probe.kinks_on(line, a, b_, until=lambda k: fits(k) is not None)
                    kinks, pieces = kinks + got_k, pieces + got_p
        else:
            kinks, pieces = critical_points(self.probe, line, lo, hi, pieces=ends, max_points=self.max_points)
        self.out.kinks += kinks
        self.out.samples += [(line.at(pc.t), pc) for pc in pieces]
        return next((got for got in map(fits, kinks) if got is not None), None)

    def _located(self, k: Kink, y: np.ndarray) -> float:
        """How far off the predicted plane a kink found by values may lie (0 where gradients confirm it): the answers'
        noise over the change of slope along the line, and the walked plane's own error (the differences' relative
        error) over the distance from the origin of the walk."""
        if not isinstance(self.probe, FiniteDifferenceProbe):
            return 0.0
        dslope = abs(float(k.jump @ k.line.v))
        located = 8 * self.probe.values.noise / max(dslope, 1e-300) * float(np.linalg.norm(k.line.v))
        return located + 4 * k.left.err / max(float(np.linalg.norm(k.jump)), 1e-300) * (float(np.linalg.norm(y)) + 1)

    @staticmethod
    def _weight(B: np.ndarray, jump: np.ndarray, s: int, n: np.ndarray, j: int, P: np.ndarray | None = None):
        """w_j and the new normal from a jump in span{n, W_j} (relative residual <= TOL), or None; with P, the jump
        was read in the range of the projection P only (and is compared with P n, P W_j)."""
        if not np.any(jump):
            return None
        A = B if P is None else P @ B
        cf, *_ = np.linalg.lstsq(A, jump, rcond=None)
        if cf[0] == 0 or np.linalg.norm(A @ cf - jump) > TOL * np.linalg.norm(jump):
            return None
        wj = s * float(cf[1] / cf[0])
        return wj, n + s * wj * B[:, 1]

    @staticmethod
    def _on_plane(line: Line, ends: list[Piece], normal: np.ndarray, y: np.ndarray, noise: float | None = None) -> bool:
        """With values: the two ends' lines meet on the predicted plane through y (the kink is the surface's); with
        finite-difference slopes (``noise``: the values' own), within where their errors can put the meeting point."""
        a, b = ends
        sa, sb = float(a.g @ line.v), float(b.g @ line.v)
        if sa == sb:
            return False
        t = (b.f - a.f + sa * a.t - sb * b.t) / (sa - sb)
        step = line.at(t) - y
        located = 0.0 if noise is None else \
            (8 * noise + 2 * (a.err + b.err) * abs(b.t - a.t)) / abs(sa - sb) * float(np.linalg.norm(line.v))
        return abs(normal @ step) <= np.linalg.norm(normal) * (TOL * max(np.linalg.norm(step), np.finfo(float).tiny)
                                                               + located)

    def _walk(self, st: dict, i: int, check: bool = False) -> bool:
        """Walk along the surface (state st: point x, pattern a, normal n, weights w) until wall i is crossed; unknown
        walls met on the way are searched (and wall i too when ``check``: the measured weight must be the known one).
        Where the surface folds back at the wall just crossed, the walk slides along that wall instead."""
        W, b = self.W, self.b
        last, slide = -1, -1
        for _ in range(MAX_CROSSINGS):
            x, a, n, w = st["x"], st["a"], st["n"], st["w"]
            z = W @ x + b
            u = (-1.0 if a[i] else 1.0) * W[i]
            B = np.stack([n] + ([W[slide]] if slide >= 0 else []), axis=1)
            p = u - B @ np.linalg.lstsq(B, u, rcond=None)[0]
            if np.linalg.norm(p) <= TOL * np.linalg.norm(u):
                return False
            p /= np.linalg.norm(p)
            rate = W @ p
            with np.errstate(divide="ignore", invalid="ignore"):
                tau = np.where(a & (rate < 0), z / -rate, np.where(~a & (rate > 0), -z / rate, np.inf))
            tau = np.maximum(tau, 0.0)
            if slide >= 0:
                tau[slide] = np.inf
            j = int(np.argmin(tau))
            if not math.isfinite(tau[j]):
                return False
            if j == last and slide < 0:  # the surface folds back across the wall just crossed: slide along it, a little
                slide = j                  # inside this cell (a search on the wall itself would straddle it)
                inward = (1.0 if a[j] else -1.0) * W[j]
                inward -= (inward @ n) / (n @ n) * n
                if np.linalg.norm(inward) <= TOL * np.linalg.norm(W[j]):
                    return False
                inward /= np.linalg.norm(inward)
                rate = W @ inward
                with np.errstate(divide="ignore", invalid="ignore"):
                    room = np.where(a & (rate < 0), z / -rate, np.where(~a & (rate > 0), -z / rate, np.inf))
                room[j] = np.inf
                step = 0.1 * float(min(room.min(), np.linalg.norm(x) + 1.0))
                st["x"] = x + step * inward
                continue
            y = x + tau[j] * p
            if self.box is not None and (np.any(y < self.box[0]) or np.any(y > self.box[1])):
                return False
            s = -1 if a[j] else 1
            if np.isnan(w[j]) or (check and j == i):
                got = self._cross(y, p, n, j, s)
                if got is None:
                    return False
                wj, x_new, n_new = got
                if not np.isnan(w[j]) and abs(wj - w[j]) > TOL * np.nanmax(np.abs(w)):
                    st["inconsistent"] = True
                    return False
                w[j], st["x"], st["n"] = wj, x_new, n_new
            else:
                st["x"], st["n"] = y, n + s * w[j] * W[j]
            a[j] = not a[j]
            last, slide = j, -1
            if j == i:
                return True
        return False

    def _corner(self, st: dict) -> tuple[np.ndarray, list[int], np.ndarray, np.ndarray] | None:
        """A point y of the surface on several unknown walls S at once, as many as a jump in R^d tells apart (d - 2):
        pivoting along the surface (each step heads for the nearest unknown wall within the walls reached and stops at
        the first wall met; a known wall is crossed, the normal changing by its known weight, unless the surface folds
        back there, which keeps it in S).  (y, S, the cell's pattern and the surface's normal there) or None."""
        W, b = self.W, self.b
        x, a, n, w = st["x"], st["a"].copy(), st["n"].copy(), st["w"]
        d = len(x)
        norms = np.linalg.norm(W, axis=1)
        y, S, last = x.copy(), [], -1
        for _ in range(MAX_CROSSINGS):
            if len(S) >= d - 1 or sum(np.isnan(w[S])) >= d - 2:
                break
            z = W @ y + b
            todo = [i for i in np.flatnonzero(np.isnan(w)) if i not in S]
            if not todo:
                break
            i = min(todo, key=lambda i: abs(z[i]) / norms[i])
            u = (-1.0 if a[i] else 1.0) * W[i]
            B = np.stack([n] + [W[j] for j in S], axis=1)
            p = u - B @ np.linalg.lstsq(B, u, rcond=None)[0]
            if np.linalg.norm(p) <= TOL * np.linalg.norm(u):
                break
            rate = W @ p
            with np.errstate(divide="ignore", invalid="ignore"):
                tau = np.where(a & (rate < 0), z / -rate, np.where(~a & (rate > 0), -z / rate, np.inf))
            tau[S] = np.inf
            j = int(np.argmin(tau))
            if not math.isfinite(tau[j]):
                break
            y = y + max(float(tau[j]), 0.0) * p
            if np.isnan(w[j]) or j == last:
                S.append(j)
            else:
                n = n + (-1.0 if a[j] else 1.0) * w[j] * W[j]
                a[j] = not a[j]
                last = j
        if not np.isnan(w[S]).any() or (self.box is not None and (np.any(y < self.box[0]) or np.any(y > self.box[1]))):
            return None
        return y, S, a, n

    def _jump(self, st: dict) -> bool | None:
        """Cross several walls in one search (gradient probes): from a corner y of the surface on walls S, into the
        cell across all of them, on a short line at constant z_S.  There the surface's normal is
        n' = n + sum_S s_j w_j W_j (known weights folded into n), so the jump between the line's two ends lies in
        span{n, W_j: w_j unknown} and its coefficients give every unknown w_j of S at once (2 points, where the walk
        spends 2 a wall); the crossing they predict must lie between the two ends.  True: st moved into that cell;
        False: read, no such jump; None: no corner to try."""
        if isinstance(self.probe, FiniteDifferenceProbe):
            return None
        corner = self._corner(st)
        if corner is None:
            return None
        y, S, a, n = corner
        W, b, w = self.W, self.b, st["w"]
        sgn = np.where(a[S], -1.0, 1.0)  # s_j: the side of wall j across it
        known = [k for k, j in enumerate(S) if not np.isnan(w[j])]
        U = [j for j in S if np.isnan(w[j])]
        base = n + sum((sgn[k] * w[S[k]] * W[S[k]] for k in known), np.zeros_like(n))
        norms = np.linalg.norm(W, axis=1)
        WS = W[S]
        e = np.linalg.lstsq(WS, sgn * norms[S], rcond=None)[0]  # unit distance across every wall of S
        q = base - WS.T @ np.linalg.lstsq(WS.T, base, rcond=None)[0]  # constant z_S
        if np.linalg.norm(e) == 0 or np.linalg.norm(q) <= TOL * np.linalg.norm(base):
            return None
        q /= np.linalg.norm(q)
        others = np.ones(len(W), bool)
        others[S] = False
        zy = W @ y + b
        room = float((np.abs(zy[others]) / norms[others]).min()) if others.any() else float(np.linalg.norm(y)) + 1.0
        if not math.isfinite(room) or room <= 0:
            return None
        y0 = y + 0.01 * room / float(np.linalg.norm(e)) * e
        z0, rq = W @ y0 + b, W @ q
        with np.errstate(divide="ignore", invalid="ignore"):
            t0 = np.where(others & (rq != 0), -z0 / rq, np.nan)
        h = 0.1 * room
        if np.any(t0 > 0):
            h = min(h, 0.5 * float(np.nanmin(np.where(t0 > 0, t0, np.nan))))
        if np.any(t0 < 0):
            h = min(h, -0.5 * float(np.nanmax(np.where(t0 < 0, t0, np.nan))))
        line = Line(y0, q)
        ends_x = line.at(np.array([-h, h]))
        if h <= 0 or (self.box is not None and (np.any(ends_x < self.box[0]) or np.any(ends_x > self.box[1]))):
            return None
        self.out.searches += 1
        ends = self.probe.glance(line, (-h, h))
        self.out.samples += [(line.at(pc.t), pc) for pc in ends]
        jump = ends[1].g - ends[0].g
        B = np.stack([base] + [W[j] for j in U], axis=1)
        if not np.any(jump):
            return False
        cf, *_ = np.linalg.lstsq(B, jump, rcond=None)
        if cf[0] == 0 or np.linalg.norm(B @ cf - jump) > TOL * np.linalg.norm(jump):
            return False
        su = np.where(a[U], -1.0, 1.0)
        wu = su * cf[1:] / cf[0]
        n_new = base + W[U].T @ (su * wu)
        t = -float(n_new @ (y0 - y)) / float(n_new @ q)  # where the surface crosses the line, from the weights read
        if not -h < t < h:
            return False
        w[U] = wu
        a[S] = ~a[S]
        st["x"], st["a"], st["n"] = line.at(t), a, n_new
        return True

    def _follow(self, kink: Kink) -> SurfaceRow | None:
        W, b = self.W, self.b
        x = kink.x
        jump = kink.jump
        if not np.any(jump):
            return None
        st = {"x": x.copy(), "a": W @ x + b > 0, "n": jump / np.linalg.norm(jump), "w": np.full(len(W), np.nan)}
        failed: set[int] = set()
        misses = 0  # corner crossings in a row that found no jump (2 of them leave the rest to one wall at a time)
        while np.isnan(st["w"]).any():
            if misses < 2:
                jumped = self._jump(st)
                if jumped is not None:
                    misses = 0 if jumped else misses + 1
                    if jumped:
                        continue
            z = W @ st["x"] + b
            todo = [i for i in np.flatnonzero(np.isnan(st["w"])) if i not in failed]
            if not todo:
                if not self._from_normal(st):
                    return None
                break
            i = min(todo, key=lambda i: abs(z[i]) / np.linalg.norm(W[i]))
            if not self._walk(st, i):
                if st.get("inconsistent"):
                    return None
                failed.add(i)
            else:
                failed.clear()
        # a crossing predicted from the measured weights must hold where it was not measured (the farthest wall the
        # surface reaches: a walk that cannot get there, e.g. from a corner of many walls, tries the next one)
        z = W @ st["x"] + b
        for far in np.argsort(-np.abs(z) / np.linalg.norm(W, axis=1))[:MAX_REJECTED]:
            searches = self.out.searches
            if self._walk(st, int(far), check=True):
                break
            if st.get("inconsistent") or self.out.searches > searches:
                return None
        else:
            return None
        n, a, w = st["n"], st["a"], st["w"]
        u = W.T @ (w * a) - n
        c = -float(np.maximum(W @ st["x"] + b, 0.0) @ w - u @ st["x"])
        return SurfaceRow(w, u, c, st["x"].copy())

    def _from_normal(self, st: dict) -> bool:
        """The weights of walls the surface never crosses (8-16-8-1 attack seed 1: a layer-2 neuron on at 0.4% of
        inputs, first-layer unit 12 on wherever it is), read from the surface's normal in its cell once every
        orientation is resolved: there n = W^T (w o (a - delta)) exactly, so the unknown w_j of units oriented on
        (a_j != delta_j) solve a least-squares system that must leave a relative residual <= TOL.  Whether it did."""
        if None in self.out.signs:
            return False
        W, n, a, w = self.W, st["n"], st["a"], st["w"]
        on = a.astype(float) - (np.array(self.out.signs) < 0)  # a - delta: +-1 where the oriented unit is on
        U = np.flatnonzero(np.isnan(w))
        if not np.all(on[U]):
            return False
        K = np.flatnonzero(~np.isnan(w))
        rhs = n - W[K].T @ (w[K] * on[K])
        B = W[U].T * on[U]
        wu, *_ = np.linalg.lstsq(B, rhs, rcond=None)
        if np.linalg.matrix_rank(B) < len(U) or np.linalg.norm(B @ wu - rhs) > TOL * np.linalg.norm(n):
            return False
        w[U] = wu
        return True

    def _on_surface(self, r: SurfaceRow, x: np.ndarray) -> bool:
        size = np.abs(np.maximum(self.W @ x + self.b, 0.0)) @ np.abs(r.w) + np.abs(r.u) @ np.abs(x) + abs(r.c)
        return abs(r.value(self.W, self.b, x[None])[0]) <= TOL * size

    def followed(self, x: np.ndarray) -> bool:
        """Whether x lies on a surface followed already (a kink there seeds nothing new: its gradients unread)."""
        return any(self._on_surface(r, x) for r in self.out.rows)

    def _explained(self, kink: Kink) -> bool:
        x, jump = kink.x, kink.jump
        for r in self.out.rows:
            g = r.grad(self.W, self.b, x)
            if not self._on_surface(r, x):
                continue
            cf = (g @ jump) / (g @ g) if g @ g > 0 else 0.0
            if np.linalg.norm(jump - cf * g) <= TOL * np.linalg.norm(jump):
                return True
        return False

    # ------------------------------------------------------------------ the solve
    def run(self, seeds: list[Kink]) -> Orientation:
        """Follow a surface from every seed kink no followed row explains; solve for the orientations."""
        start, rejected = self.probe.points, 0
        for k in seeds:
            if rejected >= MAX_REJECTED:
                break
            if id(k) in self._tried or self._explained(k):
                continue
            self._tried[id(k)] = k
            row = self._follow(k)
            if row is None:
                self.out.seeds_rejected += 1
                rejected += 1
            else:
                self.out.rows.append(row)
                rejected = 0
        self.out.points += self.probe.points - start
        self._solve()
        return self.out

    def _solve(self) -> None:
        W, b, rows = self.W, self.b, self.out.rows
        self.out.next_W = self.out.next_b = None  # a solve that leaves a sign open leaves no next layer of older rows
        if not rows:
            return
        A = np.vstack([W.T * r.w[None, :] / np.abs(r.w).max() for r in rows])
        y = np.concatenate([r.u / np.abs(r.w).max() for r in rows])
        delta, *_ = np.linalg.lstsq(A, y, rcond=None)
        sv, Vt = np.linalg.svd(A)[1:]
        null = Vt[len(sv):] if len(sv) < A.shape[1] else np.zeros((0, A.shape[1]))
        null = np.vstack([null, Vt[:len(sv)][sv <= TOL * sv[0]]])
        pinned = np.all(np.abs(null) <= TOL, axis=0) if len(null) else np.ones(A.shape[1], bool)
        rounded = np.clip(np.round(delta), 0, 1)
        self.out.residual = float(np.linalg.norm(A @ rounded - y) / max(np.linalg.norm(y), np.finfo(float).tiny))
        clean = self.out.residual <= TOL
        self.out.signs = [(-1 if r else 1) if clean and p and abs(d - r) <= TOL else None
                          for d, r, p in zip(delta, rounded, pinned)]
        if None in self.out.signs:
            return
        s = np.array(self.out.signs, dtype=float)
        Wo, bo = W * s[:, None], b * s
        rows_w = np.array([r.w / np.linalg.norm(r.w) for r in rows])
        self.out.next_W = rows_w
        self.out.next_b = np.array([-float(np.maximum(Wo @ r.x + bo, 0.0) @ rw) for r, rw in zip(rows, rows_w)])


class FiniteDifferenceProbe(ValueGradientProbe):
    """Values only, read as a value and a gradient per point: the gradient of the scalar the value probe reads
    along lines (a random mix of the outputs) by forward differences along the d coordinates (d + 1 values; exact
    but for the answers' noise over the step inside one linear piece), its error bound carried with it."""

    name = "value (finite differences)"

    def __init__(self, values: ValueProbe, d: int, step: float):
        self.values, self.step, self.eye = values, step, np.eye(d)
        self.limit = math.inf  # a shorter step where walls are close (set by the caller)
        self.dirs: np.ndarray | None = None  # orthonormal columns: read the gradient's projection on them only
        self.output, self.grad_kind, self.points = 0, "gradient", 0

    def read(self, line: Line, ts, kinds=None) -> list[Piece]:
        out, step = [], min(self.step, self.limit)
        E = self.eye if self.dirs is None else self.dirs.T
        for t in ts:
            x = line.at(float(t))
            y = self.values.values(np.vstack([x[None], x[None] + step * E])) @ self.values.r
            self.points += len(y)
            g = (y[1:] - y[0]) / step
            out.append(Piece(float(t), g if self.dirs is None else self.dirs @ g, float(y[0]), None,
                             4 * self.values.noise / step))
        return out

    def kinks_on(self, line: Line, lo: float, hi: float, skip=None, until=None, ts=None) -> tuple[list[Kink], list[Piece]]:
        """The kinks of the segment by the value probe's own line search (three-value slopes), each with the
        gradients read a little way to either side (never within a difference step of the kink); kinks at points
        x where ``skip(x)`` holds (known already) are left out, and the reading stops after the first kink where
        ``until(kink)`` holds (the one looked for): their 2(d + 1) values unasked.  ``ts``: the segment's kinks when
        they were searched already (no line search)."""
        ts = sorted(self.values.kinks(line.x0, line.v, lo, hi) if ts is None else ts)
        bounds = [lo] + ts + [hi]
        kinks, pieces = [], []
        for i, t in enumerate(ts):
            if skip is not None and skip(line.at(t)):
                continue
            room = min(t - bounds[i], bounds[i + 2] - t)
            eta = min(0.25 * room, 100 * min(self.step, self.limit) / max(float(np.linalg.norm(line.v)), 1e-300))
            left, right = self.read(line, [t - eta, t + eta])
            kinks.append(Kink(line, t, left, right, eta))
            pieces += [left, right]
            if until is not None and until(kinks[-1]):
                break
        return kinks, pieces

    def _value_tol(self, a: Piece, b: Piece, line: Line) -> float:
        # the answers' noise on both values and the slope's error over the distance between them
        slope_err = (a.err + b.err) * float(np.abs(line.v).sum()) * abs(b.t - a.t)
        return ValueGradientProbe._value_tol(a, b, line) + slope_err + 4 * self.values.noise


def orient_last(H: np.ndarray, W: np.ndarray, b: np.ndarray, Y: np.ndarray, tol: float) -> tuple[list[int | None], float]:
    """The last hidden layer's orientations from values: Y (outputs at points whose last known activations are H)
    fitted on relu(z) and relu(-z) of every row z = W h + b; exactly one of each pair carries weight (the other
    within ``tol`` of it, or of 10 x the fit's relative residual where the rows are less precise), or None.  Also
    the fit's worst residual."""
    Z = H @ W.T + b
    D = np.hstack([np.maximum(Z, 0), np.maximum(-Z, 0), np.ones((len(Z), 1))])
    sol, *_ = np.linalg.lstsq(D, Y, rcond=None)
    residual = float(np.abs(D @ sol - Y).max())
    tol = max(tol, 10 * residual / max(float(np.abs(Y).max()), np.finfo(float).tiny))  # rows measured less precisely
    n = len(b)
    signs: list[int | None] = []
    for i in range(n):
        a_, b_ = np.abs(sol[i]).max(), np.abs(sol[n + i]).max()
        big = max(a_, b_)
        signs.append(None if big == 0 or min(a_, b_) > tol * big else (1 if a_ >= b_ else -1))
    return signs, residual
