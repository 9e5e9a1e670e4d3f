"""Rounding and explanation noise against the linear attack: the best naive and adaptive attacker's
parameter error after a budget of queries (docs/defences.md), as a sweep.

Defences: every answer rounded to N decimals; Gaussian noise of S x each explanation's RMS on
gradients (values exact, as the service adds it).  Attackers, each given the whole budget:

- naive: one gradient (and one value), as if the answers were exact;
- adaptive against rounding: w from equations on values at steps of 2^40 (d + 1 values: the rounding
  is divided by the step) or from one integrated-gradients answer 2^40 from its baseline, then b by
  bisection to the point where the rounded value steps (~60 values);
- adaptive against noise: the mean of as many gradients of one input as the budget allows
  (:func:`modelrecon.attacks.through.averaged_oracle`); with values offered, equations from values.

The sweep (``modelrecon sweep configs/defences-precision.toml``) has one axis ``case`` (model, defence,
attacker: its oracle kinds and options) and the budget; each run is :func:`defended` against an
oracle the sweep built with that defence and budget.  :func:`figures` is the plot recipe: the table
(defences-precision.md) and the figure (defences-precision.png).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from modelrecon.attacks.linear import LinearAttack
from modelrecon.attacks.relu2 import Relu2Attack
from modelrecon.attacks.through import IGRelu2Attack, Through, averaged_oracle, through_saliency
from modelrecon.report import save_figure

LONG_STEP = 2.0 ** 40
IG = "explanation:integrated-gradients"

# attacker -> (the attack for a seed, an adapter of the oracle given the budget, or None)
ATTACKERS: dict[str, tuple[Callable[[int], Any], Callable | None]] = {
    # rounding and noise (configs/defences-precision.toml)
    "naive: 1 gradient + 1 value": (lambda s: LinearAttack(method="gradient", verify=0), None),
    "adaptive: d + 1 values at steps of 2^40, b by bisection":
        (lambda s: LinearAttack(method="equations", step=LONG_STEP, verify=0, refine_bias=True), None),
    "adaptive: 1 IG answer 2^40 from the baseline, b by bisection":
        (lambda s: LinearAttack(method="explanation", explanation="integrated-gradients", step=LONG_STEP, verify=0,
                                refine_bias=True), None),
    "naive: 1 gradient": (lambda s: LinearAttack(method="gradient", verify=0), None),
    "adaptive: mean of all gradients the budget buys":
        (lambda s: LinearAttack(method="gradient", verify=0), lambda o, b: averaged_oracle(o, b)),
    "values offered: d + 1 exact values": (lambda s: LinearAttack(method="equations", verify=0), None),
    "naive: relu2 value+gradient": (lambda s: Relu2Attack(mode="value+gradient", seed=s), None),
    "adaptive: integrated gradients, far field + bisection": (lambda s: IGRelu2Attack(seed=s), None),
    "values offered: relu2 value mode": (lambda s: Relu2Attack(mode="value", seed=s), None),
    "gradient only: gradient mode on the mean of b/250 answers":
        (lambda s: Relu2Attack(mode="gradient", max_pieces=2000, seed=s),
         lambda o, b: averaged_oracle(o, max(1, b // 250), sigmas=5.0)),
    # exact extraction through each explanation (configs/defences-exact.toml; the oracle's kinds say which)
    "relu2 gradient mode": (lambda s: Relu2Attack(mode="gradient", seed=s), None),
    "relu2 value+gradient mode": (lambda s: Relu2Attack(mode="value+gradient", seed=s), None),
    "relu2 through integrated gradients": (lambda s: IGRelu2Attack(seed=s), None),
    "relu2 through |saliency|": (lambda s: through_saliency(Relu2Attack(mode="value+gradient", seed=s)), None),
    "linear from the gradient": (lambda s: LinearAttack(method="gradient"), None),
    "linear from integrated gradients":
        (lambda s: LinearAttack(method="explanation", explanation="integrated-gradients"), None),
    "linear through |saliency|": (lambda s: through_saliency(LinearAttack(method="gradient")), None),
    "linear from values (equations)": (lambda s: LinearAttack(method="equations"), None),
}


def defended(oracle, attacker: str, budget: int | None = None, seed: int = 0):
    """One attacker of the studies against ``oracle`` (the sweep built it with the defence and the budget)."""
    make, adapt = ATTACKERS[attacker]
    if adapt is None:
        return make(seed).run(oracle)
    return Through(make(seed), lambda o: adapt(o, budget), "mean of repeated answers").run(oracle)


def error_rows(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[int]]:
    """Rows {model, defence, attack, errors (one per budget: the parameter error; None: the budget does not pay
    for the attack (partial); "failed": no model)} and the budgets, from the sweep's rows."""
    from modelrecon.sweep import field_value

    budgets = sorted({field_value(r, "budget") for r in rows})
    table: dict[tuple, dict[int, Any]] = {}
    for r in rows:
        if r["status"] == "pending":
            continue
        err = r["metrics"].get("parameter_relative_error")
        key = tuple(field_value(r, k) for k in ("model", "defence", "attacker"))
        table.setdefault(key, {})[field_value(r, "budget")] = (
            None if r["status"] == "partial" else float(err) if err is not None else "failed")
    return ([{"model": m, "defence": d, "attack": a, "errors": [errors.get(b) for b in budgets]}
             for (m, d, a), errors in table.items()], budgets)


def figures(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """The plot recipe: defences-precision.md (the table) and defences-precision.png."""
    table, budgets = error_rows(rows)
    cell = lambda e: e if isinstance(e, str) else "-" if e is None else f"{e:.2g}"  # noqa: E731
    md = ["| model | defence | attack | " + " | ".join(f"{b:,} queries" for b in budgets) + " |",
          "|---|---|---|" + "---:|" * len(budgets)]
    md += [f"| {r['model']} | {r['defence']} | {r['attack']} | " + " | ".join(cell(e) for e in r["errors"]) + " |"
           for r in table]
    path = out / "defences-precision.md"
    path.write_text("\n".join(md) + "\n")
    return [path, plot_precision(table, budgets, out / "defences-precision.png")]


def plot_precision(rows: list[dict[str, Any]], budgets, path: Path) -> Path:
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
    return save_figure(fig, path, dpi=120)
