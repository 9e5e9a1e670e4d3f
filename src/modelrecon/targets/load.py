"""Target spec strings -> :class:`Target`.

``builtin:NAME?key=value&...``  the zoo (``modelrecon targets`` lists it)
``path/to/model.pt``            a TorchScript file (``torch.jit.save``)
``path/to/model.onnx``          ONNX through onnxruntime: values only
``package.module:callable``     a factory returning a ``torch.nn.Module``; ``?d=..`` gives
                                the input dimension when the module does not say; any other
                                ``?name=value`` is passed to the factory as a keyword argument

Declarations any file or factory target takes in its query string (:data:`DECLARATIONS`):
``d=N`` or ``shape=CxHxW`` (input shape), ``task=``, ``box=LO,HI`` (the valid input range),
``data=FILE.npy|FILE.npz|digits`` (inputs for query points, and for evaluation unless
``eval=FILE`` is given), ``outputs=``
(what the outputs are: logits | probabilities | sigmoid | label | regression) and, for ONNX,
``output=NAME`` (which graph output the target is).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import torch
from torch import nn

from modelrecon.targets.base import OUTPUTS, Target, TargetSpecError, check_outputs, infer_task
from modelrecon.targets.graph import module_truth, onnx_truth, torchscript_truth
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
    if "shape" in hint or "d" in hint:
        shape = _declared_shape(hint)
    else:
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
    except Exception as e:  # noqa: BLE001 - the user's model: one line, not its traceback
        raise TargetSpecError(f"the model does not run on one input of shape {shape}: {type(e).__name__}: "
                              f"{str(e).splitlines()[0] if str(e) else ''} (declare d=N or shape=CxHxW)") from None
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
            check_params(params, entry.params)
            return entry.build(params, spec)
        except ValueError as e:
            raise TargetSpecError(f"{spec}: {e}") from None
    path_part, _, query = spec.partition("?")
    hint = dict(parse_qsl(query))
    declared = {k: hint.pop(k) for k in list(hint) if k in DECLARATIONS}
    if path_part.endswith((".pt", ".pth", ".onnx")):
        path = Path(path_part)
        if hint:
            raise TargetSpecError(f"a model file takes no parameter {', '.join(map(repr, hint))}; it takes: "
                                  f"{', '.join(DECLARATIONS)}")
        if not path.exists():
            raise TargetSpecError(f"no model file at {path}")
        if path.suffix == ".onnx":
            return _declare(_onnx(spec, path, declared), declared)
        extra = {"modelrecon.json": ""}  # a model saved by --save names its input shape
        try:
            model = torch.jit.load(str(path), _extra_files=extra).double().eval()
        except RuntimeError as e:
            raise TargetSpecError(f"{path} is not a TorchScript file (save with torch.jit.save): {e}") from None
        if extra["modelrecon.json"] and "shape" not in declared and "d" not in declared:
            declared["shape"] = "x".join(map(str, json.loads(extra["modelrecon.json"])["input_shape"]))
        shape, k = _probe_shape(model, declared)
        return _declare(Target(spec, model, shape, k, infer_task(k), backend="torchscript",
                               truth=torchscript_truth(model), description=f"TorchScript model {path.name}"), declared)
    if ":" in path_part:
        module_name, _, attr = path_part.partition(":")
        try:
            factory = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as e:
            raise TargetSpecError(f"cannot import {path_part}: {e}") from None
        if not callable(factory):
            raise TargetSpecError(f"{path_part} is a {type(factory).__name__}, not a factory (a callable returning a "
                                  "torch.nn.Module)")
        kwargs = {k: _literal(v) for k, v in hint.items()}
        try:  # a declaration the factory names (d=20 for make(d, hidden)) is its argument as well
            kwargs.update({k: _literal(v) for k, v in declared.items() if k in inspect.signature(factory).parameters})
        except (TypeError, ValueError):
            pass
        try:
            inspect.signature(factory).bind(**kwargs)
        except TypeError as e:
            raise TargetSpecError(f"{path_part}{_signature(factory)}: {e}; give constructor arguments in the spec, "
                                  f"e.g. {path_part}?name=value (declarations: {', '.join(DECLARATIONS)})") from None
        except ValueError:  # no signature to check (a builtin): the call itself tells
            pass
        try:
            model = factory(**kwargs)
        except Exception as e:  # noqa: BLE001 - the user's factory: one line, not its traceback
            raise TargetSpecError(f"{path_part}(**{kwargs}) raised {type(e).__name__}: {e}") from None
        if not isinstance(model, nn.Module):
            raise TargetSpecError(f"{path_part}() returned {type(model).__name__}, not a torch.nn.Module")
        model = model.double().eval()
        shape, k = _probe_shape(model, declared)
        return _declare(Target(spec, model, shape, k, infer_task(k), truth=module_truth(model, shape),
                               description=f"factory {path_part}"), declared)
    raise TargetSpecError(
        f"cannot read target spec {spec!r}: expected builtin:NAME?..., a .pt (TorchScript) or .onnx file, "
        "or package.module:callable"
    )


DECLARATIONS = ("d", "shape", "task", "box", "data", "eval", "outputs", "output")


def _literal(raw: str):
    """A factory argument: a Python literal (64, 0.5, True, (8, 8)) or else the string itself."""
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return raw


def _signature(factory) -> str:
    try:
        return str(inspect.signature(factory))
    except (TypeError, ValueError):
        return "(...)"


def _declare(target: Target, declared: dict[str, str]) -> Target:
    """Apply the spec's declarations (task, box, data, outputs) and check the outputs against them."""
    if "task" in declared:
        target.task = declared["task"]
    if "box" in declared:
        try:
            lo, hi = (float(v) for v in declared["box"].split(","))
        except ValueError:
            raise TargetSpecError(f"box={declared['box']!r}: expected box=LO,HI, e.g. box=0,1") from None
        if not lo < hi:
            raise TargetSpecError(f"box={declared['box']!r}: LO must be below HI")
        target.input_box = (lo, hi)
    target.data = declared.get("data", target.data)
    target.eval_data = declared.get("eval", target.eval_data)
    for name in (target.data, target.eval_data):
        if name and str(name).endswith((".npy", ".npz")) and not Path(name).exists():
            raise TargetSpecError(f"no declared inputs file {name}")
    if "outputs" in declared:
        if declared["outputs"] not in OUTPUTS:
            raise TargetSpecError(f"outputs={declared['outputs']!r}: expected one of {', '.join(OUTPUTS)}")
        target.outputs = declared["outputs"]
    if target.outputs in ("probabilities", "sigmoid", "label") and "task" not in declared:
        target.task = "multiclass" if target.n_outputs > 1 else "binary"
    target.warnings.extend(check_outputs(target))
    return target


def _onnx(spec: str, path: Path, declared: dict[str, str]) -> Target:
    """An ONNX file through onnxruntime.  Of several graph outputs (skl2onnx classifiers give a label and
    the probabilities, the latter as a list of {class: p} maps) the spec's ``output=NAME`` is taken, else
    the first numeric output that is not an integer label; a probability map becomes an (N, K) array."""
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
    if "shape" in declared or "d" in declared:
        shape = _declared_shape(declared)
    else:
        if not all(isinstance(s, int) and s >= 1 for s in inp.shape[1:]):
            raise TargetSpecError(f"{path}: the input's sizes after the batch must be fixed positive integers, "
                                  f"got {inp.shape}: add ?d=N or ?shape=CxHxW")
        shape = tuple(int(s) for s in inp.shape[1:])
    dtype = np.float32 if inp.type == "tensor(float)" else np.float64
    outs = session.get_outputs()
    names = [o.name for o in outs]
    if "output" in declared:
        if declared["output"] not in names:
            raise TargetSpecError(f"{path} has no output {declared['output']!r}; its outputs: {', '.join(names)}")
        chosen = names.index(declared["output"])
    else:
        ranked = sorted(range(len(outs)), key=lambda i: (outs[i].type.startswith("tensor(int"), i))
        chosen = ranked[0]
    kind = outs[chosen].type
    outputs = "label" if kind.startswith("tensor(int") else "probabilities" if kind.startswith("seq(map") else None

    def forward(x: np.ndarray) -> np.ndarray:
        got = session.run([names[chosen]], {inp.name: x.astype(dtype)})[0]
        if isinstance(got, list):  # ZipMap: [{class: p}, ...]
            keys = sorted(got[0]) if got else []
            got = np.array([[row[k] for k in keys] for row in got], dtype=np.float64)
        return np.asarray(got, dtype=np.float64).reshape(len(x), -1)

    try:
        probe = np.asarray(forward(np.zeros((1, *shape))))
        if probe.ndim == 0 or probe.shape[0] != 1:
            raise TypeError(f"its output {names[chosen]!r} has shape {probe.shape}, not a batch of numbers")
    except Exception as e:  # noqa: BLE001 - the user's model: one line, not its traceback
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TargetSpecError(f"{path}: the model does not run on one input of shape {shape}: {first[:300]}") from None
    k = int(probe.shape[1])
    note = f" (output {names[chosen]!r} of {', '.join(names)})" if len(names) > 1 else ""
    target = Target(spec, None, shape, k, infer_task(k), backend="onnx", _forward=forward,
                    truth=onnx_truth(str(path), _producer(path, names[chosen])),
                    description=f"ONNX model {path.name}{note} (values only, {np.dtype(dtype).name} arithmetic)")
    target.outputs = outputs
    return target


def _producer(path: Path, name: str) -> str:
    """The numeric tensor behind an output (a ZipMap output: the probabilities it maps)."""
    import onnx

    graph = onnx.load(str(path)).graph
    by_output = {o: n for n in graph.node for o in n.output}
    while name in by_output and by_output[name].op_type in ("ZipMap", "Cast", "Identity"):
        name = by_output[name].input[0]
    return name


def _declared_shape(declared: dict[str, str]) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in str(declared.get("shape", declared.get("d"))).split("x"))
    except ValueError:
        raise TargetSpecError(f"cannot read the input shape {declared.get('shape', declared.get('d'))!r}: "
                              "d=N or shape=CxHxW") from None
