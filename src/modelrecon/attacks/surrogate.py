"""Surrogate models trained on explanations, and the prediction-only baselines.

Milli, Schmidt, Dragan, Hardt, "Model Reconstruction from Model Explanations" (FAT* 2019,
arXiv 1807.05185), section on learning beyond two layers: a surrogate trained to match
the target's predictions *and* its gradient explanations needs far fewer queries than
one trained on predictions alone, because each gradient answer carries d numbers where
a label carries log2(K) bits.  The baselines are the prediction-only extraction attacks
a user would otherwise run at the same query budget: retraining on labels or on
probabilities (Tramer et al., USENIX Security 2016; Copycat CNN, Correia-Silva et al.
2018; Knockoff Nets, Orekondy et al. 2019) and Papernot et al.'s Jacobian-based dataset
augmentation (JbDA, AsiaCCS 2017) with labels.

Steps
1. Plan from ``oracle.kinds`` and the chosen interface: one prediction kind (probabilities,
   value or label) and at most one explanation kind (gradient or explanation:METHOD).
2. Select ``budget`` query points with a strategy:
   ``pool``      the attacker's unlabeled data (``pool=`` array), drawn without
                 replacement; past the pool's size, mixup of two random pool points
                 (convex combinations stay near the data manifold);
   ``uniform``   uniform in the oracle's input box (standard Gaussian without a box);
   ``gaussian``  Gaussian around the box centre, std a quarter of its width, clipped;
   ``jbda``      Papernot et al.: a small seed (from the pool, else uniform), then rounds
                 of training the surrogate and adding x + step * sign(d F_y(x) / dx) for
                 the label y the oracle gave at x, until the budget is spent exactly.
   Each point is asked once for each planned kind (explanations of the predicted class),
   so ``budget`` points cost exactly ``budget`` queries of each kind per the ledger.
3. Train the surrogate (Adam, a fixed number of steps whatever the budget) on
   loss = prediction term + lambda * ||E_s(x) - E(x)||^2 / mean ||E(x)||^2, where the
   prediction term is cross-entropy to the returned probabilities, MSE on returned
   logits, or cross-entropy to returned labels, and E_s is the surrogate's explanation
   of the same output by the same method, differentiated with double backpropagation
   (``torch.autograd.grad(..., create_graph=True)``):
     gradient, saliency-signed     d z_y / dx
     saliency (|gradient|)         |d z_y / dx| (differentiable almost everywhere)
     input-x-gradient              x * d z_y / dx
     integrated-gradients          (x - b) * mean of gradients at ``ig_steps`` midpoints
                                   of the path from the public baseline b (few steps)
     smoothgrad                    mean gradient at ``sg_samples`` fresh noisy copies of x
                                   with the oracle's public noise level (mode "noise"),
                                   or the plain gradient (mode "gradient")
     deeplift / guided-backprop    approximated by (x - b) * gradient / the gradient
   z is the logit or the probability as ``oracle.explain_space`` says.  The explanation
   term is normalised by the mean squared norm of the returned explanations, so lambda
   is scale free.
4. Return the surrogate (float64 torch module) and what the attack itself measured
   (training loss, agreement with the oracle's answers on the queried points).

The attack sees only the oracle and its own hyperparameters (including the attacker's
unlabeled pool); agreement on held-out data is measured by :mod:`modelrecon.evaluate`.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from modelrecon.attacks import Attack
from modelrecon.oracle import Oracle, OracleError, QueryBudgetExceeded
from modelrecon.result import Result

STRATEGIES = ("pool", "uniform", "gaussian", "jbda")

# interface name -> (prediction kind, explanation kind or None)
INTERFACES: dict[str, tuple[str, str | None]] = {
    "label": ("label", None),
    "probabilities": ("probabilities", None),
    "value": ("value", None),
    "gradient": ("probabilities", "gradient"),
    "saliency": ("probabilities", "explanation:saliency"),
    "saliency-signed": ("probabilities", "explanation:saliency-signed"),
    "input-x-gradient": ("probabilities", "explanation:input-x-gradient"),
    "integrated-gradients": ("probabilities", "explanation:integrated-gradients"),
    "smoothgrad": ("probabilities", "explanation:smoothgrad"),
    "deeplift": ("probabilities", "explanation:deeplift"),
    "guided-backprop": ("probabilities", "explanation:guided-backprop"),
}
PREDICTION_FALLBACK = ("probabilities", "value", "label")


# -- default surrogate architectures ------------------------------------------------
class SmallCNN(nn.Module):
    """Default surrogate for images: two 3x3 convolutions, a pool, a hidden layer."""

    def __init__(self, input_shape: tuple[int, ...], n_outputs: int, channels: tuple[int, int] = (16, 32),
                 hidden: int = 64):
        super().__init__()
        c, h, w = input_shape
        self.features = nn.Sequential(nn.Conv2d(c, channels[0], 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(channels[0], channels[1], 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels[1] * (h // 2) * (w // 2), hidden), nn.ReLU(),
                                  nn.Linear(hidden, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class StridedCNN(nn.Module):
    """A cheaper image surrogate: two stride-2 convolutions (5x5, 3x3) and a hidden layer. On 28x28
    inputs a training step with double backprop costs about a fifteenth of :class:`SmallCNN`'s
    (whose second convolution runs at full resolution)."""

    def __init__(self, input_shape: tuple[int, ...], n_outputs: int, channels: tuple[int, int] = (16, 32),
                 hidden: int = 64):
        super().__init__()
        c, h, w = input_shape
        self.features = nn.Sequential(nn.Conv2d(c, channels[0], 5, stride=2, padding=2), nn.ReLU(),
                                      nn.Conv2d(channels[0], channels[1], 3, stride=2, padding=1), nn.ReLU())
        size = lambda n: ((n - 1) // 2) // 2 + 1  # noqa: E731  (5x5 pad 2, then 3x3 pad 1, both stride 2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(channels[1] * size(h) * size(w), hidden), nn.ReLU(),
                                  nn.Linear(hidden, n_outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def default_surrogate(input_shape: tuple[int, ...], n_outputs: int, seed: int = 0, widths: tuple[int, ...] = (64, 64)
                      ) -> nn.Module:
    """An MLP (widths, ReLU) for vector inputs, :class:`SmallCNN` for (C, H, W) images; float64."""
    torch.manual_seed(seed)
    if len(input_shape) == 3 and input_shape[1] >= 2 and input_shape[2] >= 2:
        return SmallCNN(tuple(input_shape), n_outputs).double()
    d = int(np.prod(input_shape))
    sizes = [d, *widths, n_outputs]
    layers: list[nn.Module] = [nn.Flatten()] if len(input_shape) > 1 else []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers).double()


def surrogate_factory(arch: str | Callable[..., nn.Module] | None) -> Callable[[tuple[int, ...], int, int], nn.Module]:
    """(input_shape, n_outputs, seed) -> module, from None (the default), a callable,
    ``mlp:W1,W2,...``, ``cnn`` (:class:`SmallCNN`), ``strided-cnn`` (:class:`StridedCNN`), or a zoo name (``builtin:...``: its architecture with fresh weights)."""
    if arch is None or arch == "auto":
        return lambda shape, k, seed: default_surrogate(shape, k, seed)
    if callable(arch):
        return lambda shape, k, seed: (torch.manual_seed(seed), arch(shape, k))[1].double()
    arch = str(arch)
    if arch.startswith("mlp"):
        _, _, w = arch.partition(":")
        widths = tuple(int(v) for v in w.split(",") if v) if w else (64, 64)
        return lambda shape, k, seed: default_surrogate((int(np.prod(shape)),), k, seed, widths) if len(shape) == 1 \
            else nn.Sequential(nn.Flatten(), default_surrogate((int(np.prod(shape)),), k, seed, widths))
    if arch in ("cnn", "strided-cnn"):
        cls = SmallCNN if arch == "cnn" else StridedCNN
        return lambda shape, k, seed: (torch.manual_seed(seed), cls(tuple(shape), k).double())[1]
    if arch.startswith("builtin:"):
        def from_zoo(shape: tuple[int, ...], k: int, seed: int) -> nn.Module:
            from modelrecon.targets import load

            model = load(arch).model  # only its architecture is used: every parameter is re-initialised
            torch.manual_seed(seed)
            for m in model.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            return model.double()
        return from_zoo
    raise ValueError(f"unknown surrogate architecture {arch!r}: use mlp:W1,W2, cnn, strided-cnn, builtin:NAME or a callable")


# -- the surrogate's explanations, differentiable in its parameters -------------------
def surrogate_explanation(model: nn.Module, x: torch.Tensor, idx: torch.Tensor, method: str, *, space: str = "logit",
                          scalar: bool = False, options: dict[str, Any] | None = None, ig_steps: int = 8,
                          sg_samples: int = 4, sg_mode: str = "noise", create_graph: bool = True,
                          generator: torch.Generator | None = None) -> torch.Tensor:
    """The surrogate's explanation of output ``idx`` at ``x`` by ``method`` (a query kind:
    ``gradient`` or ``explanation:M``), as a graph differentiable in the parameters."""
    options = options or {}
    m = method.split(":", 1)[1] if method.startswith("explanation:") else method

    def out(z: torch.Tensor) -> torch.Tensor:
        z = model(z).reshape(len(z), -1)
        if space == "probability":
            z = torch.sigmoid(z) if scalar else torch.softmax(z, dim=1)
        return z.gather(1, idx[:, None]).sum()

    def grad_at(points: torch.Tensor) -> torch.Tensor:
        points = points.detach().requires_grad_(True) if not points.requires_grad else points
        (g,) = torch.autograd.grad(out(points), points, create_graph=create_graph)
        return g

    if m in ("gradient", "saliency-signed", "guided-backprop"):
        return grad_at(x)
    if m == "saliency":
        return grad_at(x).abs()
    if m == "input-x-gradient":
        return x * grad_at(x)
    if m in ("integrated-gradients", "deeplift"):
        key = "ig_baseline" if m == "integrated-gradients" else "deeplift_baseline"
        b = float(options.get(key, 0.0))
        if m == "deeplift":
            return (x - b) * grad_at(x)
        total = torch.zeros_like(x)
        for a in (np.arange(ig_steps) + 0.5) / ig_steps:
            total = total + grad_at(b + float(a) * (x - b))
        return (x - b) * total / ig_steps
    if m == "smoothgrad":
        if sg_mode == "gradient":
            return grad_at(x)
        std = float(options.get("smoothgrad_stdev", 0.1))
        total = torch.zeros_like(x)
        for _ in range(sg_samples):
            noise = torch.randn(x.shape, generator=generator, dtype=x.dtype) * std
            total = total + grad_at(x + noise)
        return total / sg_samples
    raise ValueError(f"no surrogate explanation for {method!r}")


def surrogate_loss(model: nn.Module, x: torch.Tensor, pred: torch.Tensor, pred_kind: str, expl: torch.Tensor | None,
                   expl_kind: str | None, lam: float, expl_scale: float, *, space: str = "logit",
                   options: dict[str, Any] | None = None, ig_steps: int = 8, sg_samples: int = 4,
                   sg_mode: str = "noise", generator: torch.Generator | None = None,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(total, prediction term, explanation term) on one batch.

    pred: probabilities (N, K) / logits (N, K) / labels (N,) as returned; for a scalar
    model probabilities (N,) and labels 0/1 (or -1/+1).  expl: the returned explanations
    of the predicted output."""
    z = model(x).reshape(len(x), -1)
    scalar = z.shape[1] == 1
    if pred_kind == "value":
        p_term = ((z - pred.reshape(z.shape)) ** 2).mean()
        idx = torch.zeros(len(x), dtype=torch.long) if scalar else pred.reshape(z.shape).argmax(1)
    elif pred_kind == "probabilities":
        if scalar:
            p = pred.reshape(-1)
            p_term = nn.functional.binary_cross_entropy_with_logits(z[:, 0], p)
            idx = torch.zeros(len(x), dtype=torch.long)
        else:
            p_term = -(pred * torch.log_softmax(z, dim=1)).sum(1).mean()
            idx = pred.argmax(1)
    elif pred_kind == "label":
        if scalar:
            p_term = nn.functional.binary_cross_entropy_with_logits(z[:, 0], (pred > 0).to(z.dtype))
            idx = torch.zeros(len(x), dtype=torch.long)
        else:
            idx = pred.long()
            p_term = nn.functional.cross_entropy(z, idx)
    else:
        raise ValueError(f"unknown prediction kind {pred_kind!r}")
    e_term = torch.zeros((), dtype=z.dtype)
    if expl_kind is not None and lam > 0:
        e_s = surrogate_explanation(model, x, idx, expl_kind, space=space, scalar=scalar, options=options,
                                    ig_steps=ig_steps, sg_samples=sg_samples, sg_mode=sg_mode, generator=generator)
        e_term = ((e_s - expl) ** 2).reshape(len(x), -1).sum(1).mean() / expl_scale
    return p_term + lam * e_term, p_term, e_term


class SurrogateAttack(Attack):
    """Train a surrogate on what the interface returns: predictions, and explanations by double backprop."""

    name = "surrogate"

    def __init__(self, budget: int = 100, interface: str = "auto", strategy: str = "pool",
                 pool: np.ndarray | None = None, arch: str | Callable[..., nn.Module] | None = None,
                 lam: float = 1.0, steps: int = 400, batch: int = 64, lr: float = 3e-3, weight_decay: float = 0.0,
                 ig_steps: int = 4, sg_samples: int = 2, sg_mode: str = "noise", jbda_seed: int = 30,
                 jbda_step: float = 0.1, jbda_round_steps: int = 200, seed: int = 0):
        if budget < 1:
            raise ValueError("budget must be >= 1 query point")
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(STRATEGIES)}")
        if interface != "auto" and interface not in INTERFACES:
            raise ValueError(f"unknown interface {interface!r}; known: auto, {', '.join(INTERFACES)}")
        if sg_mode not in ("noise", "gradient"):
            raise ValueError("sg_mode must be 'noise' or 'gradient'")
        if steps < 1 or batch < 1 or lam < 0 or ig_steps < 1 or sg_samples < 1 or jbda_seed < 1:
            raise ValueError("steps, batch, ig_steps, sg_samples, jbda_seed must be >= 1 and lam >= 0")
        self.budget = int(budget)
        self.interface = interface
        self.strategy = strategy
        self._pool = None if pool is None else np.asarray(pool, dtype=np.float64)
        self.pool_size = None if pool is None else int(len(pool))
        self.arch = arch if arch is None or isinstance(arch, str) else getattr(arch, "__name__", repr(arch))
        self._arch = arch
        self.lam = float(lam)
        self.steps = int(steps)
        self.batch = int(batch)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.ig_steps = int(ig_steps)
        self.sg_samples = int(sg_samples)
        self.sg_mode = sg_mode
        self.jbda_seed = int(jbda_seed)
        self.jbda_step = float(jbda_step)
        self.jbda_round_steps = int(jbda_round_steps)
        self.seed = int(seed)

    # -- planning --------------------------------------------------------------------
    def plan(self, oracle: Oracle) -> tuple[str, str | None]:
        """(prediction kind, explanation kind or None) for this oracle and interface."""
        offered = set(oracle.kinds)
        if self.interface == "auto":
            pred = next((k for k in PREDICTION_FALLBACK if k in offered), None)
            expl = "gradient" if "gradient" in offered else next((k for k in oracle.kinds if k.startswith("explanation:")), None)
        else:
            pred, expl = INTERFACES[self.interface]
            if pred not in offered:
                pred = next((k for k in PREDICTION_FALLBACK if k in offered), None)
            if expl is not None and expl not in offered:
                raise OracleError(f"interface {self.interface!r} needs {expl!r} queries; this oracle offers "
                                  f"{', '.join(oracle.kinds)}")
        if pred is None:
            raise OracleError(f"the surrogate attack needs a prediction kind (probabilities, value or label); "
                              f"this oracle offers {', '.join(oracle.kinds)}")
        return pred, expl

    # -- query selection ---------------------------------------------------------------
    def _box(self, oracle: Oracle) -> tuple[float, float] | None:
        return tuple(oracle.input_box) if oracle.input_box else None

    def _clip(self, x: np.ndarray, oracle: Oracle) -> np.ndarray:
        box = self._box(oracle)
        return np.clip(x, *box) if box else x

    def _random(self, n: int, oracle: Oracle, rng: np.random.Generator, kind: str) -> np.ndarray:
        shape = (n, *oracle.input_shape)
        box = self._box(oracle)
        if kind == "uniform":
            return rng.uniform(*box, size=shape) if box else rng.normal(size=shape)
        if box:
            lo, hi = box
            return np.clip(rng.normal((lo + hi) / 2, (hi - lo) / 4, size=shape), lo, hi)
        return rng.normal(size=shape)

    def _from_pool(self, n: int, oracle: Oracle, rng: np.random.Generator) -> np.ndarray:
        pool = self._pool
        if pool is None:
            raise ValueError("strategy 'pool' needs the attacker's unlabeled data: pass pool=array")
        if pool.shape[1:] != oracle.input_shape:
            pool = pool.reshape(len(pool), *oracle.input_shape)
        order = rng.permutation(len(pool))
        x = pool[order[:n]]
        extra = n - len(x)
        if extra > 0:  # past the pool: mixup of random pairs
            a, b = rng.integers(len(pool), size=(2, extra))
            t = rng.uniform(size=(extra,) + (1,) * len(oracle.input_shape))
            x = np.concatenate([x, t * pool[a] + (1 - t) * pool[b]])
        return x

    def select(self, n: int, oracle: Oracle, rng: np.random.Generator) -> np.ndarray:
        """n query points by the (non-adaptive) strategy; jbda's seed comes from the pool or uniform."""
        if self.strategy == "pool" or (self.strategy == "jbda" and self._pool is not None):
            return self._from_pool(n, oracle, rng)
        return self._random(n, oracle, rng, "gaussian" if self.strategy == "gaussian" else "uniform")

    # -- running -------------------------------------------------------------------------
    def _ask(self, oracle: Oracle, x: np.ndarray, kinds: tuple[str, ...]) -> tuple[np.ndarray, dict[str, np.ndarray], bool]:
        """Ask kinds at x; on an exhausted budget keep the answered prefix."""
        try:
            return x, oracle.query(x, kinds), False
        except QueryBudgetExceeded as e:
            n = e.answered
            return x[:n], {k: np.asarray(v)[:n] for k, v in e.answers.items()} if n else {}, True

    def train(self, model: nn.Module, X: np.ndarray, answers: dict[str, np.ndarray], pred_kind: str,
              expl_kind: str | None, oracle: Oracle, steps: int, gen: torch.Generator) -> dict[str, float]:
        """Adam for ``steps`` minibatch steps on the combined loss; returns the last losses."""
        Xt = torch.as_tensor(X, dtype=torch.float64)
        P = torch.as_tensor(answers[pred_kind])
        P = P.to(torch.float64) if pred_kind != "label" else P.long()
        E = torch.as_tensor(answers[expl_kind], dtype=torch.float64) if expl_kind else None
        scale = 1.0
        if E is not None:
            scale = float((E.reshape(len(E), -1) ** 2).sum(1).mean())
            scale = scale if scale > 0 else 1.0
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        model.train()
        n = len(Xt)
        b = min(self.batch, n)
        last = {"loss": math.nan, "prediction_loss": math.nan, "explanation_loss": math.nan}
        for _ in range(steps):
            idx = torch.randperm(n, generator=gen)[:b]
            loss, p, e = surrogate_loss(model, Xt[idx], P[idx], pred_kind, None if E is None else E[idx], expl_kind,
                                        self.lam, scale, space=oracle.explain_space, options=oracle.options,
                                        ig_steps=self.ig_steps, sg_samples=self.sg_samples, sg_mode=self.sg_mode,
                                        generator=gen)
            opt.zero_grad()
            loss.backward()
            opt.step()
            last = {"loss": float(loss.detach()), "prediction_loss": float(p.detach()), "explanation_loss": float(e.detach())}
        model.eval()
        return last

    def _jbda_step(self, model: nn.Module, X: np.ndarray, labels: np.ndarray, oracle: Oracle) -> np.ndarray:
        """Papernot et al.'s augmentation: x + step * sign(dF_y/dx) for the oracle's label y."""
        xt = torch.as_tensor(X, dtype=torch.float64).requires_grad_(True)
        z = model(xt).reshape(len(X), -1)
        y = torch.as_tensor(labels).long().reshape(-1)
        sel = z[:, 0] * (2.0 * (y > 0) - 1.0) if z.shape[1] == 1 else z.gather(1, y[:, None])[:, 0]
        (g,) = torch.autograd.grad(sel.sum(), xt)
        box = self._box(oracle)
        step = self.jbda_step * ((box[1] - box[0]) if box else 1.0)
        return self._clip(X + step * np.sign(g.numpy()), oracle)

    def execute(self, oracle: Oracle) -> Result:
        pred_kind, expl_kind = self.plan(oracle)
        kinds = (pred_kind,) + ((expl_kind,) if expl_kind else ())
        rng = np.random.default_rng(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        model = surrogate_factory(self._arch)(oracle.input_shape, oracle.n_outputs, self.seed)
        stopped = False
        rounds = []
        if self.strategy != "jbda":
            X, answers, stopped = self._ask(oracle, self.select(self.budget, oracle, rng), kinds)
        else:
            # JbDA needs the oracle's label at every point to pick the direction: take it from the
            # predictions asked anyway (argmax of probabilities/values, or the label itself).
            X, answers, stopped = self._ask(oracle, self.select(min(self.jbda_seed, self.budget), oracle, rng), kinds)
            rounds.append(len(X))
            while not stopped and len(X) < self.budget:
                self.train(model, X, answers, pred_kind, expl_kind, oracle, self.jbda_round_steps, gen)
                new = self._jbda_step(model, X, _labels(answers[pred_kind], pred_kind), oracle)
                new = new[rng.permutation(len(new))[: self.budget - len(X)]]
                Xn, an, stopped = self._ask(oracle, new, kinds)
                if len(Xn):
                    X = np.concatenate([X, Xn])
                    answers = {k: np.concatenate([answers[k], an[k]]) for k in kinds}
                rounds.append(len(Xn))
        if len(X) == 0:
            return Result(self.name, "partial", "the budget ran out before any query was answered: no surrogate",
                          details={"interface": {"prediction": pred_kind, "explanation": expl_kind}})
        model = surrogate_factory(self._arch)(oracle.input_shape, oracle.n_outputs, self.seed) \
            if self.strategy == "jbda" else model
        losses = self.train(model, X, answers, pred_kind, expl_kind, oracle, self.steps, gen)
        with torch.no_grad():
            z = model(torch.as_tensor(X, dtype=torch.float64)).reshape(len(X), -1).numpy()
        mine = (z[:, 0] > 0).astype(np.int64) if z.shape[1] == 1 else z.argmax(1)
        theirs = _labels(answers[pred_kind], pred_kind)
        if z.shape[1] == 1:
            theirs = (theirs > 0).astype(np.int64)
        train_agreement = float(np.mean(mine == theirs))
        status = "partial" if stopped else "complete"
        if not np.isfinite(z).all() or (self.steps and not math.isfinite(losses["loss"])):
            return Result(self.name, "failed", f"training diverged on {len(X)} query points: the surrogate's loss or "
                          "outputs are not finite (try a smaller --lambda or fewer steps)", model=None,
                          details={"interface": {"prediction": pred_kind, "explanation": expl_kind},
                                   "points": int(len(X)), **{f"final_{k}": v for k, v in losses.items()}})
        what = f"{pred_kind}" + (f" + {expl_kind}" if expl_kind else "")
        message = (f"surrogate trained on {len(X)} query points ({what}, strategy {self.strategy}); "
                   f"agreement with the oracle on its own queries {train_agreement:.3f}")
        if stopped:
            message = f"the oracle's budget ran out after {len(X)} of {self.budget} points; " + message
        return Result(self.name, status, message, model=model,
                      details={"interface": {"prediction": pred_kind, "explanation": expl_kind},
                               "points": int(len(X)), "strategy": self.strategy, "jbda_rounds": rounds or None,
                               "train_agreement": train_agreement, **{f"final_{k}": v for k, v in losses.items()}})


def _labels(pred: np.ndarray, kind: str) -> np.ndarray:
    pred = np.asarray(pred)
    if kind == "label":
        return pred.astype(np.int64)
    if pred.ndim == 1:  # scalar model: probability or logit
        return (pred > (0.5 if kind == "probabilities" else 0.0)).astype(np.int64)
    return pred.argmax(1)
