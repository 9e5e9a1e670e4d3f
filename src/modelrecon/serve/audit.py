"""``modelrecon audit URL``: attack a running explanation service and report what leaked.

Steps:
1. read ``/v1/metadata``; pick the attacks that apply (:data:`AUDIT_ATTACKS`: each says from
   the metadata whether it applies and why not);
2. ask the service for labels (and values, when offered) on ``probes`` honest inputs (a
   data set's test inputs when ``data`` names one of the right shape, else uniform in the
   input box): the yardstick for agreement; and for explanations on a few of them: the
   yardstick for what defences cost honest users;
3. run each attack through :func:`modelrecon.serve.client.http_oracle` with a share of the
   budget and one journal (an interrupted audit resumes without paying twice); measure
   the clone's agreement with the service and its value error on the probes; an exact
   attack whose verification passed and agrees everywhere is an *exact copy*;
4. for each service option an operator could turn on (rounding, top-1, label only,
   absolute explanations, noise on explanations), re-run each attack against the same
   service with the option simulated on the client side (every option is a function of
   the undefended answer; raw answers already paid for are reused from the journal) and
   record whether the attack still reaches 95% agreement (a growing attack: with more
   points, as many as its share pays for); the option's cost to honest
   users is measured on the probes (largest change of a returned number, probability
   mass hidden, cosine between the defended and the true explanation);
5. write ``audit.json`` and ``audit.html`` (figures as embedded PNG) to ``out``; the
   journals (one per attack, one for the probes) are kept in ``out/journals``.

Limits: the audit has no access to the true model, so it scores clones by agreement with
the service on the probes, and the span attack only by the dimension it recovers (a
defence that makes every answer lie in a wrong 1-dimensional space, like absolute values
on a linear model, is not caught).
"""

from __future__ import annotations

import base64
import html
import importlib
import io
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from modelrecon.oracle import PREDICTION_KINDS, Journal, OracleError
from modelrecon.result import Result, jsonable

AGREEMENT_GOAL = 0.95


# -- which attacks ------------------------------------------------------------------------------
@dataclass
class AuditAttack:
    """An attack the audit can run: whether it applies (from the metadata), how to build it.

    ``kwargs(meta, ctx)`` gives the constructor's arguments; ``ctx`` holds ``pool`` (the
    attacker's unlabeled data, or None) and ``points`` (query points for attacks that take a
    budget).  ``grows`` attacks are re-run on a doubling schedule of ``points`` until the
    clone reaches 95% agreement (earlier points are replayed from the journal, not paid
    twice), which measures the queries needed to get there; under a simulated option the
    schedule starts at the points needed without it (an option that only delays the clone
    does not stop it)."""

    name: str
    module: str
    cls: str
    exact: bool
    applies: Callable[[dict[str, Any]], str | None]  # None, or why it does not apply
    kwargs: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] = field(default=lambda meta, ctx: {})
    grows: bool = False
    yields_model: bool = True

    def load(self) -> type | None:
        try:
            return getattr(importlib.import_module(self.module), self.cls)
        except (ImportError, AttributeError):
            return None


def _has(meta: dict[str, Any], *kinds: str) -> bool:
    return any(k in meta["kinds"] for k in kinds)


def _linear_applies(meta: dict[str, Any]) -> str | None:
    if meta["n_outputs"] != 1:
        return f"needs a scalar-output model (this one has {meta['n_outputs']} outputs)"
    if not _has(meta, "value", "probabilities", "gradient", "explanation:saliency-signed", "explanation:smoothgrad",
                "explanation:input-x-gradient", "explanation:integrated-gradients"):
        return "needs values, probabilities or a signed explanation"
    return None


GRADIENT_LIKE = ("gradient", "explanation:saliency-signed", "explanation:guided-backprop", "explanation:smoothgrad",
                 "explanation:integrated-gradients", "explanation:deeplift", "explanation:input-x-gradient")


def _span_applies(meta: dict[str, Any]) -> str | None:
    if meta["input_dim"] < 2:
        return "a one-dimensional input has no subspace to recover"
    if not _has(meta, "value", "label", *GRADIENT_LIKE):
        return "needs values, labels or a signed explanation"
    return None


def _span_kwargs(meta: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    setting = "relu-value" if _has(meta, "value", *GRADIENT_LIKE) else "threshold"
    out = {"setting": setting, "output": 0 if meta["n_outputs"] > 1 else None}
    if ctx.get("pool") is not None:  # centre the queries on the attacker's own data (a ReLU net's active units)
        out["data"] = ctx["pool"]
    return out


def _surrogate_applies(meta: dict[str, Any]) -> str | None:
    if not _has(meta, "value", "probabilities", "label"):
        return "needs a prediction (value, probabilities or label)"
    return None


def _surrogate_kwargs(meta: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    pool = ctx.get("pool")
    return {"budget": int(ctx["points"]), "strategy": "pool" if pool is not None else "uniform", "pool": pool,
            "seed": 0}


RELU2_GRADIENTS = ("gradient", "explanation:saliency-signed", "explanation:input-x-gradient")


def _relu2_applies(meta: dict[str, Any]) -> str | None:
    if meta["options"].get("explain_space", "logit") != "logit" and not _has(meta, "value"):
        return "needs explanations of the logits, or values"
    if not _has(meta, "value", *RELU2_GRADIENTS):
        return "needs values or signed gradients (gradient, saliency-signed, input-x-gradient)"
    return None


def _relu2_kwargs(meta: dict[str, Any], ctx: dict[str, Any]) -> dict[str, Any]:
    # noisy or absolute explanations beside exact values: the value mode (exact), not gradients that lie
    noisy = bool(meta["options"].get("explanation_noise") or meta["options"].get("abs_explanations")) \
        and _has(meta, "value")
    grads = (_has(meta, *RELU2_GRADIENTS) and meta["options"].get("explain_space", "logit") == "logit"
             and not noisy)
    mode = ("value+gradient" if _has(meta, "value") else "gradient") if grads else "value"
    return {"mode": mode, "output": 0}


def _relu2_ig_applies(meta: dict[str, Any]) -> str | None:
    if "explanation:integrated-gradients" not in meta["kinds"]:
        return "needs integrated-gradient explanations"
    if meta["options"].get("explain_space", "logit") != "logit" or meta["n_outputs"] != 1:
        return "needs integrated gradients of a scalar logit"
    return None


def _relu2_saliency_applies(meta: dict[str, Any]) -> str | None:
    if not _has(meta, "explanation:saliency") or not _has(meta, "value"):
        return "needs absolute saliency and values"
    if meta["options"].get("explain_space", "logit") != "logit" or meta["n_outputs"] != 1:
        return "needs saliency of a scalar logit"
    return None


AUDIT_ATTACKS: list[AuditAttack] = [
    AuditAttack("linear", "modelrecon.attacks.linear", "LinearAttack", True, _linear_applies),
    AuditAttack("relu2", "modelrecon.attacks.relu2", "Relu2Attack", True, _relu2_applies, _relu2_kwargs),
    AuditAttack("relu2-ig", "modelrecon.attacks.through", "IGRelu2Attack", True, _relu2_ig_applies),
    AuditAttack("relu2-saliency", "modelrecon.attacks.through", "relu2_through_saliency", True,
                _relu2_saliency_applies),
    AuditAttack("span", "modelrecon.attacks.span", "SpanRecovery", False, _span_applies, _span_kwargs,
                yields_model=False),
    AuditAttack("surrogate", "modelrecon.attacks.surrogate", "SurrogateAttack", False, _surrogate_applies,
                _surrogate_kwargs, grows=True),
]


def plan(meta: dict[str, Any]) -> list[tuple[AuditAttack, str | None]]:
    """Every known attack with None (it applies) or the reason it does not."""
    out = []
    for a in AUDIT_ATTACKS:
        why = a.applies(meta)
        if why is None and a.load() is None:
            why = f"the {a.name} attack is not in this build of modelrecon"
        out.append((a, why))
    return out


# -- defences (simulated service options) -----------------------------------------------------------
@dataclass
class Defence:
    name: str
    option: dict[str, Any]  # as the service's metadata would publish it
    kinds: Callable[[list[str]], list[str]]  # kinds still offered
    transform: Callable[[np.random.Generator], Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]] | None


def _round(d: int):
    return lambda rng: (lambda a: {k: v if k == "label" else np.round(v, d) for k, v in a.items()})


def _top1(rng):
    def t(a):
        a = dict(a)
        if "probabilities" in a and np.ndim(a["probabilities"]) == 2:
            p = np.asarray(a["probabilities"], dtype=np.float64)
            keep = p == p.max(axis=1, keepdims=True)
            a["probabilities"] = np.where(keep, p, 0.0)
        return a
    return t


def _abs(rng):
    return lambda a: {k: v if k in PREDICTION_KINDS else np.abs(v) for k, v in a.items()}


def _noise(sigma: float):
    def make(rng):
        def t(a):
            out = {}
            for k, v in a.items():
                if k in PREDICTION_KINDS:
                    out[k] = v
                    continue
                v = np.asarray(v, dtype=np.float64)
                rms = np.sqrt(np.mean(v.reshape(len(v), -1) ** 2, axis=1)).reshape((len(v),) + (1,) * (v.ndim - 1))
                out[k] = v + sigma * rms * rng.standard_normal(v.shape)
            return out
        return t
    return make


DEFENCES = [
    Defence("round to 2 decimals", {"round_decimals": 2}, lambda ks: ks, _round(2)),
    Defence("top-1 probability only", {"top_k": 1}, lambda ks: ks, _top1),
    Defence("label only", {"label_only": True}, lambda ks: [k for k in ks if k == "label"], None),
    Defence("absolute-value explanations", {"abs_explanations": True}, lambda ks: ks, _abs),
    Defence("10% noise on explanations", {"explanation_noise": 0.1}, lambda ks: ks, _noise(0.1)),
]
# the ladder `--defences ladder` tries: each option at several strengths, for the cheapest that stops each attack
LADDER = [
    *(Defence(f"round to {n} decimals", {"round_decimals": n}, lambda ks: ks, _round(n)) for n in (8, 6, 4, 2)),
    *(Defence(f"{s:.0%} noise on explanations", {"explanation_noise": s}, lambda ks: ks, _noise(s))
      for s in (0.01, 0.1, 1.0)),
    *DEFENCES[1:4],
]


# -- measuring ------------------------------------------------------------------------------------
def _probe_inputs(meta: dict[str, Any], n: int, data: str | None, seed: int
                  ) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Honest probe inputs, their description, and the attacker's pool (same data set, disjoint)."""
    shape = tuple(meta["input_shape"])
    if data:
        from modelrecon import data as datasets

        if data not in datasets.LOADERS:
            raise OracleError(f"unknown data {data!r} for honest probes; known: {', '.join(datasets.LOADERS)}")
        ds = datasets.load(data)  # a dataset not on this machine: DatasetMissing says how to get it
        X = ds.X_test.reshape(len(ds.X_test), -1)
        if X.shape[1] != int(np.prod(shape)):
            raise OracleError(f"{data} inputs have {X.shape[1]} features; the service takes {shape}")
        pool = ds.X_pool.reshape(len(ds.X_pool), *shape)
        return X[:n].reshape(-1, *shape), f"{min(n, len(X))} test inputs of {data}", pool
    rng = np.random.default_rng(seed)
    box = meta.get("input_box")
    if box:
        return rng.uniform(box[0], box[1], size=(n, *shape)), f"{n} uniform inputs in the box {box}", None
    return rng.normal(size=(n, *shape)), f"{n} standard Gaussian inputs", None


def _labels_from(meta: dict[str, Any], answers: dict[str, np.ndarray]) -> np.ndarray:
    if "label" in answers:
        return np.asarray(answers["label"])
    thr = float(meta["options"].get("threshold", 0.0))
    if "value" in answers:
        v = np.asarray(answers["value"], dtype=np.float64)
        return (v > thr).astype(np.int64) if v.ndim == 1 else v.argmax(axis=1)
    p = np.asarray(answers["probabilities"], dtype=np.float64)
    return (p > 1.0 / (1.0 + np.exp(-thr))).astype(np.int64) if p.ndim == 1 else p.argmax(axis=1)


def _clone_outputs(model: torch.nn.Module, X: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = model(torch.as_tensor(X, dtype=torch.float64).reshape(len(X), -1)
                    if _wants_flat(model) else torch.as_tensor(X, dtype=torch.float64))
    return out.reshape(len(X), -1).numpy()


def _wants_flat(model: torch.nn.Module) -> bool:
    first = next((m for m in model.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d))), None)
    return isinstance(first, torch.nn.Linear)


def _clone_labels(meta: dict[str, Any], out: np.ndarray) -> np.ndarray:
    if out.shape[1] == 1:
        return (out[:, 0] > float(meta["options"].get("threshold", 0.0))).astype(np.int64)
    return out.argmax(axis=1)


def _score(meta: dict[str, Any], result: Result, X: np.ndarray, truth: dict[str, np.ndarray]) -> dict[str, Any]:
    if result.model is None:
        return {"agreement": None, "value_max_abs_error": None}
    try:
        out = _clone_outputs(result.model, X)
    except Exception as e:  # a clone that cannot take the service's inputs
        return {"agreement": None, "value_max_abs_error": None, "clone_error": repr(e)}
    score: dict[str, Any] = {"agreement": float(np.mean(_clone_labels(meta, out) == truth["labels"]))}
    if "value" in truth:
        v = np.asarray(truth["value"], dtype=np.float64).reshape(len(X), -1)
        score["value_max_abs_error"] = float(np.abs(out - v).max()) if out.shape == v.shape else None
        score["value_relative_error"] = (float(np.linalg.norm(out - v) / max(np.linalg.norm(v), 1e-300))
                                         if out.shape == v.shape else None)
    else:
        score["value_max_abs_error"] = None
    return score


def _succeeded(entry: AuditAttack, result: Result, score: dict[str, Any]) -> bool:
    """The clone agrees with the service on at least 95% of the probes (exact or not)."""
    agree = score.get("agreement")
    return agree is not None and agree >= AGREEMENT_GOAL


def _honest_cost(defence: Defence, meta: dict[str, Any], truth: dict[str, np.ndarray],
                 expl: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, Any]:
    """What the option takes from honest users, measured on the probes."""
    kinds = defence.kinds(list(meta["kinds"]))
    lost = [k for k in meta["kinds"] if k not in kinds]
    cost: dict[str, Any] = {"kinds_withdrawn": lost}
    if defence.transform is not None:
        t = defence.transform(rng)
        preds = {k: truth[k] for k in ("value", "probabilities") if k in truth}
        if preds:
            after = t(preds)
            cost["max_change_of_a_prediction"] = max(float(np.abs(np.asarray(after[k]) - np.asarray(preds[k])).max())
                                                     for k in preds)
            if "probabilities" in preds and np.ndim(preds["probabilities"]) == 2:
                p, q = np.asarray(preds["probabilities"]), np.asarray(after["probabilities"])
                cost["probability_mass_hidden"] = float(np.mean(p.sum(1) - q.sum(1)))
        if expl:
            after = t(dict(expl))
            cos = []
            for k, e in expl.items():
                a, b = np.asarray(e).reshape(len(e), -1), np.asarray(after[k]).reshape(len(e), -1)
                na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
                ok = (na > 0) & (nb > 0)
                cos.extend((np.sum(a * b, axis=1)[ok] / (na[ok] * nb[ok])).tolist())
            cost["explanation_cosine_to_true"] = float(np.mean(cos)) if cos else None
            cost.update(explanation_fidelity(expl, after))
    if lost:
        cost["summary"] = f"honest users lose {', '.join(lost)}"
        cost["explanation_relative_error"] = 1.0 if any(k not in PREDICTION_KINDS for k in lost) else 0.0
    else:
        parts = []
        if "max_change_of_a_prediction" in cost:
            parts.append(f"predictions change by up to {cost['max_change_of_a_prediction']:.2g}")
        if cost.get("probability_mass_hidden"):
            parts.append(f"{cost['probability_mass_hidden']:.1%} of probability mass hidden")
        if cost.get("explanation_rank_correlation") is not None:
            parts.append(f"explanations keep cosine {cost['explanation_cosine_to_true']:.3f} to the true ones "
                         f"(relative error {cost['explanation_relative_error']:.2g}, rank correlation "
                         f"{cost['explanation_rank_correlation']:.3f}, top-10% overlap "
                         f"{cost['explanation_top10_overlap']:.0%})")
        cost["summary"] = "; ".join(parts) or "no measurable change on the probes"
    return cost


def explanation_fidelity(true: dict[str, np.ndarray], shown: dict[str, np.ndarray]) -> dict[str, float]:
    """What an honest user still reads in a defended explanation, mean over probes and kinds: its relative
    error, the Spearman rank correlation of the features' attributions, and the overlap of the top 10% of
    features by |attribution|."""
    from scipy.stats import spearmanr

    rel, rho, top = [], [], []
    for k, e in true.items():
        a = np.asarray(e, dtype=np.float64).reshape(len(e), -1)
        b = np.asarray(shown[k], dtype=np.float64).reshape(len(e), -1)
        n = max(1, int(np.ceil(0.1 * a.shape[1])))
        for x, y in zip(a, b):
            if not np.ptp(x) > 0:  # a constant explanation (no feature matters): nothing to rank or to err on
                continue
            rel.append(float(np.linalg.norm(y - x) / max(np.linalg.norm(x), np.finfo(float).tiny)))
            rho.append(float(spearmanr(x, y).statistic) if np.ptp(y) > 0 else 0.0)
            top.append(len(set(np.argsort(-np.abs(x))[:n]) & set(np.argsort(-np.abs(y))[:n])) / n)
    if not rel:
        return {}
    return {"explanation_relative_error": float(np.mean(rel)), "explanation_rank_correlation": float(np.mean(rho)),
            "explanation_top10_overlap": float(np.mean(top))}


def advice(report: dict[str, Any]) -> dict[str, Any]:
    """Per attack that works under the current settings: what it reached and at what cost, and the option
    of least cost to honest users (explanation relative error; withdrawing a kind counts as 1) that stopped
    it: an exact attack is stopped when it no longer gives an exact copy, the others below 95% agreement."""
    out = {}
    for name, a in report["attacks"].items():
        if not a.get("applies") or not a.get("succeeded"):
            continue
        exact = bool(a.get("exact_copy"))
        # a run cut short by the audit's budget (partial) shows nothing either way
        stops = [d for d in report["defences"] if name in d["attacks"] and d["attacks"][name].get("status") != "partial"
                 and not (d["attacks"][name].get("exact_copy") if exact else d["attacks"][name].get("succeeded"))]
        best = min(stops, key=lambda d: (d["honest_cost"].get("explanation_relative_error") or 0.0,
                                         len(d["honest_cost"].get("kinds_withdrawn", []))), default=None)
        agreement = a.get("agreement")  # None for the span, which yields no model
        out[name] = {"succeeds": "exact copy" if exact else f"{agreement:.1%} agreement" if agreement is not None
                     else "recovered",
                     "queries": a.get("queries"),
                     "cheapest_stop": None if best is None else best["option"],
                     "setting": None if best is None else best["setting"],
                     "honest_cost": None if best is None else best["honest_cost"]["summary"]}
    return out


def growing_schedule(share: int, per_point: int, start: int | None = None) -> list[int]:
    """Points for an attack that grows: 16, 32, 64, ... while the share pays for them.  Under a service
    option, from the points it needed without the option (``start``) upwards: an option that costs the
    clone a few points of agreement at those points only delays it, and must not read as stopping it."""
    if start is None:
        return [n for n in (2 ** i for i in range(4, 30)) if n * per_point <= share] or [max(share // per_point, 1)]
    return [start, *(n for n in (2 ** i for i in range(4, 30)) if n > start and n * per_point <= share)]


# -- the audit -------------------------------------------------------------------------------------
def audit(url: str, key: str, budget: int, out: str | Path, *, data: str | None = None, probes: int = 200,
          seed: int = 0, defences: list[Defence] | None = None, what_if: bool = True,
          attacks: list[str] | tuple[str, ...] | None = None, **client: Any) -> dict[str, Any]:
    """Attack the service at ``url`` with at most ``budget`` queries; write audit.json/.html to ``out``."""
    from modelrecon.serve.client import http_oracle

    start = time.time()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    journals = out / "journals"  # one per attack (and one for the probes): an attack never replays another's
    journals.mkdir(exist_ok=True)
    defences = DEFENCES if defences is None else defences
    base = http_oracle(url, key, journal=journals / "probes.sqlite", **client)
    meta = base.metadata
    spent_before = base.usage()["spent"]

    # 2. honest probes: labels (and values), a few explanations
    pred_kinds = tuple(k for k in ("label", "value", "probabilities") if k in meta["kinds"])
    probes = int(min(probes, max(budget // (10 * max(len(pred_kinds), 1)), 10)))  # about a tenth of the budget
    X, probe_what, pool = _probe_inputs(meta, probes, data, seed + 7919)  # not the attacks' seeded draws
    with base.ledger.phase("probe"):
        truth = base.query(X, pred_kinds)
    truth["labels"] = _labels_from(meta, truth)
    expl_kinds = tuple(k for k in meta["kinds"] if k not in PREDICTION_KINDS)
    n_expl = min(20, len(X))
    expl: dict[str, np.ndarray] = {}
    if expl_kinds:
        with base.ledger.phase("probe"):
            expl = base.query(X[:n_expl], expl_kinds)

    chosen = [(a, why) for a, why in plan(meta) if attacks is None or a.name in attacks]
    runnable = [a for a, why in chosen if why is None]
    probe_cost = base.ledger.total()
    cap = {"left": max(budget - probe_cost, 0)}  # what the service may still charge the audit, all oracles together
    runs = len(runnable) * (2 if what_if and defences else 1)  # half for the attacks, half for the what-ifs
    share = max(cap["left"] // max(runs, 1), 0)

    def run_one(entry: AuditAttack, defence: Defence | None, points: int | None = None,
                need_dim: int | None = None) -> dict[str, Any]:
        kinds = list(meta["kinds"]) if defence is None else defence.kinds(list(meta["kinds"]))
        if not kinds:
            return {"status": "not run", "message": "the option withdraws every kind this service offers"}
        journal = journals / f"{entry.name}.sqlite"
        if defence is None:
            oracle = http_oracle(url, key, journal=journal, budget=share, spend_cap=cap, **client)
        else:  # the service's raw answers already paid for by this attack are reused, then transformed; a
            # growing attack's earlier points are replayed uncounted from the option's own journal, as without it
            # (only there: an attack that asks a point again under noise must get fresh noise, and pay for it)
            slug = re.sub(r"[^a-z0-9]+", "-", defence.name.lower()).strip("-")
            oracle = http_oracle(url, key, kinds=kinds, budget=share, cache=Journal(journal, base.describe()),
                                 journal=journals / f"{entry.name}--{slug}.sqlite" if entry.grows else None,
                                 spend_cap=cap,
                                 transform=defence.transform(np.random.default_rng(seed)) if defence.transform else None,
                                 options=defence.option, **client)
        cls = entry.load()
        if entry.grows:  # double the points until 95% agreement or the share
            schedule = growing_schedule(share, max(1, len(kinds)), points)
        else:
            schedule = [points or max(share // max(len(kinds), 1), 1)]
        curve = []
        for n in schedule:
            try:
                options = {**meta["options"], **(defence.option if defence is not None else {})}
                result = cls(**entry.kwargs({**meta, "kinds": kinds, "options": options},
                                            {"pool": pool, "points": n})).run(oracle)
            except (OracleError, ValueError) as e:  # the attack cannot even plan against this interface
                return {"status": "not applicable", "message": str(e), "queries": 0, "succeeded": False}
            score = _score(meta, result, X, truth)
            if entry.yields_model:
                ok = _succeeded(entry, result, score)
            else:  # span: complete, and (under an option) the same dimension as without it
                dim = result.details.get("recovered_dim") or 0
                ok = result.status == "complete" and dim > 0 and (need_dim is None or dim == need_dim)
            curve.append({"points": n, "queries": result.queries.get("total", 0), "agreement": score.get("agreement")})
            if ok or result.status == "partial":
                break
        row = {"status": result.status, "message": result.message, "queries": result.queries.get("total", 0),
               "queries_all_phases": result.queries.get("all_phases_total", 0), **score, "succeeded": ok,
               "exact_copy": bool(entry.exact and ok and result.status == "complete" and score.get("agreement") == 1.0),
               "queries_to_95": result.queries.get("total") if ok and entry.yields_model else None,
               "details": result.details,
               "points": schedule[len(curve) - 1] if entry.grows else None, "curve": curve if entry.grows else None}
        if defence is None:
            row["result"] = result.to_dict()
        return row

    attacks_out: dict[str, Any] = {}
    for entry, why in chosen:
        if why is not None:
            attacks_out[entry.name] = {"applies": False, "reason": why}
            continue
        attacks_out[entry.name] = {"applies": True, "exact_attack": entry.exact, **run_one(entry, None)}
    attacks = attacks_out
    span_row = attacks.get("span", {})
    span = (f"{span_row['details']['recovered_dim']} of {meta['input_dim']} dimensions ({span_row['status']})"
            if span_row.get("details", {}).get("recovered_dim") is not None else None)

    defence_rows = []
    for d in defences if what_if else []:
        if d.name == "top-1 probability only" and not (meta["task"] == "multiclass" and "probabilities" in meta["kinds"]):
            continue
        if d.name.endswith("explanations") and not expl_kinds:
            continue
        row = {"option": d.name, "setting": d.option,
               "honest_cost": _honest_cost(d, meta, truth, expl, np.random.default_rng(seed)), "attacks": {}}
        for entry in runnable:
            r = run_one(entry, d, attacks[entry.name].get("points"),
                        need_dim=attacks[entry.name].get("details", {}).get("recovered_dim"))
            row["attacks"][entry.name] = {k: r.get(k) for k in ("status", "message", "queries", "agreement",
                                                                 "succeeded", "exact_copy", "points")}
            row["attacks"][entry.name]["recovered_dim"] = (r.get("details") or {}).get("recovered_dim")
            row["attacks"][entry.name]["exact_prevented"] = (attacks[entry.name].get("exact_copy", False)
                                                             and not r.get("exact_copy"))
            row["attacks"][entry.name]["stopped"] = attacks[entry.name].get("succeeded", False) and not r.get("succeeded")
        defence_rows.append(row)

    usage = base.usage()
    report = {
        "service": url, "metadata": meta, "budget": budget, "probes": probe_what, "probe_queries": probe_cost,
        "constant_guess_agreement": float(np.max(np.unique(truth["labels"], return_counts=True)[1]) / len(X)),
        "attacks": attacks,
        "verdict": {
            "exact_copy": any(a.get("exact_copy") for a in attacks.values()),
            "exact_copy_by": [n for n, a in attacks.items() if a.get("exact_copy")],
            "queries_to_95_agreement": min((a["queries_to_95"] for a in attacks.values() if a.get("queries_to_95")),
                                           default=None),
            "best_agreement": max((a["agreement"] for a in attacks.values() if a.get("agreement") is not None),
                                  default=None),
            "span_recovered": span,
        },
        "defences": defence_rows,
        "server_queries_spent": usage["spent"] - spent_before,
        "wall_time_s": time.time() - start,
    }
    report["advice"] = advice(report)
    (out / "audit.json").write_text(json.dumps(jsonable(report), indent=2) + "\n")
    (out / "audit.html").write_text(render_html(report))
    return report


# -- HTML ---------------------------------------------------------------------------------------
def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _figures(report: dict[str, Any]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figs = []
    ran = {n: a for n, a in report["attacks"].items() if a.get("applies") and a.get("status") not in (None, "not applicable")}
    if ran:
        fig, ax = plt.subplots(figsize=(6, 2.6))
        names = list(ran)
        q = [ran[n]["queries"] for n in names]
        colors = ["#c0392b" if ran[n].get("succeeded") else "#7f8c8d" for n in names]
        ax.barh(names, q, color=colors)
        for i, n in enumerate(names):
            ag = ran[n].get("agreement")
            ax.text(q[i], i, f"  {ran[n]['status']}, agreement {ag:.1%}" if ag is not None else f"  {ran[n]['status']}",
                    va="center", fontsize=8)
        ax.set_xlabel("queries the attack spent (red: reached 95% agreement)")
        ax.set_xlim(0, max(max(q), 1) * 1.8)
        ax.set_title("What each attack took")
        figs.append(("Queries per attack", _png(fig)))
    curves = {n: a["curve"] for n, a in ran.items() if a.get("curve")}
    if curves:
        fig, ax = plt.subplots(figsize=(5, 2.8))
        for n, c in curves.items():
            q = [p["queries"] for p in c]
            ag = [p["agreement"] if p["agreement"] is not None else np.nan for p in c]
            ax.plot(q, ag, "o-", label=n)
        ax.axhline(AGREEMENT_GOAL, color="#c0392b", ls="--", lw=1, label=f"{AGREEMENT_GOAL:.0%}")
        ax.set_xscale("log")
        ax.set_xlabel("queries paid (cumulative, journal replays free)")
        ax.set_ylabel("agreement on probes")
        ax.set_ylim(0, 1.02)
        ax.legend(fontsize=8)
        ax.set_title("Clone agreement as the budget doubles")
        figs.append(("Agreement vs queries", _png(fig)))
    if report["defences"] and ran:
        names = [n for n in ran]
        opts = [d["option"] for d in report["defences"]]
        M = np.full((len(opts), len(names)), np.nan)
        for i, d in enumerate(report["defences"]):
            for j, n in enumerate(names):
                r = d["attacks"].get(n)
                if r is not None:
                    M[i, j] = 2.0 if r.get("exact_copy") or (r.get("succeeded") and not r.get("exact_prevented")) \
                        else (1.0 if r.get("succeeded") else 0.0)
        fig, ax = plt.subplots(figsize=(1.8 + 1.4 * len(names), 0.5 + 0.45 * len(opts)))
        ax.imshow(M, cmap=matplotlib.colors.ListedColormap(["#27ae60", "#d68910", "#c0392b"]), vmin=0, vmax=2,
                  aspect="auto")
        words = {0.0: "stopped", 1.0: "95%+ clone", 2.0: "still works"}
        for i in range(len(opts)):
            for j in range(len(names)):
                ax.text(j, i, "n/a" if np.isnan(M[i, j]) else words[M[i, j]],
                        ha="center", va="center", color="white", fontsize=8)
        ax.set_xticks(range(len(names)), names)
        ax.set_yticks(range(len(opts)), opts)
        ax.set_title("Attack under each service option")
        figs.append(("Service options against attacks", _png(fig)))
    return figs


def _short(text: str, n: int = 240) -> str:
    return text if len(text) <= n else text[:n].rstrip() + " ... (full message in audit.json)"


def _verdict(r: dict[str, Any]) -> str:
    if r.get("stopped"):
        return "stopped"
    if r.get("exact_copy"):
        return "still works: exact copy"
    if r.get("succeeded"):
        return "no exact copy, but still 95%+ agreement" if r.get("exact_prevented") else "still works"
    return "did not work before either"


def render_html(report: dict[str, Any]) -> str:
    e = html.escape
    v = report["verdict"]
    meta = report["metadata"]
    fmt = lambda x, f="{}": "—" if x is None else f.format(x)  # noqa: E731
    rows = []
    for name, a in report["attacks"].items():
        if not a.get("applies"):
            rows.append(f"<tr><td>{e(name)}</td><td colspan=6>does not apply: {e(a['reason'])}</td></tr>")
            continue
        rows.append(
            f"<tr data-attack='{e(name)}'><td>{e(name)}</td><td class='status-{e(a['status'])}'>{e(a['status'])}</td>"
            f"<td>{a['queries']}</td><td>{fmt(a.get('agreement'), '{:.1%}')}</td>"
            f"<td>{fmt(a.get('value_max_abs_error'), '{:.3g}')}</td><td>{'yes' if a.get('exact_copy') else 'no'}</td>"
            f"<td>{e(_short(a.get('message', '')))}</td></tr>")
    drows = []
    for d in report["defences"]:
        cells = []
        for name, r in d["attacks"].items():
            verdict = _verdict(r)
            cells.append(f"<b>{e(name)}</b>: {verdict} ({e(str(r.get('status')))}, {r.get('queries')} queries"
                         f"{', agreement ' + format(r['agreement'], '.1%') if r.get('agreement') is not None else ''}"
                         f"{', span dimension ' + str(r['recovered_dim']) if r.get('recovered_dim') is not None else ''})")
        drows.append(f"<tr><td>{e(d['option'])}</td><td>{'<br>'.join(cells)}</td><td>{e(d['honest_cost']['summary'])}</td></tr>")
    figs = "".join(f"<figure><img alt='{e(t)}' src='data:image/png;base64,{b}'><figcaption>{e(t)}</figcaption></figure>"
                   for t, b in _figures(report))
    exact = "YES" if v["exact_copy"] else "no"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>modelrecon audit of {e(report['service'])}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 70em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; }} td, th {{ border: 1px solid #ccc; padding: .35em .6em; vertical-align: top; }}
th {{ background: #f3f3f3; text-align: left; }} .big {{ font-size: 1.6em; font-weight: bold; }}
.cards {{ display: flex; gap: 1em; flex-wrap: wrap; }} .card {{ border: 1px solid #ccc; border-radius: 6px; padding: .8em 1.2em; min-width: 12em; }}
.status-complete {{ color: #c0392b; font-weight: bold; }} .status-failed {{ color: #27ae60; }} .status-partial {{ color: #d68910; }}
figure {{ display: inline-block; margin: 1em 1em 1em 0; }} img {{ max-width: 100%; }}
</style></head><body>
<h1>What the service at {e(report['service'])} gives away</h1>
<p>{e(meta['task'])} model, input shape {e(str(meta['input_shape']))}, {meta['n_outputs']} output(s);
offers {e(', '.join(meta['kinds']))}. Audit budget {report['budget']} queries; the service counted
<span id="server-queries">{report['server_queries_spent']}</span> queries for this audit. Agreement measured on {e(report['probes'])}
(always answering the most frequent label would agree on {report['constant_guess_agreement']:.1%} of them{
'; agreement says little here: compare the value errors, or audit with --data' if report['constant_guess_agreement'] >= AGREEMENT_GOAL else ''}).</p>
<div class="cards">
<div class="card">Exact copy of the model<div class="big" id="exact-copy">{exact}</div>{e(', '.join(v['exact_copy_by']))}</div>
<div class="card">Queries to {AGREEMENT_GOAL:.0%} agreement<div class="big" id="queries-to-95">{fmt(v['queries_to_95_agreement'])}</div></div>
<div class="card">Best agreement of a clone<div class="big" id="best-agreement">{fmt(v['best_agreement'], '{:.1%}')}</div></div>
<div class="card">Span of the first layer recovered<div class="big" id="span-recovered">{fmt(v['span_recovered'])}</div></div>
</div>
<h2>Attacks</h2>
<table id="attacks"><tr><th>attack</th><th>status</th><th>queries</th><th>agreement</th><th>max value error</th><th>exact copy</th><th>message</th></tr>
{''.join(rows)}</table>
<h2>Advice: the cheapest option that stops each attack that works now</h2>
<table id="advice"><tr><th>attack</th><th>reaches now</th><th>queries</th><th>cheapest option that stops it</th><th>cost to honest users</th></tr>
{''.join(f"<tr><td>{e(n)}</td><td>{e(a['succeeds'])}</td><td>{a['queries']}</td><td>{e(a['cheapest_stop'] or 'none of the options tried')}</td><td>{e(a['honest_cost'] or '')}</td></tr>" for n, a in report.get('advice', {}).items())}</table>
<h2>Which service option would have stopped which attack</h2>
<table id="defences"><tr><th>option</th><th>effect on the attacks</th><th>cost to honest users (measured on the probes)</th></tr>
{''.join(drows)}</table>
{figs}
<p id="images-decoded"></p>
<script>
window.addEventListener('load', () => {{
  const imgs = Array.from(document.images);
  document.getElementById('images-decoded').textContent =
    'figures decoded: ' + imgs.filter(i => i.complete && i.naturalWidth > 0).length + ' of ' + imgs.length;
}});
</script>
<p><small>modelrecon audit, {report['wall_time_s']:.1f} s. JSON: audit.json.</small></p>
</body></html>
"""
