"""The Result of an attack and its JSON form (schema: docs/result-schema.md)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

STATUSES = ("complete", "partial", "failed")


def jsonable(value: Any) -> Any:
    """numpy scalars and arrays to Python, non-finite floats to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value


@dataclass
class Result:
    """What an attack returns: the recovered model and parameters, status, and the ledger.

    ``metrics`` is filled by :mod:`modelrecon.evaluate` after the attack; the attack
    itself only writes what it can know from its queries into ``details``.
    """

    attack: str
    status: str
    message: str
    target: str = ""
    oracle: dict[str, Any] = field(default_factory=dict)
    queries: dict[str, Any] = field(default_factory=dict)
    wall_time_s: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)  # recovered parameters (numpy arrays)
    model: nn.Module | None = None  # recovered model, float64
    details: dict[str, Any] = field(default_factory=dict)  # what the attack measured itself
    metrics: dict[str, Any] = field(default_factory=dict)  # what the evaluator measured against the truth

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict[str, Any]:
        return jsonable({
            "attack": self.attack, "target": self.target, "oracle": self.oracle, "status": self.status,
            "message": self.message, "queries": self.queries, "wall_time_s": self.wall_time_s,
            "metrics": self.metrics, "details": self.details,
        })

    def save_json(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    def save_params(self, path: str | Path) -> Path:
        """Recovered parameters as an .npz file (arrays only)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{k: np.asarray(v) for k, v in self.params.items() if v is not None})
        return path
