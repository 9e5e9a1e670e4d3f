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


def _error(attack: LinearAttack, target, kinds, budget: int, adapt=None, **options) -> float | None:
    """The attack's parameter error with at most ``budget`` queries (None: it does not fit in the budget)."""
    oracle = local_oracle(target, kinds, budget=budget, **options)
    result = (Through(attack, adapt, "mean of repeated answers") if adapt else attack).run(oracle)
    if result.status == "partial" or result.model is None:
        return None
    evaluate(result, target)
    return float(result.metrics["parameter_relative_error"])


def precision_table(d: int = 32, budgets=(1000, 10000, 100000), seed: int = 0) -> list[dict[str, Any]]:
    """Rows {defence, attack, errors (one per budget; None: the budget does not pay for the attack)}."""
    target = load(f"builtin:linear?d={d}&seed={seed}")
    rows = []

    def row(defence, attack, fn):
        rows.append({"defence": defence, "attack": attack, "errors": [fn(b) for b in budgets]})

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
    return rows


def plot_precision(rows: list[dict[str, Any]], budgets, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, key in zip(axes, ("round", "noise")):
        for r in rows:
            if not r["defence"].startswith(key):
                continue
            e = [np.nan if v is None else max(v, 1e-17) for v in r["errors"]]
            style = "--" if r["attack"].startswith("naive") else "-"
            ax.plot(budgets, e, style, marker="o", label=f"{r['defence']}: {r['attack'].split(':')[0]}"
                    + ("" if r["attack"].startswith("naive") else f" ({r['attack'].split(': ', 1)[-1][:28]})"))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(1e-9, color="grey", lw=0.8, ls=":")
        ax.set_xlabel("queries")
        ax.set_title("rounding of every answer" if key == "round" else "noise on explanations")
        ax.legend(fontsize=6)
    axes[0].set_ylabel("parameter relative error (linear model)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
