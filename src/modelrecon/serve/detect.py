"""Extraction-pattern warnings: does a key's stream of inputs look like an attack?

Exact extraction attacks do not query like users.  Milli et al. (2019) walk random lines
and bisect them to find the kinks of a ReLU network; Tramer et al. (2016) and the
prediction-only linear attack perturb one point along the coordinate axes; many attacks
probe far outside the data.  The detector keeps, per API key, a window of recent inputs
and raises a warning (once per signal and key, then counts) when

``line``        ``line_points`` or more of the key's inputs lie on one straight line
                (collinearity to a relative tolerance well above float64 rounding),
``bisection``   the steps between successive inputs on such a line halve three times
                in a row (interval bisection),
``axis-probes`` ``sparse_points`` or more inputs differ from a recent input of the
                same key in at most ``sparse_coords`` coordinates (and in at least one),
``far-out``     ``far_points`` or more inputs lie outside the published input box by more
                than ``far_margin`` of its width, or (with a reference sample) have a norm
                beyond ``far_norm`` times the largest reference norm.

Every warning records the key's query count at which it fired, so a benchmark can say
how early an attack is flagged; the same detector run over ordinary traffic gives the
false-alarm rate (``benchmarks/serve_detect.py``).  The state is in memory; after a
restart the service refills each key's window from its query log.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SIGNALS = ("line", "bisection", "axis-probes", "far-out")


@dataclass
class Flag:
    key: str
    signal: str
    at_query: int  # the key's charged queries when it fired
    detail: str
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "signal": self.signal, "at_query": self.at_query, "detail": self.detail,
                "time": self.time}


@dataclass
class _Line:
    anchor: np.ndarray
    direction: np.ndarray
    ts: list[float]


@dataclass
class _KeyState:
    window: deque
    lines: deque
    counts: dict[str, int] = field(default_factory=lambda: {s: 0 for s in SIGNALS})
    flagged: set = field(default_factory=set)
    bisection_run: int = 0


class Detector:
    """Per-key extraction-pattern detector over flattened float64 inputs."""

    def __init__(self, input_dim: int, input_box: tuple[float, float] | None = None,
                 reference: np.ndarray | None = None, *, window: int = 128, recent_lines: int = 8,
                 max_lines: int = 64, line_points: int = 6, sparse_points: int = 8, sparse_coords: int | None = None,
                 far_points: int = 4, far_margin: float = 0.1, far_norm: float = 2.0, rtol: float = 1e-7):
        self.input_dim = int(input_dim)
        self.input_box = input_box
        self.ref_norm = None if reference is None else float(np.linalg.norm(
            np.asarray(reference, dtype=np.float64).reshape(len(reference), -1), axis=1).max())
        self.window, self.recent_lines, self.max_lines = window, recent_lines, max_lines
        self.line_points, self.sparse_points, self.far_points = line_points, sparse_points, far_points
        self.sparse_coords = sparse_coords if sparse_coords is not None else max(1, self.input_dim // 100)
        self.far_margin, self.far_norm, self.rtol = far_margin, far_norm, rtol
        self.states: dict[str, _KeyState] = {}

    def settings(self) -> dict[str, Any]:
        return {"window": self.window, "line_points": self.line_points, "sparse_points": self.sparse_points,
                "sparse_coords": self.sparse_coords, "far_points": self.far_points, "far_margin": self.far_margin,
                "far_norm": self.far_norm, "reference_norm": self.ref_norm, "rtol": self.rtol}

    def _state(self, key: str) -> _KeyState:
        if key not in self.states:
            self.states[key] = _KeyState(deque(maxlen=self.window), deque(maxlen=self.max_lines))
        return self.states[key]

    def observe(self, key: str, X: np.ndarray, queries_before: int = 0, cost_per_input: int = 1) -> list[Flag]:
        """Feed a batch asked by ``key``; returns the warnings raised for the first time."""
        X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
        st = self._state(key)
        new: list[Flag] = []
        with np.errstate(all="ignore"):  # huge inputs: an inf norm compares as far out, nothing more
            self._observe(st, key, X, queries_before, cost_per_input, new)
        return new

    def _observe(self, st: _KeyState, key: str, X: np.ndarray, queries_before: int, cost_per_input: int,
                 new: list[Flag]) -> None:
        for i, p in enumerate(X):
            at = queries_before + (i + 1) * cost_per_input
            for signal, detail in self._point(st, p):
                st.counts[signal] += 1
                if signal not in st.flagged:
                    st.flagged.add(signal)
                    new.append(Flag(key, signal, at, detail))
            st.window.append(p)

    def _point(self, st: _KeyState, p: np.ndarray) -> list[tuple[str, str]]:
        hits: list[tuple[str, str]] = []
        scale = np.linalg.norm(p)
        # far-out inputs
        if self.input_box is not None:
            lo, hi = self.input_box
            m = self.far_margin * (hi - lo)
            if np.any(p < lo - m) or np.any(p > hi + m):
                if st.counts["far-out"] + 1 >= self.far_points:
                    hits.append(("far-out", f"inputs outside the box [{lo}, {hi}] by more than {m:.3g}"))
                else:
                    st.counts["far-out"] += 1
        elif self.ref_norm is not None and scale > self.far_norm * self.ref_norm:
            if st.counts["far-out"] + 1 >= self.far_points:
                hits.append(("far-out", f"input norm {scale:.3g} > {self.far_norm} x the largest reference norm"))
            else:
                st.counts["far-out"] += 1
        if not st.window:
            return hits
        W = np.asarray(st.window)
        # axis probes: differs from a recent input in a few coordinates only
        tol = self.rtol * (np.abs(W) + np.abs(p) + 1.0)
        ndiff = (np.abs(W - p) > tol).sum(axis=1)
        if np.any((ndiff >= 1) & (ndiff <= self.sparse_coords)):
            if st.counts["axis-probes"] + 1 >= self.sparse_points:
                hits.append(("axis-probes", f"{self.sparse_points}+ inputs each differ from an earlier one in "
                                            f"<= {self.sparse_coords} coordinates"))
            else:
                st.counts["axis-probes"] += 1
        # collinearity with a known line
        on_line = None
        if st.lines:
            A = np.stack([ln.anchor for ln in st.lines])
            U = np.stack([ln.direction for ln in st.lines])
            R = p - A
            T = np.einsum("ij,ij->i", R, U)
            resid = np.linalg.norm(R - T[:, None] * U, axis=1)
            ok = resid <= self.rtol * (np.linalg.norm(A, axis=1) + scale + np.abs(T) + 1e-300)
            if ok.any():
                j = int(np.flatnonzero(ok)[0])
                on_line = st.lines[j]
                on_line.ts.append(float(T[j]))
        if on_line is not None:
            if len(on_line.ts) >= self.line_points:
                hits.append(("line", f"{len(on_line.ts)} inputs on one line"))
            ts = on_line.ts
            if len(ts) >= 3:
                a, b = abs(ts[-1] - ts[-2]), abs(ts[-2] - ts[-3])
                st.bisection_run = st.bisection_run + 1 if b > 0 and 0.45 <= a / b <= 0.55 else 0
                if st.bisection_run >= 3:
                    hits.append(("bisection", "steps along a line halved 3 times in a row"))
        else:  # new candidate lines through p and a few recent inputs
            for q in list(st.window)[-self.recent_lines:]:
                d = p - q
                n = np.linalg.norm(d)
                if n > self.rtol * (scale + np.linalg.norm(q) + 1e-300):
                    st.lines.append(_Line(q.copy(), d / n, [0.0, float(n)]))
        return hits

    def summary(self, key: str) -> dict[str, Any]:
        st = self.states.get(key)
        if st is None:
            return {"counts": {s: 0 for s in SIGNALS}, "flagged": []}
        return {"counts": dict(st.counts), "flagged": sorted(st.flagged)}
