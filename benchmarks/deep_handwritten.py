"""Benchmark: the hand-written 10-8-8-8-1 with torch's default initialisation (``tests/factories.py``
HandWrittenDeepRelu, external.py's ``deep-relu``), the network users bring first, per seed and mode.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/deep_handwritten.py --seeds 0,1,2,3 --inputs 100000
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/deep_handwritten.py --activity   # the truth only

Two tables.  The truth (``--activity``): per hidden neuron, the fraction of standard normal inputs where it is
active, and at radius 100 (inputs 100 times as large: where it turns on far out); a neuron active nowhere at any
radius is dead on R^d and has no effect on the function.  The attack: status, queries, distinct points, worst
output error over ``--inputs`` standard normal inputs relative to the output scale, wall and CPU time, the message.
The target spec ``factories:HandWrittenDeepRelu`` imports tests/factories.py (put on the path here).
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(os.path.dirname(HERE), "tests")]

from deep import KINDS, run  # noqa: E402

from modelrecon.targets import load  # noqa: E402

SPEC = "factories:HandWrittenDeepRelu?seed={seed}"


def activity(seed: int, n: int = 100_000) -> list[str]:
    """Per hidden neuron: % of N(0, I) inputs where it is active, and at radius 100."""
    layers = load(SPEC.format(seed=seed)).truth["layers"]
    X = np.random.default_rng(7).normal(size=(n, layers[0][0].shape[1]))
    rows = []
    for radius in (1.0, 100.0):
        h, fracs = X * radius, []
        for W, b in layers[:-1]:
            h = np.maximum(h @ W.T + b, 0.0)
            fracs.append((h > 0).mean(axis=0))
        rows.append(fracs)
    out = []
    for layer, (near, far) in enumerate(zip(*rows), 1):
        cells = ", ".join(f"{i}: {100 * a:.3g}/{100 * c:.3g}" for i, (a, c) in enumerate(zip(near, far)))
        out.append(f"| {seed} | {layer} | {cells} |")
    return out


def phases(seed: int, mode: str) -> None:
    """Queries per step of the attack (``deep_phases.PhaseCounter``), then the result's per-layer details."""
    from deep_phases import PhaseCounter

    from modelrecon.attacks.relu import ReluAttack
    from modelrecon.oracle import local_oracle

    target = load(SPEC.format(seed=seed))
    with PhaseCounter() as counter:
        result = ReluAttack(mode=mode).run(local_oracle(target, KINDS))
    print(f"\nseed {seed}, {mode}: {result.status}, {result.queries['total']:,} queries; lines "
          f"{result.details.get('lines')}, kinks {result.details.get('kinks')}, targeted "
          f"{result.details.get('targeted_searches')}\n{result.message}\n\n| step | queries | calls |\n|---|---|---|")
    for label, n in sorted(counter.queries.items(), key=lambda kv: -kv[1]):
        if n:
            print(f"| {label} | {n:,} | {counter.calls[label]} |")
    for i, info in enumerate(result.details.get("layers", []), 1):
        print(f"layer {i}: {info}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2,3", help="comma-separated seeds of the network")
    ap.add_argument("--modes", default="value+gradient,gradient")
    ap.add_argument("--inputs", type=int, default=100_000)
    ap.add_argument("--timeout", type=int, default=120, help="seconds per run")
    ap.add_argument("--activity", action="store_true", help="the truth's activity table only")
    ap.add_argument("--phases", action="store_true", help="where the queries go, per step (deep_phases.py), and the "
                    "layers' details, instead of the tables")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.phases:
        for seed in seeds:
            for mode in args.modes.split(","):
                phases(seed, mode)
        return
    print("| seed | layer | neuron: % active at radius 1 / 100 |\n|---|---|---|")
    for seed in seeds:
        print("\n".join(activity(seed)), flush=True)
    if args.activity:
        return
    print("\n| seed | mode | status | queries | points | worst error (of the scale) | wall s | CPU s | message |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for seed in seeds:
        for mode in args.modes.split(","):
            r = run(f"s{seed}", SPEC.format(seed=seed), mode, args.inputs, args.timeout)
            if "queries" not in r:
                print(f"| {seed} | {mode} | {r['status']} | | | | | | |", flush=True)
                continue
            worst = "—" if r["worst_rel"] is None else f"{r['worst_rel']:.1e}"
            print(f"| {seed} | {mode} | {r['status']} | {r['queries']:,} | {r['points']:,} | {worst} | "
                  f"{r['time']:.1f} | {r['cpu']:.1f} | {(r['message'] or '')[:160]} |", flush=True)


if __name__ == "__main__":
    main()
