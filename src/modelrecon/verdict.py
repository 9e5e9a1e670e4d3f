"""Verdicts that cannot lie: residuals compared with explicit, finite, positive tolerances.

Every attack that verifies what it recovered asks :func:`worst_ratio` for the largest
residual / tolerance over its check points.  A NaN or infinite residual, a tolerance that
is not a finite positive number, or an empty set of checks is a failure of the check
(``inf``), never a pass: ``max(0.0, nan)`` is 0.0 in Python, and a 0/0 read that way once
let a network of 0 recovered units pass as "verified".
"""

from __future__ import annotations

import math

import numpy as np


def worst_ratio(residual, tolerance) -> float:
    """max(|residual| / tolerance) over all entries (tolerance broadcast).

    ``inf`` (a failed check) when there is nothing to compare, a residual is not finite, a
    tolerance is not finite or negative, or the tolerance is zero everywhere.  One entry
    with a zero tolerance reads inf unless its residual is exactly zero too (an exact match:
    a coordinate that neither the target nor the model depends on)."""
    r = np.abs(np.asarray(residual, dtype=np.float64))
    if r.size == 0 or not np.isfinite(r).all():
        return math.inf
    tol = np.broadcast_to(np.asarray(tolerance, dtype=np.float64), r.shape)
    if not np.isfinite(tol).all() or (tol < 0).any() or not (tol > 0).any():
        return math.inf
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(r == 0, 0.0, r / tol)
    return float(np.max(ratio))


def passes(ratio: float) -> bool:
    """A ratio from :func:`worst_ratio` is a pass only when it is a finite number <= 1."""
    return bool(math.isfinite(ratio) and ratio <= 1.0)
