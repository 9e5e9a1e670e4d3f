"""Answers computed on the target side: predictions, gradients, and Captum explanations.

This module runs inside the wall (it is handed the model by the oracle's backend); an
attack never imports it.  Every function returns the answers together with the number
of model evaluations (forward/backward passes per input) spent producing them, which
the ledger reports beside the query count.
"""

from __future__ import annotations

from typing import Any

import warnings

import numpy as np
import torch
from torch import nn

METHODS = (
    "saliency",  # |gradient| (Captum's default abs=True)
    "saliency-signed",  # gradient, through Captum's Saliency(abs=False)
    "input-x-gradient",
    "integrated-gradients",
    "smoothgrad",  # NoiseTunnel over signed saliency
    "deeplift",
    "guided-backprop",
)

IG_METHODS = ("gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid")

DEFAULT_OPTIONS: dict[str, Any] = {
    "explain_space": "logit",  # explain the logit, or the probability (sigmoid / softmax)
    "ig_steps": 32,
    "ig_baseline": 0.0,
    "ig_method": "gausslegendre",  # Captum's quadrature: gausslegendre, riemann_{left,right,middle,trapezoid}
    "smoothgrad_samples": 16,
    "smoothgrad_stdev": 0.1,  # relative to the input range, as Captum's stdevs
    "deeplift_baseline": 0.0,
    "seed": 0,
}

_EVALUATIONS = {"saliency": 1, "saliency-signed": 1, "input-x-gradient": 1, "deeplift": 2, "guided-backprop": 1}

MAX_ROWS = 256
"""Model rows (inputs x noise samples, or inputs and their baselines) per forward/backward pass:
bounds the memory of an explanation (SmoothGrad of 1,000 CNN inputs in one pass took 12 GB)."""


class _Space(nn.Module):
    """The model's outputs in the space explanations are taken in: logits or probabilities."""

    def __init__(self, model: nn.Module, space: str, scalar: bool):
        super().__init__()
        self.model = model
        self.link = nn.Identity() if space == "logit" else (nn.Sigmoid() if scalar else nn.Softmax(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return self.link(out.reshape(len(x), -1))


def as_outputs(out: torch.Tensor, n: int) -> torch.Tensor:
    return out.reshape(n, -1)


def integrated_gradients(f: nn.Module, x: torch.Tensor, idx: torch.Tensor, baseline: float, steps: int,
                         method: str = "gausslegendre") -> torch.Tensor:
    """Integrated gradients with Captum's quadrature (Gauss-Legendre by default), accumulated in float64.

    Captum's IntegratedGradients casts its step sizes to float32 (a 1e-8 relative error
    that would break exact attacks), so the quadrature nodes and weights are taken from
    Captum and the weighted sum of gradients is done here."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = (fn(steps) for fn in approximation_parameters(method))
    total = torch.zeros_like(x)
    for s, a in zip(step_sizes, alphas):
        point = (baseline + a * (x - baseline)).requires_grad_(True)
        (g,) = torch.autograd.grad(f(point).gather(1, idx[:, None]).sum(), point)
        total += s * g
    return (x - baseline) * total


def smoothgrad(f: nn.Module, x: torch.Tensor, idx: torch.Tensor, samples: int, stdev: float,
               seed: int) -> torch.Tensor:
    """SmoothGrad as Captum's ``NoiseTunnel(Saliency(abs=False))`` computes it, in passes of at
    most :data:`MAX_ROWS` noisy points.

    The noise is NoiseTunnel's own draw for the whole batch (seeded, float32, one row per input
    and sample, samples of an input adjacent), so the answer does not depend on the passes."""
    from captum.attr import Saliency

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        noise = torch.normal(0, torch.tensor(stdev).repeat((len(x) * samples,) + tuple(x.shape[1:])))
    noise = noise.view(len(x), samples, *x.shape[1:])
    means = []
    for p in passes(len(x), MAX_ROWS // samples):
        noisy = (x[p, None] + noise[p]).flatten(0, 1)
        g = Saliency(f).attribute(noisy, target=idx[p].repeat_interleave(samples).tolist(), abs=False)
        means.append(g.view(-1, samples, *x.shape[1:]).sum(dim=1) * 1 / samples)  # NoiseTunnel's mean
    return torch.cat(means)


def passes(n: int, inputs_per_pass: int) -> list[slice]:
    """The chunks of a batch of n inputs (at least one input a pass; an empty batch: one empty pass)."""
    step = max(1, inputs_per_pass)
    return [slice(i, i + step) for i in range(0, max(n, 1), step)]


def predictions(logits: np.ndarray, kinds: tuple[str, ...], task: str, options: dict[str, Any]) -> dict[str, np.ndarray]:
    """value / probabilities / label answers from raw outputs of shape (N, K)."""
    scalar = logits.shape[1] == 1
    out: dict[str, np.ndarray] = {}
    if "value" in kinds:
        out["value"] = logits[:, 0] if scalar else logits
    if "probabilities" in kinds:
        if task == "regression":
            raise ValueError("this target is a regression model: it has no probabilities; ask for 'value'")
        if scalar:
            p = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        else:
            z = logits - logits.max(axis=1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(axis=1, keepdims=True)
        top_k = options.get("top_k")
        if top_k is not None and not scalar:
            cut = np.argsort(-p, axis=1)[:, top_k:]
            p = p.copy()
            np.put_along_axis(p, cut, 0.0, axis=1)
        out["probabilities"] = p
    if "label" in kinds:
        if scalar:
            above = logits[:, 0] > options.get("threshold", 0.0)
            out["label"] = np.where(above, 1, -1 if options.get("label_format") == "sign" else 0).astype(np.int64)
        else:
            out["label"] = logits.argmax(axis=1).astype(np.int64)
    return out


def explanations(
    model: nn.Module, x: np.ndarray, kinds: tuple[str, ...], output: int | str, options: dict[str, Any]
) -> tuple[dict[str, np.ndarray], int]:
    """gradient and explanation:* answers for a batch, and the model evaluations they cost."""
    xt = torch.as_tensor(x, dtype=torch.float64)
    with torch.no_grad():
        logits = torch.cat([as_outputs(model(xt[p]), len(xt[p])) for p in passes(len(xt), MAX_ROWS)])
    if not logits.is_floating_point():
        from modelrecon.oracle import OracleError  # (oracle.py imports this module)

        raise OracleError(f"the target answers {logits.dtype} outputs (labels?), which have no gradient; "
                          "declare outputs=label and use a label attack")
    scalar = logits.shape[1] == 1
    if output == "predicted":
        idx = torch.zeros(len(xt), dtype=torch.long) if scalar else logits.argmax(dim=1)
    else:
        idx = torch.full((len(xt),), int(output), dtype=torch.long)
    f = _Space(model, options["explain_space"], scalar).double().eval()
    out: dict[str, np.ndarray] = {}
    evaluations = 0
    with warnings.catch_warnings():  # Captum warns about hooks and requires_grad on every call
        warnings.simplefilter("ignore")
        for kind in kinds:
            out[kind] = _attribute(f, xt, idx, kind, options)
            evaluations += _cost(kind, options) * len(xt)
    return out, evaluations


def _cost(kind: str, options: dict[str, Any]) -> int:
    """Model evaluations per input of one kind."""
    method = kind.split(":", 1)[-1]
    return {"integrated-gradients": int(options["ig_steps"]),
            "smoothgrad": int(options["smoothgrad_samples"])}.get(method, _EVALUATIONS.get(method, 1))


def _attribute(f: nn.Module, xt: torch.Tensor, idx: torch.Tensor, kind: str, options: dict[str, Any]) -> np.ndarray:
    """One kind for a batch, in passes of at most :data:`MAX_ROWS` model rows."""
    if kind == "explanation:smoothgrad":  # draws the whole batch's noise, then passes in chunks
        return smoothgrad(f, xt, idx, int(options["smoothgrad_samples"]), float(options["smoothgrad_stdev"]),
                          int(options["seed"])).detach().numpy()
    step = MAX_ROWS // (2 if kind == "explanation:deeplift" else 1)  # DeepLift adds a baseline row
    return np.concatenate([_attribute_pass(f, xt[p], idx[p], kind, options) for p in passes(len(xt), step)])


def _attribute_pass(f: nn.Module, xt: torch.Tensor, idx: torch.Tensor, kind: str,
                    options: dict[str, Any]) -> np.ndarray:
    """One kind for a chunk of inputs (integrated gradients: a pass per step)."""
    from captum.attr import DeepLift, GuidedBackprop, InputXGradient, Saliency

    if kind == "gradient":
        xg = xt.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(f(xg).gather(1, idx[:, None]).sum(), xg)
        return g.detach().numpy()
    method = kind.split(":", 1)[1]
    target = idx.tolist()
    if method == "saliency":
        a = Saliency(f).attribute(xt, target=target, abs=True)
    elif method == "saliency-signed":
        a = Saliency(f).attribute(xt, target=target, abs=False)
    elif method == "input-x-gradient":
        a = InputXGradient(f).attribute(xt, target=target)
    elif method == "integrated-gradients":
        a = integrated_gradients(f, xt, idx, float(options["ig_baseline"]), int(options["ig_steps"]),
                                 str(options.get("ig_method", "gausslegendre")))
    elif method == "deeplift":
        a = DeepLift(f).attribute(xt, baselines=float(options["deeplift_baseline"]), target=target)
    elif method == "guided-backprop":
        a = GuidedBackprop(f).attribute(xt, target=target)
    else:  # the oracle validates kinds; this guards direct callers
        raise ValueError(f"unknown explanation method {method!r}; known: {', '.join(METHODS)}")
    return a.detach().numpy()
