"""Benchmark: an inner neuron on at every input (docs/deep.md, "An inner neuron on at every input").

24-10-8-6-2 seed 0 (``builtin:deep?d=24&widths=10,8,6,2&init=random&seed=0``) with the bias of one layer-2 neuron
raised ``times`` the shift that makes it on at every one of 10^5 standard normal inputs
(``tests/factories.py: deep_with_unit_always_on``); the table of ``benchmarks/deep.py`` for each.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/deep_always_on.py --inputs 100000
"""
import argparse
import pathlib
import sys

import torch

sys.path[:0] = [str(pathlib.Path(__file__).parent), str(pathlib.Path(__file__).parent.parent / "tests")]
from deep import fmt, run  # noqa: E402

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", default="0,3,5", help="layer-2 neurons, comma-separated")
    ap.add_argument("--times", default="5,50", help="multiples of the always-on shift, comma-separated")
    ap.add_argument("--modes", default="value+gradient", help="comma-separated: value+gradient, gradient")
    ap.add_argument("--inputs", type=int, default=100_000, help="random inputs for the worst output error")
    ap.add_argument("--timeout", type=int, default=600)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"worst output error over {args.inputs} standard normal inputs; queries and points in the attack phase")
    print("| network | mode | status | points / neuron | queries / neuron (total) | precision bits | worst output error "
          "| time s | cpu s | value-only (Carlini et al.) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for unit in args.units.split(","):
        for times in args.times.split(","):
            spec = f"factories:deep_with_unit_always_on?unit={unit}&times={times}"
            for mode in args.modes.split(","):
                row = run(f"24-10-8-6-2 unit {unit} x{times}", spec, mode, args.inputs, args.timeout)
                print(fmt(row, "", False), flush=True)
