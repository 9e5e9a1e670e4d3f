"""Target spec strings -> :class:`Target`.

``builtin:NAME?key=value&...``  the zoo (``modelrecon targets`` lists it)
``path/to/model.pt``            a TorchScript file (``torch.jit.save``)
``path/to/model.onnx``          ONNX through onnxruntime: values only
``package.module:callable``     a factory returning a ``torch.nn.Module``; ``?d=..`` gives
                                the input dimension when the module does not say
"""

from __future__ import annotations

import importlib
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import torch
from torch import nn

from modelrecon.targets.base import Target, TargetSpecError, infer_task, sequential_truth
from modelrecon.targets.zoo import MAX_INPUT_DIM, ZOO, check_params


def _parse_params(query: str, allowed: dict, what: str) -> dict:
    params = {k: v[0] for k, v in allowed.items()}
    seen: set[str] = set()
    for key, raw in parse_qsl(query, keep_blank_values=True):
        if key in seen:
            raise TargetSpecError(f"{what}: parameter {key} is given twice")
        seen.add(key)
        if key not in allowed:
            raise TargetSpecError(f"{what} has no parameter {key!r}; it takes: {', '.join(allowed) or 'none'}")
        default = allowed[key][0]
        try:
            params[key] = type(default)(raw) if not isinstance(default, str) else raw
        except ValueError:
            raise TargetSpecError(f"{what}: parameter {key}={raw!r} is not a {type(default).__name__}") from None
    return params


def _probe_shape(model: nn.Module, hint: dict) -> tuple[tuple[int, ...], int]:
    """Input shape from the hint or the first Linear/Conv layer; output size from one forward pass."""
    try:
        shape = (tuple(int(s) for s in str(hint["shape"]).split("x")) if "shape" in hint
                 else (int(hint["d"]),) if "d" in hint else None)
    except ValueError:
        raise TargetSpecError(f"?shape= wants sizes like 1x28x28 and ?d= an integer, got {hint}") from None
    if shape is None:
        # the first weighted layer tells; TorchScript modules carry their class name in original_name
        layers = [(getattr(m, "original_name", type(m).__name__), m) for m in model.modules()]
        first = next(((kind, m) for kind, m in layers if kind in ("Linear", "Conv1d", "Conv2d", "Conv3d")), None)
        if first is None or first[0] != "Linear":
            raise TargetSpecError("cannot tell this model's input shape: add ?d=N or ?shape=CxHxW to the spec")
        shape = (int(first[1].weight.shape[1]),)
    if not shape or min(shape) < 1 or int(np.prod(shape)) > MAX_INPUT_DIM:
        raise TargetSpecError(f"input shape {shape}: each size must be >= 1 and the input dimension at most "
                              f"{MAX_INPUT_DIM}")
    try:
        with torch.no_grad():
            out = model(torch.zeros((1, *shape), dtype=torch.float64))
        if not isinstance(out, torch.Tensor) or out.dim() == 0 or out.shape[0] != 1:
            raise TypeError(f"it returned {type(out).__name__} {tuple(getattr(out, 'shape', ()))}, not a batch "
                            "of outputs")
    except Exception as e:  # the model's own error: wrong shape, dtype, a module that is not a model
        raise TargetSpecError(f"the model does not run on one input of shape {shape}: {type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''} (give the shape with ?d=N or "
                              "?shape=CxHxW)") from None
    return shape, int(np.prod(out.shape[1:])) if out.dim() > 1 else 1


def load(spec: str) -> Target:
    """Load a target from its spec string; a malformed or unknown spec raises TargetSpecError."""
    if not isinstance(spec, str) or not spec.strip():
        raise TargetSpecError("empty target spec; try builtin:relu2, a .pt/.onnx file or module:callable")
    spec = spec.strip()
    if spec.startswith(("http://", "https://")):
        raise TargetSpecError(f"{spec} is a service: attack it through its HTTP oracle, not as a local target")
    if spec.startswith("builtin:"):
        parts = urlsplit(spec[len("builtin:"):])
        name = parts.path
        if name not in ZOO:
            raise TargetSpecError(f"unknown builtin target {name!r}; known: {', '.join(ZOO)}")
        entry = ZOO[name]
        params = _parse_params(parts.query, entry.params, f"builtin:{name}")
        try:
            check_params(params)
            return entry.build(params, spec)
        except ValueError as e:
            raise TargetSpecError(f"{spec}: {e}") from None
    path_part, _, query = spec.partition("?")
    hint = dict(parse_qsl(query))
    if path_part.endswith((".pt", ".pth", ".onnx")):
        path = Path(path_part)
        if not path.exists():
            raise TargetSpecError(f"no model file at {path}")
        if path.suffix == ".onnx":
            return _onnx(spec, path)
        try:
            model = torch.jit.load(str(path)).double().eval()
        except RuntimeError as e:
            raise TargetSpecError(f"{path} is not a TorchScript file (save with torch.jit.save): {e}") from None
        shape, k = _probe_shape(model, hint)
        return Target(spec, model, shape, k, hint.get("task", infer_task(k)), backend="torchscript",
                      description=f"TorchScript model {path.name}")
    if ":" in path_part:
        module_name, _, attr = path_part.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as e:
            raise TargetSpecError(f"cannot import {path_part}: {e}") from None
        if not callable(factory):
            raise TargetSpecError(f"{path_part} is a {type(factory).__name__}, not a factory (a callable returning a "
                                  "torch.nn.Module)")
        try:
            model = factory()
        except Exception as e:  # e.g. a class that needs arguments
            raise TargetSpecError(f"{path_part}() failed: {type(e).__name__}: {e}; a factory takes no "
                                  "arguments and returns a torch.nn.Module") from None
        if not isinstance(model, nn.Module):
            raise TargetSpecError(f"{path_part}() returned {type(model).__name__}, not a torch.nn.Module")
        model = model.double().eval()
        shape, k = _probe_shape(model, hint)
        return Target(spec, model, shape, k, hint.get("task", infer_task(k)), truth=sequential_truth(model),
                      description=f"factory {path_part}")
    raise TargetSpecError(
        f"cannot read target spec {spec!r}: expected builtin:NAME?..., a .pt (TorchScript) or .onnx file, "
        "or package.module:callable"
    )


def _onnx(spec: str, path: Path) -> Target:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime's own errors: not ONNX, truncated, invalid graph
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TargetSpecError(f"{path} is not an ONNX model onnxruntime can load: {first[:300]}") from None
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].type not in ("tensor(float)", "tensor(double)"):
        raise TargetSpecError(f"{path}: a target takes one float tensor input, this model takes "
                              + ", ".join(f"{i.name}: {i.type}" for i in inputs))
    inp = inputs[0]
    if not all(isinstance(s, int) and s >= 1 for s in inp.shape[1:]):
        raise TargetSpecError(f"{path}: the input's sizes after the batch must be fixed positive integers, "
                              f"got {inp.shape}")
    shape = tuple(int(s) for s in inp.shape[1:])
    dtype = np.float32 if inp.type == "tensor(float)" else np.float64

    def forward(x: np.ndarray) -> np.ndarray:
        return session.run(None, {inp.name: x.astype(dtype)})[0]

    try:
        probe = np.asarray(forward(np.zeros((1, *shape))))
        if probe.dtype.kind not in "fiu" or probe.ndim == 0 or probe.shape[0] != 1:
            raise TypeError(f"its first output is {probe.dtype} of shape {probe.shape}, not a batch of numbers")
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TargetSpecError(f"{path}: the model does not run on one input of shape {shape}: {first[:300]}") from None
    k = int(np.prod(probe.shape[1:]))
    return Target(spec, None, shape, k, infer_task(k), backend="onnx", _forward=forward,
                  description=f"ONNX model {path.name} (values only)")
