"""Exact recovery of linear and logistic models.

Milli, Schmidt, Dragan, Hardt (FAT* 2019, arXiv 1807.05185), section on linear models:
the gradient of f(x) = w.x + b is w everywhere, so one gradient query gives w and one
value at the same point gives b = f(x0) - w.x0.  For a logistic model explained in
probability space the gradient is p(1-p) w, so the probability at the same point both
rescales it and gives the logit.  Explanations that are linear in w on a linear model
(input x gradient: x.w; integrated gradients and DeepLift: (x - baseline).w; SmoothGrad
and guided backprop: w) determine w from one query as well.

Beside it, the prediction-only baseline of Tramer et al. (USENIX Security 2016): d+1
value (or probability) queries at x0 and x0 + s e_i solve for (w, b) exactly.

Steps: 1. pick x0 (the centre of the input box, or 0) and ask the kinds the method needs;
2. solve for w and b; 3. verify on fresh random points (a separate ledger phase) and
fail with the measured residual if the answers are not those of a linear model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from modelrecon.attacks import Attack
from modelrecon.oracle import Oracle, OracleError
from modelrecon.result import Result
from modelrecon.verdict import passes, worst_ratio

EPS = np.finfo(np.float64).eps

# explanation method -> what it is, per coordinate, on a linear model explained in logit space
LINEAR_IN_W = {
    "gradient": "w", "explanation:saliency-signed": "w", "explanation:smoothgrad": "w",
    "explanation:guided-backprop": "w", "explanation:input-x-gradient": "x*w",
    "explanation:integrated-gradients": "(x-ig_baseline)*w", "explanation:deeplift": "(x-deeplift_baseline)*w",
}
GRADIENT_LIKE = ("gradient", "explanation:saliency-signed", "explanation:guided-backprop")
METHODS = ("auto", "gradient", "explanation", "equations")


class LinearAttack(Attack):
    """Recover (w, b) of f(x) = w.x + b, or of the logit of a logistic model."""

    name = "linear"

    def __init__(self, method: str = "auto", explanation: str | None = None, verify: int = 2, seed: int = 0,
                 step: float | None = None, refine_bias: bool = False):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
        if verify < 0:
            raise ValueError("verify must be >= 0")
        if step is not None and not (math.isfinite(step) and step > 0):
            raise ValueError("step must be a positive number")
        # the equations' step and an explanation point's distance from its baseline (default: half the box);
        # a long step divides the answers' rounding away (the adaptive attack on rounded answers)
        self.step = step
        self.refine_bias = refine_bias  # rounded values: b by bisection to a rounding boundary (~60 values)
        self.method = method
        self.explanation = explanation
        self.verify = verify
        self.seed = seed

    # -- which kinds to ask ----------------------------------------------------------
    def _plan(self, oracle: Oracle) -> tuple[str, str | None, str | None]:
        """(method, explanation kind, prediction kind)."""
        if oracle.n_outputs != 1:
            raise OracleError(f"the linear attack needs a scalar-output target; this one has {oracle.n_outputs} outputs")
        prob_space = oracle.explain_space == "probability"
        preference = ("probabilities", "value") if prob_space else ("value", "probabilities")
        pred = next((k for k in preference if k in oracle.kinds), None)
        usable = [k for k in LINEAR_IN_W if k in oracle.kinds and (not prob_space or k in GRADIENT_LIKE)]
        if self.explanation:
            kind = self.explanation if self.explanation in ("gradient",) else f"explanation:{self.explanation}"
            if kind not in oracle.kinds:
                raise OracleError(f"the oracle does not offer {kind!r}; it offers {', '.join(oracle.kinds)}")
            if kind not in usable:
                raise OracleError(f"{kind} does not determine w of a linear model"
                                  + (" when explanations are taken in probability space" if prob_space else
                                     " (absolute saliency loses the signs)"))
            usable = [kind]
        method = self.method
        if method == "auto":
            method = "gradient" if usable else "equations"
        if method in ("gradient", "explanation"):
            if not usable:
                raise OracleError(f"no offered kind determines w (offered: {', '.join(oracle.kinds)}); "
                                  "use method 'equations' with value or probability queries")
            if prob_space and pred != "probabilities":
                raise OracleError("explanations in probability space need the probability at the same point")
            return "gradient" if usable[0] == "gradient" else "explanation", usable[0], pred
        if pred is None:
            raise OracleError("equation solving needs value or probability queries; the oracle offers neither")
        return "equations", None, pred

    def _logit(self, answer: np.ndarray, pred: str) -> np.ndarray:
        if pred == "value":
            return np.asarray(answer, dtype=np.float64)
        p = np.asarray(answer, dtype=np.float64)
        if np.any((p <= 0) | (p >= 1)):
            raise OracleError("a returned probability is exactly 0 or 1: the logit is lost to rounding or saturation")
        return np.log(p) - np.log1p(-p)

    def execute(self, oracle: Oracle) -> Result:
        method, kind, pred = self._plan(oracle)
        d = oracle.input_dim
        lo, hi = oracle.input_box if oracle.input_box else (-1.0, 1.0)
        x0 = np.full(oracle.input_shape, (lo + hi) / 2.0)
        details: dict[str, Any] = {"method": method, "explanation_kind": kind, "prediction_kind": pred}
        if method == "equations":
            step = self.step or (hi - lo) / 2.0
            X = np.concatenate([x0.reshape(1, -1), x0.reshape(1, -1) + step * np.eye(d)]).reshape(d + 1, *oracle.input_shape)
            z = self._logit(oracle.query(X, (pred,))[pred], pred)
            w = (z[1:] - z[0]) / step
            b = float(z[0] - w @ x0.ravel())
        else:
            form = LINEAR_IN_W[kind]
            if form != "w":  # explanations scaled by x - baseline need every coordinate away from the baseline
                base = 0.0 if form == "x*w" else float(oracle.options[form[3:-3]])
                x0 = np.full(oracle.input_shape, base + (self.step or (hi - lo) / 2.0))
            asked = (kind,) + ((pred,) if pred else ())
            got = oracle.query(x0, asked)
            e = np.asarray(got[kind], dtype=np.float64).ravel()
            if form == "w":
                w = e.copy()
            elif form == "x*w":
                w = e / x0.ravel()
            else:
                w = e / (x0.ravel() - float(oracle.options[form[3:-3]]))
            if oracle.explain_space == "probability":
                p = float(got["probabilities"])
                w = w / (p * (1.0 - p))
            b = float(self._logit(got[pred], pred) - w @ x0.ravel()) if pred else None
        rounding = oracle.options.get("round_decimals")
        if self.refine_bias and pred == "value" and rounding is not None:
            b = self._bias_at_rounding_boundary(oracle, w, b, 0.5 * 10.0 ** -rounding)
            details["bias_from"] = "bisection to a rounding boundary"
        model = _linear_module(w, b if b is not None else 0.0)
        result = Result(self.name, "complete", "", params={"w": w, "b": b}, model=model, details=details)
        if b is None:
            result.message = "w recovered; the bias is not identifiable without value or probability queries"
            details["bias_identified"] = False
        if self.verify and pred:
            self._verify(oracle, result, pred, lo, hi)
        elif not self.verify:
            result.message = (result.message or "recovered") + "; not verified (verify=0)"
        return result

    @staticmethod
    def _bias_at_rounding_boundary(oracle: Oracle, w: np.ndarray, b: float, half: float) -> float:
        """Values rounded to N decimals hide b's last digits, but not where the rounding steps: along
        x(t) = t w/|w|^2 the answer is round(b + t), which steps up at b + t = z0 + half (z0 its value at 0).
        Bisect t to float64 resolution (w known exactly: the long-step equations or a far IG answer)."""
        u = (w / (w @ w)).reshape(oracle.input_shape)
        ask = lambda t: float(np.asarray(oracle.query(t * u, ("value",))["value"]).reshape(-1)[0])  # noqa: E731
        z0 = ask(0.0)
        lo, hi = 0.0, 4 * half
        while ask(hi) <= z0:  # (b is known to half a unit: a few doublings at most)
            lo, hi = hi, 2 * hi
        while True:
            mid = (lo + hi) / 2
            if not lo < mid < hi:
                break
            if ask(mid) > z0:
                hi = mid
            else:
                lo = mid
        return float(z0 + half - (lo + hi) / 2)

    def _verify(self, oracle: Oracle, result: Result, pred: str, lo: float, hi: float) -> None:
        """Compare predictions with fresh answers; tolerance from float64 rounding of the dot
        products and from the oracle's own rounding, if any."""
        rng = np.random.default_rng(self.seed)
        X = rng.uniform(lo, hi, size=(self.verify, *oracle.input_shape))
        with oracle.ledger.phase("verify"):
            answer = np.asarray(oracle.query(X, (pred,))[pred], dtype=np.float64)
        w, b = result.params["w"], result.params["b"] or 0.0
        flat = X.reshape(len(X), -1)
        z_hat = flat @ w + b
        # float64 error of a length-d dot product is below d*eps*sum|w_i x_i|; recovering w and b
        # costs a few roundings more, and an oracle that rounds adds half a unit of its last digit
        # to every returned number that went into w, b and the answer.
        gamma = 4 * (oracle.input_dim + 2) * EPS
        scale = np.abs(flat) @ np.abs(w) + abs(b) + np.abs(z_hat)
        rounding = oracle.options.get("round_decimals")
        if rounding is not None:
            scale = scale + 0.5 * 10.0 ** (-rounding) / gamma * (np.abs(flat).sum(axis=1) + oracle.input_dim + 2)
        if pred == "value":
            residual = np.abs(z_hat - answer)
            tol = gamma * scale
        else:
            p_hat = 1.0 / (1.0 + np.exp(-z_hat))
            residual = np.abs(p_hat - answer)
            tol = gamma * (scale * p_hat * (1 - p_hat) + 1.0)
        worst = worst_ratio(residual, tol)
        result.details["verification"] = {"points": self.verify, "max_abs_residual": float(residual.max()),
                                          "residual_over_tolerance": worst}
        if not passes(worst):
            result.status = "failed"
            result.message = (f"the target is not a linear model{' on the logit scale' if pred != 'value' else ''}: "
                              f"on {self.verify} fresh queries the recovered model is off by up to "
                              f"{residual.max():.3g} ({worst:.3g} x the float64 tolerance)")
        else:
            result.message = (result.message or "exact recovery") + (
                f"; verified on {self.verify} fresh queries (max residual {residual.max():.2g})")


def _linear_module(w: np.ndarray, b: float) -> nn.Module:
    layer = nn.Linear(len(w), 1).double()
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(w).reshape(1, -1))
        layer.bias.fill_(b)
    return layer.eval()
