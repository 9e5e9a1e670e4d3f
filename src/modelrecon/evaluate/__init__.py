"""The only code that looks at the true target: metrics computed after an attack is done.

``evaluate(result, target)`` dispatches on ``result.attack`` to the evaluator registered
by a submodule (one per attack family) and writes ``result.metrics``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from typing import Any, Callable

import numpy as np
import torch

from modelrecon.result import Result
from modelrecon.targets import Target
from modelrecon.targets.base import declared_inputs

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


def fidelity(target: Target, model: torch.nn.Module, X: np.ndarray, prefix: str = "fidelity",
             output: int | None = None, y: np.ndarray | None = None, y_hat: np.ndarray | None = None
             ) -> dict[str, float]:
    """Max abs and relative (Frobenius) output error on X, and top-1 agreement (the sign of a scalar
    logit against 0, of a sigmoid output against 1/2, argmax otherwise); ``output``: compare that
    output of the target with a scalar model.  The relative error is None when the target's outputs
    are all zero on X (nothing to be relative to).  y, y_hat: the target's and the model's outputs on X
    when the caller has them already."""
    y = target.forward_numpy(X) if y is None else y
    y_hat = outputs(model, X) if y_hat is None else y_hat
    if output is not None and y.shape[1] > 1 and y_hat.shape[1] == 1:
        y = y[:, [output]]
    if y.shape != y_hat.shape:
        return {f"{prefix}_shape_mismatch": 1.0}
    diff = y_hat - y
    norm = np.linalg.norm(y)
    out = {f"{prefix}_max_abs_error": float(np.abs(diff).max()),
           f"{prefix}_relative_error": float(np.linalg.norm(diff) / norm) if norm > 0 else None}
    if y.shape[1] == 1:
        cut = 0.5 if target.outputs in ("sigmoid", "probabilities") or output is not None else 0.0
        out["agreement" if prefix == "fidelity" else f"{prefix}_agreement"] = float(np.mean((y[:, 0] > cut) == (y_hat[:, 0] > cut)))
    else:
        out["agreement" if prefix == "fidelity" else f"{prefix}_agreement"] = float(np.mean(y.argmax(1) == y_hat.argmax(1)))
    return out


def probe_inputs(target: Target, n: int = 1000, seed: int = 12345) -> np.ndarray:
    """Fresh random inputs in the target's input box (or standard Gaussian when it has none)."""
    rng = np.random.default_rng(seed)
    if target.input_box:
        return rng.uniform(*target.input_box, size=(n, *target.input_shape))
    return rng.normal(size=(n, *target.input_shape))


def probe_description(target: Target, n: int = 1000) -> str:
    """What :func:`probe_inputs` draws, for the metrics' record."""
    if target.input_box:
        return f"{n} random inputs uniform in the input box [{target.input_box[0]:g}, {target.input_box[1]:g}]"
    return f"{n} random standard Gaussian inputs N(0, I) (the target declares no input box: add box=LO,HI or data=FILE)"


def evaluator_options(attack: str) -> dict[str, Any]:
    """The options (keyword arguments after result, target, X) the evaluator of ``attack`` takes, with
    their defaults: what ``evaluate(..., **options)`` and a sweep's ``[evaluate]`` table may set."""
    params = list(inspect.signature(EVALUATORS[attack]).parameters.values())[3:]
    return {p.name: p.default for p in params}


def evaluate(result: Result, target: Target, X: np.ndarray | None = None, **options: Any) -> dict[str, Any]:
    """Fill ``result.metrics`` against the truth; X (else the target's declared evaluation inputs) adds
    data inputs to the random probes; ``options`` go to the attack's evaluator (``evaluator_options``:
    e.g. ``n_inputs``, the random inputs of the relu evaluator's worst output error).  ``inputs`` in the
    metrics says on what each family was measured."""
    if result.attack not in EVALUATORS:
        raise KeyError(f"no evaluator for attack {result.attack!r}; known: {', '.join(sorted(EVALUATORS))}")
    known = evaluator_options(result.attack)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"the {result.attack} evaluator has no option {', '.join(unknown)}; "
                         f"it takes: {', '.join(known) or 'none'}")
    inputs = {"random": probe_description(target)}
    if X is not None:
        inputs["data"] = f"{len(X)} inputs given to the evaluator"
    else:
        declared = declared_inputs(target, "eval")
        if declared is not None:
            X, inputs["data"] = declared
    result.metrics.update(EVALUATORS[result.attack](result, target, X, **options))
    result.metrics["inputs"] = inputs
    if target.truth.get("family") == "unknown" and target.truth.get("reason"):
        result.metrics["truth"] = f"no parameters compared: {target.truth['reason']}"
    return result.metrics


for _info in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_info.name}")
