"""The span-recovery study as a sweep (``modelrecon study span``): recovered dimension vs hidden
width per depth on random networks, trained digits networks (queried at random inputs, and at the
attacker's own unlabeled digit images: group digits-data), queries and wall time per setting.

Random networks are ``builtin:mlp?d=n&widths=k,w,...,w`` (depth D = number of hidden layers,
the first of width k = the rank of A, then D - 1 layers of width w, from narrower than k to 4k).
The grid is not a product, so it is one axis ``case`` whose values carry their own target, oracle,
hyperparameters and labels (group, setting, n, k, depth, width, act).  The runs go to
``OUT/results.sqlite`` (resumable); :func:`figures` is the plot recipe
(``modelrecon results OUT/results.sqlite --figures DIR``): span_study.md and span_recovered_dim.png.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from modelrecon import report

METRICS = ["recovered_dim", "true_dim", "max_principal_angle_rad", "captured_fraction", "false_dims"]


def _case(group: str, setting: str, target: str, kinds: list[str], n: int, k: int, depth: int, width: int,
          act: str, **attack: Any) -> dict[str, Any]:
    labels = {"group": group, "setting": setting, "n": n, "k": k, "depth": depth, "width": width, "act": act}
    return {"name": f"{group} {setting} {'+'.join(kinds)} n={n} k={k} depth={depth} width={width} {act}",
            "target": target, "oracle": {"kinds": kinds}, "attack": {"setting": setting, **attack}, "labels": labels}


def cases(quick: bool = False) -> list[dict[str, Any]]:
    """The grid: one table value per (network, interface)."""
    out: list[dict[str, Any]] = []
    ns, ks, depths = ((100,), (10,), (2, 3)) if quick else ((100, 784), (10, 50, 100), (2, 3, 4, 5))
    for n in ns:
        for k in ks:
            if k >= n:
                continue  # a rank-n first layer hides nothing
            widths = sorted({max(k // 5, 1), k // 2, k, 2 * k, 4 * k}) if not quick else [k // 5, k // 2, k, 4 * k]
            for depth in depths:
                for w in widths:
                    ws = ",".join(map(str, [k] + [w] * (depth - 1)))
                    spec = f"builtin:mlp?d={n}&widths={ws}&k=1&act=relu&seed={depth}"
                    out.append(_case("random-relu", "relu-value", spec, ["value"], n, k, depth, w, "relu"))
                    if w == 2 * k or (quick and w == k):
                        out.append(_case("random-relu", "relu-value", spec, ["gradient"], n, k, depth, w, "relu"))
    # thresholded outputs of tanh networks: label queries are expensive, a smaller grid
    for k in ((10,) if quick else (10, 50)):
        for depth in ((2,) if quick else (2, 3)):
            for w in ((k // 2, 2 * k) if quick else (k // 2, k, 2 * k)):
                ws = ",".join(map(str, [k] + [w] * (depth - 1)))
                spec = f"builtin:mlp?d=100&widths={ws}&k=1&act=tanh&seed={depth}"
                out.append(_case("random-tanh", "threshold", spec, ["label"], 100, k, depth, w, "tanh"))
    # networks trained on digits (64 -> k -> k -> 10): one output followed; digits-data: queries at the
    # attacker's own unlabeled digit images
    pool = {"data": "digits", "split": "pool"}
    digits = [("digits", "relu-value", 32, ["value"], {}), ("digits-data", "relu-value", 32, ["value"], {"data": pool}),
              ("digits", "relu-value", 32, ["gradient"], {})]
    if not quick:
        digits += [("digits", "threshold", 32, ["label"], {}), ("digits", "relu-value", 16, ["value"], {}),
                   ("digits-data", "relu-value", 16, ["value"], {"data": pool}),
                   ("digits-data", "threshold", 32, ["label"], {"data": pool})]
    for group, setting, k, kinds, extra in digits:
        act = "tanh" if setting == "threshold" else "relu"
        spec = f"builtin:digits-mlp?widths={k},{k}" + ("&act=tanh" if act == "tanh" else "")
        out.append(_case(group, setting, spec, kinds, 64, k, 2, k, act, output=1, **extra))
    return out


def sweep_config(quick: bool = False) -> dict[str, Any]:
    """The study as a sweep config (the dict form of a TOML study file)."""
    return {"study": {"name": "span-study" + ("-quick" if quick else ""), "attack": "span",
                      "target": "builtin:mlp",  # every case names its own
                      "description": "recovered span dimension vs width and depth: random ReLU/tanh and digits networks"},
            "grid": {"case": cases(quick)},
            "metrics": {"keep": METRICS},
            "results": {"group_by": ["group", "setting", "n", "k"],
                        "metric": ["queries", "recovered_dim", "true_dim", "max_principal_angle_rad", "wall_time_s"],
                        "recipe": "modelrecon.studies.span:figures"}}


def run_study(out: Path, quick: bool = False, workers: int | None = 0, progress: bool = True) -> list[dict[str, Any]]:
    """Run (or resume) the study into ``OUT/results.sqlite``, then its recipe into ``out``; the rows."""
    from modelrecon.sweep import ResultsDB, Study, run_sweep

    study = Study.from_dict(sweep_config(quick))
    db = Path(out) / "results.sqlite"
    run_sweep(study, db=db, workers=workers, progress=progress)
    store = ResultsDB(db)
    rows = store.rows(study.name)
    store.close()
    figures(rows, Path(out))
    return records(rows)


def records(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sweep's finished rows as flat records (labels, metrics, queries, the (n+1)k reference)."""
    out = []
    for r in rows:
        if r["status"] == "pending":
            continue
        m, p = r["metrics"], r["point"]
        out.append({**{key: p[key] for key in ("group", "setting", "n", "k", "depth", "width")},
                    "source": r["details"].get("source"), "target": r["target"], "status": r["status"],
                    **{key: m.get(key) for key in METRICS}, "queries": r["queries"] or 0,
                    "reference_queries": (p["n"] + 1) * (m.get("true_dim") or 0),
                    "recentred": r["details"].get("recentred", 0), "wall_time_s": r["wall_time_s"] or 0.0})
    return out


def figures(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """The plot recipe: span_study.md (summary and every run) and span_recovered_dim.png."""
    recs = records(rows)
    md = out / "span_study.md"
    md.write_text(summary(recs) + "\n" + markdown(recs))
    png = plot(recs, out / "span_recovered_dim.png")
    return [md] + ([png] if png else [])


def table(rows: list[dict[str, Any]]):
    return report.comparison_table(
        "span recovery: recovered dimension, angle to rowspan(A), queries",
        ["group", "setting/source", "n", "k", "depth", "width", "status", "dim", "true", "max angle",
         "captured", "false dims", "queries", "(n+1)k", "time (s)"],
        [(r["group"], f"{r['setting']}/{r['source']}", r["n"], r["k"], r["depth"], r["width"], r["status"],
          r["recovered_dim"], r["true_dim"], r["max_principal_angle_rad"], r["captured_fraction"], r["false_dims"],
          r["queries"], r["reference_queries"], r["wall_time_s"]) for r in rows])


def markdown(rows: list[dict[str, Any]]) -> str:
    """The study as a Markdown table (for docs/span.md)."""
    head = ("| group | setting / source | n | k | depth | width | status | dim | true | max angle (rad) | captured "
            "| queries | (n+1)k | time (s) |\n" + "|" + "---|" * 14)
    lines = [head]
    for r in rows:
        angle = r["max_principal_angle_rad"]
        lines.append(f"| {r['group']} | {r['setting']} / {r['source']} | {r['n']} | {r['k']} | {r['depth']} | "
                     f"{r['width']} | {r['status']} | {r['recovered_dim']} | {r['true_dim']} | "
                     f"{'-' if angle is None else f'{angle:.1e}'} | {'-' if r['captured_fraction'] is None else format(r['captured_fraction'], '.3f')} | {r['queries']} | "
                     f"{r['reference_queries']} | {r['wall_time_s']:.2f} |")
    return "\n".join(lines) + "\n"


def summary(rows: list[dict[str, Any]]) -> str:
    """One Markdown line per (group, setting/source, n, k): how often the span was fully recovered
    with every hidden layer at least k wide, and with a narrower one; worst angle and false
    dimensions; queries against the (n+1)k reference; wall time."""
    keys = sorted({(r["group"], r["setting"], r["source"], r["n"], r["k"]) for r in rows},
                  key=lambda t: (t[0], t[1], t[2], t[3], t[4]))
    lines = ["| group | setting / source | n | k | full recovery, widths >= k | full recovery, a width < k "
             "| max angle (rad), full recoveries | max false dims | queries / (n+1)k | time (s) |",
             "|" + "---|" * 10]
    for key in keys:
        sel = [r for r in rows if (r["group"], r["setting"], r["source"], r["n"], r["k"]) == key]
        wide = [r for r in sel if (r["width"] or 0) >= r["k"]]
        thin = [r for r in sel if (r["width"] or 0) < r["k"]]
        full = [r for r in sel if r["recovered_dim"] == r["true_dim"]]
        angle = max((r["max_principal_angle_rad"] for r in full), default=None)
        ratio = [r["queries"] / r["reference_queries"] for r in sel if r["reference_queries"]]
        frac = lambda group: f"{sum(r['recovered_dim'] == r['true_dim'] for r in group)}/{len(group)}" if group else "-"
        lines.append(f"| {key[0]} | {key[1]} / {key[2]} | {key[3]} | {key[4]} | {frac(wide)} | {frac(thin)} | "
                     f"{'-' if angle is None else f'{angle:.1e}'} | {max(r['false_dims'] or 0 for r in sel):.1e} | "
                     f"{f'{min(ratio):.3f}-{max(ratio):.3f}' if ratio else '-'} | {sum(r['wall_time_s'] for r in sel):.1f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> Path | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = [r for r in rows if r["group"] == "random-relu" and r["source"] == "value"]
    panels = sorted({(r["n"], r["k"]) for r in sel})
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.4), squeeze=False)
    for ax, (n, k) in zip(axes[0], panels):
        for depth in sorted({r["depth"] for r in sel}):
            pts = sorted((r["width"], r["recovered_dim"] or 0) for r in sel if (r["n"], r["k"], r["depth"]) == (n, k, depth))
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"depth {depth}")
        ax.axhline(k, color="grey", ls="--", lw=1)
        ax.axvline(k, color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        ticks = sorted({r["width"] for r in sel if (r["n"], r["k"]) == (n, k)})
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_ylim(-0.05 * k, 1.1 * k)
        ax.set_title(f"n={n}, k={k}")
        ax.set_xlabel("hidden width after the first layer")
        ax.set_ylabel("recovered dimension")
        ax.legend(fontsize=7)
    fig.suptitle("ReLU value queries: recovered span dimension vs width")
    return report.save_figure(fig, path, dpi=120)
