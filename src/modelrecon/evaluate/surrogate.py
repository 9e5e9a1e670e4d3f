"""Metrics for the surrogate attack: top-1 agreement with the target on held-out test data,
the surrogate's own accuracy on the true labels, and output fidelity.

Held-out data: the ``X`` given to :func:`modelrecon.evaluate.evaluate` when there is one,
otherwise the test split of the dataset the target was trained on (``truth["dataset"]``),
otherwise random probes in the input box."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelrecon.evaluate import fidelity, outputs, probe_description, probe_inputs, register
from modelrecon.result import Result
from modelrecon.targets import Target


def test_data(target: Target) -> tuple[np.ndarray, np.ndarray] | None:
    """(X_test, y_test) of the target's training dataset, shaped as the target's inputs, or None."""
    name = target.truth.get("dataset")
    if not name:
        return None
    from modelrecon import data

    ds = data.load(name) if name != "digits" else data.digits(image=len(target.input_shape) == 3)
    return ds.X_test.reshape(len(ds.X_test), *target.input_shape), ds.y_test


def agreement_accuracy(target: Target, model, X: np.ndarray, y: np.ndarray | None = None) -> dict[str, float]:
    """Top-1 agreement of model with target on X, and both accuracies on labels y."""
    t = target.forward_numpy(X)
    s = outputs(model, X)
    top = (lambda o: (o[:, 0] > 0).astype(int)) if t.shape[1] == 1 else (lambda o: o.argmax(1))
    out = {"agreement": float(np.mean(top(t) == top(s)))}
    if y is not None:
        out["surrogate_accuracy"] = float(np.mean(top(s) == y))
        out["target_accuracy"] = float(np.mean(top(t) == y))
    return out


@register("surrogate")
def evaluate_surrogate(result: Result, target: Target, X: np.ndarray | None) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    if result.model is None:
        return metrics
    y = None
    if X is None:
        held = test_data(target)
        if held is not None:
            X, y = held
    if X is not None:
        fid = fidelity(target, result.model, X)
        metrics.update({k: v for k, v in fid.items() if k != "agreement"})
        metrics.update(agreement_accuracy(target, result.model, X, y))
        metrics["agreement_data"] = "test split of " + target.truth["dataset"] if y is not None else \
            "the data inputs (metrics.inputs.data)"
    probe = fidelity(target, result.model, probe_inputs(target), prefix="random")
    metrics.update({k: v for k, v in probe.items()})
    if X is None:
        metrics["agreement"] = probe["random_agreement"]
        metrics["agreement_data"] = probe_description(target)
    return metrics
