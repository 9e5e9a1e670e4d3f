"""Metrics for span recovery: the recovered subspace against rowspan(A) of the true first layer."""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.linalg import orth, subspace_angles

from modelrecon.evaluate import register
from modelrecon.result import Result
from modelrecon.targets import Target


def span_metrics(basis: np.ndarray, A: np.ndarray) -> dict[str, Any]:
    """recovered_dim, true_dim = rank(A), max_principal_angle_rad (of the recovered directions to
    rowspan(A): pi/2 when more are claimed than exist), captured_fraction (sum of cos^2 of the
    principal angles / true_dim: the share of rowspan(A) inside the recovered span),
    captured_dim, false_dims = recovered_dim - captured_dim, and captured_energy
    (||P A^T||_F^2 / ||A||_F^2: the share of the first layer's weight the recovered span holds)."""
    A = np.asarray(A, dtype=np.float64)
    QA = orth(A.T)  # n x true_dim
    k = QA.shape[1]
    B = np.asarray(basis, dtype=np.float64).reshape(-1, A.shape[1])
    r = len(B)
    out: dict[str, Any] = {"recovered_dim": r, "true_dim": k}
    if r == 0:
        out.update(max_principal_angle_rad=None, captured_fraction=0.0, captured_dim=0.0, false_dims=0.0,
                   captured_energy=0.0)
        return out
    angles = subspace_angles(B.T, QA)
    out["max_principal_angle_rad"] = float(angles.max()) if r <= k else float(np.pi / 2)
    captured = float(np.sum(np.cos(angles) ** 2))
    out["captured_dim"] = captured
    out["captured_fraction"] = captured / k
    out["false_dims"] = r - captured
    P = B.T @ (B @ A.T)
    out["captured_energy"] = float(np.linalg.norm(P) ** 2 / np.linalg.norm(A) ** 2)
    return out


@register("span")
def evaluate_span(result: Result, target: Target, X: np.ndarray | None) -> dict[str, Any]:
    A = target.truth.get("first_layer")
    basis = result.params.get("basis")
    if A is None or basis is None:
        return {}
    return span_metrics(basis, A)
