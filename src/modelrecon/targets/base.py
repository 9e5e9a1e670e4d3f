"""The Target record: a model with the metadata an API would publish, and its truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torch import nn


class TargetSpecError(ValueError):
    """A target spec that cannot be loaded (malformed, unknown, missing file)."""


@dataclass
class Target:
    spec: str
    model: nn.Module | None  # None when the target is not a torch model (ONNX)
    input_shape: tuple[int, ...]
    n_outputs: int  # 1: a scalar output
    task: str  # regression | binary | multiclass
    backend: str = "torch"  # torch | torchscript | onnx
    input_box: tuple[float, float] | None = None
    truth: dict[str, Any] = field(default_factory=dict)  # family and parameters, for the evaluator only
    description: str = ""
    _forward: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def differentiable(self) -> bool:
        return self.model is not None

    def forward_numpy(self, x: np.ndarray) -> np.ndarray:
        """Raw outputs, shape (N, n_outputs), float64."""
        if self._forward is not None:
            return np.asarray(self._forward(x), dtype=np.float64).reshape(len(x), -1)
        with torch.no_grad():
            out = self.model(torch.as_tensor(x, dtype=torch.float64))
        return out.reshape(len(x), -1).numpy()


def infer_task(n_outputs: int) -> str:
    return "multiclass" if n_outputs > 1 else "regression"


def sequential_truth(model: nn.Module) -> dict[str, Any]:
    """Layers of a plain MLP (Linear / activation stack), as arrays, for the evaluator."""
    layers, acts = [], []
    for m in model.modules():
        if isinstance(m, nn.Linear):
            b = m.bias.detach().numpy().copy() if m.bias is not None else np.zeros(m.out_features)
            layers.append((m.weight.detach().numpy().copy(), b))
        elif isinstance(m, (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.Softplus)):
            acts.append(type(m).__name__.lower())
    if not layers:
        return {"family": "unknown"}
    return {"family": "mlp", "layers": layers, "activations": acts, "first_layer": layers[0][0]}
