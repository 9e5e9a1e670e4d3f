"""Where ``DeepValueAttack`` spends its values, phase by phase, and how its outcome varies with the attack's seed.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/deep_value_phases.py [--only 40-20-10-10-1,...]
        [--seeds N]

For each network of benchmarks/deep_value.py: the values each step of the attack asks for itself (its probe's
counter, read before and after each call; a nested step's values counted only under it), labelled by the layer
being searched (``next_layer[L2]``: the search for layer 2 in the region where layer 1 is all active) and by the
probe's primitive inside it (``kinks``: line searches, ``jump``: derivative jumps, ``refine>cross``: precise
crossings at fresh points of a candidate's plane).  The verification's fresh values are the ``verify`` row; the
benchmark's query count is the total without them.  With ``--seeds N``: status, values and verified error for the
attack seeds 0..N-1 (seed 0 is the benchmark's).
"""

from __future__ import annotations

import argparse
import collections
import functools

import torch

from modelrecon.attacks import relu_value, value_probe
from modelrecon.oracle import local_oracle
from modelrecon.targets.load import load

from deep_value import NETWORKS

STEPS = ["_curvature_probe", "_first_layer", "_signs", "_next_layer", "_missing", "_orient_expansive", "_refine",
         "_offset", "_cross", "_kinks", "_verify"]
PER_LAYER = {"_signs", "_next_layer", "_missing"}  # labelled by the layer they work on
NESTED = {"_refine", "_cross", "_kinks"}  # labelled by the step that calls them


class PhaseCounter:
    """Patches DeepValueAttack's steps (and the probe's ``jump``) to count each one's own values."""

    def __init__(self):
        self.values, self.calls, self._stack = collections.Counter(), collections.Counter(), []

    def _enter(self, label, asked, nested):
        label = f"{self._stack[-1][0]}>{label}" if nested and self._stack else label
        self._stack.append([label, asked, 0])
        self.calls[label] += 1

    def _leave(self, asked):
        label, start, nested = self._stack.pop()
        used = asked - start
        self.values[label] += used - nested
        if self._stack:
            self._stack[-1][2] += used

    def _wrap_step(self, name):
        step = getattr(relu_value.DeepValueAttack, name)

        @functools.wraps(step)
        def counted(attack, *args, **kwargs):
            label = name.lstrip("_") + (f"[L{len(attack._layers) + 1}]" if name in PER_LAYER else "")
            self._enter(label, attack._probe.asked, name in NESTED)
            try:
                return step(attack, *args, **kwargs)
            finally:
                self._leave(attack._probe.asked)
        return counted

    def _wrap_jump(self):
        jump = value_probe.ValueProbe.jump

        @functools.wraps(jump)
        def counted(probe, *args, **kwargs):
            self._enter("jump", probe.asked, True)
            try:
                return jump(probe, *args, **kwargs)
            finally:
                self._leave(probe.asked)
        return counted

    def __enter__(self):
        self._saved = {n: getattr(relu_value.DeepValueAttack, n) for n in STEPS}, value_probe.ValueProbe.jump
        for n in STEPS:
            setattr(relu_value.DeepValueAttack, n, self._wrap_step(n))
        value_probe.ValueProbe.jump = self._wrap_jump()
        return self

    def __exit__(self, *exc):
        for n, f in self._saved[0].items():
            setattr(relu_value.DeepValueAttack, n, f)
        value_probe.ValueProbe.jump = self._saved[1]


def attack(name: str, seed: int):
    target = load(NETWORKS[name][0])
    return relu_value.DeepValueAttack(seed=seed).run(local_oracle(target, ["value"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(NETWORKS), help="comma-separated network names")
    ap.add_argument("--seeds", type=int, default=0, help="also run attack seeds 0..N-1 and report each outcome")
    args = ap.parse_args()
    torch.set_num_threads(1)
    for name in args.only.split(","):
        if name not in NETWORKS:
            raise SystemExit(f"unknown network {name!r}; known: {', '.join(NETWORKS)}")
        with PhaseCounter() as counter:
            result = attack(name, 0)
        total = result.queries["total"]
        print(f"\n{name}: {result.status}, {total:,} values (+ {result.queries.get('verify', {}).get('total', 0):,} "
              "to verify)\n\n| step | values | share | calls |\n|---|---|---|---|")
        for label, n in sorted(counter.values.items(), key=lambda kv: -kv[1]):
            if n:
                share = f"{100 * n / total:.1f}%" if label != "verify" else "-"
                print(f"| {label} | {n:,} | {share} | {counter.calls[label]} |")
        if args.seeds:
            print("\n| attack seed | status | values | verified error |\n|---|---|---|---|")
            for seed in range(args.seeds):
                r = result if seed == 0 else attack(name, seed)
                err = r.details.get("verified_relative_error")
                print(f"| {seed} | {r.status} | {r.queries['total']:,} | {'-' if err is None else f'{err:.1e}'} |",
                      flush=True)


if __name__ == "__main__":
    main()
