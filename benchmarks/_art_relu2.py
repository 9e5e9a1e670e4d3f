"""IBM ART's FunctionallyEquivalentExtraction on a modelrecon oracle (optional benchmark peer)."""

from __future__ import annotations

import time

import numpy as np


def run_art(target, oracle, seed: int = 0) -> dict:
    """Run ART's extraction through ``oracle`` (value queries, counted); returns queries, error, time or the failure."""
    from art.attacks.extraction import FunctionallyEquivalentExtraction
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork as BlackBoxClassifier

    d, k = oracle.input_dim, oracle.n_outputs
    h = target.truth["W"].shape[0] if "W" in target.truth else target.truth["layers"][0][0].shape[0]

    def predict(x):
        x = np.asarray(x, dtype=np.float64).reshape(len(x), d)
        z = np.full((len(x), k), np.nan)
        ok = np.isfinite(x).all(axis=1)  # ART asks NaN inputs when two slopes agree: answer NaN, uncounted
        if ok.any():
            z[ok] = np.asarray(oracle.value(x[ok]), dtype=np.float64).reshape(int(ok.sum()), -1)
        return np.hstack([z, -z]) if k == 1 else z  # ART wants >= 2 outputs: the scalar and its negation

    clf = BlackBoxClassifier(predict, input_shape=(d,), nb_classes=max(k, 2))
    np.random.seed(seed)
    start = time.perf_counter()
    fee = FunctionallyEquivalentExtraction(classifier=clf, num_neurons=h)
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(1, d))
    extracted = fee.extract(x, delta_0=0.05, fraction_true=0.3)
    wall = time.perf_counter() - start
    X = rng.normal(size=(200, d))
    y = target.forward_numpy(X)
    y_hat = np.asarray(extracted.predict(X), dtype=np.float64)[:, : y.shape[1]]
    W, b, V, c = (fee.a0.T, fee.b0.reshape(-1), fee.a1.T, fee.b1.reshape(-1)) if hasattr(fee, "a0") else (None,) * 4
    err = None
    if W is not None:
        from modelrecon.evaluate.relu2 import align, true_relu2

        tW, tb, tV, tc = true_relu2(target)
        Vh = np.asarray(V).reshape(-1, W.shape[0])[: tV.reshape(-1, tW.shape[0]).shape[0]]
        err = align(tW, tb, tV.reshape(-1, tW.shape[0]), np.asarray(tc).reshape(-1), np.asarray(W), np.asarray(b),
                    Vh, np.asarray(c).reshape(-1)[: Vh.shape[0]])["parameter_relative_error"]
    return {"queries": oracle.ledger.total(), "parameter_relative_error": err,
            "fidelity_relative_error": float(np.linalg.norm(y_hat - y) / np.linalg.norm(y)), "wall_time_s": wall}
