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
from modelrecon.targets.zoo import ZOO


def _parse_params(query: str, allowed: dict, what: str) -> dict:
    params = {k: v[0] for k, v in allowed.items()}
    for key, raw in parse_qsl(query, keep_blank_values=True):
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
    if "shape" in hint:
        shape = tuple(int(s) for s in str(hint["shape"]).split("x"))
    elif "d" in hint:
        shape = (int(hint["d"]),)
    else:
        # the first weighted layer tells; TorchScript modules carry their class name in original_name
        layers = [(getattr(m, "original_name", type(m).__name__), m) for m in model.modules()]
        first = next(((kind, m) for kind, m in layers if kind in ("Linear", "Conv1d", "Conv2d", "Conv3d")), None)
        if first is None or first[0] != "Linear":
            raise TargetSpecError("cannot tell this model's input shape: add ?d=N or ?shape=CxHxW to the spec")
        shape = (int(first[1].weight.shape[1]),)
    with torch.no_grad():
        out = model(torch.zeros((1, *shape), dtype=torch.float64))
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
        except (ImportError, AttributeError) as e:
            raise TargetSpecError(f"cannot import {path_part}: {e}") from None
        model = factory()
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

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    shape = tuple(int(s) for s in inp.shape[1:])
    dtype = np.float32 if "float)" in inp.type or inp.type == "tensor(float)" else np.float64

    def forward(x: np.ndarray) -> np.ndarray:
        return session.run(None, {inp.name: x.astype(dtype)})[0]

    k = int(np.prod(forward(np.zeros((1, *shape))).shape[1:]))
    return Target(spec, None, shape, k, infer_task(k), backend="onnx", _forward=forward,
                  description=f"ONNX model {path.name} (values only)")
