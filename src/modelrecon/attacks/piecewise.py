"""The piecewise-linear core: a line through input space, the probes that read a ReLU
network's linear pieces along it, and the search for its critical points (kinks).

A ReLU network is affine on each cell of its activation pattern, so along a line
x(t) = x0 + t v its gradient is piecewise constant and its value piecewise linear in t.
A :class:`Probe` reads the piece through a point; what it asks decides how a kink between
two different pieces is found:

- :class:`GradientProbe` (gradients only): bisection until the interval holding the change
  is shorter than ``resolution`` of the line's extent (Milli et al. 2019).
- :class:`ValueGradientProbe` (a value and a gradient per point): the two pieces are two
  lines in t; one kink between them lies where they meet.  The guess is confirmed by the
  gradients at t* -/+ delta (the activation pattern itself, so it cannot be fooled by close
  values); a failed check subdivides the gap at the two new points.
- :class:`LazyValueGradientProbe`: the same, but a gradient first; a point whose gradient is a
  neighbouring piece's takes its value from that piece's line, so only a new piece costs a value,
  and the right-hand confirming gradient is asked only where the left one passed.

A mode is a probe class passed to the search, not a flag read along the way: a probe says how it
reads a piece (``read``, or ``glance`` then ``fill``), tells pieces apart (``same``), locates and
confirms a kink (``locate``, ``confirm``).  :func:`critical_points` works every gap of a line in
rounds (one batch of queries per round); :func:`reach` grows a search interval side by side and
:func:`search_line` both sides at once.  relu2's three modes (attacks/relu2.py) and the deep attack
(attacks/relu.py) stand on it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

from modelrecon.oracle import Oracle, QueryBudgetExceeded

EPS = np.finfo(np.float64).eps
# a gradient entry computed by backpropagation in float64 is off by a few ulps of the largest partial sums;
# two readings of the same piece agree within this many ulps of the larger gradient (distinct pieces differ by a
# neuron's whole contribution)
GRAD_ULPS = 2.0 ** 10


class NotPiecewiseLinear(RuntimeError):
    """The gradient along a line keeps changing: the target is not a ReLU (piecewise-linear) network."""


class RoundedAnswers(NotPiecewiseLinear):
    """The values keep bending because they are rounded (float32 files): not a sign of a smooth target."""


@dataclass
class Piece:
    """What a probe read at line position t: the gradient of the probed output and, if asked, its value."""

    t: float
    g: np.ndarray
    f: float | None = None
    y: np.ndarray | None = None  # the values of every output (value probes)
    err: float | None = None  # the gradient's rounding, when the probe knows it (else ulps of its largest entry)
    f_err: float | None = None  # a bound on the value's error where it was not read but followed from another's
    # (a predicted crossing's: its misplacement times the slope's jump; NaN: not known); None: read (its rounding)


@dataclass
class Kink:
    """A critical point: the pieces read on its left and its right, and the half-width (in t) of the interval
    known to hold it; ``loc``, where tighter, the half-width around t where its two sides' lines place it (a kink
    read at a predicted crossing: its sides 2^-30 of the segment apart, the lines meeting far closer)."""

    line: "Line"
    t: float
    left: Piece
    right: Piece
    width: float
    loc: float | None = None

    @property
    def x(self) -> np.ndarray:
        return self.line.at(self.t)

    @property
    def jump(self) -> np.ndarray:
        return self.right.g - self.left.g


class Line:
    """x(t) = x0 + t v."""

    def __init__(self, x0: np.ndarray, v: np.ndarray):
        self.x0 = np.asarray(x0, dtype=np.float64)
        self.v = np.asarray(v, dtype=np.float64)

    def at(self, t) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        return self.x0 + t[..., None] * self.v if t.ndim else self.x0 + float(t) * self.v


class Probe:
    """Reads linear pieces of one output through the oracle and counts the distinct points asked."""

    kinds: tuple[str, ...] = ()
    name = "probe"

    def __init__(self, oracle: Oracle, output: int = 0, grad_kind: str = "gradient"):
        self.oracle = oracle
        self.output = output
        self.grad_kind = grad_kind
        self.points = 0

    def ask(self, X: np.ndarray, kinds: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        X = np.atleast_2d(X)
        got = self.oracle.query(X.reshape(len(X), *self.oracle.input_shape), kinds or self.kinds, self.output)
        self.points += len(X)
        out = {}
        if self.grad_kind in got:
            out["g"] = np.asarray(got[self.grad_kind], dtype=np.float64).reshape(len(X), -1)
        if "value" in got:
            out["f"] = np.asarray(got["value"], dtype=np.float64).reshape(len(X), -1)
        bad = ~np.all([np.isfinite(a).all(axis=1) for a in out.values()], axis=0)
        if bad.any():  # a ReLU network answers finite numbers everywhere (a broken export answered NaN on a half-space)
            raise NotPiecewiseLinear(f"it answered NaN or Inf at {int(bad.sum())} of {len(X)} points")
        return out

    def read(self, line: Line, ts, kinds: tuple[str, ...] | None = None) -> list[Piece]:
        """The pieces through x(t) for each t (``ask``'s answers: "g", and "f", "err" when it gives them)."""
        ts = [float(t) for t in ts]
        if not ts:
            return []
        got = self.ask(line.at(np.array(ts)), kinds)
        f, err = got.get("f"), got.get("err")
        return [Piece(t, got["g"][i], None if f is None else float(f[i, self.output]), None if f is None else f[i],
                      None if err is None else float(err[i]))
                for i, t in enumerate(ts)]

    def glance(self, line: Line, ts) -> list[Piece]:
        """The cheapest read that tells pieces apart (here: ``read``); ``fill`` completes what it leaves out."""
        return self.read(line, ts)

    def fill(self, line: Line, pieces: list[Piece], neighbours: list[tuple[Piece, ...]]) -> list[Piece]:
        """Complete glanced pieces, each lying between the neighbours given (here: nothing is left out)."""
        return pieces

    def read_between(self, line: Line, ts, neighbours: list[tuple[Piece, ...]]) -> list[Piece]:
        """The pieces at ts, each known to lie between its neighbours (a probe may save queries with them)."""
        return self.fill(line, self.glance(line, ts), neighbours)

    def confirm(self, line: Line, checks: list[tuple[Piece, Piece, float, float]]) -> list[tuple[bool, list[Piece]]]:
        """For each (a, b, t*, delta): whether one kink at t* joins pieces a and b (the pieces at t* -/+ delta are
        a's and b's), and the pieces read (on failure they split the gap)."""
        sides = self.read(line, [t + s * delta for _, _, t, delta in checks for s in (-1, 1)])
        return [(self.same(a, left, line) and self.same(right, b, line), [left, right])
                for (a, b, _, _), left, right in zip(checks, sides[::2], sides[1::2])]

    @staticmethod
    def same_gradient(a: Piece, b: Piece) -> bool:
        if a.err is not None and b.err is not None:
            return bool(np.abs(a.g - b.g).max() <= a.err + b.err)
        scale = max(np.abs(a.g).max(), np.abs(b.g).max(), np.finfo(np.float64).tiny)
        return bool(np.abs(a.g - b.g).max() <= GRAD_ULPS * EPS * scale)

    def same(self, a: Piece, b: Piece, line: Line) -> bool:
        raise NotImplementedError

    def locate(self, a: Piece, b: Piece, line: Line) -> tuple[float, float] | None:
        """(t*, delta): the kink if a and b are adjacent pieces and the distance at which to confirm it; None:
        the probe cannot tell where, bisect."""
        raise NotImplementedError

    def placed(self, a: Piece, b: Piece, line: Line) -> float | None:
        """How far from ``locate``'s t* a kink alone between pieces a and b lies (``Kink.loc``); None: known only
        within its confirming half-width."""
        return None


class GradientProbe(Probe):
    kinds = ("gradient",)
    name = "gradient"

    def same(self, a: Piece, b: Piece, line: Line) -> bool:
        return self.same_gradient(a, b)

    def locate(self, a: Piece, b: Piece, line: Line) -> None:
        return None


class ValueGradientProbe(Probe):
    kinds = ("value", "gradient")
    name = "value+gradient"

    @staticmethod
    def value_on(q: Piece, t: float, line: Line) -> float:
        """The value at t of the affine piece read as q."""
        return q.f + float(q.g @ line.v) * (t - q.t)

    @staticmethod
    def _value_tol(a: Piece, b: Piece, line: Line) -> float:
        sa, sb = a.g @ line.v, b.g @ line.v
        ta = np.abs(a.g) @ np.abs(line.v)
        return GRAD_ULPS * EPS * (abs(a.f) + abs(b.f) + (ta + abs(sa) + abs(sb)) * (abs(a.t) + abs(b.t)))

    def same(self, a: Piece, b: Piece, line: Line) -> bool:
        if not self.same_gradient(a, b):
            return False
        # the same gradient on both ends and a value on the same affine piece: no neuron switched on and off between
        # (a value that followed from another's is known within its own bound, ``f_err``, besides its rounding; with
        # no bound known, as a reading: where that fails, ``critical_points`` reads it before it bisects)
        predicted = a.f + (a.g @ line.v) * (b.t - a.t)
        slack = sum(p.f_err for p in (a, b) if p.f_err is not None and not np.isnan(p.f_err))
        return abs(b.f - predicted) <= self._value_tol(a, b, line) + slack

    def locate(self, a: Piece, b: Piece, line: Line) -> tuple[float, float] | None:
        sa, sb = float(a.g @ line.v), float(b.g @ line.v)
        if sa == sb:
            return None
        t = (b.f - a.f + sa * a.t - sb * b.t) / (sa - sb)
        if not a.t < t < b.t:
            return None
        # where the two lines meet is known to within their rounding over the difference of slopes
        err = self._value_tol(a, b, line) / abs(sa - sb)
        delta = max(64 * err, 2.0 ** -36 * (b.t - a.t), 4 * EPS * (abs(t) + 1))
        return t, delta

    def placed(self, a: Piece, b: Piece, line: Line) -> float | None:
        """The two lines meet at the kink (the function is continuous there): their values' rounding (``_value_tol``,
        which also takes the slopes' times t) and a followed value's own bound (``Piece.f_err``; NaN: None) over the
        slopes' difference, at least t's own rounding."""
        sa, sb = float(a.g @ line.v), float(b.g @ line.v)
        bound = self._value_tol(a, b, line) + (a.f_err or 0.0) + (b.f_err or 0.0)
        if sa == sb or not np.isfinite(bound):
            return None
        t = (b.f - a.f + sa * a.t - sb * b.t) / (sa - sb)
        return max(bound / abs(sa - sb), 4 * EPS * (abs(t) + 1))


class LazyValueGradientProbe(ValueGradientProbe):
    """A value and a gradient per piece, but a gradient first: a point whose gradient is a neighbouring piece's
    lies on that piece's line and its value follows; only a new piece costs its value.  A kink is confirmed by
    gradients (the activation pattern, however close the two lines), the right one asked only where the left one
    passed.  Pieces are told apart by their gradients (``same``)."""

    name = "value+gradient (lazy values)"

    def same(self, a: Piece, b: Piece, line: Line) -> bool:
        return self.same_gradient(a, b)

    def glance(self, line: Line, ts) -> list[Piece]:
        return self.read(line, ts, (self.grad_kind,))

    def fill(self, line: Line, pieces: list[Piece], neighbours: list[tuple[Piece, ...]]) -> list[Piece]:
        unknown = []
        for p, near in zip(pieces, neighbours):
            q = next((q for q in near if q.f is not None and self.same_gradient(p, q)), None)
            if q is None:
                unknown.append(p)
            else:
                p.f, p.f_err = self.value_on(q, p.t, line), q.f_err
        if unknown:
            f = self.ask(line.at(np.array([p.t for p in unknown])), ("value",))["f"]
            for p, row in zip(unknown, f):
                p.f, p.y = float(row[self.output]), row
        return pieces

    def confirm(self, line: Line, checks: list[tuple[Piece, Piece, float, float]]) -> list[tuple[bool, list[Piece]]]:
        lefts = self.glance(line, [t - delta for _, _, t, delta in checks])
        passed = [i for i, ((a, *_), left) in enumerate(zip(checks, lefts)) if self.same_gradient(a, left)]
        rights = dict(zip(passed, self.glance(line, [checks[i][2] + checks[i][3] for i in passed])))
        out, read, near = [], [], []
        for i, ((a, b, *_), left) in enumerate(zip(checks, lefts)):
            right = rights.get(i)
            single = right is not None and self.same_gradient(right, b)
            got = [] if single else [left] + ([right] if right is not None else [])
            out.append((single, got))
            read += got
            near += [(a, b)] * len(got)
        self.fill(line, read, near)
        return out


PROBES = {p.name: p for p in (GradientProbe, ValueGradientProbe)}


def critical_points(probe: Probe, line: Line, lo: float, hi: float, pieces: list[Piece] | None = None,
                    resolution: float = 2.0 ** -40, max_points: int = 100_000,
                    relative_to: str = "span", known: list[Kink] | None = None) -> tuple[list[Kink], list[Piece]]:
    """Every kink of ``line`` between t = lo and hi, and the pieces read on the way (sorted by t).

    ``pieces`` already read on the line are reused; ``known`` kinks, each between two of them, are taken as found
    (the gap between their two sides is not searched again, nor a piece read between them).  A gap of one gradient
    whose values disagree only through a value that followed from another's (``Piece.f_err`` not None) has that
    value read first (a query of the point's value, no new point), and is then worked as any other.  A gap narrower
    than ``resolution`` of the line's extent (``relative_to="position"``: of its own |t|, at least 1) that still
    holds a change is one kink (several neurons switching there at once are reported as one).  The gaps are worked
    on in rounds, one query per round.
    On an exhausted budget the ``QueryBudgetExceeded`` carries ``found``: the kinks and pieces found so far.
    """
    have = {p.t: p for p in (pieces or [])}
    kinks: list[Kink] = list(known or [])
    found = {(k.left.t, k.right.t) for k in kinks}
    brackets = sorted(found)
    span = hi - lo

    def bracketed(t: float) -> bool:  # strictly between a known kink's two sides: that kink's gap
        i = bisect.bisect_left(brackets, (t,)) - 1
        return i >= 0 and brackets[i][0] < t < brackets[i][1]

    def narrow(a: Piece, b: Piece) -> bool:
        scale = span if relative_to == "span" else max(abs(a.t), abs(b.t), 1.0)
        return b.t - a.t <= resolution * scale

    start = probe.points
    try:
        ends = [t for t in (lo, hi) if t not in have]
        for p in probe.read(line, ends):
            have[p.t] = p
        ordered = [have[t] for t in sorted(have) if lo <= t <= hi and not bracketed(t)]
        gaps = list(zip(ordered[:-1], ordered[1:]))
        while gaps:
            if probe.points - start > max_points:
                raise NotPiecewiseLinear(f"more than {max_points} points on one line without isolating its kinks")
            checks, halves, followed, again = [], [], {}, []
            for a, b in gaps:
                if (a.t, b.t) in found or probe.same(a, b, line):
                    continue
                if probe.same_gradient(a, b) and (a.f_err is not None or b.f_err is not None):
                    followed.update((id(p), p) for p in (a, b) if p.f_err is not None)
                    again.append((a, b))
                    continue
                if narrow(a, b):  # one gradient on both sides: the values' own error, not a neuron switching
                    if not probe.same_gradient(a, b):
                        kinks.append(Kink(line, (a.t + b.t) / 2, a, b, (b.t - a.t) / 2))
                    continue
                guess = probe.locate(a, b, line)
                if guess is not None and a.t < guess[0] - guess[1] and guess[0] + guess[1] < b.t:
                    checks.append((a, b, *guess))
                else:
                    halves.append((a, b))
            for p in followed.values():
                p.f = p.f_err = None
            probe.fill(line, list(followed.values()), [()] * len(followed))
            gaps = again
            for (a, b, t, delta), (single, got) in zip(checks, probe.confirm(line, checks)):
                for p in got:
                    have[p.t] = p
                if single:
                    kinks.append(Kink(line, t, a, b, delta, probe.placed(a, b, line)))
                else:
                    inside = [a] + sorted(got, key=lambda p: p.t) + [b]
                    gaps += list(zip(inside[:-1], inside[1:]))
            mids = probe.read_between(line, [(a.t + b.t) / 2 for a, b in halves], halves)
            for (a, b), mid in zip(halves, mids):
                have[mid.t] = mid
                gaps += [(a, mid), (mid, b)]
    except QueryBudgetExceeded as e:
        e.found = (sorted(kinks, key=lambda k: k.t), [have[t] for t in sorted(have)])
        raise
    kinks.sort(key=lambda k: k.t)
    return kinks, [have[t] for t in sorted(have)]


def reach(probe: Probe, line: Line, start: Piece, grow: float = 2.0, patience: int = 1,
          limit: float = 2.0 ** 40) -> list[Piece]:
    """Walk out from ``start`` (away from t = 0) in steps of x ``grow`` until ``patience`` steps in a row show
    the piece last seen, or |t| reaches ``limit``: the pieces where it changed (the last one ends the search
    interval; far out every neuron of a ReLU network keeps one state)."""
    kept, end, t, quiet = [], start, start.t, 0
    while abs(t) < limit and quiet < patience:
        t *= grow
        (p,) = probe.glance(line, [t])
        if probe.same(end, p, line):
            quiet += 1
            continue
        kept += probe.fill(line, [p], [()])
        end, quiet = p, 0
    return kept


def search_line(probe: Probe, line: Line, extent: float | None, max_doublings: int = 12, predict=None,
                scale: float = 0.0, **kw) -> tuple[list[Kink], list[Piece], tuple[float, float]]:
    """Kinks of a line on [-extent, extent] (an input box's chord), or, with ``extent`` None, on an interval
    doubled from [-1, 1] until it covers [-scale, scale] and the pieces at both ends stop changing (far out every
    neuron of a ReLU network keeps one state).  ``scale``: the line's own scale, where its kinks lie (ends that
    agree nearer in are weak evidence: a d-dimensional line crosses a plane through its region at ~sqrt(d) times
    its distance to it).  ``predict(lo, hi)``: kinks known on the interval and the pieces read for them (taken as
    found)."""
    if extent is not None:
        known, read = predict(-extent, extent) if predict else ([], [])
        kinks, pieces = critical_points(probe, line, -extent, extent, pieces=read, known=known, **kw)
        return kinks, pieces, (-extent, extent)
    T = 1.0
    ends = probe.read(line, [-T, T])
    read = list(ends)
    for _ in range(max_doublings):
        far = probe.read_between(line, [-2 * T, 2 * T], [(ends[0],), (ends[1],)])  # a lazy probe: values for new pieces
        read += far
        T *= 2
        if T >= scale and probe.same(far[0], ends[0], line) and probe.same(ends[1], far[1], line):
            break
        ends = far
    known, more = predict(-T, T) if predict else ([], [])
    kinks, pieces = critical_points(probe, line, -T, T, pieces=read + more, known=known, **kw)
    return kinks, pieces, (-T, T)


def stay_above(rates: np.ndarray, offsets: np.ndarray, floor: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    """The part [lo, hi] of a line on which every affine function offsets + t rates stays >= floor (the line's
    stretch inside a region where known neurons are all active); (0, 0) when a constant one is below its floor."""
    for r_, o_, f_ in zip(rates, offsets, floor):
        if r_ > 0:
            lo = max(lo, (f_ - o_) / r_)
        elif r_ < 0:
            hi = min(hi, (f_ - o_) / r_)
        elif o_ < f_:
            return 0.0, 0.0
    return lo, hi
