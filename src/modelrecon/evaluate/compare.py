"""Two models side by side: a target and a recovered model (``modelrecon compare``).

Fidelity (max abs and relative output error) and top-1 agreement on given inputs, and, when
both models' graphs are read (:mod:`modelrecon.targets.graph`) and are of one family, the
parameter error after alignment: one linear layer (with the same output activation) directly,
two-layer ReLU networks up to permutation and positive rescaling of hidden units."""

from __future__ import annotations

from typing import Any

import numpy as np

from modelrecon.evaluate.relu2 import align
from modelrecon.targets import Target


def compare(target: Target, recovered: Target, X: np.ndarray, inputs: str) -> dict[str, Any]:
    if target.input_shape != recovered.input_shape and int(np.prod(target.input_shape)) != int(np.prod(recovered.input_shape)):
        raise ValueError(f"the models take different inputs: {target.input_shape} and {recovered.input_shape}")
    y = target.forward_numpy(X)
    y_hat = recovered.forward_numpy(X.reshape(len(X), *recovered.input_shape))
    out: dict[str, Any] = {"inputs": inputs}
    if y.shape != y_hat.shape:
        out["output_shapes"] = f"target {y.shape[1]} outputs, recovered {y_hat.shape[1]}: no output comparison"
    else:
        diff = y_hat - y
        norm = float(np.linalg.norm(y))
        out["fidelity_max_abs_error"] = float(np.abs(diff).max())
        out["fidelity_relative_error"] = float(np.linalg.norm(diff) / norm) if norm > 0 else None
        if y.shape[1] == 1:
            cut = 0.5 if target.outputs in ("sigmoid", "probabilities") else 0.0
            out["agreement"] = float(np.mean((y[:, 0] > cut) == (y_hat[:, 0] > cut)))
        else:
            out["agreement"] = float(np.mean(y.argmax(1) == y_hat.argmax(1)))
    out.update(parameter_error(target.truth, recovered.truth))
    return out


def parameter_error(truth: dict[str, Any], recovered: dict[str, Any]) -> dict[str, Any]:
    """Relative parameter error after alignment, or the reason there is none."""
    why = [f"{name}: {t['reason']}" for name, t in (("target", truth), ("recovered", recovered))
           if t.get("family") != "mlp" and t.get("reason")]
    if why:
        return {"parameter_error": "not compared (" + "; ".join(why) + ")"}
    if truth.get("family") != "mlp" or recovered.get("family") != "mlp":
        return {"parameter_error": "not compared: the layers of one of the models are not known"}
    if truth.get("output_activation") != recovered.get("output_activation"):
        return {"parameter_error": "not compared: the output activations differ "
                                   f"({truth.get('output_activation')} and {recovered.get('output_activation')})"}
    a, b = truth["layers"], recovered["layers"]
    if len(a) == 1 and len(b) == 1 and a[0][0].shape == b[0][0].shape:
        P, Q = (np.hstack([W, bias[:, None]]) for W, bias in (a[0], b[0]))
        return {"parameter_relative_error": float(np.linalg.norm(Q - P) / np.linalg.norm(P)), "family": "linear"}
    ta, tb = _relu2(truth), _relu2(recovered)
    if ta is not None and tb is not None and ta[0].shape[1] == tb[0].shape[1]:
        W, bias, V, c = ta
        out = align(W, bias, V, np.asarray(c).reshape(-1), *tb[:3], np.asarray(tb[3]).reshape(-1))
        return {**out, "family": "two-layer ReLU network (aligned up to permutation and positive rescaling)"}
    return {"parameter_error": "not compared: the models are not of one family (one linear layer each, or "
                               "two-layer ReLU networks)"}


def _relu2(t: dict[str, Any]):
    layers = t.get("layers") or []
    if len(layers) == 2 and t.get("activations") == ["relu"]:
        (W, b), (V, c) = layers
        return W, b, V, c
    return None
