"""Benchmark: exact two-layer ReLU reconstruction, three modes, IBM ART side by side.

    OMP_NUM_THREADS=1 python benchmarks/relu2.py            # h in {16,128,1024} x d in {64,784,3072} + digits
    OMP_NUM_THREADS=1 python benchmarks/relu2.py --quick    # a small grid
    OMP_NUM_THREADS=1 python benchmarks/relu2.py --confirm  # value+gradient only: kink check 'pair' vs 'side'

Prints one table: queries per hidden unit (attack phase; verification counted apart),
parameter_relative_error, wall time, for each mode, and ART's FunctionallyEquivalentExtraction
on the small targets (optional dependency ``adversarial-robustness-toolbox``; its failures are
recorded as failures, with the queries it had spent).  Value-only runs whose (h+1)(d+1) query
cost is beyond ``--max-value-queries`` are skipped and marked so.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from modelrecon import report  # noqa: E402
from modelrecon.attacks.relu2 import Relu2Attack  # noqa: E402
from modelrecon.evaluate import evaluate  # noqa: E402
from modelrecon.oracle import local_oracle  # noqa: E402
from modelrecon.targets import load  # noqa: E402

KINDS = {"gradient": ["gradient", "value"], "value+gradient": ["value", "gradient"], "value": ["value"]}


def ours(target, h: int, mode: str, **kw) -> tuple[str, str, str, str]:
    result = Relu2Attack(mode=mode, **kw).run(local_oracle(target, KINDS[mode]))
    evaluate(result, target)
    q = result.queries["total"] / h
    err = result.metrics.get("parameter_relative_error", float("nan"))
    status = "" if result.status == "complete" else f" [{result.status}]"
    if result.details.get("orientation") == "unresolved":
        status += " [orientation unresolved: exact function with an affine term]"
    return f"{q:.3g}", f"{err:.1e}{status}", f"{result.wall_time_s:.2f}", result.status


class _Timeout(Exception):
    pass


def art(target, limit_s: int) -> tuple[str, str, str]:
    try:
        from _art_relu2 import run_art
    except ImportError as e:  # pragma: no cover
        return "n/a", f"not installed ({e})", ""
    oracle = local_oracle(target, ["value"])
    h = target.truth["W"].shape[0] if "W" in target.truth else target.truth["layers"][0][0].shape[0]

    def alarm(*_):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(limit_s)
    start = time.perf_counter()
    try:
        out = run_art(target, oracle)
        err = out["parameter_relative_error"]
        return (f"{out['queries'] / h:.3g}", f"{err:.1e}" if err is not None else
                f"fidelity {out['fidelity_relative_error']:.1e}", f"{out['wall_time_s']:.1f}")
    except _Timeout:
        return f"{oracle.ledger.total() / h:.3g}+", f"FAILED: not done in {limit_s} s", f"{limit_s}"
    except Exception as e:  # ART's own failures are results too
        msg = str(e).split("\n")[0][:70]
        return f"{oracle.ledger.total() / h:.3g}", f"FAILED: {type(e).__name__}: {msg}", f"{time.perf_counter() - start:.1f}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def confirm_table(specs) -> None:
    """value+gradient with the two-query kink check (default) and the optimistic one-query check."""
    rows = []
    for spec, h, d in specs:
        target = load(spec)
        row = [spec.removeprefix("builtin:"), h, d]
        for confirm in ("pair", "side"):
            q, err, s, _ = ours(target, h, "value+gradient", confirm=confirm)
            row += [q, err, s]
        rows.append(row)
        print(" | ".join(map(str, row)), flush=True)
    cols = ["target", "h", "d"]
    for c in ("pair", "side"):
        cols += [f"{c} q/unit", f"{c} param err", f"{c} s"]
    report.console.print(report.comparison_table("relu2 value+gradient: kink check 'pair' (2 queries) vs 'side' (1)",
                                                 cols, rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="h in {16, 128} x d in {64, 784}, digits")
    ap.add_argument("--max-value-queries", type=int, default=400_000, help="skip value-only runs above this cost")
    ap.add_argument("--art-limit", type=int, default=120, help="seconds given to ART per target")
    ap.add_argument("--no-art", action="store_true")
    ap.add_argument("--hs", default=None, help="comma-separated hidden widths (overrides the grid)")
    ap.add_argument("--no-digits", action="store_true")
    ap.add_argument("--confirm", action="store_true", help="value+gradient only: confirm='pair' vs 'side'")
    args = ap.parse_args()
    hs, ds = ((16, 128), (64, 784)) if args.quick else ((16, 128, 1024), (64, 784, 3072))
    if args.hs:
        hs = tuple(int(h) for h in args.hs.split(","))
    specs = [(f"builtin:relu2?d={d}&h={h}", h, d) for h in hs for d in ds]
    if not args.no_digits:
        specs.append(("builtin:digits-mlp?widths=32", 32, 64))
    if args.confirm:
        confirm_table(specs)
        return
    rows = []
    for spec, h, d in specs:
        target = load(spec)
        row = [spec.removeprefix("builtin:"), h, d]
        for mode in ("value+gradient", "gradient", "value"):
            if mode == "value" and (h + 1) * (d + 1) > args.max_value_queries:
                row += ["skipped", f"(h+1)(d+1) > {args.max_value_queries}", ""]
                continue
            row += list(ours(target, h, mode)[:3])
        if args.no_art or (h > 16 and spec.startswith("builtin:relu2")) or d > 64:
            row += ["", "not run (time)", ""]
        else:
            row += list(art(target, args.art_limit))
        rows.append(row)
        print(" | ".join(map(str, row)), flush=True)
    cols = ["target", "h", "d"]
    for m in ("value+gradient", "gradient", "value", "ART FEE"):
        cols += [f"{m} q/unit", f"{m} param err", f"{m} s"]
    report.console.print(report.comparison_table("relu2: exact reconstruction (queries per hidden unit, attack phase)",
                                                 cols, rows))


if __name__ == "__main__":
    main()
