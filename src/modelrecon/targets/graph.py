"""Truth for models users bring: the layers read by following the model's actual graph.

A torch module is traced (``torch.jit.trace`` on one input of its declared shape), a
TorchScript file is read as it is, an ONNX file through its node list; the graph is then
walked from the input along the one value that carries the data.  A chain of linear
layers and elementwise activations (flatten and dropout pass through; softmax or sigmoid
may end it) gives ``{"family": "mlp", "layers": [(W, b), ...], "activations": [...],
"output_activation": ..., "first_layer": W0}``.  Anything else (a convolution, a branch, an
op we do not know) gives ``{"family": "unknown", "reason": ...}``: the evaluator then says
that it cannot compare parameters instead of guessing from registration order (an unused
layer, registered but never called, is not in the graph).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "gelu": "gelu", "softplus": "softplus",
               "elu": "elu", "leaky_relu": "leaky_relu", "softmax": "softmax", "log_softmax": "log_softmax"}
PASS_THROUGH = {"flatten", "view", "reshape", "dropout", "contiguous", "identity", "to", "double", "float"}


class _Chain:
    """Layers and activations in the order the data meets them."""

    def __init__(self):
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []
        self.after: list[list[str]] = [[]]  # activations after the input, then after each layer

    def linear(self, W: np.ndarray, b: np.ndarray | None) -> None:
        W = np.asarray(W, dtype=np.float64)
        self.layers.append((W, np.zeros(W.shape[0]) if b is None else np.asarray(b, dtype=np.float64).reshape(-1)))
        self.after.append([])

    def act(self, name: str) -> None:
        self.after[-1].append(name)

    def truth(self) -> dict[str, Any]:
        if not self.layers:
            return unknown("no linear layer on the path from the input to the output")
        if self.after[0]:
            return unknown(f"an activation ({self.after[0][0]}) before the first linear layer")
        between = self.after[1:-1]
        if any(len(a) != 1 for a in between):
            return unknown("two linear layers without exactly one activation between them")
        if len(self.after[-1]) > 1:
            return unknown(f"several activations after the last layer: {self.after[-1]}")
        acts = [a[0] for a in between]
        return {"family": "mlp", "layers": self.layers, "activations": acts,
                "output_activation": self.after[-1][0] if self.after[-1] else None,
                "first_layer": self.layers[0][0], "truth_source": "graph"}


def unknown(reason: str) -> dict[str, Any]:
    return {"family": "unknown", "reason": reason}


def module_truth(model: nn.Module, input_shape: tuple[int, ...]) -> dict[str, Any]:
    """Trace a torch module on one input of ``input_shape`` and read its graph."""
    try:
        with torch.no_grad():
            traced = torch.jit.trace(model, torch.zeros((1, *input_shape), dtype=torch.float64), check_trace=False)
    except Exception as e:  # noqa: BLE001 - any tracing failure means: no truth from the graph
        return unknown(f"the model could not be traced ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
    return torchscript_truth(traced)


def torchscript_truth(module: torch.jit.ScriptModule) -> dict[str, Any]:
    """Walk a TorchScript module's inlined graph from its input."""
    graph = module.inlined_graph
    inputs = list(graph.inputs())
    if len(inputs) < 2:
        return unknown("the graph has no data input")
    objects: dict[str, Any] = {inputs[0].debugName(): module}
    consumers: dict[str, int] = {}
    nodes = list(graph.nodes())
    for node in nodes:
        for i in node.inputs():
            consumers[i.debugName()] = consumers.get(i.debugName(), 0) + 1
    current = inputs[1].debugName()
    chain = _Chain()
    for node in nodes:
        kind = node.kind()
        if kind == "prim::GetAttr":
            owner = objects.get(next(node.inputs()).debugName())
            if owner is not None:
                objects[node.output().debugName()] = getattr(owner, node.s("name"))
            continue
        names = [i.debugName() for i in node.inputs()]
        if current not in names:
            continue
        if consumers.get(current, 0) > 1:
            return unknown("the data path branches (a value feeds several ops)")
        op = kind.split("::")[-1].rstrip("_")
        if op == "linear" and names[0] == current:
            W, b = objects.get(names[1]), objects.get(names[2]) if len(names) > 2 else None
            if not isinstance(W, torch.Tensor):
                return unknown("a linear layer whose weight is not a stored parameter")
            chain.linear(W.detach().double().numpy(), b.detach().double().numpy() if isinstance(b, torch.Tensor) else None)
        elif op in ACTIVATIONS:
            chain.act(ACTIVATIONS[op])
        elif op not in PASS_THROUGH:
            return unknown(f"the graph holds {kind}, which is not a linear layer or an elementwise activation")
        current = node.output().debugName()
    return chain.truth()


def onnx_truth(path: str, output_name: str) -> dict[str, Any]:
    """Walk an ONNX graph from its first input to ``output_name``."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(path).graph
    consts = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t).astype(np.float64)
    current = graph.input[0].name
    chain = _Chain()
    pending = None  # a MatMul waiting for its Add
    for node in graph.node:
        if current not in node.input:
            continue
        op = node.op_type
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        other = [i for i in node.input if i != current]
        if op == "Gemm":
            W = consts.get(node.input[1])
            if W is None or attrs.get("transA", 0):
                return unknown("a Gemm whose weight is not a constant")
            W = W if attrs.get("transB", 0) else W.T
            W = W * attrs.get("alpha", 1.0)
            b = consts.get(node.input[2]) * attrs.get("beta", 1.0) if len(node.input) > 2 else None
            chain.linear(W, None if b is None else np.broadcast_to(b, (W.shape[0],)))
        elif op == "MatMul" and node.input[0] == current and node.input[1] in consts:
            chain.linear(consts[node.input[1]].T, None)
            pending = len(chain.layers) - 1
        elif op == "Add" and pending == len(chain.layers) - 1 and other and other[0] in consts:
            W, _ = chain.layers[pending]
            chain.layers[pending] = (W, np.broadcast_to(consts[other[0]].reshape(-1), (W.shape[0],)).copy())
            pending = None
        elif op.lower() in ("relu", "tanh", "sigmoid", "softmax", "logsoftmax", "softplus", "elu", "leakyrelu"):
            chain.act({"logsoftmax": "log_softmax", "leakyrelu": "leaky_relu"}.get(op.lower(), op.lower()))
        elif op in ("Flatten", "Reshape", "Identity", "Dropout", "Cast"):
            pass
        else:
            return unknown(f"the ONNX graph holds {op} on the way to {output_name!r}, not a linear layer or an "
                           "elementwise activation")
        current = node.output[0]
        if current == output_name:
            return chain.truth()
    return unknown(f"the output {output_name!r} is not reached along one chain from the input")
