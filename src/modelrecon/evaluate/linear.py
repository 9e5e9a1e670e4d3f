"""Metrics for the linear attack: parameter error against the true (w, b), fidelity."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelrecon.evaluate import fidelity, probe_inputs, register
from modelrecon.result import Result
from modelrecon.targets import Target


@register("linear")
def evaluate_linear(result: Result, target: Target, X: np.ndarray | None) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    if result.model is None:
        return metrics
    truth = target.truth
    if truth.get("family") == "linear" and result.params.get("w") is not None:
        w, b = truth["w"], truth["b"]
        w_hat, b_hat = result.params["w"], result.params.get("b")
        if b_hat is None:
            err = np.linalg.norm(w_hat - w) / np.linalg.norm(w)
        else:
            err = np.linalg.norm(np.append(w_hat - w, b_hat - b)) / np.linalg.norm(np.append(w, b))
        metrics["parameter_relative_error"] = float(err)
    metrics.update(fidelity(target, result.model, probe_inputs(target)))
    if X is not None:
        metrics.update(fidelity(target, result.model, X, prefix="data_fidelity"))
    return metrics
