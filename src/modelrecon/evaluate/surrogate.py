"""Metrics for the surrogate attack: top-1 agreement with the target on held-out test data,
the surrogate's own accuracy on the true labels, and output fidelity.

Held-out data: the ``X`` given to :func:`modelrecon.evaluate.evaluate` when there is one,
otherwise the test split of the dataset the target was trained on (``truth["dataset"]``),
otherwise random probes in the input box.

A study evaluates many surrogates of one target on the same test split: the target's outputs there
are computed once (in batches) and kept for the next run of the same target and inputs."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch

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


BATCH = 1000
_last_outputs: dict[str, np.ndarray] = {}  # the latest (target weights, inputs) -> target outputs


def batched_outputs(forward, X: np.ndarray, batch: int | None = None) -> np.ndarray:
    """forward over X in batches of BATCH (a CNN's activations on 10,000 images at once take gigabytes)."""
    batch = batch or BATCH
    return np.concatenate([forward(X[i:i + batch]) for i in range(0, len(X), batch)]) if len(X) else forward(X)


def target_outputs(target: Target, X: np.ndarray) -> np.ndarray:
    """The target's outputs on X, reused while the target's weights and X are the same as last time."""
    if target.model is None:
        return batched_outputs(target.forward_numpy, X)
    h = hashlib.sha256(np.ascontiguousarray(X, dtype=np.float64).tobytes())
    with torch.no_grad():
        for name, v in target.model.state_dict().items():
            h.update(name.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    key = h.hexdigest()
    if key not in _last_outputs:
        _last_outputs.clear()
        _last_outputs[key] = batched_outputs(target.forward_numpy, X)
    return _last_outputs[key]


def agreement_accuracy(t: np.ndarray, s: np.ndarray, y: np.ndarray | None = None) -> dict[str, float]:
    """Top-1 agreement of outputs s (a surrogate's) with t (the target's), and both accuracies on labels y."""
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
        t = target_outputs(target, X)
        s = batched_outputs(lambda x: outputs(result.model, x), X)
        fid = fidelity(target, result.model, X, y=t, y_hat=s)
        metrics.update({k: v for k, v in fid.items() if k != "agreement"})
        metrics.update(agreement_accuracy(t, s, y))
        metrics["agreement_data"] = "test split of " + target.truth["dataset"] if y is not None else \
            "the data inputs (metrics.inputs.data)"
    probe = fidelity(target, result.model, probe_inputs(target), prefix="random")
    metrics.update({k: v for k, v in probe.items()})
    if X is None:
        metrics["agreement"] = probe["random_agreement"]
        metrics["agreement_data"] = probe_description(target)
    return metrics
