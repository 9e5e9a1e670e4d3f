"""IBM ART's FunctionallyEquivalentExtraction (FEE) on a modelrecon oracle (optional benchmark peer).

What the wrapper does, and why (ART 1.20.1, ``art/attacks/extraction/functionally_equivalent_extraction.py``):

- **float64 inputs and answers.**  ART's ``BlackBoxClassifier`` rounds every *input* to float32 (its
  default ``preprocessing=(0, 1)`` is a ``StandardisationMeanStd`` that casts to ``ART_NUMPY_DTYPE``,
  read at import time) and casts every *answer* to ``art.config.ART_NUMPY_DTYPE`` (float32).  FEE finds critical points from slopes
  ``(f(t + eps) - f(t)) / eps`` with ``eps = delta / 10`` and accepts "no kink here" only if the two
  slopes of a step agree to ``rel_diff_slope = 1e-5``; float32 answers (relative 6e-8) give slopes
  wrong by ~1e-5 relative at ``eps = 5e-3`` (inputs rounded to float32 are worse: the step
  ``x(t + eps) - x(t)`` itself is off by ~1e-5), so steps without a kink are taken for kinks, the step
  is halved, ``eps`` shrinks, the noise grows, and the search either never ends or reports
  dozens of false critical points (146 for ``h = 2``, ``d = 4``).  That, not the target, was why ART
  finished nothing in the first benchmark run.  ``float64=True`` (default) passes
  ``preprocessing=None`` and sets ``ART_NUMPY_DTYPE = float64`` for the run (ART's own configuration
  knob; its MNIST example uses a float64 Keras model), so ART sees exactly what our attacks see.
- **The scalar output as two classes.**  FEE needs ``nb_classes >= 2``; a scalar network is given as
  ``[z, -z]``: both columns carry the same information, and FEE's "fraction_true" votes count the
  two columns alike, so this neither helps nor hurts it.
- **Distinct queries.**  FEE asks the same point repeatedly (``f(x_1)`` twice per step, the critical
  point twice per coordinate).  ``cache=True`` (default) answers a repeated input from a cache
  without counting it, so ART is charged only for distinct inputs (what a careful user of it pays);
  the raw number of calls it made is reported too.
- **NaN inputs.**  Where the function is flat on the line (every hidden unit off: slope 0 on both
  sides) FEE's test ``|m_1 - m_2| / |m_1| < rel_diff_slope`` is 0/0 = NaN, hence false; it then asks
  ``x(t = nan)`` and halves its step, forever (the step reaches 0 and stays there).  NaN rows are
  answered NaN without being counted; after 10,000 of them the wrapper stops the run as a failure
  (``ArtStuck``) instead of waiting for the time limit.
- **The last layer.**  FEE fits ``(w_1, b_1)`` by least squares on the samples ``x`` passed to
  ``extract``: ``h + 1`` unknowns per output, so it needs at least ``h + 1`` samples where the
  hidden units are not all off together.  We pass ``n_fit = 2 (h + 1)`` standard normal samples
  (counted as queries).  (The first benchmark run passed one sample, which left the last layer
  undetermined.)
- **delta_0.**  The critical-point scan walks ``t`` from ``-h^2`` to ``h^2`` in steps of ``delta_0``
  (default 0.05) at >= 3 distinct queries a step: ``2 h^2 / delta_0 * 3`` queries before any kink is
  found, 61,440 at ``h = 16``.  ``delta_0`` is FEE's parameter; its default and a larger one are
  both measured by the benchmark (``--art-delta0``).
- The error is measured on FEE's own float64 parameters ``(w_0, b_0, w_1, b_1)`` with the same
  alignment as ours (``modelrecon.evaluate.relu2.align``); fidelity is computed from them in float64 on the evaluator's probe inputs
  (the extracted ``BlackBoxClassifier`` would cast to float32 again).  ART never sees the truth.
"""

from __future__ import annotations

import contextlib
import time

import numpy as np


@contextlib.contextmanager
def art_dtype(dtype):
    import art.config

    old = art.config.ART_NUMPY_DTYPE
    art.config.ART_NUMPY_DTYPE = dtype
    try:
        yield
    finally:
        art.config.ART_NUMPY_DTYPE = old


class ArtStuck(RuntimeError):
    """FEE's critical-point search cannot end (it halves its step forever)."""


class CountingPredict:
    """The black-box prediction function given to ART: value queries through the oracle, counted."""

    def __init__(self, oracle, cache: bool = True, max_nan_rows: int = 10_000):
        self.oracle, self.cache, self.max_nan_rows = oracle, cache, max_nan_rows
        self.d, self.k = oracle.input_dim, oracle.n_outputs
        self.calls = 0  # rows ART asked, repeats and NaN included
        self.nan_rows = 0
        self.memo: dict[bytes, np.ndarray] = {}

    def __call__(self, x):
        x = np.asarray(x, dtype=np.float64).reshape(len(x), self.d)
        self.calls += len(x)
        z = np.full((len(x), self.k), np.nan)
        ok = np.isfinite(x).all(axis=1)
        self.nan_rows += int((~ok).sum())
        if self.nan_rows > self.max_nan_rows:
            raise ArtStuck(f"FEE stuck: {self.nan_rows} NaN inputs (0/0 slopes on a flat stretch of the line; "
                           "its step halves to 0 and the search never ends)")
        keys = [x[i].tobytes() for i in range(len(x))]
        ask = [i for i in np.flatnonzero(ok) if not (self.cache and keys[i] in self.memo)]
        if ask:
            uniq = list(dict.fromkeys(keys[i] for i in ask)) if self.cache else None
            if self.cache:
                rows = np.frombuffer(b"".join(uniq), dtype=np.float64).reshape(len(uniq), self.d)
                got = np.asarray(self.oracle.value(rows), dtype=np.float64).reshape(len(uniq), -1)
                self.memo.update(zip(uniq, got))
            else:
                got = np.asarray(self.oracle.value(x[ask]), dtype=np.float64).reshape(len(ask), -1)
                z[ask] = got
        if self.cache:
            for i in np.flatnonzero(ok):
                z[i] = self.memo[keys[i]]
        return np.hstack([z, -z]) if self.k == 1 else z  # FEE wants >= 2 outputs: the scalar and its negation


def hidden_width(target) -> int:
    t = target.truth
    return t["W"].shape[0] if "W" in t else t["layers"][0][0].shape[0]


def run_art(target, oracle, seed: int = 0, delta_0: float = 0.05, float64: bool = True, cache: bool = True,
            n_fit: int | None = None, phases: dict | None = None, extract_kw: dict | None = None) -> dict:
    """Run FEE through ``oracle`` (value queries, counted); returns queries, errors, time.

    ``phases`` (a dict, filled as the run goes) receives the queries spent per FEE phase, so a run
    stopped by a time limit still tells where the queries went.  ART's failures propagate."""
    from art.attacks.extraction import FunctionallyEquivalentExtraction
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork as BlackBoxClassifier

    d, k = oracle.input_dim, oracle.n_outputs
    h = hidden_width(target)
    n_fit = 2 * (h + 1) if n_fit is None else n_fit
    predict = CountingPredict(oracle, cache=cache)
    phases = {} if phases is None else phases
    with art_dtype(np.float64 if float64 else np.float32):
        # preprocessing=None: ART's default (0, 1) standardisation casts the *inputs* to float32 (it reads
        # ART_NUMPY_DTYPE at import time), which alone makes the critical-point search see false kinks
        clf = BlackBoxClassifier(predict, input_shape=(d,), nb_classes=max(k, 2),
                                 preprocessing=None if float64 else (0.0, 1.0))
        np.random.seed(seed)
        start = time.perf_counter()
        fee = FunctionallyEquivalentExtraction(classifier=clf, num_neurons=h)
        for name in ("_critical_point_search", "_weight_recovery", "_sign_recovery", "_last_layer_extraction"):
            method = getattr(fee, name)

            def timed(*a, _m=method, _n=name, **kw):
                q0 = oracle.ledger.total()
                phases[_n.strip("_")] = "running"
                try:
                    return _m(*a, **kw)
                finally:
                    phases[_n.strip("_")] = oracle.ledger.total() - q0
            setattr(fee, name, timed)
        rng = np.random.default_rng(seed)
        x_fit = rng.normal(size=(n_fit, d))
        try:
            fee.extract(x_fit, delta_0=delta_0, fraction_true=0.3, **(extract_kw or {}))
        finally:
            phases["critical_points_found"] = len(fee.critical_points)
            phases["raw_calls"] = predict.calls
            phases["nan_rows"] = predict.nan_rows
    wall = time.perf_counter() - start
    W, b, V, c = (np.asarray(fee.w_0, dtype=np.float64).T, np.asarray(fee.b_0, dtype=np.float64).reshape(-1),
                  np.asarray(fee.w_1, dtype=np.float64).T, np.asarray(fee.b_1, dtype=np.float64).reshape(-1))
    V, c = V[: max(k, 1)], c[: max(k, 1)]  # the scalar case: the [z, -z] columns -> z
    from modelrecon.evaluate import probe_inputs
    from modelrecon.evaluate.relu2 import align, true_relu2

    X = probe_inputs(target).reshape(-1, d)  # the probes our evaluator uses
    y = np.asarray(target.forward_numpy(X), dtype=np.float64).reshape(len(X), -1)
    y_hat = np.maximum(X @ W.T + b, 0.0) @ V.T + c
    out = {"queries": oracle.ledger.total(), "raw_calls": predict.calls, "nan_rows": predict.nan_rows,
           "phases": dict(phases), "wall_time_s": wall,
           "fidelity_max_abs_error": float(np.abs(y_hat - y).max()),
           "fidelity_relative_error": float(np.linalg.norm(y_hat - y) / np.linalg.norm(y)),
           "parameter_relative_error": None}
    truth = true_relu2(target)
    if truth is not None and np.isfinite(W).all() and np.isfinite(V).all():
        tW, tb, tV, tc = truth
        tV = tV.reshape(-1, tW.shape[0])
        out.update(align(tW, tb, tV, np.asarray(tc).reshape(-1), W, b, V, c))
    return out
