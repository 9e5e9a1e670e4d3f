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

    def save_model(self, path: str | Path, input_shape: tuple[int, ...]) -> tuple[Path, Path]:
        """The recovered model as a TorchScript file (PATH with suffix .pt) that loads again as a target
        spec, and its raw parameters beside it (.npz); the input shape and what the outputs are travel in
        the .pt file (extra file modelrecon.json)."""
        import torch

        if self.model is None:
            raise ValueError(f"the {self.attack} attack recovered no model to save ({self.status}: {self.message})")
        path = Path(path).with_suffix(".pt")
        path.parent.mkdir(parents=True, exist_ok=True)
        model = getattr(self.model, "exportable", lambda: self.model)().double().eval()
        try:
            scripted = torch.jit.script(model)
        except Exception:  # noqa: BLE001 - a module TorchScript cannot compile: record one forward instead
            scripted = torch.jit.trace(model, torch.zeros((2, *input_shape), dtype=torch.float64))
        meta = {"input_shape": list(input_shape), "attack": self.attack, "target": self.target,
                "status": self.status, "link": self.details.get("link")}
        scripted.save(str(path), _extra_files={"modelrecon.json": json.dumps(meta)})
        return path, self.save_params(path.with_suffix(".npz"))

    def save_params(self, path: str | Path) -> Path:
        """Recovered parameters as an .npz file (arrays only)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{k: np.asarray(v) for k, v in self.params.items() if v is not None})
        return path
