"""Where ``ReluAttack`` (``modelrecon attack relu``) spends its points, step by step.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/deep_phases.py [--only 10-10-10-1,...] [--mode M]

For each network of benchmarks/deep.py: the points each step asks for itself (its probe's counter, read before and
after each call; a nested step's points counted only under it), labelled by the layer being peeled (``region[L2]``:
the segments searched inside the all-active region of layer 1, ``lines``: random lines through the input region,
``trace``: far points of a candidate's surface, ``targeted``: searches completing rows, ``expansive``: the second
layer's surfaces followed to orient an expansive first layer, ``checks``: the attack's 16 check points).  In
value+gradient mode every point is a gradient and, where a new piece starts, a value; the benchmark's per-neuron
figures count the attack's queries and points (the verification's 4096 fresh points are printed apart).
"""

from __future__ import annotations

import argparse
import collections
import functools

import torch

from modelrecon.attacks import relu
from modelrecon.oracle import local_oracle
from modelrecon.targets import load

from deep import KINDS, NETWORKS

STEPS = {"_curvature_probe": "curvature", "_search": "lines", "_search_region": "region", "_trace": "trace",
         "_trace_in_region": "trace", "_complete": "targeted", "_run_expansive": "expansive",
         "_output_layer": "output", "_verify": "checks"}


class PhaseCounter:
    """Patches ReluAttack's steps to count each one's own points (a nested step's points go to it alone)."""

    def __init__(self):
        self.points, self.queries, self.calls = collections.Counter(), collections.Counter(), collections.Counter()
        self._stack = []

    def _wrap(self, name):
        step = getattr(relu.ReluAttack, name)

        @functools.wraps(step)
        def counted(attack, *args, **kwargs):
            label = STEPS[name]
            if name == "_verify":
                label = "verify" if args[-1] == "verify" else "checks"
            elif name != "_curvature_probe":
                label += f"[L{len(attack._known.layers) + 1}]"
            ledger = attack._probe.oracle.ledger
            self._stack.append([label, attack._probe.points, ledger.total(), 0, 0])
            self.calls[label] += 1
            try:
                return step(attack, *args, **kwargs)
            finally:
                label, start, asked, nested, nested_asked = self._stack.pop()
                used, used_asked = attack._probe.points - start, ledger.total() - asked
                self.points[label] += used - nested
                self.queries[label] += used_asked - nested_asked
                if self._stack:
                    self._stack[-1][3] += used
                    self._stack[-1][4] += used_asked
        return counted

    def __enter__(self):
        self._saved = {n: getattr(relu.ReluAttack, n) for n in STEPS}
        for n in STEPS:
            setattr(relu.ReluAttack, n, self._wrap(n))
        return self

    def __exit__(self, *exc):
        for n, f in self._saved.items():
            setattr(relu.ReluAttack, n, f)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="10-10-10-1,784-64x2-1,40-20-10-10-1,10-20-20-1",
                    help="comma-separated network names")
    ap.add_argument("--mode", default="value+gradient")
    ap.add_argument("--attack-seed", type=int, default=0, help="ReluAttack's seed (its lines and segments)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    table = {n: spec for n, spec, _ in NETWORKS}
    for name in args.only.split(","):
        if name not in table:
            raise SystemExit(f"unknown network {name!r}; known: {', '.join(table)}")
        target = load(table[name])
        hidden = sum(W.shape[0] for W, _ in target.truth["layers"][:-1])
        with PhaseCounter() as counter:
            result = relu.ReluAttack(mode=args.mode, seed=args.attack_seed).run(local_oracle(target, KINDS))
        attack = result.queries["points"]  # the attack phase's points (the verification's are not counted there)
        verify = result.queries.get("verify", {}).get("total", 0)
        print(f"\n{name} ({args.mode}, attack seed {args.attack_seed}): {result.status}, {result.queries['total']:,} queries "
              f"({result.queries['total'] / hidden:.1f} per neuron), {attack:,} points in the attack "
              f"({attack / hidden:.1f} per neuron); {verify:,} queries to verify apart; lines {result.details.get('lines')}, "
              f"kinks {result.details.get('kinks')}, targeted {result.details.get('targeted_searches')}\n\n"
              "| step | points | queries | queries / neuron | share of queries | calls |\n|---|---|---|---|---|---|")
        for label, n in sorted(counter.queries.items(), key=lambda kv: -kv[1]):
            if n:
                print(f"| {label} | {counter.points[label]:,} | {n:,} | {n / hidden:.1f} | "
                      f"{100 * n / result.queries['total']:.1f}% | {counter.calls[label]} |", flush=True)
        rest = result.queries["total"] + verify - sum(counter.queries.values())
        if rest:
            print(f"| (no step) | | {rest:,} | {rest / hidden:.1f} | {100 * rest / result.queries['total']:.1f}% | |")


if __name__ == "__main__":
    main()
