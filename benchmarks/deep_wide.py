"""Benchmark: deep ReLU networks with a second hidden layer wider than the first, and 100-64x3-10 with a layer-3
neuron on at every input (docs/deep.md, "Stop 25, merged").

The five wide networks (``builtin:deep?d=D&widths=...&seed=S``, one output) and
``factories:deep_with_unit_always_on?d=100&widths=(64,64,64,10)&layer=3&unit=2&times=5`` (``tests/factories.py``),
value+gradient; the table of ``benchmarks/deep.py`` for each.  A wide net's parameters may be one equivalent choice,
not the truth's (weights the function does not show; a neuron on at every input written with a bias of its own), so
its precision column can be low while its worst output error is exact: the output error is the check.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/deep_wide.py --inputs 100000
"""
import argparse
import pathlib
import sys

import torch

sys.path[:0] = [str(pathlib.Path(__file__).parent), str(pathlib.Path(__file__).parent.parent / "tests")]
from deep import fmt, run  # noqa: E402

WIDE = [(8, "6,12,6,1"), (10, "8,16,8,1"), (16, "8,10,8,1"), (24, "10,12,8,1"), (20, "10,11,10,1")]
ALWAYS_ON = "factories:deep_with_unit_always_on?d=100&widths=(64,64,64,10)&layer=3&unit=2&times=5"

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--net-seeds", default="0", help="the wide networks' seeds, comma-separated")
    ap.add_argument("--inputs", type=int, default=100_000, help="random inputs for the worst output error")
    ap.add_argument("--timeout", type=int, default=900)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"worst output error over {args.inputs} standard normal inputs; queries and points in the attack phase")
    print("| network | mode | status | points / neuron | queries / neuron (total) | precision bits | worst output error "
          "| time s | cpu s | value-only (Carlini et al.) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for seed in args.net_seeds.split(","):
        for d, widths in WIDE:
            name = f"{d}-{widths.replace(',', '-')} s{seed}"
            row = run(name, f"builtin:deep?d={d}&widths={widths}&seed={seed}", "value+gradient", args.inputs,
                      args.timeout)
            print(fmt(row, "", False), flush=True)
    row = run("100-64x3-10 layer-3 unit 2 x5", ALWAYS_ON, "value+gradient", args.inputs, args.timeout)
    print(fmt(row, "", False), flush=True)
