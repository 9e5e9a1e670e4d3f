"""Benchmark: what value+gradient mode's line search spends on gaps whose two ends have one gradient but values
apart (docs/deep.md, helper i20cont).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/deep_value_gaps.py --only 10-10-10-1,10-20-20-1

Such a gap holds either a neuron switching on and off (two kinks, a real find) or no switch at all: one of the two
values is off by more than the probe's value tolerance (a value taken by continuity from a predicted crossing, issue
15's i15line case), and the search bisects it down to its resolution for nothing.  The attack runs as in
``benchmarks/deep.py`` with its probe counted: for each such gap first met (its "root", the bisections inside it
counted with it), the queries spent in it, and whether a kink was found inside.  Columns: the attack's queries per
hidden neuron, the roots, those where no kink was found ("empty") and the queries they cost (of all the attack's).
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

import modelrecon.attacks.piecewise as piecewise
import modelrecon.attacks.relu as relu
from modelrecon.oracle import local_oracle
from modelrecon.targets import load

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from deep import KINDS, NETWORKS  # noqa: E402

ROOTS: dict = {}  # (line id, a.t, b.t) of a gap's root -> [queries spent in it, line id, lo, hi]
PARENT: dict = {}  # (line id, a.t, b.t) -> its root's key


class CountingProbe(relu._GradientFirstProbe):
    """The attack's probe, counting the queries spent inside gaps of one gradient whose values disagree."""

    def _root(self, line, *gap):
        if len(gap) != 2:  # a piece read beside one neighbour (the doubling's ends): no gap
            return None
        a, b = gap
        key = (id(line), a.t, b.t)
        if key in PARENT:
            return PARENT[key]
        if super().same_gradient(a, b) and not super().same(a, b, line):
            ROOTS[key] = [0, id(line), a.t, b.t]
            PARENT[key] = key
            return key
        return None

    def _split(self, line, items, call, gap):
        """Run ``call`` on the items in value-only gaps and on the others apart, the former's queries counted."""
        tagged = [(i, self._root(line, *gap(item))) for i, item in enumerate(items)]
        out = [None] * len(items)
        for rooted in (True, False):
            idx = [i for i, r in tagged if (r is not None) == rooted]
            if not idx:
                continue
            before = self.oracle.ledger.total()
            got = call([items[i] for i in idx])
            spent = self.oracle.ledger.total() - before
            for n, i in enumerate(idx):
                out[i] = got[n]
            if rooted:  # split evenly between the roots of this batch (each asks the same per gap)
                for i in idx:
                    ROOTS[tagged[i][1]][0] += spent / len(idx)
        return out, dict(tagged)

    def read_between(self, line, ts, neighbours):
        items = list(zip(ts, neighbours))
        out, roots = self._split(line, items, lambda its: super(CountingProbe, self).read_between(
            line, [t for t, _ in its], [n for _, n in its]), lambda it: it[1])
        for i, mid in enumerate(out):
            if roots[i] is not None:
                a, b = items[i][1]
                PARENT[(id(line), a.t, mid.t)] = PARENT[(id(line), mid.t, b.t)] = roots[i]
        return out

    def confirm(self, line, checks):
        out, roots = self._split(line, checks, lambda cs: super(CountingProbe, self).confirm(line, cs),
                                 lambda c: (c[0], c[1]))
        for i, ((a, b, *_), (single, got)) in enumerate(zip(checks, out)):
            if roots[i] is not None and not single:
                inside = [a] + sorted(got, key=lambda p: p.t) + [b]
                for p, q in zip(inside[:-1], inside[1:]):
                    PARENT[(id(line), p.t, q.t)] = roots[i]
        return out


def counted_critical_points(probe, line, lo, hi, **kw):
    kinks, pieces = ORIGINAL(probe, line, lo, hi, **kw)
    for root in ROOTS.values():
        if root[1] == id(line) and len(root) == 4:
            root.append(any(root[2] < k.t < root[3] for k in kinks))
    return kinks, pieces


ORIGINAL = piecewise.critical_points


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default="10-10-10-1", help="comma-separated network names (benchmarks/deep.py's)")
    ap.add_argument("--attack-seeds", default="0", help="comma-separated seeds of the attack's own lines")
    args = ap.parse_args()
    torch.set_num_threads(1)
    table = {n: spec for n, spec, _ in NETWORKS}
    unknown = set(args.only.split(",")) - set(table)
    if unknown:
        sys.exit(f"unknown networks {sorted(unknown)}; known: {', '.join(table)}")
    relu._GradientFirstProbe = CountingProbe
    relu.critical_points = piecewise.critical_points = counted_critical_points
    print("| network | attack seed | status | queries / neuron (total) | value-only gaps | of them empty | "
          "queries in empty ones | cpu s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.only.split(","):
        target = load(table[name])
        hidden = sum(W.shape[0] for W, _ in target.truth["layers"][:-1])
        for seed in (int(s) for s in args.attack_seeds.split(",")):
            ROOTS.clear()
            PARENT.clear()
            cpu = time.process_time()
            result = relu.ReluAttack(mode="value+gradient", seed=seed).run(local_oracle(target, KINDS))
            cpu = time.process_time() - cpu
            total = result.queries["total"]
            empty = [r for r in ROOTS.values() if len(r) == 5 and not r[4]]
            print(f"| {name} | {seed} | {result.status} | {total / hidden:.1f} ({total}) | {len(ROOTS)} | "
                  f"{len(empty)} | {sum(r[0] for r in empty):.0f} ({100 * sum(r[0] for r in empty) / total:.1f}%) | "
                  f"{cpu:.1f} |", flush=True)


if __name__ == "__main__":
    main()
