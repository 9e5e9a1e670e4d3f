"""Span recovery benchmark: recovered dimension, angle to rowspan(A) and queries on random
ReLU / tanh networks and on networks trained on digits; plot of recovered dimension vs width.

    python benchmarks/span.py [--quick] [--out out/span]

Prints the table, writes out/span/span_study.json, span_study.md and span_recovered_dim.png.
The full grid takes a few minutes on one core; --quick is CI-sized (well under a minute).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from modelrecon import report
from modelrecon.studies.span import run_study, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small grid (n=100, k=10)")
    ap.add_argument("--out", type=Path, default=Path("out/span"))
    args = ap.parse_args()
    start = time.perf_counter()
    rows = run_study(args.out, quick=args.quick)
    report.console.width = max(report.console.width, 180)
    report.console.print(table(rows))
    value_rows = [r for r in rows if r["source"] == "value" and r["status"] == "complete"]
    wide = [r for r in value_rows if r["group"] == "random-relu" and r["width"] >= r["k"]]
    if wide:
        report.console.print(
            f"ReLU value queries, layers >= k wide: {sum(r['recovered_dim'] == r['true_dim'] for r in wide)}/{len(wide)} "
            f"fully recovered, max angle {max(r['max_principal_angle_rad'] for r in wide):.2e} rad, "
            f"queries / (n+1)k up to {max(r['queries'] / r['reference_queries'] for r in wide):.3f}")
    report.console.print(f"largest false_dims over all runs: {max(r['false_dims'] or 0 for r in rows):.2e}")
    report.console.print(f"total {time.perf_counter() - start:.1f} s; JSON and plot in {args.out}/")


if __name__ == "__main__":
    main()
