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

Generalised linear models: a model that returns sigmoid(w.x + b) as its value (a logistic
regression exported with its sigmoid, a Keras model ending in one) has gradient p(1-p) w at a
point of value p, so the same two queries give w = g / (p(1-p)) and b = logit(p) - w.x0.
With ``link="auto"`` both readings (identity and sigmoid, the latter when the value lies in
(0, 1)) are verified on the same fresh queries and the one that holds is kept; a declared
``outputs`` of the target (sigmoid, or logits / regression) fixes it.  A two-column softmax
(probabilities [1-p, p], as skl2onnx exports a binary classifier) is a sigmoid of z1 - z0 on
the output followed (``output=1``).

Steps: 1. pick x0 (the centre of the input box, or 0) and ask the kinds the method needs;
2. solve for w and b under each link; 3. verify on fresh random points (a separate ledger
phase) and fail with the measured residual if the answers are not those of a (generalised)
linear model.
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
LINKS = ("auto", "identity", "sigmoid")


class LinearAttack(Attack):
    """Recover (w, b) of f(x) = w.x + b, or of the logit of a logistic model."""

    name = "linear"

    def __init__(self, method: str = "auto", explanation: str | None = None, verify: int = 2, seed: int = 0,
                 output: int | None = None, link: str = "auto", step: float | None = None, refine_bias: bool = False):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
        if link not in LINKS:
            raise ValueError(f"unknown link {link!r}; known: {', '.join(LINKS)}")
        self.output = output
        self.link = link
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
        if oracle.n_outputs != 1 and self.output is None:
            raise OracleError(f"this target has {oracle.n_outputs} outputs: pick the one the linear attack follows "
                              "(--output K)")
        if self.output is not None and not 0 <= self.output < oracle.n_outputs:
            raise OracleError(f"output {self.output} out of range: the target has {oracle.n_outputs} outputs")
        prob_space = oracle.explain_space == "probability"
        preference = ("probabilities", "value") if prob_space else ("value", "probabilities")
        if oracle.n_outputs != 1:  # the probability of one class of a softmax is not the sigmoid of one logit
            if prob_space:
                raise OracleError("a multi-output target is followed on its values, with explanations of the logits")
            preference = ("value",)
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

    def _followed(self, answer: np.ndarray) -> np.ndarray:
        a = np.asarray(answer, dtype=np.float64)
        return a[..., self.output] if self.output is not None and a.ndim and a.shape[-1] > 1 else a

    def _links(self, oracle: Oracle, pred: str | None) -> tuple[str, ...]:
        """Which readings of the value to try: a probability answer is on the sigmoid scale already."""
        if pred != "value":
            return ("identity",)
        declared = oracle.options.get("outputs")
        if self.link != "auto":
            return (self.link,)
        if declared in ("sigmoid", "probabilities"):
            return ("sigmoid",)
        if declared in ("logits", "regression"):
            return ("identity",)
        return ("identity", "sigmoid")

    def execute(self, oracle: Oracle) -> Result:
        method, kind, pred = self._plan(oracle)
        d = oracle.input_dim
        lo, hi = oracle.input_box if oracle.input_box else (-1.0, 1.0)
        x0 = np.full(oracle.input_shape, (lo + hi) / 2.0)
        output = "predicted" if self.output is None else self.output
        details: dict[str, Any] = {"method": method, "explanation_kind": kind, "prediction_kind": pred,
                                   "output": self.output}
        candidates: dict[str, tuple[np.ndarray, float | None]] = {}  # link -> (w, b)
        if method == "equations":
            step = self.step or (hi - lo) / 2.0
            X = np.concatenate([x0.reshape(1, -1), x0.reshape(1, -1) + step * np.eye(d)]).reshape(d + 1, *oracle.input_shape)
            y = self._followed(oracle.query(X, (pred,))[pred])
            for link in self._links(oracle, pred):
                if link == "sigmoid" and np.any((y <= 0) | (y >= 1)):
                    continue
                z = self._logit(y, pred if link == "identity" else "probabilities")
                w = (z[1:] - z[0]) / step
                candidates[link] = (w, float(z[0] - w @ x0.ravel()))
        else:
            form = LINEAR_IN_W[kind]
            if form != "w":  # explanations scaled by x - baseline need every coordinate away from the baseline
                base = 0.0 if form == "x*w" else float(oracle.options[form[3:-3]])
                x0 = np.full(oracle.input_shape, base + (self.step or (hi - lo) / 2.0))
            asked = (kind,) + ((pred,) if pred else ())
            got = oracle.query(x0, asked, output)
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
            y = float(self._followed(got[pred])) if pred else None
            for link in self._links(oracle, pred):
                if link == "identity":
                    candidates[link] = (w, float(self._logit(y, pred) - w @ x0.ravel()) if pred else None)
                elif 0 < y < 1:  # the gradient of sigmoid(z) is p(1-p) times that of z
                    ws = w / (y * (1.0 - y))
                    candidates[link] = (ws, float(self._logit(y, "probabilities") - ws @ x0.ravel()))
        if not candidates:
            raise OracleError(f"the values are not those of a model with link {self.link}: outside (0, 1)")
        rounding = oracle.options.get("round_decimals")
        if self.refine_bias and pred == "value" and rounding is not None and "identity" in candidates:
            w, b = candidates["identity"]
            candidates["identity"] = (w, self._bias_at_rounding_boundary(oracle, w, b, 0.5 * 10.0 ** -rounding))
            details["bias_from"] = "bisection to a rounding boundary"
        link, (w, b) = next(iter(candidates.items()))
        result = self._result(w, b, link, details)
        if b is None:
            result.message = "w recovered; the bias is not identifiable without value or probability queries"
            details["bias_identified"] = False
        if self.verify and pred:
            self._verify(oracle, result, pred, lo, hi, candidates)
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

    def _result(self, w: np.ndarray, b: float | None, link: str, details: dict[str, Any]) -> Result:
        details["link"] = link
        model = _linear_module(w, b if b is not None else 0.0, link)
        return Result(self.name, "complete", "", params={"w": w, "b": b}, model=model, details=details)

    def _verify(self, oracle: Oracle, result: Result, pred: str, lo: float, hi: float,
                candidates: dict[str, tuple[np.ndarray, float | None]]) -> None:
        """Compare each link's predictions with the same fresh answers; the first that holds is kept.
        Tolerance from float64 rounding of the dot products and from the oracle's own rounding, if any."""
        rng = np.random.default_rng(self.seed)
        X = rng.uniform(lo, hi, size=(self.verify, *oracle.input_shape))
        with oracle.ledger.phase("verify"):
            answer = self._followed(oracle.query(X, (pred,))[pred])
        tried = {}
        for link, (w, b) in candidates.items():
            residual, worst = self._residual(oracle, X, answer, w, b or 0.0, "probabilities" if link == "sigmoid" else pred)
            tried[link] = (residual, worst)
            if passes(worst):
                break
        link = next((k for k, (_, r) in tried.items() if passes(r)), next(iter(tried)))
        residual, worst = tried[link]
        if link != result.details["link"]:
            w, b = candidates[link]
            fresh = self._result(w, b, link, result.details)
            result.params, result.model = fresh.params, fresh.model
        result.details["verification"] = {"points": self.verify, "max_abs_residual": float(residual.max()),
                                          "residual_over_tolerance": worst,
                                          "links_tried": {k: r for k, (_, r) in tried.items()}}
        if not passes(worst):
            result.status = "failed"
            scale = " on the logit scale" if pred != "value" else " (identity or sigmoid link)" if len(tried) > 1 else ""
            result.message = (f"the target is not a linear model{scale}: "
                              f"on {self.verify} fresh queries the recovered model is off by up to "
                              f"{residual.max():.3g} ({worst:.3g} x the float64 tolerance)")
        else:
            how = "exact recovery" if link == "identity" else "exact recovery of the logit behind a sigmoid output"
            result.message = (result.message or how) + (
                f"; verified on {self.verify} fresh queries (max residual {residual.max():.2g})")

    def _residual(self, oracle: Oracle, X: np.ndarray, answer: np.ndarray, w: np.ndarray, b: float,
                  space: str) -> tuple[np.ndarray, float]:
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
        if space == "value":
            residual = np.abs(z_hat - answer)
            tol = gamma * scale
        else:
            p_hat = 1.0 / (1.0 + np.exp(-z_hat))
            residual = np.abs(p_hat - answer)
            tol = gamma * (scale * p_hat * (1 - p_hat) + 1.0)
        return residual, worst_ratio(residual, tol)


def _linear_module(w: np.ndarray, b: float, link: str = "identity") -> nn.Module:
    layer = nn.Linear(len(w), 1).double()
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(w).reshape(1, -1))
        layer.bias.fill_(b)
    # flattened first: the target may take image-shaped inputs (a no-op on flat ones)
    return (nn.Sequential(nn.Flatten(), layer) if link == "identity"
            else nn.Sequential(nn.Flatten(), layer, nn.Sigmoid())).eval()
