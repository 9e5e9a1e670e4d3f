"""Metrics for the deep ReLU attack: the recovered layers aligned to the true ones up to the
symmetries of a ReLU network (a permutation and a positive scale per hidden neuron, carried
into the next layer's columns), parameter error per layer, Carlini et al.'s bits of precision
after alignment, neurons recovered / dead, and the worst output error over many random inputs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from modelrecon.evaluate import fidelity, outputs, register
from modelrecon.oracle import _as_logits
from modelrecon.result import Result
from modelrecon.targets import Target

TINY = np.finfo(np.float64).tiny


def true_layers(target: Target) -> list[tuple[np.ndarray, np.ndarray]] | None:
    t = target.truth
    if t.get("family") == "mlp" and t.get("layers") and set(t.get("activations", [])) <= {"relu"}:
        return [(np.asarray(W, float), np.asarray(b, float)) for W, b in t["layers"]]
    if t.get("family") == "relu2":
        return [(t["W"], t["b"]), (t["V"], t["c"])]
    return None


def align_layers(true: list[tuple[np.ndarray, np.ndarray]], got: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """Match each recovered hidden neuron to a true one (by the angle of its row and bias, in the true previous
    layer's coordinates), rescale it onto its match and carry the scale into the next layer."""
    out: dict[str, Any] = {"layers_true": len(true), "layers_recovered": len(got)}
    if len(true) != len(got):
        out["parameter_relative_error"] = 1.0
        return out
    prev_perm, prev_scale = None, None  # recovered unit index and scale for each true unit of the previous layer
    errors, worst, dead_total, matched_total = [], 0.0, 0, 0
    prev_dead = None
    per_layer = []
    for li, ((W, b), (V, c)) in enumerate(zip(true, got)):
        # express the recovered layer over the true previous layer's units
        if prev_perm is not None:
            Vt = np.zeros((V.shape[0], W.shape[1]))
            ok = prev_perm >= 0
            Vt[:, ok] = V[:, prev_perm[ok]] * prev_scale[ok]
        else:
            Vt = V
        last = li == len(true) - 1
        live = np.linalg.norm(W, axis=1) > 0
        if not last:
            P, Q = np.hstack([W, b[:, None]]), np.hstack([Vt, c[:, None]])
            Pn = P / np.maximum(np.linalg.norm(P, axis=1, keepdims=True), TINY)
            Qn = Q / np.maximum(np.linalg.norm(Q, axis=1, keepdims=True), TINY)
            rows, cols = linear_sum_assignment(-(Pn @ Qn.T))
            perm = -np.ones(W.shape[0], int)
            scale = np.ones(W.shape[0])
            aligned_W, aligned_b = np.zeros_like(W), np.zeros_like(b)
            for i, j in zip(rows, cols):
                lam = float(Q[j] @ P[i]) / max(float(Q[j] @ Q[j]), TINY)
                if lam <= 0 or Pn[i] @ Qn[j] < 0.5:
                    continue
                perm[i], scale[i] = j, 1 / lam
                aligned_W[i], aligned_b[i] = lam * Vt[j], lam * c[j]
            prev_perm, prev_scale = perm, scale
            matched = perm >= 0
            dead_total += int((~live).sum())
            matched_total += int((matched & live).sum())
            extra = V.shape[0] - int(matched.sum())
        else:
            aligned_W, aligned_b, matched, extra = Vt, c, np.ones(W.shape[0], bool), 0
        keep = live
        if prev_dead is not None:  # the weights out of a dead unit do not change the function: leave them out
            W = W.copy()
            W[:, prev_dead] = 0.0
            aligned_W = aligned_W.copy()
            aligned_W[:, prev_dead] = 0.0
        prev_dead_next = ~live
        dW, db = aligned_W[keep] - W[keep], aligned_b[keep] - b[keep]
        num = np.linalg.norm(dW) ** 2 + np.linalg.norm(db) ** 2
        den = np.linalg.norm(W[keep]) ** 2 + np.linalg.norm(b[keep]) ** 2
        rel = math.sqrt(num / max(den, TINY))
        scale_l = max(float(np.abs(W).max()), TINY)
        err_l = float(max(np.abs(dW).max(initial=0), np.abs(db).max(initial=0))) / scale_l
        worst = max(worst, err_l)
        errors.append(num)
        prev_dead = prev_dead_next
        per_layer.append({"width_true": int(W.shape[0]), "width_recovered": int(V.shape[0]),
                          "matched": int((matched & live).sum()), "dead": int((~live).sum()),
                          "unmatched_recovered": extra, "relative_error": rel, "max_error": err_l})
    den_all = sum(np.linalg.norm(W) ** 2 + np.linalg.norm(b) ** 2 for W, b in true)  # (dead units' weights included)
    out["parameter_relative_error"] = float(math.sqrt(sum(errors) / den_all))
    out["max_parameter_error"] = worst  # of the aligned weights, relative to each layer's largest weight
    out["precision_bits"] = float(-math.log2(worst)) if worst > 0 else 52.0
    out["hidden_units_true"] = int(sum(W.shape[0] for W, _ in true[:-1]))
    out["hidden_units_recovered"] = int(sum(V.shape[0] for V, _ in got[:-1]))
    out["hidden_units_matched"] = matched_total
    out["hidden_units_dead"] = dead_total
    out["per_layer"] = per_layer
    return out


def logits(Y: np.ndarray, outputs: str | None = "probabilities") -> np.ndarray:
    """What a model recovered from probabilities outputs, from the target's outputs Y (declared as ``outputs``:
    probabilities or sigmoid read back on the logit scale, as the oracle does; raw scores, None, as they are): a
    sigmoid's logit, or softmax's logits less class 0's."""
    Z = _as_logits(Y.reshape(len(Y), -1), outputs)
    return Z if Z.shape[1] == 1 else Z[:, 1:] - Z[:, :1]


def worst_output_error(target: Target, model, n: int, seed: int = 54321, batch: int = 50_000,
                       read=lambda y: y, box: bool = True) -> dict[str, float]:
    """Worst absolute output error over n random inputs (standard normal, or uniform in the input box unless ``box``
    is False), and in bits (Carlini et al.'s max |f - f_hat| = 2^-bits); ``read``: the target's outputs as the model
    gives them.  A NaN anywhere is an infinite error."""
    rng = np.random.default_rng(seed)
    worst, scale = 0.0, 0.0
    for start in range(0, n, batch):
        m = min(batch, n - start)
        X = (rng.uniform(*target.input_box, size=(m, *target.input_shape)) if target.input_box and box
             else rng.normal(size=(m, *target.input_shape)))
        y, y_hat = read(target.forward_numpy(X)), outputs(model, X)
        if y.shape != y_hat.shape:
            return {"worst_output_error": math.inf}
        err = np.abs(y - y_hat)
        if not (np.isfinite(err).all() and np.isfinite(y).all()):  # max(0.0, nan) is 0.0: a NaN once read as exact
            return {"worst_output_error": math.inf, "worst_output_error_relative": math.inf, "worst_output_inputs": n}
        worst = max(worst, float(err.max()))
        scale = max(scale, float(np.abs(y).max()))
    return {"worst_output_error": worst, "worst_output_error_bits": -math.log2(worst) if worst > 0 else 1074.0,
            "worst_output_error_relative": worst / scale if scale > 0 else math.inf, "worst_output_inputs": n}


@register("relu")
def evaluate_relu(result: Result, target: Target, X: np.ndarray | None, n_inputs: int = 10_000) -> dict[str, Any]:
    """Layers aligned with the truth, fidelity on 1,000 random inputs, and the worst output error over
    ``n_inputs`` random inputs (10^4 by default; the deep benchmarks use 10^6); for a target with an input box,
    in the box and, as ``rd_worst_output_error*``, over standard normal inputs (the network on R^d)."""
    if not (isinstance(n_inputs, int) and not isinstance(n_inputs, bool) and n_inputs >= 1):
        raise ValueError(f"n_inputs (random inputs of the worst output error) must be an integer >= 1, got {n_inputs!r}")
    metrics: dict[str, Any] = {}
    if result.model is None:
        return metrics
    p = result.params
    got = [(np.asarray(p[f"W{i}"]), np.asarray(p[f"b{i}"])) for i in range(1, 1 + sum(k.startswith("W") for k in p))]
    truth = true_layers(target)
    from_probabilities = "probabilities" in result.queries.get("by_kind", {})
    if truth is not None and from_probabilities and len(truth[-1][1]) > 1:
        W, b = truth[-1]
        truth[-1] = (W[1:] - W[:1], b[1:] - b[:1])  # the logits less class 0's: what probabilities determine
    if truth is not None and got:
        metrics.update(align_layers(truth, got))
    X = (np.random.default_rng(12345).normal(size=(1000, *target.input_shape)) if not target.input_box else
         np.random.default_rng(12345).uniform(*target.input_box, size=(1000, *target.input_shape)))
    read = (lambda y: logits(y, target.outputs)) if from_probabilities else (lambda y: y)
    metrics.update(fidelity(target, result.model, X, y=read(target.forward_numpy(X))))
    metrics.update(worst_output_error(target, result.model, n_inputs, read=read))
    if target.input_box:
        rd = worst_output_error(target, result.model, n_inputs, read=read, box=False)
        metrics.update({f"rd_{k}": v for k, v in rd.items()})
    if X is not None:
        metrics.update(fidelity(target, result.model, X, prefix="data_fidelity"))
    return metrics
