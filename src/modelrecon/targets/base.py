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
    outputs: str | None = None  # declared (or read from the file): one of OUTPUTS; None: raw scores
    data: str | None = None  # declared inputs for query points: a .npy/.npz file or a dataset name
    eval_data: str | None = None  # declared inputs for evaluation (default: data)
    warnings: list[str] = field(default_factory=list)  # declarations that look wrong

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


OUTPUTS = ("logits", "probabilities", "sigmoid", "label", "regression")


def looks_like(Y: np.ndarray) -> str | None:
    """What a batch of outputs (N, K) looks like: label (whole numbers), probabilities (rows in [0, 1]
    summing to 1), sigmoid (each in [0, 1]), or None (unbounded scores)."""
    Y = np.asarray(Y, dtype=np.float64).reshape(len(Y), -1)
    if not np.isfinite(Y).all():
        return None
    tol = 1e-5 * Y.shape[1]  # float32 files sum to 1 within their rounding
    if np.array_equal(Y, np.round(Y)) and Y.shape[1] == 1 and len(np.unique(Y)) <= max(2, len(Y) // 4):
        return "label"
    if (Y >= 0).all() and (Y <= 1).all():
        if Y.shape[1] > 1 and np.abs(Y.sum(1) - 1).max() <= tol:
            return "probabilities"
        return "sigmoid"
    return None


def check_outputs(target: Target, n: int = 64, seed: int = 0) -> list[str]:
    """Warnings when the declared outputs (or their absence) disagree with what the outputs look like
    on n random inputs (in the input box, else standard Gaussian)."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(*target.input_box, size=(n, *target.input_shape)) if target.input_box else \
        rng.normal(size=(n, *target.input_shape))
    seen = looks_like(target.forward_numpy(X))
    declared = target.outputs
    if seen is not None and declared in (None, "logits", "regression"):
        return [f"the outputs look like {seen} (on {n} random inputs) but are declared "
                f"{declared or 'raw scores'}: declare outputs={seen} in the target spec if they are"]
    if declared in ("probabilities", "sigmoid", "label") and seen != declared and not (declared == "sigmoid" and seen == "probabilities"):
        return [f"outputs are declared {declared} but look like {seen or 'unbounded scores'} on {n} random inputs"]
    return []


def declared_inputs(target: Target, purpose: str = "eval") -> tuple[np.ndarray, str] | None:
    """The declared inputs (``eval=`` for evaluation, else ``data=``; ``data=`` for query points), shaped as
    the target's inputs, with a description of what they are; None when none are declared.  A file is
    .npy or .npz (key X, else its first array); a dataset name (digits, mnist, cifar10) gives its test
    split for evaluation and its pool split for query points."""
    name = (target.eval_data or target.data) if purpose == "eval" else target.data
    if not name:
        return None
    if str(name).endswith((".npy", ".npz")):
        try:
            f = np.load(name, allow_pickle=False)
            X = np.asarray(f if isinstance(f, np.ndarray) else f["X"] if "X" in f.files else f[f.files[0]],
                           dtype=np.float64)
        except (OSError, ValueError, KeyError, IndexError) as e:
            raise TargetSpecError(f"cannot read the declared inputs {name}: {e}") from None
        what = f"the declared inputs {name}"
    else:
        from modelrecon import data

        try:
            ds = data.digits(image=len(target.input_shape) == 3) if name == "digits" else data.load(name)
        except (KeyError, ValueError, OSError) as e:
            raise TargetSpecError(f"cannot load the declared dataset {name!r}: {e}") from None
        X = ds.X_test if purpose == "eval" else ds.X_pool
        what = f"the {'test' if purpose == 'eval' else 'pool'} split of {name}"
    if int(np.prod(X.shape[1:])) != int(np.prod(target.input_shape)):
        raise TargetSpecError(f"the declared inputs {name} have shape {X.shape[1:]}; the target takes {target.input_shape}")
    return X.reshape(len(X), *target.input_shape), f"{what} ({len(X)} inputs)"


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
