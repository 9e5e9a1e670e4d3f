"""Benchmark: exact extraction of deep ReLU networks from gradients (modelrecon attack relu),
beside the published value-only figures.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/deep.py --quick          # small networks, 10^4 inputs
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/deep.py                  # the issue's table, 10^6 inputs
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/deep.py --only 10-10-10-1 --attack-seeds 0,1,2,3,4 --inputs 100000

The figure (queries per hidden neuron, docs/figures/deep.png) is the sweep configs/deep-relu.toml and its
recipe: ``modelrecon sweep configs/deep-relu.toml && modelrecon results out/sweeps/deep-relu.sqlite
--figures docs/figures``.

For each network and mode: status, distinct points and queries per hidden neuron (attack phase;
verification apart), Carlini et al.'s bits of precision of the aligned weights, the worst output
error over random inputs (absolute, and in bits: 2^-x), the attack's wall and CPU time (evaluation apart; the CPU time
does not grow with the machine's load), and the published value-only
query count where one exists (Carlini, Jagielski, Mironov 2020; "recalled" figures are from the
anchors note and still to be checked against the paper).  A run longer than --timeout seconds is
stopped and reported as such.

``--attack-seeds 0,1,2`` repeats each row per seed of the attack's own random lines (``ReluAttack(seed=...)``; the
target stays the same), with a seed column and, per network and mode, a summary line: runs complete, median and
max queries per neuron over the seeds.

Trained classifiers (a second table; ``--only`` takes their names too): MLPs trained on scikit-learn digits and on
MNIST (``modelrecon data fetch mnist``; the rows say so and skip when it is not fetched), input box [0, 1].  Each
twice: lines leaving the box (the oracle answers anywhere: the result is exact on R^d) and the box enforced by the
oracle (every query inside it).  Worst output error over standard normal inputs (R^d) and uniform in the box, the max
error on the test digits, wall and CPU time of the attack.
"""

from __future__ import annotations

import argparse
import math
import signal
import statistics
import sys
import time

import torch

from modelrecon.attacks.relu import ReluAttack
from modelrecon.evaluate import evaluate
from modelrecon.evaluate.relu import worst_output_error
from modelrecon.oracle import local_oracle
from modelrecon.targets import load

# name, spec, published value-only queries (log2) and its source
NETWORKS = [
    ("10-10-10-1", "builtin:deep?d=10&widths=10,10,1&seed=0", "2^16 (recalled)"),
    ("10-20-20-1", "builtin:deep?d=10&widths=20,20,1&seed=0", "2^17.1 (recalled)"),
    ("10-20-20-1 s1", "builtin:deep?d=10&widths=20,20,1&seed=1", ""),
    ("10-20-20-1 s2", "builtin:deep?d=10&widths=20,20,1&seed=2", ""),
    ("8-16-8-1", "builtin:deep?d=8&widths=16,8,1&seed=0", ""),
    ("8-16-8-1 s1", "builtin:deep?d=8&widths=16,8,1&seed=1", ""),
    ("8-16-8-1 s2", "builtin:deep?d=8&widths=16,8,1&seed=2", ""),
    ("40-20-10-10-1", "builtin:deep?d=40&widths=20,10,10,1&seed=0", "2^17.8 (recalled)"),
    ("24-10-8-6-2", "builtin:deep?d=24&widths=10,8,6,2&init=random&seed=0", ""),
    ("24-10-8-6-2 s1", "builtin:deep?d=24&widths=10,8,6,2&init=random&seed=1", ""),
    ("40-20-10-10-1 s1", "builtin:deep?d=40&widths=20,10,10,1&seed=1", ""),
    ("40-20-10-10-1 s2", "builtin:deep?d=40&widths=20,10,10,1&seed=2", ""),
    ("40-20-10-10-1 s3", "builtin:deep?d=40&widths=20,10,10,1&seed=3", ""),
    ("24-10-8-6-2 s2", "builtin:deep?d=24&widths=10,8,6,2&init=random&seed=2", ""),
    ("24-10-8-6-2 s3", "builtin:deep?d=24&widths=10,8,6,2&init=random&seed=3", ""),
    ("30-16-16-16-4", "builtin:deep?d=30&widths=16,16,16,4&init=random&seed=0", ""),
    ("20-10-8-8-1", "builtin:deep?d=20&widths=10,8,8,1&init=random&seed=0", ""),
    ("784-32-1", "builtin:deep?d=784&widths=32,1&seed=0", "2^19.2 (recalled)"),
    ("784-128-1", "builtin:deep?d=784&widths=128,1&seed=0", "2^21.5 (paper, ~100k params)"),
    ("784-16x2-1", "builtin:deep?d=784&widths=16,16,1&init=random&seed=0", ""),
    ("784-64x2-1", "builtin:deep?d=784&widths=64,64,1&init=random&seed=0", ""),
    ("784-64x2-1 s4", "builtin:deep?d=784&widths=64,64,1&init=random&seed=4", ""),
    ("784-256x2-1", "builtin:deep?d=784&widths=256,256,1&init=random&seed=0", ""),
    ("784-256-256-10", "builtin:deep?d=784&widths=256,256,10&init=random&seed=0", ""),
    ("100-64x3-10", "builtin:deep?d=100&widths=64,64,64,10&init=random&seed=0", ""),
    ("3072-64x3-10", "builtin:deep?d=3072&widths=64,64,64,10&init=random&seed=0", ""),
    ("3072-256x3-10", "builtin:deep?d=3072&widths=256,256,256,10&init=random&seed=0", ""),
]
QUICK = ["10-10-10-1", "784-32-1", "784-16x2-1", "digits 64-32x2-10"]
# trained classifiers: name, spec, dataset of the test inputs
TRAINED = [
    ("digits 64-32x2-10", "builtin:digits-mlp?widths=32,32", "digits"),
    ("mnist 784-128-64-10", "builtin:mnist-mlp", "mnist"),
    ("mnist 784-256x2-10", "builtin:mnist-mlp?widths=256,256", "mnist"),
]
BOXES = ("leaves", "enforced")
KINDS = ["value", "gradient"]


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run(name: str, spec: str, mode: str, inputs: int, timeout: int, seed: int = 0) -> dict:
    target = load(spec)
    hidden = sum(W.shape[0] for W, _ in target.truth["layers"][:-1])
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    start = time.perf_counter()
    try:
        cpu = time.process_time()
        result = ReluAttack(mode=mode, seed=seed).run(local_oracle(target, KINDS))
        cpu = time.process_time() - cpu
        evaluate(result, target)
        if result.model is not None:
            result.metrics.update(worst_output_error(target, result.model, inputs))
    except _Timeout:
        return {"net": name, "mode": mode, "seed": seed, "status": f"timeout > {timeout} s", "hidden": hidden}
    finally:
        signal.alarm(0)
    m = result.metrics
    return {"net": name, "mode": mode, "seed": seed, "status": result.status, "hidden": hidden,
            "points": result.queries.get("points", 0), "queries": result.queries["total"],
            "bits": m.get("precision_bits"), "worst": m.get("worst_output_error"),
            "worst_rel": m.get("worst_output_error_relative"), "time": result.wall_time_s, "cpu": cpu,
            "eval_time": time.perf_counter() - start - result.wall_time_s,
            "message": result.message}


def run_trained(name: str, spec: str, dataset: str, box: str, inputs: int, timeout: int) -> dict:
    """One trained classifier, lines leaving its box or the box enforced by the oracle."""
    from modelrecon.data import DatasetMissing, load as load_data

    try:
        target = load(spec)
        X = load_data(dataset).flat().X_test
    except DatasetMissing as e:
        return {"net": name, "box": box, "status": f"skipped: {e}".splitlines()[0][:160]}
    hidden = sum(W.shape[0] for W, _ in target.truth["layers"][:-1])
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(timeout)
    cpu = time.process_time()
    try:
        result = ReluAttack(mode="value+gradient").run(local_oracle(target, KINDS, enforce_box=box == "enforced"))
    except _Timeout:
        return {"net": name, "box": box, "status": f"timeout > {timeout} s", "hidden": hidden}
    finally:
        signal.alarm(0)
    cpu = time.process_time() - cpu
    m = evaluate(result, target, X, n_inputs=inputs)  # in the box, and on R^d (rd_)
    return {"net": name, "box": box, "status": result.status, "hidden": hidden,
            "points": result.queries.get("points", 0), "queries": result.queries["total"],
            "bits": m.get("precision_bits"), "rd": m.get("rd_worst_output_error_relative"),
            "inbox": m.get("worst_output_error_relative"), "digits": m.get("data_fidelity_max_abs_error"),
            "agreement": m.get("data_fidelity_agreement"), "time": result.wall_time_s, "cpu": cpu,
            "message": result.message}


def fmt_trained(row: dict) -> str:
    if "points" not in row:
        return f"| {row['net']} | {row['box']} | {row['status']} | | | | | | | |"
    h = row["hidden"]
    e = lambda v: "—" if v is None else f"{v:.1e}"  # noqa: E731
    bits = "—" if row["bits"] is None else f"{row['bits']:.1f}"
    return (f"| {row['net']} | {row['box']} | {row['status']} | {row['points'] / h:.1f} | {row['queries'] / h:.1f} "
            f"({row['queries']:,}) | {bits} | {e(row['rd'])} | {e(row['inbox'])} | {e(row['digits'])} | "
            f"{row['time']:.0f} / {row['cpu']:.0f} |")


def fmt(row: dict, published: str, seeded: bool = False) -> str:
    seed = f" {row['seed']} |" if seeded else ""
    if "points" not in row:
        return f"| {row['net']} | {row['mode']} |{seed} {row['status']} | | | | | | | {published} |"
    h = row["hidden"]
    worst = row["worst"]
    worst_s = "—" if worst is None else (f"{worst:.1e} (2^{math.log2(worst):.0f})" if worst > 0 else "0")
    bits = "—" if row["bits"] is None else f"{row['bits']:.1f}"
    return (f"| {row['net']} | {row['mode']} |{seed} {row['status']} | {row['points'] / h:.1f} | {row['queries'] / h:.1f} "
            f"(2^{math.log2(max(row['queries'], 1)):.1f}) | {bits} | {worst_s} | {row['time']:.1f} | {row['cpu']:.1f} | "
            f"{published} |")


def summary(rows: list[dict]) -> str:
    """One network and mode over the attack's seeds: runs complete, median and max queries per neuron."""
    qn = [r["queries"] / r["hidden"] for r in rows if "queries" in r]
    complete = sum(r["status"] == "complete" for r in rows)
    spread = f"queries / neuron median {statistics.median(qn):.1f}, max {max(qn):.1f}" if qn else "no run finished"
    return f"- {rows[0]['net']} {rows[0]['mode']}: {complete} of {len(rows)} attack seeds complete; {spread}"


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        sys.exit(f"--attack-seeds takes comma-separated integers, not {text!r}")
    if not seeds or min(seeds) < 0:
        sys.exit("--attack-seeds takes non-negative integers")
    return seeds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the small networks only, 10^4 random inputs")
    ap.add_argument("--only", default="", help="comma-separated network names")
    ap.add_argument("--modes", default="value+gradient", help="comma-separated: value+gradient, gradient")
    ap.add_argument("--inputs", type=int, default=None, help="random inputs for the worst output error")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per run")
    ap.add_argument("--attack-seeds", default=None,
                    help="comma-separated seeds of the attack's own lines: each row per seed, and a summary line")
    ap.add_argument("--boxes", default=",".join(BOXES), help="trained classifiers: comma-separated, leaves, enforced")
    args = ap.parse_args()
    torch.set_num_threads(1)
    names = args.only.split(",") if args.only else (QUICK if args.quick else [n for n, _, _ in NETWORKS + TRAINED])
    inputs = args.inputs or (10_000 if args.quick else 1_000_000)
    unknown = set(names) - {n for n, _, _ in NETWORKS + TRAINED}
    if unknown:
        sys.exit(f"unknown networks {sorted(unknown)}; known: {', '.join(n for n, _, _ in NETWORKS + TRAINED)}")
    seeded = args.attack_seeds is not None
    seeds = _seeds(args.attack_seeds) if seeded else [0]
    trained = [t for t in TRAINED if t[0] in names]
    names = [n for n in names if n not in {t[0] for t in TRAINED}]
    print(f"worst output error over {inputs} standard normal inputs; queries and points in the attack phase")
    print(f"| network | mode |{' attack seed |' if seeded else ''} status | points / neuron | queries / neuron (total) "
          "| precision bits | worst output error | time s | cpu s | value-only (Carlini et al.) |")
    print("|---|---|---|---|---|---|---|---|---|---|" + ("---|" if seeded else ""))
    rows, summaries = [], []
    table = {n: (spec, published) for n, spec, published in NETWORKS}
    for name in names:
        spec, published = table[name]
        for mode in args.modes.split(","):
            runs = []
            for seed in seeds:
                runs.append(run(name, spec, mode, inputs, args.timeout, seed))
                print(fmt(runs[-1], published, seeded), flush=True)
            rows += runs
            summaries.append(summary(runs))
    if seeded:
        print("\n" + "\n".join(summaries))
    if trained:
        print(f"\ntrained classifiers, value+gradient: worst output error (relative to the output scale) over {inputs} "
              "standard normal inputs (R^d) and uniform in the box [0, 1]; max abs error on the test digits")
        print("| network | box | status | points / neuron | queries / neuron (total) | precision bits | "
              "worst error R^d | worst error box | max error test digits | wall / CPU s |")
        print("|---|---|---|---|---|---|---|---|---|---|")
    for name, spec, dataset in trained:
        for box in args.boxes.split(","):
            row = run_trained(name, spec, dataset, box, inputs, args.timeout)
            rows.append({**row, "mode": f"box {box}"})
            print(fmt_trained(row), flush=True)
    for row in rows:
        if row["status"] != "complete" and "message" in row:
            seed = f" seed {row['seed']}" if seeded and "seed" in row else ""
            print(f"- {row['net']} {row['mode']}{seed}: {row['message'][:300]}")


if __name__ == "__main__":
    main()
