"""Query efficiency of surrogate extraction: explanations vs predictions only, digits targets.

Runs the ``modelrecon study queries`` study on ``digits-mlp`` and ``digits-cnn`` (resumable:
re-running skips the runs already in OUT) and prints, per target, the query points needed
for 90% / 95% mean top-1 agreement on the held-out test split, per interface, and the ratio
best prediction-only / explanation interface.  Plots: OUT/<target>/agreement.png.

    python benchmarks/surrogate.py               # the full grid (about 15 min on 2 idle cores)
    python benchmarks/surrogate.py --quick       # a smaller grid, one seed (about 2 min)
    python benchmarks/surrogate.py --only digits-cnn --out out/bench-surrogate
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import torch  # noqa: E402

from modelrecon import report  # noqa: E402
from modelrecon.studies.queries import HEADLINE_COLUMNS, StudyConfig, headline_rows, run_study  # noqa: E402

torch.set_num_threads(1)

ALL = ("label", "probabilities", "label@jbda", "gradient", "smoothgrad", "integrated-gradients")
FULL = {
    "digits-mlp": dict(budgets=(10, 20, 30, 50, 100, 200, 300, 1000, 3000), interfaces=ALL, seeds=3, steps=400),
    # SmoothGrad / integrated gradients cost sg_samples / ig_steps double-backprop passes per training step on
    # the CNN (3-6x the gradient interface): left out of the default grid to keep it within minutes; add them
    # with --interfaces label,probabilities,label@jbda,gradient,smoothgrad,integrated-gradients
    "digits-cnn": dict(budgets=(10, 20, 30, 50, 100, 300, 1000, 3000), interfaces=ALL[:4], seeds=3, steps=300),
}
QUICK = {
    "digits-mlp": dict(budgets=(10, 30, 100, 300, 1000), interfaces=("label", "probabilities", "gradient"), seeds=1,
                       steps=200),
    "digits-cnn": dict(budgets=(10, 30, 100, 300, 1000), interfaces=("label", "probabilities", "gradient"), seeds=1,
                       steps=200),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small grid, one seed")
    ap.add_argument("--only", choices=sorted(FULL), help="one target")
    ap.add_argument("--out", default="out/bench-surrogate", help="output folder (resumable)")
    ap.add_argument("--interfaces", help="override the interfaces, comma-separated")
    args = ap.parse_args()
    grid = QUICK if args.quick else FULL
    tables = []
    for name, g in grid.items():
        if args.only and name != args.only:
            continue
        g = dict(g)
        if args.interfaces:
            g["interfaces"] = tuple(v for v in args.interfaces.split(",") if v)
        cfg = StudyConfig(target=f"builtin:{name}", **g)
        start = time.perf_counter()
        summary = run_study(cfg, os.path.join(args.out + ("-quick" if args.quick else ""), name))
        rows = headline_rows(summary["headline"])
        tables.append((name, rows, summary["plot"], time.perf_counter() - start, cfg))
    for name, rows, png, wall, cfg in tables:
        report.console.print(report.comparison_table(
            f"{name}: query points to reach mean agreement ({cfg.seeds} seeds, {cfg.steps} training steps, "
            f"{wall:.0f} s)", HEADLINE_COLUMNS, rows))
        report.console.print(f"plot: {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
