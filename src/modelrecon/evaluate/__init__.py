"""The only code that looks at the true target: metrics computed after an attack is done.

``evaluate(result, target)`` dispatches on ``result.attack`` to the evaluator registered
by a submodule (one per attack family) and writes ``result.metrics``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any, Callable

import numpy as np
import torch

from modelrecon.result import Result
from modelrecon.targets import Target

Evaluator = Callable[[Result, Target, "np.ndarray | None"], dict[str, Any]]
EVALUATORS: dict[str, Evaluator] = {}


def register(*attacks: str) -> Callable[[Evaluator], Evaluator]:
    def wrap(fn: Evaluator) -> Evaluator:
        for a in attacks:
            EVALUATORS[a] = fn
        return fn
    return wrap


def outputs(model: torch.nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = model(torch.as_tensor(X, dtype=torch.float64))
    return out.reshape(len(X), -1).numpy()


def fidelity(target: Target, model: torch.nn.Module, X: np.ndarray, prefix: str = "fidelity") -> dict[str, float]:
    """Max abs and relative (Frobenius) output error on X, and top-1 agreement
    (the sign of a scalar output against 0, argmax otherwise)."""
    y = target.forward_numpy(X)
    y_hat = outputs(model, X)
    if y.shape != y_hat.shape:
        return {f"{prefix}_shape_mismatch": 1.0}
    diff = y_hat - y
    out = {f"{prefix}_max_abs_error": float(np.abs(diff).max()),
           f"{prefix}_relative_error": float(np.linalg.norm(diff) / max(np.linalg.norm(y), np.finfo(float).tiny))}
    if y.shape[1] == 1:
        out["agreement" if prefix == "fidelity" else f"{prefix}_agreement"] = float(np.mean((y[:, 0] > 0) == (y_hat[:, 0] > 0)))
    else:
        out["agreement" if prefix == "fidelity" else f"{prefix}_agreement"] = float(np.mean(y.argmax(1) == y_hat.argmax(1)))
    return out


def probe_inputs(target: Target, n: int = 1000, seed: int = 12345) -> np.ndarray:
    """Fresh random inputs in the target's input box (or standard Gaussian when it has none)."""
    rng = np.random.default_rng(seed)
    if target.input_box:
        return rng.uniform(*target.input_box, size=(n, *target.input_shape))
    return rng.normal(size=(n, *target.input_shape))


def evaluate(result: Result, target: Target, X: np.ndarray | None = None) -> dict[str, Any]:
    """Fill ``result.metrics`` against the truth; X adds data inputs to the random probes."""
    if result.attack not in EVALUATORS:
        raise KeyError(f"no evaluator for attack {result.attack!r}; known: {', '.join(sorted(EVALUATORS))}")
    result.metrics.update(EVALUATORS[result.attack](result, target, X))
    return result.metrics


for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
