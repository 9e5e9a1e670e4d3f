"""The built-in zoo: random models of the families the attacks assume, and small models
trained on bundled data.  ``builtin:NAME?key=value&...`` selects one; every parameter
has a default, so ``builtin:relu2`` alone is a target."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from modelrecon.targets.base import Target, sequential_truth

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "softplus": nn.Softplus,
}


@dataclass
class ZooEntry:
    name: str
    description: str
    params: dict[str, tuple[Any, str]]  # name -> (default, help)
    build: Callable[[dict[str, Any], str], Target]


MAX_INPUT_DIM = 1_000_000  # inputs larger than this are refused
MAX_WEIGHTS = 50_000_000  # weights of a random zoo model (400 MB of float64)


def check_params(p: dict[str, Any], defaults: dict[str, tuple[Any, str]] | None = None) -> None:
    """The zoo's parameter ranges, checked before anything is built; ValueError names the value.
    An entry's own default is always allowed (``builtin:deep``'s epochs=-1 means "as its init says")."""
    limits = {"d": (1, MAX_INPUT_DIM), "h": (1, 100_000), "k": (1, 10_000), "bias": (0, 1), "seed": (0, 2 ** 63 - 1),
              "epochs": (0, 1000)}
    for name, (low, high) in limits.items():
        if name in p and not low <= int(p[name]) <= high and not (defaults and p[name] == defaults.get(name, (None,))[0]):
            raise ValueError(f"{name}={p[name]} is out of range: it must be in [{low}, {high}]")
    if "bias_scale" in p and not (np.isfinite(p["bias_scale"]) and p["bias_scale"] >= 0):
        raise ValueError(f"bias_scale={p['bias_scale']} must be a finite number >= 0")
    if "widths" in p:
        widths = _widths(p["widths"])
        if not widths or min(widths) < 1 or max(widths) > 100_000:
            raise ValueError(f"widths={p['widths']}: hidden widths are integers in [1, 100000], at least one")
    sizes = [int(p.get("d", 64))] + (_widths(p["widths"]) if "widths" in p else [int(p.get("h", 1))]) \
        + [int(p.get("k", 1))]
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if weights > MAX_WEIGHTS:
        raise ValueError(f"{weights} weights ({' x '.join(map(str, sizes))}) is over the zoo's limit of {MAX_WEIGHTS}")


def _rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _linear(p: dict[str, Any], spec: str, task: str) -> Target:
    g = _rng(p["seed"])
    d = int(p["d"])
    layer = nn.Linear(d, 1, bias=bool(p["bias"])).double()
    with torch.no_grad():
        layer.weight.copy_(torch.randn(1, d, generator=g, dtype=torch.float64) / np.sqrt(d))
        if layer.bias is not None:
            layer.bias.copy_(torch.randn(1, generator=g, dtype=torch.float64))
    b = layer.bias.detach().numpy().copy() if layer.bias is not None else np.zeros(1)
    truth = {"family": "linear", "w": layer.weight.detach().numpy()[0].copy(), "b": float(b[0]), "link":
             "logistic" if task == "binary" else "identity"}
    return Target(spec, layer.eval(), (d,), 1, task, truth=truth,
                  description=f"{'logistic' if task == 'binary' else 'linear'} model on R^{d}")


def _relu2(p: dict[str, Any], spec: str) -> Target:
    g = _rng(p["seed"])
    d, h, k = int(p["d"]), int(p["h"]), int(p["k"])
    bias = bool(p["bias"])
    model = nn.Sequential(nn.Linear(d, h, bias=bias), nn.ReLU(), nn.Linear(h, k, bias=bias)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.randn(h, d, generator=g, dtype=torch.float64) / np.sqrt(d))
        model[2].weight.copy_(torch.randn(k, h, generator=g, dtype=torch.float64) / np.sqrt(h))
        if bias:
            model[0].bias.copy_(torch.randn(h, generator=g, dtype=torch.float64) * float(p["bias_scale"]))
            model[2].bias.copy_(torch.randn(k, generator=g, dtype=torch.float64))
    t = sequential_truth(model)
    (W, b), (V, c) = t["layers"]
    truth = {"family": "relu2", "W": W, "b": b, "V": V, "c": c, **t}
    return Target(spec, model.eval(), (d,), k, "regression" if k == 1 else "multiclass", truth=truth,
                  description=f"two-layer ReLU network {d} -> {h} -> {k}")


def _widths(value: Any) -> list[int]:
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    try:
        return [int(v) for v in str(value).replace(" ", "").split(",") if v]
    except ValueError:
        raise ValueError(f"widths={value!r}: hidden widths are integers separated by commas, e.g. 32,32") from None


def _mlp(p: dict[str, Any], spec: str) -> Target:
    d, k = int(p["d"]), int(p["k"])
    widths = _widths(p["widths"])
    model = build_deep(d, widths, k, "random", int(p["seed"]), 0, 0.1, str(p["act"]))
    return Target(spec, model, (d,), k, "regression" if k == 1 else "multiclass", truth=sequential_truth(model),
                  description=f"{len(widths) + 1}-layer {p['act']} MLP {d} -> {' -> '.join(map(str, widths))} -> {k}")


def build_deep(d: int, widths: list[int], k: int, init: str, seed: int, epochs: int, bias_scale: float,
               act: str = "relu") -> nn.Sequential:
    """A fully connected network d -> widths -> k in float64.

    ``init='carlini'`` builds it as Carlini, Jagielski, Mironov (CRYPTO 2020) build their benchmark networks
    (train_models.py): weights N(0, 1)/sqrt(fan_out), zero biases, then ``epochs`` epochs of Adam (lr 3e-4,
    batch 4, MSE) on 20 standard Gaussian points with random 0/1 labels.  ``init='random'``: weights
    N(0, 1)/sqrt(fan_in), biases N(0, bias_scale^2), untrained unless ``epochs`` > 0 (same recipe)."""
    if init not in ("carlini", "random"):
        raise ValueError(f"unknown init {init!r}; known: carlini, random")
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}; known: {', '.join(ACTIVATIONS)}")
    if d < 1 or k < 1 or not widths or min(widths) < 1:
        raise ValueError("d, k and every width must be >= 1, with at least one hidden layer")
    g = _rng(seed)
    sizes = [d] + widths + [k]
    layers: list[nn.Module] = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        lin = nn.Linear(fan_in, fan_out).double()
        with torch.no_grad():
            scale = fan_out if init == "carlini" else fan_in
            lin.weight.copy_(torch.randn(fan_out, fan_in, generator=g, dtype=torch.float64) / np.sqrt(scale))
            lin.bias.copy_(torch.zeros(fan_out, dtype=torch.float64) if init == "carlini"
                           else torch.randn(fan_out, generator=g, dtype=torch.float64) * bias_scale)
        layers.append(lin)
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[act]())
    model = nn.Sequential(*layers)
    if epochs > 0:
        X = torch.randn(20, d, generator=g, dtype=torch.float64)
        Y = torch.randint(0, 2, (20, k), generator=g).to(torch.float64)
        opt = torch.optim.Adam(model.parameters(), lr=3e-4)
        for _ in range(epochs):
            order = torch.randperm(20, generator=g)
            for start in range(0, 20, 4):
                idx = order[start:start + 4]
                opt.zero_grad()
                loss = ((model(X[idx]) - Y[idx]) ** 2).mean()
                loss.backward()
                opt.step()
    for prm in model.parameters():
        prm.requires_grad_(False)
    return model.eval()


def _deep(p: dict[str, Any], spec: str) -> Target:
    d, k, init = int(p["d"]), int(p["k"]), str(p["init"])
    widths = _widths(p["widths"])
    if p["widths_include_output"]:
        *widths, k = widths
    epochs = int(p["epochs"]) if int(p["epochs"]) >= 0 else (100 if init == "carlini" else 0)
    model = build_deep(d, widths, k, init, int(p["seed"]), epochs, float(p["bias_scale"]), str(p["act"]))
    name = "-".join(map(str, [d, *widths, k]))
    return Target(spec, model, (d,), k, "regression" if k == 1 else "multiclass", truth=sequential_truth(model),
                  description=f"{init} {p['act']} network {name}" + (f", trained {epochs} epochs" if epochs else ""))


def _trained_mlp(dataset: str, p: dict[str, Any], spec: str) -> Target:
    from modelrecon.targets.train import trained_mlp

    widths = [int(p["h"])] if "h" in p else _widths(p["widths"])
    return trained_mlp(spec, dataset, widths, str(p.get("act", "relu")), int(p["seed"]),
                       int(p["epochs"]) if "epochs" in p else None)


def _digits_cnn(p: dict[str, Any], spec: str) -> Target:
    from modelrecon.targets.train import digits_cnn

    return digits_cnn(spec, int(p["seed"]))


def _image_cnn(dataset: str, p: dict[str, Any], spec: str) -> Target:
    from modelrecon.targets.train import image_cnn

    return image_cnn(spec, dataset, int(p["seed"]), int(p["epochs"]), p.get("root") or None)


ZOO: dict[str, ZooEntry] = {e.name: e for e in [
    ZooEntry("linear", "linear regression f(x) = w.x + b, w ~ N(0, 1/d)",
             {"d": (20, "input dimension"), "bias": (1, "1: with bias"), "seed": (0, "random seed")},
             lambda p, s: _linear(p, s, "regression")),
    ZooEntry("logistic", "logistic regression: logit w.x + b, probability sigmoid(logit)",
             {"d": (20, "input dimension"), "bias": (1, "1: with bias"), "seed": (0, "random seed")},
             lambda p, s: _linear(p, s, "binary")),
    ZooEntry("relu2", "random two-layer ReLU network V relu(W x + b) + c (k=1: scalar output)",
             {"d": (20, "input dimension"), "h": (10, "hidden units"), "k": (1, "outputs"),
              "bias": (1, "1: with biases"), "bias_scale": (0.5, "std of first-layer biases"),
              "seed": (0, "random seed")}, _relu2),
    ZooEntry("mlp", "random deep MLP (widths of hidden layers, activation relu/tanh/sigmoid/gelu/softplus)",
             {"d": (100, "input dimension"), "widths": ("20,40", "hidden widths, first is k of the span attack"),
              "k": (1, "outputs"), "act": ("relu", "activation"), "seed": (0, "random seed")}, _mlp),
    ZooEntry("deep", "fully connected deep network d -> widths -> k; init=carlini builds it as Carlini et al. 2020's "
             "benchmarks (N(0,1)/sqrt(fan_out), zero biases, 100 epochs on 20 random points), init=random with biases",
             {"d": (10, "input dimension"), "widths": ("10,10,1", "layer widths after the input; the last is the "
                                                      "output count k (widths=10,10,1: Carlini's 10-10-10-1)"),
              "widths_include_output": (1, "1: the last width is k (then k is ignored); 0: widths are hidden only"),
              "k": (1, "outputs when widths_include_output=0"), "init": ("carlini", "carlini | random"),
              "epochs": (-1, "training epochs on 20 random points (-1: 100 for carlini, 0 for random)"),
              "bias_scale": (0.5, "random init: std of the biases"), "act": ("relu", "activation"),
              "seed": (0, "random seed")}, _deep),
    ZooEntry("digits-mlp", "MLP trained on scikit-learn digits (64 -> widths -> 10), cached on disk",
             {"widths": ("32,32", "hidden widths (first layer k < 64)"), "act": ("relu", "activation"),
              "seed": (0, "random seed")}, lambda p, s: _trained_mlp("digits", p, s)),
    ZooEntry("digits-cnn", "small CNN trained on scikit-learn digits (1x8x8 -> 10), cached on disk",
             {"seed": (0, "random seed")}, _digits_cnn),
    ZooEntry("mnist-mlp", "MLP trained on MNIST (784 -> widths -> 10), cached; MNIST from `modelrecon data fetch mnist`",
             {"widths": ("128,64", "hidden widths (first layer k < 784)"), "act": ("relu", "activation (relu, sigmoid, ...)"),
              "epochs": (5, "training epochs"), "seed": (0, "random seed")}, lambda p, s: _trained_mlp("mnist", p, s)),
    ZooEntry("mnist-relu2", "two-layer ReLU network trained on MNIST (784 -> h -> 10): the exact attack's family",
             {"h": (128, "hidden units"), "epochs": (5, "training epochs"), "seed": (0, "random seed")},
             lambda p, s: _trained_mlp("mnist", p, s)),
    ZooEntry("mnist-cnn", "CNN trained on MNIST (1x28x28 -> 10), cached; MNIST from `modelrecon data fetch mnist` "
             "or IDX files ($MODELRECON_MNIST)",
             {"seed": (0, "random seed"), "epochs": (3, "training epochs"), "root": ("", "folder of IDX files")},
             lambda p, s: _image_cnn("mnist", p, s)),
    ZooEntry("cifar-cnn", "CNN trained once on local CIFAR-10 pickles ($MODELRECON_CIFAR10), cached; nothing downloaded",
             {"seed": (0, "random seed"), "epochs": (10, "training epochs"), "root": ("", "folder of the pickles")},
             lambda p, s: _image_cnn("cifar10", p, s)),
]}
