"""Metrics for input obfuscation, measured on the true network.

For the obfuscated inputs the attack produced: ``label_preserved_rate`` (top-1 of the
true network on x' equals top-1 on x), ``max_abs_logit_difference``, ``cosine_to_original``
and ``noise_to_signal``; ``inside_input_box``: the share of x' inside the target's input box.  Then
the same obfuscation (same ratio, seed and clipping) is
repeated with the TRUE span (an orthonormal basis of rowspan of
``target.truth["first_layer"]``) and with a random subspace of the same dimension as a
control, which must fail.  The recovered span is compared with the true one
(``recovered_dim``, ``true_dim``, ``max_principal_angle_rad``, and ``first_layer_leak`` =
||A (I - B^T B)||_2 / ||A||_2: how much of the first layer still sees the "invisible" noise).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import subspace_angles

from modelrecon.attacks.obfuscate import noise_as_class, obfuscate, project_to_box, random_basis, summary
from modelrecon.evaluate import register
from modelrecon.result import Result
from modelrecon.targets import Target

EPS = np.finfo(np.float64).eps


def true_span(target: Target) -> np.ndarray | None:
    """Orthonormal rows spanning rowspan(A) of the first layer (None when the truth has no first layer)."""
    A = target.truth.get("first_layer")
    if A is None:
        return None
    A = np.asarray(A, dtype=np.float64).reshape(len(A), -1)
    _, s, Vt = np.linalg.svd(A, full_matrices=False)
    rank = int((s > s.max() * max(A.shape) * EPS).sum())
    return Vt[:rank]


def first_layer_leak(target: Target, B: np.ndarray) -> float | None:
    A = target.truth.get("first_layer")
    if A is None:
        return None
    A = np.asarray(A, dtype=np.float64).reshape(len(A), -1)
    return float(np.linalg.norm(A - (A @ B.T) @ B, 2) / np.linalg.norm(A, 2))


def softmax(v: np.ndarray) -> np.ndarray:
    if v.shape[1] == 1:  # a scalar logit: probabilities of classes 0 and 1
        p = 1 / (1 + np.exp(-v[:, 0]))
        return np.stack([1 - p, p], axis=1)
    e = np.exp(v - v.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def top1(v: np.ndarray) -> np.ndarray:
    return v.argmax(1) if v.shape[1] > 1 else (v[:, 0] > 0).astype(int)


def compare(target: Target, X: np.ndarray, Xp: np.ndarray, prefix: str = "") -> dict[str, float]:
    """Label preserved, output change, cosine and ratio of X' against X on the true network."""
    v, vp = target.forward_numpy(X), target.forward_numpy(Xp)
    out = {f"{prefix}label_preserved_rate": float(np.mean(top1(v) == top1(vp))),
           f"{prefix}max_abs_logit_difference": float(np.abs(vp - v).max()),
           f"{prefix}mean_confidence_obfuscated": float(softmax(vp).max(1).mean())}
    out.update({f"{prefix}{k}": val for k, val in summary(X, Xp).items()})
    return out


def class_rate(target: Target, Xp: np.ndarray, c: int, prefix: str = "") -> dict[str, float]:
    vp = target.forward_numpy(Xp)
    p = softmax(vp)
    return {f"{prefix}target_class_rate": float(np.mean(top1(vp) == c)),
            f"{prefix}mean_confidence_target_class": float(p[:, c].mean())}


def control_bases(target: Target, r: int, n: int, seed: int) -> dict[str, np.ndarray]:
    """The true span (when the truth has it) and a random subspace of dimension r."""
    out = {}
    Bt = true_span(target)
    if Bt is not None:
        out["true_span_"] = Bt
    out["random_subspace_"] = random_basis(r, n, seed=seed + 7919)
    return out


@register("obfuscate")
def evaluate_obfuscate(result: Result, target: Target, X: np.ndarray | None = None) -> dict[str, Any]:
    metrics: dict[str, Any] = {}
    p, d = result.params, result.details
    if "obfuscated" not in p or "basis" not in p:
        return metrics
    B = p["basis"]
    hp = d.get("hyperparameters", {})
    ratio, seed, clip = float(hp.get("noise", 5.0)), int(hp.get("seed", 0)), hp.get("clip", "none")
    n = B.shape[1]
    Bt = true_span(target)
    metrics["recovered_dim"] = int(B.shape[0])
    if Bt is not None:
        metrics["true_dim"] = int(Bt.shape[0])
        metrics["max_principal_angle_rad"] = float(np.max(subspace_angles(B.T, Bt.T)))
        metrics["first_layer_leak"] = first_layer_leak(target, B)
    Xin, Xp = p["inputs"], p["obfuscated"]
    if target.input_box:  # the share of obfuscated inputs that are valid inputs
        F = Xp.reshape(len(Xp), -1)
        metrics["inside_input_box"] = float(np.mean((F >= target.input_box[0]).all(1) & (F <= target.input_box[1]).all(1)))
    controls = control_bases(target, B.shape[0], n, seed)
    if d.get("mode") == "class":
        c = int(d["target_class"])
        e = p["exemplar"]
        metrics.update(class_rate(target, Xp, c))
        metrics.update({k: v for k, v in summary(Xin, Xp).items()})
        for prefix, Bc in controls.items():
            Xc = noise_as_class(e, Bc, ratio, len(Xp), seed)
            if clip == "clip":
                Xc = np.clip(Xc, *target.input_box)
            elif clip == "project":
                Xc, _ = project_to_box(Xin, Xc, Bc, target.input_box)
            metrics.update(class_rate(target, Xc, c, prefix))
        return metrics
    metrics.update(compare(target, Xin, Xp))
    for prefix, Bc in controls.items():
        Xc, _ = obfuscate(Xin, Bc, ratio, seed, clip, target.input_box, bool(hp.get("orthogonal_to_input", True)))
        metrics.update({k: v for k, v in compare(target, Xin, Xc, prefix).items()
                        if not k.endswith(("cosine_to_original_max", "noise_to_signal_min"))})
    return metrics


def curve(target: Target, X: np.ndarray, bases: dict[str, np.ndarray], ratios: list[float], seed: int = 0,
          clip: str = "none") -> list[dict[str, Any]]:
    """Label-preserved rate (true network) against the noise-to-signal ratio, one row per (basis, ratio)."""
    rows = []
    for name, B in bases.items():
        for ratio in ratios:
            Xp, info = obfuscate(X, B, float(ratio), seed, clip, target.input_box)
            m = compare(target, X, Xp)
            rows.append({"span": name, "ratio": float(ratio), **m, **{k: v for k, v in info.items()
                                                                       if k in ("iterations", "invariance_residual")}})
    return rows
