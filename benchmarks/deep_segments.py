"""What each searched segment or line of ``ReluAttack`` costs and which layers' kinks it finds.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/deep_segments.py --only 100-64x3-10 [--attack-seed S]

One row per call of the kink search (``critical_points``: the region's segments, the lines searched within a cell,
the targeted lines searched after their ends; a whole line's search is one call per gap it hands over): the layer
being peeled, its queries and points, the kinks it returns and how many of them were given (read at predicted
crossings before the call, whose queries are not in the row), and the kinks per true layer (the layer whose surface
passes nearest the kink, read from the target's weights here, never by the attack).  Calls that asked nothing are
left out.
"""

from __future__ import annotations

import argparse
import collections

import numpy as np
import torch

from modelrecon.attacks import relu
from modelrecon.oracle import local_oracle
from modelrecon.targets import load

from deep import KINDS, NETWORKS


def nearest_layer(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> int:
    """The hidden layer (1-based) with the pre-activation nearest zero at x, relative to its row's norm."""
    h, best, layer = x, np.inf, 0
    for i, (W, b) in enumerate(layers[:-1]):
        W, b = np.asarray(W, float), np.asarray(b, float)
        z = W @ h + b
        gap = float(np.min(np.abs(z) / np.maximum(np.linalg.norm(W, axis=1), np.finfo(float).tiny)))
        if gap < best:
            best, layer = gap, i + 1
        h = np.maximum(z, 0)
    return layer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="100-64x3-10", help="comma-separated network names")
    ap.add_argument("--attack-seed", type=int, default=0, help="ReluAttack's seed")
    args = ap.parse_args()
    torch.set_num_threads(1)
    table = {n: spec for n, spec, _ in NETWORKS}
    search = relu.critical_points
    for name in args.only.split(","):
        if name not in table:
            raise SystemExit(f"unknown network {name!r}; known: {', '.join(table)}")
        target = load(table[name])
        truth = target.truth["layers"]
        attack = relu.ReluAttack(mode="value+gradient", seed=args.attack_seed)
        rows = []

        def counted(probe, line, lo, hi, *a, **kw):
            asked, points = probe.oracle.ledger.total(), probe.points
            kinks, pieces = search(probe, line, lo, hi, *a, **kw)
            layers = collections.Counter(nearest_layer(truth, k.x) for k in kinks)
            known = len(attack._known.layers) if hasattr(attack, "_known") else 0
            rows.append((known + 1, probe.oracle.ledger.total() - asked, probe.points - points, len(kinks),
                         len(kw.get("known") or []), layers))
            return kinks, pieces

        relu.critical_points = counted
        try:
            result = attack.run(local_oracle(target, KINDS))
        finally:
            relu.critical_points = search
        depth = len(truth) - 1
        print(f"\n{name} (value+gradient, attack seed {args.attack_seed}): {result.status}, "
              f"{result.queries['total']:,} queries\n")
        print("| call | peeling layer | queries | points | kinks | given | " +
              " | ".join(f"layer {i}" for i in range(1, depth + 1)) + " |")
        print("|---" * (6 + depth) + "|")
        for i, (layer, asked, points, found, given, layers) in enumerate(rows):
            if asked:
                print(f"| {i} | {layer} | {asked} | {points} | {found} | {given} | " +
                      " | ".join(str(layers.get(j, 0)) for j in range(1, depth + 1)) + " |")


if __name__ == "__main__":
    main()
