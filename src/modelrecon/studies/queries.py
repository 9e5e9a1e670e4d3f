"""The query-efficiency study: surrogate agreement with the target against the number of
queries, per interface (labels, probabilities, gradients, SmoothGrad, integrated
gradients, ...), several seeds.

One run = (interface, strategy, budget, seed): a :class:`SurrogateAttack` with that
budget against a fresh oracle, evaluated on the held-out test split.  Each finished run
is written to ``OUT/runs/<key>.json`` at once, and a run whose file exists is skipped, so
an interrupted study resumes where it stopped.  At the end the study writes

``results.json`` / ``results.csv``   every run: agreement, surrogate accuracy, queries
``agreement.png``                    agreement vs query points (log x), one line per
                                     interface (seed mean), a band from seed min to max
``headline.json`` / ``headline.md``  query points needed to reach 90% and 95% mean
                                     agreement per interface, and the ratio best
                                     prediction-only / explanation interface

Query counts are *points*: a point asked on an explanation interface returns both the
prediction and the explanation (as an explanation API does), and the ledger counts one
query of each kind; ``ledger_total`` in the results holds the ledger's total.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from modelrecon.report import save_figure

DEFAULT_BUDGETS = (10, 30, 100, 300, 1000, 3000)
DEFAULT_INTERFACES = ("label", "probabilities", "label@jbda", "gradient", "smoothgrad", "integrated-gradients")
PREDICTION_ONLY = ("label", "probabilities", "value")
THRESHOLDS = (0.90, 0.95)


@dataclass
class RunSpec:
    interface: str
    strategy: str
    budget: int
    seed: int
    label: str = ""  # as the user named it: NAME or NAME@STRATEGY

    def __post_init__(self) -> None:
        self.label = self.label or self.interface

    @property
    def key(self) -> str:
        return f"{self.label.replace('@', '_at_')}-b{self.budget}-s{self.seed}"


@dataclass
class StudyConfig:
    target: str
    budgets: tuple[int, ...] = DEFAULT_BUDGETS
    interfaces: tuple[str, ...] = DEFAULT_INTERFACES
    seeds: int = 3
    strategy: str = "pool"
    steps: int = 400
    lam: float = 1.0
    arch: str | None = None
    pool: str | None = None  # dataset name for the attacker's pool; default: the target's domain
    attack_options: dict[str, Any] = field(default_factory=dict)

    def runs(self) -> list[RunSpec]:
        out = []
        for itf in self.interfaces:
            name, _, strat = itf.partition("@")
            for b in self.budgets:
                for s in range(self.seeds):
                    out.append(RunSpec(name, strat or self.strategy, int(b), s, itf))
        return out


def parse_list(text: str, cast: Callable[[str], Any] = str) -> tuple:
    return tuple(cast(v.strip()) for v in str(text).split(",") if v.strip())


def load_pool(target, name: str | None = None) -> np.ndarray | None:
    """The attacker's unlabeled data, shaped as the target's inputs: the pool split of a
    dataset (digits, mnist, cifar10; default the target's domain) or an .npy file."""
    from modelrecon import data

    name = name or target.truth.get("dataset")
    if not name:
        return None
    if str(name).endswith(".npy"):
        try:
            X = np.load(name, allow_pickle=False).astype(np.float64)
        except Exception as e:  # missing, not a NumPy file, pickled objects, not numbers
            raise ValueError(f"cannot read the pool {name} as a NumPy array of numbers: {type(e).__name__}: {e}") from None
    else:
        ds = data.digits(image=len(target.input_shape) == 3) if name == "digits" else data.load(name)
        X = ds.X_pool
    if int(np.prod(X.shape[1:])) != int(np.prod(target.input_shape)):
        raise ValueError(f"pool {name} has inputs of shape {X.shape[1:]}; the target takes {target.input_shape}")
    return X.reshape(len(X), *target.input_shape)


def run_one(cfg: StudyConfig, spec: RunSpec, target, pool: np.ndarray | None) -> dict[str, Any]:
    """One attack run and its metrics, as a flat record."""
    from modelrecon.attacks.surrogate import SurrogateAttack
    from modelrecon.evaluate import evaluate
    from modelrecon.oracle import local_oracle

    attack = SurrogateAttack(budget=spec.budget, interface=spec.interface, strategy=spec.strategy, pool=pool,
                             arch=cfg.arch, lam=cfg.lam, steps=cfg.steps, seed=spec.seed, **cfg.attack_options)
    result = attack.run(local_oracle(target))
    evaluate(result, target)
    m = result.metrics
    return {"target": cfg.target, "interface": spec.interface, "strategy": spec.strategy, "label": spec.label,
            "budget": spec.budget, "seed": spec.seed, "status": result.status,
            "points": result.details.get("points"), "ledger_total": result.queries.get("total"),
            "by_kind": result.queries.get("by_kind"), "agreement": m.get("agreement"),
            "surrogate_accuracy": m.get("surrogate_accuracy"), "target_accuracy": m.get("target_accuracy"),
            "random_agreement": m.get("random_agreement"), "wall_time_s": result.wall_time_s}


def run_study(cfg: StudyConfig, out: str | Path, show_progress: bool = True,
              stop_after: int | None = None) -> dict[str, Any]:
    """Run (or resume) the study into ``out``; ``stop_after`` runs at most that many new
    runs and returns (an interruption, for tests).  Returns the summary."""
    from modelrecon import report
    from modelrecon.targets import load

    out = Path(out)
    runs_dir = out / "runs"
    runs_dir.mkdir(parents=True, exist_ok=True)
    # the runs on disk are reused only for the same training setup (the grid itself may grow)
    setup = {k: v for k, v in cfg.__dict__.items() if k not in ("budgets", "interfaces", "seeds")}
    saved = out / "config.json"
    if saved.exists():
        before = {k: v for k, v in json.loads(saved.read_text()).items() if k in setup}
        if before != json.loads(json.dumps(setup)):
            raise ValueError(f"{out} holds runs of another study setup {before}; this one is {setup}: "
                             "choose another --out (or delete that folder)")
    saved.write_text(json.dumps({**cfg.__dict__, "budgets": list(cfg.budgets), "interfaces": list(cfg.interfaces)},
                                indent=2) + "\n")
    target = load(cfg.target)
    pool = load_pool(target, cfg.pool)
    plan = cfg.runs()
    todo = [r for r in plan if not (runs_dir / f"{r.key}.json").exists()]
    done_now = 0
    bar_ctx = report.progress() if show_progress else None
    try:
        if bar_ctx:
            bar_ctx.start()
            task = bar_ctx.add_task(f"study {cfg.target}", total=len(plan), completed=len(plan) - len(todo))
        for spec in todo:
            if stop_after is not None and done_now >= stop_after:
                return {"interrupted": True, "done": len(plan) - len(todo) + done_now, "total": len(plan)}
            if bar_ctx:
                bar_ctx.update(task, description=f"{spec.label} b={spec.budget} s={spec.seed}")
            rec = run_one(cfg, spec, target, pool)
            tmp = runs_dir / f"{spec.key}.json.tmp"
            tmp.write_text(json.dumps(rec, indent=1) + "\n")
            tmp.replace(runs_dir / f"{spec.key}.json")
            done_now += 1
            if bar_ctx:
                bar_ctx.advance(task)
    finally:
        if bar_ctx:
            bar_ctx.stop()
    records = [json.loads((runs_dir / f"{r.key}.json").read_text()) for r in plan]
    return summarize(cfg, records, out)


def _curves(records: list[dict[str, Any]]) -> dict[str, dict[int, list[float]]]:
    curves: dict[str, dict[int, list[float]]] = {}
    for r in records:
        curves.setdefault(r["label"], {}).setdefault(int(r["budget"]), []).append(float(r["agreement"]))
    return curves


def queries_to_reach(curve: dict[int, list[float]], threshold: float) -> int | None:
    """The smallest budget on the grid whose seed-mean agreement reaches threshold
    and stays there at every larger budget; None if none does."""
    budgets = sorted(curve)
    means = [float(np.mean(curve[b])) for b in budgets]
    for i, b in enumerate(budgets):
        if all(m >= threshold for m in means[i:]):
            return b
    return None


def interpolated_to_reach(curve: dict[int, list[float]], threshold: float) -> float | None:
    """Where the seed-mean curve crosses threshold, interpolated linearly in log(budget)
    between the grid budget found by :func:`queries_to_reach` and the one before it."""
    b = queries_to_reach(curve, threshold)
    budgets = sorted(curve)
    if b is None or b == budgets[0]:
        return None if b is None else float(b)
    i = budgets.index(b)
    b0, b1 = budgets[i - 1], b
    m0, m1 = float(np.mean(curve[b0])), float(np.mean(curve[b1]))
    frac = (threshold - m0) / (m1 - m0) if m1 > m0 else 1.0
    return float(np.exp(np.log(b0) + frac * (np.log(b1) - np.log(b0))))


def headline(records: list[dict[str, Any]]) -> dict[str, Any]:
    curves = _curves(records)
    max_budget = max(int(r["budget"]) for r in records)
    rows = {}
    for label, curve in curves.items():
        rows[label] = {f"q{int(t * 100)}": queries_to_reach(curve, t) for t in THRESHOLDS}
        rows[label].update({f"q{int(t * 100)}_interp": interpolated_to_reach(curve, t) for t in THRESHOLDS})
        rows[label]["best_agreement"] = max(float(np.mean(v)) for v in curve.values())
        rows[label]["prediction_only"] = label.split("@")[0] in PREDICTION_ONLY
    out: dict[str, Any] = {"interfaces": rows, "max_budget": max_budget, "ratios": {}}
    for t in THRESHOLDS:
        key = f"q{int(t * 100)}"
        base = [v[key] for v in rows.values() if v["prediction_only"] and v[key] is not None]
        best_base = min(base) if base else None
        out[f"best_prediction_only_{key}"] = best_base
        for label, v in rows.items():
            if v["prediction_only"] or v[key] is None:
                continue
            if best_base is not None:
                base_i = min(w[key + "_interp"] for w in rows.values() if w["prediction_only"] and w[key] is not None)
                out["ratios"].setdefault(label, {})[key] = {"ratio": best_base / v[key], "bound": "=",
                                                            "ratio_interp": base_i / v[key + "_interp"]}
            else:  # no prediction-only interface reached it within the grid: a lower bound
                out["ratios"].setdefault(label, {})[key] = {"ratio": max_budget / v[key], "bound": ">"}
    return out


def headline_rows(h: dict[str, Any]) -> list[tuple]:
    rows = []
    for label, v in h["interfaces"].items():
        def q(key: str) -> str:
            return str(v[key]) if v[key] is not None else f"> {h['max_budget']}"

        def ratio(key: str) -> str:
            r = h["ratios"].get(label, {}).get(key)
            if v["prediction_only"]:
                return "(baseline)"
            if r is None:
                return "n/a"
            if r["bound"] == ">":
                return f">= {r['ratio']:.1f}x"
            return f"{r['ratio']:.1f}x (~{r['ratio_interp']:.1f}x)"

        def qi(key: str) -> str:
            return f"{v[key]:.0f}" if v[key] is not None else "-"

        rows.append((label, q("q90"), q("q95"), qi("q95_interp"), f"{v['best_agreement']:.3f}", ratio("q90"),
                     ratio("q95")))
    return rows


HEADLINE_COLUMNS = ["interface", "points to 90%", "points to 95%", "~95% (log-interp.)", "best mean agreement",
                    "ratio @90% (interp.)", "ratio @95% (interp.)"]


def plot(records: list[dict[str, Any]], path: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, curve in _curves(records).items():
        b = sorted(curve)
        mean = [np.mean(curve[x]) for x in b]
        lo = [np.min(curve[x]) for x in b]
        hi = [np.max(curve[x]) for x in b]
        style = "--" if label.split("@")[0] in PREDICTION_ONLY else "-"
        line, = ax.plot(b, mean, style, marker="o", ms=3, label=label)
        ax.fill_between(b, lo, hi, color=line.get_color(), alpha=0.18, lw=0)
    for t in THRESHOLDS:
        ax.axhline(t, color="grey", lw=0.6, ls=":")
    ax.set_xscale("log")
    ax.set_xlabel("query points")
    ax.set_ylabel("top-1 agreement on held-out test data")
    ax.set_title(title)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    return save_figure(fig, path, dpi=120)


def summarize(cfg: StudyConfig, records: list[dict[str, Any]], out: Path) -> dict[str, Any]:
    from modelrecon import report
    from modelrecon.result import jsonable

    (out / "results.json").write_text(json.dumps(jsonable(records), indent=1) + "\n")
    cols = ["target", "interface", "strategy", "budget", "seed", "status", "points", "ledger_total", "agreement",
            "surrogate_accuracy", "target_accuracy", "random_agreement", "wall_time_s"]
    with open(out / "results.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(records)
    h = headline(records)
    h["target"] = cfg.target
    h["seeds"] = cfg.seeds
    (out / "headline.json").write_text(json.dumps(jsonable(h), indent=2) + "\n")
    rows = headline_rows(h)
    md = [f"Target `{cfg.target}`, {cfg.seeds} seeds, budgets {', '.join(map(str, cfg.budgets))} query points; "
          "a budget is reached when the seed-mean agreement is at or above the threshold there and at every "
          "larger budget (grid value; in brackets interpolated in log budget). Ratio: best prediction-only "
          "interface / this interface.", "",
          "| " + " | ".join(HEADLINE_COLUMNS) + " |", "|" + "---|" * len(HEADLINE_COLUMNS)]
    md += ["| " + " | ".join(r) + " |" for r in rows]
    (out / "headline.md").write_text("\n".join(md) + "\n")
    png = plot(records, out / "agreement.png", f"surrogate agreement vs queries: {cfg.target}")
    report.console.print(report.comparison_table(f"queries to reach agreement: {cfg.target}", HEADLINE_COLUMNS, rows))
    report.console.print(f"results in {out}/ (results.csv, results.json, headline.md, {png.name})")
    return {"interrupted": False, "records": records, "headline": h, "plot": str(png)}
