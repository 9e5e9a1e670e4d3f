"""Metrics for the relu2 attack: the recovered network aligned to the true one up to the
symmetries of a two-layer ReLU network (permutation and positive rescaling of hidden units),
parameter error, hidden units recovered, fidelity on random and data inputs."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from modelrecon.evaluate import fidelity, probe_inputs, register
from modelrecon.result import Result
from modelrecon.targets import Target


def true_relu2(target: Target) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    t = target.truth
    if t.get("family") == "relu2":
        return t["W"], t["b"], t["V"], t["c"]
    layers = t.get("layers")
    if (t.get("family") == "mlp" and layers and len(layers) == 2 and t.get("activations") == ["relu"]
            and t.get("output_activation") is None):
        (W, b), (V, c) = layers
        return W, b, V, c
    return None


def align(W, b, V, c, W_hat, b_hat, V_hat, c_hat) -> dict[str, Any]:
    """Match recovered units to true ones (by the angle of (w, b)), rescale each recovered unit by the
    positive factor that best maps it onto its match, and report the relative parameter error."""
    live = (np.linalg.norm(W, axis=1) > 0) & (np.abs(V).max(axis=0) > 0)
    out: dict[str, Any] = {"hidden_units_true": int(W.shape[0]), "hidden_units_dead": int((~live).sum())}
    h_hat = W_hat.shape[0]
    out["hidden_units_recovered"] = int(h_hat)
    P = np.hstack([W, b[:, None]])
    P_hat = np.hstack([W_hat, b_hat[:, None]])
    if h_hat == 0:
        out["parameter_relative_error"] = 1.0
        return out
    Pn = P / np.maximum(np.linalg.norm(P, axis=1, keepdims=True), np.finfo(float).tiny)
    Qn = P_hat / np.maximum(np.linalg.norm(P_hat, axis=1, keepdims=True), np.finfo(float).tiny)
    cost = -(Pn @ Qn.T)  # positive rescaling only: orientation matters
    rows, cols = linear_sum_assignment(cost)
    W_al = np.zeros_like(W)
    b_al = np.zeros_like(b)
    V_al = np.zeros_like(V)
    matched_good = 0
    for i, j in zip(rows, cols):
        lam = float(P[i] @ P_hat[j]) / float(P_hat[j] @ P_hat[j])
        if lam <= 0:
            continue
        W_al[i], b_al[i], V_al[:, i] = lam * W_hat[j], lam * b_hat[j], V_hat[:, j] / lam
        matched_good += -cost[i, j] > 1 - 1e-6
    # recovered units with no true partner count fully as error
    unmatched = np.setdiff1d(np.arange(h_hat), cols)
    extra = sum(np.linalg.norm(P_hat[j]) ** 2 + np.linalg.norm(V_hat[:, j]) ** 2 for j in unmatched)
    # dead true units (zero w or zero output weights) do not change the function: leave them out
    keep = live
    num = (np.linalg.norm(W_al[keep] - W[keep]) ** 2 + np.linalg.norm(b_al[keep] - b[keep]) ** 2
           + np.linalg.norm(V_al[:, keep] - V[:, keep]) ** 2 + np.linalg.norm(c_hat - c) ** 2 + extra)
    den = np.linalg.norm(W[keep]) ** 2 + np.linalg.norm(b[keep]) ** 2 + np.linalg.norm(V[:, keep]) ** 2 \
        + np.linalg.norm(c) ** 2
    out["parameter_relative_error"] = float(np.sqrt(num / den))
    out["hidden_units_matched"] = int(matched_good)
    return out


@register("relu2")
def evaluate_relu2(result: Result, target: Target, X: np.ndarray | None) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    if result.model is None:
        return metrics
    truth = true_relu2(target)
    p = result.params
    output = None  # a k-output target of which the attack recovered one logit (through an explanation of it)
    units = np.shape(p["W"])[0] if p.get("W") is not None else 0
    if target.n_outputs > 1 and units and p.get("V") is not None and np.asarray(p["V"]).reshape(-1, units).shape[0] == 1:
        output = int(result.details.get("hyperparameters", {}).get("output", 0))
        metrics["output_compared"] = output
    if truth is not None and p.get("W") is not None:
        W, b, V, c = truth
        V = V.reshape(-1, W.shape[0])
        c = np.asarray(c).reshape(-1)
        if output is not None and V.shape[0] > 1:
            V, c = V[[output]], c[[output]]
        c_hat = np.asarray(p["c"]).reshape(-1)
        if not result.details.get("bias_identified", True):
            c_hat = c.copy()  # c is not identifiable in that setting: leave it out of the error
            metrics["c_identified"] = False
        metrics.update(align(W, b, V, c, np.asarray(p["W"]), np.asarray(p["b"]), np.asarray(p["V"]), c_hat))
        if p.get("A") is not None:
            metrics["affine_term_norm"] = float(np.linalg.norm(p["A"]))
    else:
        metrics["hidden_units_true"] = None
        metrics["hidden_units_recovered"] = int(np.asarray(p.get("W", np.zeros((0,)))).shape[0])
    if result.details.get("bias_identified", True):
        metrics.update(fidelity(target, result.model, probe_inputs(target), output=output))
        if X is not None:
            metrics.update(fidelity(target, result.model, X, prefix="data_fidelity", output=output))
    return metrics
