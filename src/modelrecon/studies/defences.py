"""Rounding and explanation noise against the linear attack: the best naive and adaptive attacker's
parameter error after a budget of queries (benchmarks/defences.py precision; docs/defences.md).

Defences: every answer rounded to N decimals; Gaussian noise of S x each explanation's RMS on
gradients (values exact, as the service adds it).  Attackers, each given the whole budget:

- naive: one gradient (and one value), as if the answers were exact;
- adaptive against rounding: w from equations on values at steps of 2^40 (d + 1 values: the rounding
  is divided by the step) or from one integrated-gradients answer 2^40 from its baseline, then b by
  bisection to the point where the rounded value steps (~60 values);
- adaptive against noise: the mean of as many gradients of one input as the budget allows
  (:func:`modelrecon.attacks.through.averaged_oracle`); with values offered, equations from values.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelrecon.attacks.linear import LinearAttack
from modelrecon.attacks.through import Through, averaged_oracle
from modelrecon.evaluate import evaluate
from modelrecon.oracle import local_oracle
from modelrecon.targets import load

LONG_STEP = 2.0 ** 40
IG = "explanation:integrated-gradients"


def _error(attack, target, kinds, budget: int, adapt=None, **options) -> float | str | None:
    """The attack's parameter error with at most ``budget`` queries (None: it does not fit in the budget;
    "failed": it gave no model)."""
    oracle = local_oracle(target, kinds, budget=budget, **options)
    result = (Through(attack, adapt, "mean of repeated answers") if adapt else attack).run(oracle)
    if result.status == "partial":
        return None
    if result.model is None:
        return "failed"
    evaluate(result, target)
    return float(result.metrics["parameter_relative_error"])


def precision_table(d: int = 32, budgets=(1000, 10000, 100000), seed: int = 0, relu2: str = "d=16&h=4"
                    ) -> list[dict[str, Any]]:
    """Rows {model, defence, attack, errors (one per budget; None: the budget does not pay for the attack)}."""
    target = load(f"builtin:linear?d={d}&seed={seed}")
    rows = []
    model = f"linear d={d}"

    def row(defence, attack, fn):
        rows.append({"model": model, "defence": defence, "attack": attack, "errors": [fn(b) for b in budgets]})

    for n in (2, 4, 6, 8):
        r = {"round_decimals": n}
        row(f"round to {n} decimals", "naive: 1 gradient + 1 value",
            lambda b: _error(LinearAttack(method="gradient", verify=0), target, ["gradient", "value"], b, **r))
        row(f"round to {n} decimals", "adaptive: d + 1 values at steps of 2^40, b by bisection",
            lambda b: _error(LinearAttack(method="equations", step=LONG_STEP, verify=0,
                                                       refine_bias=True), target, ["value"], b, **r))
        row(f"round to {n} decimals", "adaptive: 1 IG answer 2^40 from the baseline, b by bisection",
            lambda b: _error(LinearAttack(method="explanation", explanation="integrated-gradients", step=LONG_STEP,
                                          verify=0, refine_bias=True), target, [IG, "value"], b, **r))
    for s in (0.01, 0.1, 1.0):
        z = {"explanation_noise": s}
        row(f"noise {s:.0%} of RMS", "naive: 1 gradient",
            lambda b: _error(LinearAttack(method="gradient", verify=0), target, ["gradient"], b, **z))
        row(f"noise {s:.0%} of RMS", "adaptive: mean of all gradients the budget buys",
            lambda b: _error(LinearAttack(method="gradient", verify=0), target, ["gradient"], b,
                             adapt=lambda o, b=b: averaged_oracle(o, b), **z))
        row(f"noise {s:.0%} of RMS", "values offered: d + 1 exact values",
            lambda b: _error(LinearAttack(method="equations", verify=0), target, ["value", "gradient"], b, **z))
    if relu2:
        _relu2_rows(f"builtin:relu2?{relu2}&seed={seed}", budgets, rows)
    return rows


def _relu2_rows(spec: str, budgets, rows: list[dict[str, Any]]) -> None:
    """The same defences on a two-layer ReLU network: rounding against the relu2 attack (value+gradient) and
    against integrated gradients (IGRelu2Attack); noise with values offered (value mode: values are exact) and
    with gradients only (gradient mode on the mean of repeated answers, the noise declared as rounding)."""
    from modelrecon.attacks.relu2 import Relu2Attack
    from modelrecon.attacks.through import IGRelu2Attack

    target = load(spec)
    model = spec.split(":", 1)[1]

    def row(defence, attack, fn):
        rows.append({"model": model, "defence": defence, "attack": attack, "errors": [fn(b) for b in budgets]})

    for n in (2, 4, 6, 8):
        r = {"round_decimals": n}
        row(f"round to {n} decimals", "naive: relu2 value+gradient",
            lambda b: _error(Relu2Attack(mode="value+gradient"), target, ["value", "gradient"], b, **r))
        row(f"round to {n} decimals", "adaptive: integrated gradients, far field + bisection",
            lambda b: _error(IGRelu2Attack(), target, [IG], b, **r))
    for s in (0.01, 0.1, 1.0):
        z = {"explanation_noise": s}
        row(f"noise {s:.0%} of RMS", "values offered: relu2 value mode",
            lambda b: _error(Relu2Attack(mode="value"), target, ["value", "gradient"], b, **z))
        row(f"noise {s:.0%} of RMS", "gradient only: gradient mode on the mean of b/250 answers",
            lambda b: _error(Relu2Attack(mode="gradient", max_pieces=2000), target, ["gradient"], b,
                             adapt=lambda o, b=b: averaged_oracle(o, max(1, b // 250), sigmas=5.0), **z))


def plot_precision(rows: list[dict[str, Any]], budgets, path: str) -> None:
    """One panel per model and defence family; colour: the defence's strength, dashes: the naive attack."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = plt.subplots(len(models), 2, figsize=(12, 3.6 * len(models)), sharey=True, squeeze=False)
    for i, m in enumerate(models):
        for ax, key in zip(axes[i], ("round", "noise")):
            mine = [r for r in rows if r["model"] == m and r["defence"].startswith(key)]
            strengths = list(dict.fromkeys(r["defence"] for r in mine))
            colours = dict(zip(strengths, plt.cm.viridis(np.linspace(0, 0.85, len(strengths)))))
            attacks = list(dict.fromkeys(r["attack"] for r in mine))
            styles = dict(zip(attacks, ("--", "-", ":", "-.")))
            for r in mine:
                e = [v if isinstance(v, float) else np.nan for v in r["errors"]]
                ax.plot(budgets, np.maximum(e, 1e-17), styles[r["attack"]], marker="o", color=colours[r["defence"]],
                        label=f"{r['defence']}: {r['attack']}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.axhline(1e-9, color="grey", lw=0.8, ls=":")
            ax.set_title(f"{m}: {'rounding of every answer' if key == 'round' else 'noise on explanations'}",
                         fontsize=9)
            ax.legend(fontsize=5.5, loc="center right")
        axes[i][0].set_ylabel("parameter relative error")
    for ax in axes[-1]:
        ax.set_xlabel("queries (budget)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
