"""Answers computed on the target side: predictions, gradients, and Captum explanations.

This module runs inside the wall (it is handed the model by the oracle's backend); an
attack never imports it.  Every function returns the answers together with the number
of model evaluations (forward/backward passes per input) spent producing them, which
the ledger reports beside the query count.
"""

from __future__ import annotations

from typing import Any

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

DEFAULT_OPTIONS: dict[str, Any] = {
    "explain_space": "logit",  # explain the logit, or the probability (sigmoid / softmax)
    "ig_steps": 32,
    "ig_baseline": 0.0,
    "smoothgrad_samples": 16,
    "smoothgrad_stdev": 0.1,  # relative to the input range, as Captum's stdevs
    "deeplift_baseline": 0.0,
    "seed": 0,
}

_EVALUATIONS = {"saliency": 1, "saliency-signed": 1, "input-x-gradient": 1, "deeplift": 2, "guided-backprop": 1}


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
    """gradient and explanation:* answers for a batch, and the evaluations they cost per input."""
    from captum.attr import (DeepLift, GuidedBackprop, InputXGradient, IntegratedGradients, NoiseTunnel,
                             Saliency)

    xt = torch.as_tensor(x, dtype=torch.float64)
    with torch.no_grad():
        logits = as_outputs(model(xt), len(xt))
    scalar = logits.shape[1] == 1
    if output == "predicted":
        idx = torch.zeros(len(xt), dtype=torch.long) if scalar else logits.argmax(dim=1)
    else:
        idx = torch.full((len(xt),), int(output), dtype=torch.long)
    f = _Space(model, options["explain_space"], scalar).double().eval()
    target = idx.tolist()
    out: dict[str, np.ndarray] = {}
    evaluations = 0
    for kind in kinds:
        if kind == "gradient":
            xg = xt.clone().requires_grad_(True)
            chosen = f(xg).gather(1, idx[:, None]).sum()
            (g,) = torch.autograd.grad(chosen, xg)
            out[kind], cost = g.detach().numpy(), 1
        else:
            method = kind.split(":", 1)[1]
            if method == "saliency":
                a = Saliency(f).attribute(xt, target=target, abs=True)
            elif method == "saliency-signed":
                a = Saliency(f).attribute(xt, target=target, abs=False)
            elif method == "input-x-gradient":
                a = InputXGradient(f).attribute(xt, target=target)
            elif method == "integrated-gradients":
                a = IntegratedGradients(f).attribute(xt, baselines=float(options["ig_baseline"]), target=target,
                                                     n_steps=int(options["ig_steps"]))
            elif method == "smoothgrad":
                with torch.random.fork_rng():
                    torch.manual_seed(int(options["seed"]))
                    a = NoiseTunnel(Saliency(f)).attribute(xt, nt_type="smoothgrad", target=target, abs=False,
                                                           nt_samples=int(options["smoothgrad_samples"]),
                                                           stdevs=float(options["smoothgrad_stdev"]))
            elif method == "deeplift":
                a = DeepLift(f).attribute(xt, baselines=float(options["deeplift_baseline"]), target=target)
            elif method == "guided-backprop":
                a = GuidedBackprop(f).attribute(xt, target=target)
            else:  # the oracle validates kinds; this guards direct callers
                raise ValueError(f"unknown explanation method {method!r}; known: {', '.join(METHODS)}")
            out[kind] = a.detach().numpy()
            cost = {"integrated-gradients": int(options["ig_steps"]),
                    "smoothgrad": int(options["smoothgrad_samples"])}.get(method, _EVALUATIONS.get(method, 1))
        evaluations += cost * len(xt)
    return out, evaluations
