"""The span-recovery study: recovered dimension vs hidden width per depth on random networks,
trained digits networks (queried at random inputs, and at the attacker's own unlabeled digit
images: group digits-data), queries and wall time per setting (``modelrecon study span``).

Random networks are ``builtin:mlp?d=n&widths=k,w,...,w`` (depth D = number of hidden layers,
the first of width k = the rank of A, then D - 1 layers of width w, from narrower than k to 4k).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from modelrecon import report


@dataclass
class Case:
    group: str
    setting: str
    target: str
    kinds: list[str]
    n: int
    k: int
    depth: int
    width: int | None
    act: str
    attack: dict[str, Any]


def grid(quick: bool = False) -> list[Case]:
    cases: list[Case] = []
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
                    cases.append(Case("random-relu", "relu-value", spec, ["value"], n, k, depth, w, "relu", {}))
                    if w == 2 * k or (quick and w == k):
                        cases.append(Case("random-relu", "relu-value", spec, ["gradient"], n, k, depth, w, "relu", {}))
    # thresholded outputs of tanh networks: label queries are expensive, a smaller grid
    for k in ((10,) if quick else (10, 50)):
        for depth in ((2,) if quick else (2, 3)):
            for w in ((k // 2, 2 * k) if quick else (k // 2, k, 2 * k)):
                ws = ",".join(map(str, [k] + [w] * (depth - 1)))
                spec = f"builtin:mlp?d=100&widths={ws}&k=1&act=tanh&seed={depth}"
                cases.append(Case("random-tanh", "threshold", spec, ["label"], 100, k, depth, w, "tanh", {}))
    # networks trained on digits (64 -> 32 -> 32 -> 10): one output followed
    cases.append(Case("digits", "relu-value", "builtin:digits-mlp?widths=32,32", ["value"], 64, 32, 2, 32, "relu",
                      {"output": 1}))
    cases.append(Case("digits-data", "relu-value", "builtin:digits-mlp?widths=32,32", ["value"], 64, 32, 2, 32,
                      "relu", {"output": 1, "data": "digits"}))
    cases.append(Case("digits", "relu-value", "builtin:digits-mlp?widths=32,32", ["gradient"], 64, 32, 2, 32, "relu",
                      {"output": 1}))
    if not quick:
        cases.append(Case("digits", "threshold", "builtin:digits-mlp?widths=32,32&act=tanh", ["label"], 64, 32, 2, 32,
                          "tanh", {"output": 1}))
        cases.append(Case("digits", "relu-value", "builtin:digits-mlp?widths=16,16", ["value"], 64, 16, 2, 16, "relu",
                          {"output": 1}))
        cases.append(Case("digits-data", "relu-value", "builtin:digits-mlp?widths=16,16", ["value"], 64, 16, 2, 16,
                          "relu", {"output": 1, "data": "digits"}))
        cases.append(Case("digits-data", "threshold", "builtin:digits-mlp?widths=32,32&act=tanh", ["label"], 64, 32, 2,
                          32, "tanh", {"output": 1, "data": "digits"}))
    return cases


def run_case(case: Case) -> dict[str, Any]:
    from modelrecon.attacks.span import SpanRecovery
    from modelrecon.evaluate import evaluate
    from modelrecon.oracle import local_oracle
    from modelrecon.targets import load

    target = load(case.target)
    attack = dict(case.attack)
    if attack.get("data") == "digits":  # the attacker's unlabeled pool of digit images
        from modelrecon.data import digits

        attack["data"] = digits().X_pool
    result = SpanRecovery(setting=case.setting, **attack).run(local_oracle(target, case.kinds))
    evaluate(result, target)
    m = result.metrics
    return {"group": case.group, "setting": case.setting, "source": result.details.get("source"),
            "target": case.target, "n": case.n, "k": case.k, "depth": case.depth, "width": case.width,
            "status": result.status, "recovered_dim": m.get("recovered_dim"), "true_dim": m.get("true_dim"),
            "max_principal_angle_rad": m.get("max_principal_angle_rad"),
            "captured_fraction": m.get("captured_fraction"), "false_dims": m.get("false_dims"),
            "queries": result.queries.get("total", 0), "reference_queries": (case.n + 1) * (m.get("true_dim") or 0),
            "recentred": result.details.get("recentred", 0), "wall_time_s": result.wall_time_s}


def run_study(out: Path, quick: bool = False, progress: bool = True,
              on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    out.mkdir(parents=True, exist_ok=True)
    cases = grid(quick)
    rows = []
    with report.progress(transient=True) as bar:
        task = bar.add_task("span study", total=len(cases)) if progress else None
        for case in cases:
            row = run_case(case)
            rows.append(row)
            if on_row:
                on_row(row)
            if task is not None:
                bar.advance(task)
    (out / "span_study.json").write_text(json.dumps(rows, indent=1) + "\n")
    (out / "span_study.md").write_text(summary(rows) + "\n" + markdown(rows))
    plot(rows, out / "span_recovered_dim.png")
    return rows


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
                     f"{'-' if angle is None else f'{angle:.1e}'} | {r['captured_fraction']:.3f} | {r['queries']} | "
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
                     f"{min(ratio):.3f}-{max(ratio):.3f} | {sum(r['wall_time_s'] for r in sel):.1f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sel = [r for r in rows if r["group"] == "random-relu" and r["source"] == "value"]
    panels = sorted({(r["n"], r["k"]) for r in sel})
    if not panels:
        return
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
    report.save_figure(fig, path, dpi=120)
