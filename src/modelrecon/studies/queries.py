"""The query-efficiency study: surrogate agreement with the target against the number of
queries, per interface (labels, probabilities, gradients, SmoothGrad, integrated
gradients, ...), several seeds.

The study is a sweep (:mod:`modelrecon.sweep`): :func:`sweep_config` turns a
:class:`StudyConfig` into a study config whose grid is (interface, budget, seed), each run
a :class:`SurrogateAttack` with that budget against a fresh oracle, evaluated on the held-out
test split.  The runs go to ``OUT/results.sqlite`` (one row per run; a run already there is not
run again, so an interrupted study resumes; ``modelrecon results OUT/results.sqlite`` tables
and plots it).  The plot recipe :func:`figures` (``[results] recipe``; ``modelrecon results
DB --figures DIR`` runs it from the database alone) writes

``agreement.png``                    agreement vs query points (log x), one line per
                                     interface (seed mean), a band from seed min to max
``headline.json`` / ``headline.md``  query points needed to reach 90%, 95% and 98% mean
                                     agreement per interface, and the ratio best
                                     prediction-only / explanation interface

Query counts are *points*: a point asked on an explanation interface returns both the
prediction and the explanation (as an explanation API does), and the ledger counts one
query of each kind.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from modelrecon.report import save_figure

DEFAULT_BUDGETS = (10, 30, 100, 300, 1000, 3000)
DEFAULT_INTERFACES = ("label", "probabilities", "label@jbda", "gradient", "smoothgrad", "integrated-gradients")
PREDICTION_ONLY = ("label", "probabilities", "value")
THRESHOLDS = (0.90, 0.95, 0.98)


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

    @property
    def name(self) -> str:
        """The sweep's name: ``queries-`` and the target spec in letters, digits and dashes."""
        return "queries-" + re.sub(r"[^A-Za-z0-9]+", "-", self.target).strip("-")


def parse_list(text: str, cast: Callable[[str], Any] = str) -> tuple:
    return tuple(cast(v.strip()) for v in str(text).split(",") if v.strip())


def load_pool(target, name: str | None = None) -> np.ndarray | None:
    """The attacker's unlabeled data, shaped as the target's inputs: the pool split of a
    dataset (digits, mnist, cifar10; default the target's domain) or an .npy file."""
    from modelrecon import data
    from modelrecon.targets.base import declared_inputs

    if not name and getattr(target, "data", None):  # the target's declared inputs for query points
        return declared_inputs(target, "pool")[0]
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


def sweep_config(cfg: StudyConfig, pool: str | None) -> dict[str, Any]:
    """The study as a sweep config (the dict form of a TOML study file): grid interface x budget x seed.
    ``pool``: the attacker's unlabeled data, a dataset name (its pool split) or an .npy file."""
    interfaces = []
    for label in cfg.interfaces:
        name, _, strategy = label.partition("@")
        interfaces.append({"name": label, "attack": {"interface": name, "strategy": strategy or cfg.strategy}})
    attack: dict[str, Any] = {"steps": cfg.steps, "lam": cfg.lam, "seed": "{seed}", **cfg.attack_options}
    if cfg.arch:
        attack["arch"] = cfg.arch
    if pool:
        attack["pool"] = {"data": pool, "split": "pool"}
    return {"study": {"name": cfg.name, "attack": "surrogate", "target": cfg.target,
                      "description": f"surrogate agreement vs query points per interface: {cfg.target}"},
            "attack": attack,
            "grid": {"interface": interfaces, "attack.budget": [int(b) for b in cfg.budgets],
                     "seed": list(range(cfg.seeds))},
            "metrics": {"keep": ["agreement", "surrogate_accuracy", "target_accuracy", "random_agreement",
                                 "fidelity_relative_error"]},
            "results": {"group_by": ["interface", "budget"], "metric": ["queries", "agreement", "wall_time_s"],
                        "plot": {"x": "budget", "y": "agreement", "hue": ["interface"], "logx": True},
                        "recipe": "modelrecon.studies.queries:figures"}}


def resolved_config(cfg: StudyConfig) -> dict[str, Any]:
    """:func:`sweep_config` with the attacker's pool resolved (default: the target's domain)."""
    from modelrecon.targets import load

    pool = cfg.pool or load(cfg.target).truth.get("dataset")
    if pool and str(pool).endswith(".npy") and not Path(pool).exists():
        raise ValueError(f"--pool: no file {pool}")
    return sweep_config(cfg, pool)


def study(target: str = "builtin:digits-cnn", budgets: str = ",".join(map(str, DEFAULT_BUDGETS)),
          interfaces: str = ",".join(DEFAULT_INTERFACES), seeds: str = "3", strategy: str = "pool", steps: str = "400",
          lam: str = "1.0", arch: str | None = None, pool: str | None = None) -> dict[str, Any]:
    """The sweep config of ``modelrecon study queries`` with the same options, given as text:
    ``modelrecon sweep 'modelrecon.studies.queries:study?target=builtin:mnist-mlp&seeds=3'`` runs the same
    runs (the same keys) through the sweep runner."""
    return resolved_config(StudyConfig(target=target, budgets=parse_list(budgets, int),
                                       interfaces=parse_list(interfaces), seeds=int(seeds), strategy=strategy,
                                       steps=int(steps), lam=float(lam), arch=arch, pool=pool))


def run_study(cfg: StudyConfig, out: str | Path, workers: int | None = 0, show_progress: bool = True) -> dict[str, Any]:
    """Run (or resume) the study as a sweep into ``OUT/results.sqlite``, then its headline and plot.

    Runs of another training setup (steps, lambda, surrogate, pool) have other keys: they are never reused."""
    from modelrecon import report
    from modelrecon.sweep import ResultsDB, Study, run_key, run_sweep

    out = Path(out)
    study = Study.from_dict(resolved_config(cfg))
    summary = run_sweep(study, db=out / "results.sqlite", workers=workers, progress=show_progress)
    keys = {run_key(r) for r in study.runs()}
    store = ResultsDB(out / "results.sqlite")
    rows = [r for r in store.rows(study.name) if r["key"] in keys]
    store.close()
    drawn = summarize(cfg, records(rows), out)
    report.console.print(f"runs in {out / 'results.sqlite'} (`modelrecon results` tables them); "
                         f"headline.md, headline.json and agreement.png in {out}/")
    return {**drawn, "ran": summary.ran, "wall_time_s": summary.wall_time_s}


def records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The study's finished runs (database rows) as records: interface label, budget, seed, agreement.
    A failed run, or two runs at one grid point (runs of another training setup in the same
    database), is an error: the headline would silently miss or mix them."""
    from modelrecon.sweep import StudyError

    failed = [r for r in rows if r["status"] == "failed"]
    if failed:
        raise StudyError(f"{len(failed)} run(s) of {failed[0]['study']} failed (first: {failed[0]['message']}); "
                         f"see `modelrecon results DB --failures`")
    recs, seen = [], set()
    for r in rows:
        if r["status"] == "pending":
            continue
        point = (r["point"]["interface"], r["point"]["attack.budget"], r["point"]["seed"])
        if point in seen:
            raise StudyError(f"two runs of {r['study']} at interface, budget, seed = {point} (another training "
                             "setup in the same database): run `modelrecon study queries` into a new folder")
        seen.add(point)
        recs.append({"label": point[0], "budget": point[1], "seed": point[2], "agreement": r["metrics"].get("agreement"),
                     "points": r["details"].get("points"), "wall_time_s": r["wall_time_s"]})
    return recs


def figures(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """The plot recipe: headline.md, headline.json and agreement.png from the study's rows alone."""
    from modelrecon.sweep import StudyError

    recs = records(rows)
    if not recs:
        raise StudyError("the queries study has no finished runs yet: nothing to draw")
    targets = {r["target"] for r in rows}
    if len(targets) != 1:
        raise StudyError(f"the queries study's rows have targets {sorted(targets)}: one target per study")
    cfg = StudyConfig(target=targets.pop(), budgets=tuple(sorted({int(r["budget"]) for r in recs})),
                      seeds=len({r["seed"] for r in recs}))
    drawn = summarize(cfg, recs, out)
    return [out / "headline.md", out / "headline.json", Path(drawn["plot"])]


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

        rows.append((label, q("q90"), q("q95"), q("q98"), qi("q95_interp"), f"{v['best_agreement']:.3f}",
                     ratio("q90"), ratio("q95"), ratio("q98")))
    return rows


HEADLINE_COLUMNS = ["interface", "points to 90%", "points to 95%", "points to 98%", "~95% (log-interp.)",
                    "best mean agreement", "ratio @90% (interp.)", "ratio @95% (interp.)", "ratio @98% (interp.)"]


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
    return {"records": records, "headline": h, "plot": str(png)}
