"""Reading a piecewise-linear network from its values alone.

A ReLU network is affine on each cell of a partition of its input space, so along a line
x(t) = x0 + t v its output is piecewise linear in t.  :class:`ValueProbe` turns value queries
into the three things the value attacks need (Carlini, Jagielski, Mironov, CRYPTO 2020, section 4;
Canales-Martinez et al., EUROCRYPT 2024):

- ``kinks(x0, v, lo, hi)``: the critical points on a segment, by a value-only line search.  Each
  end of a gap is read as a line (a value and a slope from three values, collinear within the
  noise); the two lines meet at t*; one more value there on both lines and one at each side of t*
  confirm a single kink (else the gap is split); t* is then re-intersected from the long baselines
  between the confirming values, which pins it to the noise of the values.
- ``derivatives(x, U, step)``: forward differences along the columns of ``U`` (directional
  derivatives restricted to the directions that matter: the input's coordinates for the first layer,
  the directions that move one known hidden unit each for deeper ones), all outputs at once.
- ``jump(x, v, eta, U, step)``: the change of those derivatives across a kink at x (line direction v).

The probe reads what the oracle offers: raw values, or probabilities turned to logits in log space
(sigmoid: log p - log(1 - p); softmax: log p_k - log p_0, the logit differences, themselves a ReLU
network).  Its noise floor ``noise`` is derived from the answers: float64 rounding of the output scale,
the oracle's rounding to N decimals (half a unit in the last place, amplified by the log for
probabilities).  Every answer is kept (``points``, ``answers``) so that a final affine fit costs nothing.
"""

from __future__ import annotations

import numpy as np

from modelrecon.attacks.piecewise import NotPiecewiseLinear, RoundedAnswers
from modelrecon.oracle import Oracle, OracleError

EPS = np.finfo(np.float64).eps


class ValueProbe:
    """Value queries through one oracle, read as a piecewise-linear function."""

    def __init__(self, oracle: Oracle, seed: int = 0):
        if "value" in oracle.kinds:
            self.kind = "value"
        elif "probabilities" in oracle.kinds:
            self.kind = "probabilities"
        else:
            raise OracleError("value-only extraction needs 'value' or 'probabilities' queries; "
                              f"this oracle offers {', '.join(oracle.kinds)}")
        self.oracle = oracle
        self.rounding = oracle.options.get("round_decimals")
        self.k = oracle.n_outputs if self.kind == "value" or oracle.n_outputs == 1 else oracle.n_outputs - 1
        rng = np.random.default_rng(seed)
        self.r = rng.standard_normal(self.k)  # the scalar read along lines: a random mix of the outputs
        self.scale = 1.0  # output scale, raised as answers come in
        self.points: list[np.ndarray] = []
        self.answers: list[np.ndarray] = []
        self.asked = 0  # values asked so far

    # -- answers ---------------------------------------------------------------------
    def values(self, X: np.ndarray) -> np.ndarray:
        """(N, k) outputs (logits, or logit differences read from probabilities)."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        shaped = X.reshape(len(X), *self.oracle.input_shape)  # the points are flat; the target takes its own shape
        if self.kind == "value":
            Y = np.asarray(self.oracle.value(shaped), dtype=np.float64).reshape(len(X), -1)
            if not np.isfinite(Y).all():
                raise NotPiecewiseLinear(f"it answered NaN or Inf at {int(np.sum(~np.isfinite(Y).all(axis=1)))} of "
                                         f"{len(X)} points")
        else:
            P = np.asarray(self.oracle.probabilities(shaped), dtype=np.float64)
            with np.errstate(divide="ignore"):
                if P.ndim == 1:
                    Y = (np.log(P) - np.log1p(-P))[:, None]
                else:
                    Y = np.log(P[:, 1:]) - np.log(P[:, :1])
            if not np.isfinite(Y).all():
                if self.rounding is not None and self.asked:  # an attack's failure, not a refused target
                    raise RoundedAnswers(f"a probability rounded to {self.rounding} decimals came back 0 or 1 after "
                                         f"{self.asked} values: its logit is lost (saturated by the rounding)")
                raise OracleError("a probability answer is 0 or 1: its logit is lost (saturated); "
                                  "value-only extraction needs unsaturated probabilities")
        self.points.append(X)
        self.answers.append(Y)
        self.asked += len(X)
        self.scale = max(self.scale, float(np.max(np.abs(Y))))
        return Y

    def g(self, X: np.ndarray) -> np.ndarray:
        return self.values(X) @ self.r

    @property
    def noise(self) -> float:
        """A bound on the error of one answer of the scalar read along lines."""
        base = 64 * EPS * self.scale
        if self.rounding is not None:
            unit = 0.5 * 10.0 ** (-self.rounding)
            if self.kind == "probabilities":
                unit *= 4 * np.exp(min(self.scale, 700.0))  # d logit / dp = 1/(p(1-p)) <= 4 e^|logit| / ...
            base += unit
        return base * float(np.sum(np.abs(self.r)))

    def cache(self) -> tuple[np.ndarray, np.ndarray]:
        return np.vstack(self.points), np.vstack(self.answers)

    # -- lines -------------------------------------------------------------------------
    def _stencil(self, x0, v, t, h):
        """(value, slope) at t from three values, or None when they are not collinear."""
        g = self.g(x0 + np.outer([t - h, t, t + h], v))
        if abs(g[0] - 2 * g[1] + g[2]) > 4 * self.noise:
            return None
        return g[1], (g[2] - g[0]) / (2 * h)

    def _end(self, x0, v, t, h, toward):
        """A clean (value, slope) at t, moving toward the gap until the stencil is collinear."""
        for _ in range(30):
            s = self._stencil(x0, v, t, h)
            if s is not None:
                return t, s
            t += toward * 3 * h
            h /= 2
        raise _Unresolved(t)

    def kinks(self, x0: np.ndarray, v: np.ndarray, lo: float, hi: float, resolution: float | None = None,
              max_kinks: int = 100000, max_values: int = 100_000) -> list[float]:
        """Critical points of the outputs on x0 + t v, lo < t < hi (sorted); more than ``max_values`` values on the
        line (a smooth target's bends split down to the resolution) is not a ReLU network."""
        start = self.asked
        x0, v = np.asarray(x0, float), np.asarray(v, float)
        span = hi - lo
        h = span * 1e-6
        resolution = span * 1e-12 if resolution is None else resolution
        a, (ga, sa) = self._end(x0, v, lo, h, +1)
        b, (gb, sb) = self._end(x0, v, hi, h, -1)
        found: list[float] = []
        noise = 2 * self.noise
        stack = [(a, ga, sa, 2 * noise / h, b, gb, sb, 2 * noise / h)]
        while stack and len(found) < max_kinks:
            if self.asked - start > max_values:
                cap = f"more than {max_values} values on one line without isolating its kinks"
                level = self.rounded_at(x0 + np.outer(np.linspace(lo, hi, 5)[1:-1], v), h * v[None])
                if level is not None:
                    raise RoundedAnswers(f"{cap}: the answers are rounded (second differences about {level:.2g} of the "
                                         "output scale that do not shrink with the step, as a bend's would): value "
                                         "mode needs float64 answers")
                raise NotPiecewiseLinear(cap)
            a, ga, sa, ea, b, gb, sb, eb = stack.pop()  # ea, eb: errors of the stencils' slopes

            def near(g, g0, s0, e0, dt):  # g on the line (g0, s0) at distance dt, within the errors
                return abs(g - g0 - s0 * dt) <= 2 * noise + e0 * abs(dt)

            chord = (gb - ga) / (b - a)
            if abs(sa - sb) <= ea + eb and abs(chord - sa) <= ea + 2 * noise / (b - a) \
                    and abs(chord - sb) <= eb + 2 * noise / (b - a):
                if self.rounding is None or not self._bends_inside(x0, v, a, ga, b, gb):
                    continue  # one piece
            if b - a < resolution:
                found.append(0.5 * (a + b))  # unresolved cluster: reported as one kink
                continue
            t = (gb - ga + sa * a - sb * b) / (sa - sb) if sa != sb else 0.5 * (a + b)
            if not (a + 2 * h < t < b - 2 * h):
                t = 0.5 * (a + b)
            q = min(t - a, b - t) / 2
            gl, gr = self.g(x0 + np.outer([t - q, t + q], v))
            on_left = near(gl, ga, sa, ea, t - q - a)
            on_right = near(gr, gb, sb, eb, t + q - b)
            if on_left and on_right:
                # the long-baseline lines through (a, ga)-(t-q, gl) and (t+q, gr)-(b, gb), precise to the values'
                # noise, meet at tk; one bend there (and not two opposite bends on one side of it, which pass the
                # values at t -+ q as well) puts a value just before tk on the left line and one just after it on
                # the right line, where the two lines differ by many times the noise
                sl = (gl - ga) / (t - q - a)
                sr = (gb - gr) / (b - t - q)
                if sl != sr:
                    tk = (gr - gl + sl * (t - q) - sr * (t + q)) / (sl - sr)
                    dt = min(q / 2, max(1e-3 * q, 64 * noise / abs(sl - sr)))
                    if t - q < tk - dt and tk + dt < t + q:
                        gkl, gkr = self.g(x0 + np.outer([tk - dt, tk + dt], v))
                        if abs(gkl - gl - sl * (tk - dt - t + q)) <= 4 * noise \
                                and abs(gkr - gr - sr * (tk + dt - t - q)) <= 4 * noise:
                            found.append(tk)
                            continue
            m = 0.5 * (a + b) if not (on_left or on_right) else t
            hm = min(h, (b - a) * 1e-3)
            try:
                m, (gm, sm) = self._end(x0, v, m, hm, +1)
            except _Unresolved:
                found.append(m)
                continue
            if not (a < m < b):
                found.append(0.5 * (a + b))
                continue
            em = 2 * noise / hm
            stack.append((a, ga, sa, ea, m, gm, sm, em))
            stack.append((m, gm, sm, em, b, gb, sb, eb))
        return sorted(found)

    def _bends_inside(self, x0, v, a, ga, b, gb) -> bool:
        """Whether the value midway between a and b is off their chord: asked for rounded answers when a segment passes
        as one piece, as the end slopes' errors (2 noise / h, 4e-3 at 6 decimals) may hide its bends (10-10-10-1 at 6
        decimals: lines with 9 first-layer crossings read as one piece)."""
        gm = self.g(x0[None] + 0.5 * (a + b) * v[None])[0]
        return abs(gm - 0.5 * (ga + gb)) > 4 * self.noise

    def second_differences(self, X: np.ndarray, U: np.ndarray) -> np.ndarray:
        """|g(x - u) - 2 g(x) + g(x + u)| at each row x of X, u of U."""
        g = self.g(np.vstack([X - U, X, X + U]))
        return np.abs(g[:len(X)] - 2 * g[len(X):2 * len(X)] + g[2 * len(X):])

    def rounded_at(self, X: np.ndarray, U: np.ndarray, wide: np.ndarray | None = None) -> float | None:
        """Second differences at the rows of X along U (``wide``, when already asked) and along U / 32: a smooth
        bend shrinks 1024x, a kink's vanishes once the step no longer spans it, the answers' rounding stays (float32
        files, rounded APIs).  When one stays over the float64 tolerance, shrunk less than 32x: its size relative
        to the output scale; else None."""
        wide = self.second_differences(X, U) if wide is None else wide
        narrow = self.second_differences(X, U / 32)
        stays = narrow > np.maximum(wide / 32, 4 * self.noise)
        if np.any(stays):
            return float(narrow[stays].max()) / (self.scale * float(np.sum(np.abs(self.r))))
        return None

    # -- derivatives -------------------------------------------------------------------
    def derivatives(self, x: np.ndarray, U: np.ndarray, step: float) -> np.ndarray:
        """(k, m) derivatives of the outputs along the m columns of U at x (forward differences)."""
        X = np.vstack([x[None], x[None] + step * U.T])
        Y = self.values(X)
        return (Y[1:] - Y[0]).T / step

    def jump(self, x: np.ndarray, v: np.ndarray, eta: float, U: np.ndarray, step: float) -> np.ndarray:
        """(k, m) change of the derivatives along U from x - eta v to x + eta v."""
        return self.derivatives(x + eta * v, U, step) - self.derivatives(x - eta * v, U, step)


class _Unresolved(RuntimeError):
    pass
