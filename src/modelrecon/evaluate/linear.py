"""Metrics for the linear attack: parameter error against the true (w, b), fidelity."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelrecon.evaluate import fidelity, probe_inputs, register
from modelrecon.result import Result
from modelrecon.targets import Target


def true_linear(target: Target, output: int | None) -> tuple[np.ndarray, float] | None:
    """(w, b) of the logit the attack follows: a linear zoo target, or a one-layer graph ending in nothing,
    a sigmoid, or a two-class softmax (whose output k is the sigmoid of z_k - z_other)."""
    t = target.truth
    if t.get("family") == "linear":
        return t["w"], t["b"]
    if t.get("family") != "mlp" or len(t["layers"]) != 1:
        return None
    W, b = t["layers"][0]
    k = output or 0
    if t.get("output_activation") == "softmax" and W.shape[0] == 2:
        return W[k] - W[1 - k], float(b[k] - b[1 - k])
    if t.get("output_activation") in (None, "sigmoid") and k < W.shape[0]:
        return W[k], float(b[k])
    return None


@register("linear")
def evaluate_linear(result: Result, target: Target, X: np.ndarray | None) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    if result.model is None:
        return metrics
    output = result.details.get("output")
    truth = true_linear(target, output)
    if truth is not None and result.params.get("w") is not None:
        w, b = truth
        w_hat, b_hat = result.params["w"], result.params.get("b")
        if b_hat is None:
            err = np.linalg.norm(w_hat - w) / np.linalg.norm(w)
        else:
            err = np.linalg.norm(np.append(w_hat - w, b_hat - b)) / np.linalg.norm(np.append(w, b))
        metrics["parameter_relative_error"] = float(err)
    metrics.update(fidelity(target, result.model, probe_inputs(target), output=output))
    if X is not None:
        metrics.update(fidelity(target, result.model, X, prefix="data_fidelity", output=output))
    return metrics
