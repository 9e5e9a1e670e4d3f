"""Deep ReLU networks from values alone (``DeepValueAttack``) on the value-only attacks' own benchmark
networks, beside the published figures.

    OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/deep_value.py [--only 10-10-10-1,...] [--inputs N]
        [--round-decimals N] [--answers value|probabilities] [--json rows.json] [--attack-seed N]

Columns: status; value queries of the attack (the verification's fresh values apart), per hidden neuron,
and their log2;
worst absolute output error over N random N(0, I) inputs (10^6 by default; with ``--answers probabilities``, of
log p_k - log p_0, what softmax outputs determine: the -2 networks have two logits) and in bits; precision bits of
the weights after alignment (Carlini et al.'s metric, from modelrecon.evaluate.relu); wall time; the
published value-only query count.  The published counts are the anchors' (docs/deep.md says which are
read in the paper and which are recalled); the peer's own code is run by benchmarks/_carlini_peer.py.
The figure (queries per neuron against depth and width, docs/img/deep-value-queries.png) is the sweep
configs/deep-value.toml and its recipe: ``modelrecon sweep configs/deep-value.toml --workers 1 &&
modelrecon results out/sweeps/deep-value.sqlite --figures docs/img``.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

from modelrecon.attacks.relu_value import DeepValueAttack
from modelrecon.evaluate.relu import align_layers, logits, true_layers, worst_output_error
from modelrecon.oracle import local_oracle
from modelrecon.targets.load import load

# name -> (target spec, published value-only queries as log2 (None: none published), source)
NETWORKS = {
    "10-10-10-1": ("builtin:deep?d=10&widths=10,10,1", 16.0, "Carlini et al. 2020, table 1 (recalled)"),
    "10-20-20-1": ("builtin:deep?d=10&widths=20,20,1", 17.1, "Carlini et al. 2020, table 1 (recalled)"),
    "40-20-10-10-1": ("builtin:deep?d=40&widths=20,10,10,1", 17.8, "Carlini et al. 2020, table 1 (recalled)"),
    "784-32-1": ("builtin:deep?d=784&widths=32,1", 19.2, "Carlini et al. 2020, table 1 (recalled)"),
    "784-128-1": ("builtin:deep?d=784&widths=128,1", 21.5, "Carlini et al. 2020 abstract: 2^21.5 for their MNIST net"),
    "784-16-16-1": ("builtin:deep?d=784&widths=16,16,1", None, "Foerster et al. 2024 (queries not in the anchors)"),
    "784-64-64-1": ("builtin:deep?d=784&widths=64,64,1", None, "Foerster et al. 2024 (queries not in the anchors)"),
    "10-10-10-2": ("builtin:deep?d=10&widths=10,10,2", None, "two logits: for softmax outputs (--answers probabilities)"),
    "784-32-2": ("builtin:deep?d=784&widths=32,2", None, "two logits: for softmax outputs (--answers probabilities)"),
}


def run(name: str, inputs: int, round_decimals: int | None = None, answers: str = "value", seed: int = 0) -> dict:
    spec, published, source = NETWORKS[name]
    target = load(spec)
    oracle = local_oracle(target, [answers], round_decimals=round_decimals)
    start, cpu = time.perf_counter(), time.process_time()
    result = DeepValueAttack(seed=seed).run(oracle)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    q = result.queries["total"]
    row = {"network": name, "status": result.status, "queries": q, "log2_queries": math.log2(q) if q else None,
           "wall_s": wall, "cpu_s": cpu, "published_log2": published, "source": source, "message": result.message,
           "verified_relative_error": result.details.get("verified_relative_error"),
           "answers_error": result.details.get("verification", {}).get("answers_error")}
    if result.model is not None:
        got = [(result.params[f"W{i}"], result.params[f"b{i}"]) for i in range(1, 1 + sum(k.startswith("W") for k in result.params))]
        truth, read = true_layers(target), (lambda y: y)
        if answers == "probabilities":  # what they determine: the logits less class 0's
            W, b = truth[-1]
            truth[-1] = (W[1:] - W[:1], b[1:] - b[:1]) if len(b) > 1 else (W, b)
            read = lambda y: logits(y, target.outputs)  # noqa: E731
        row.update(align_layers(truth, got))
        row.update(worst_output_error(target, result.model, inputs, read=read))
    return row


def _g(x) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.1e}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=",".join(NETWORKS), help="comma-separated network names")
    ap.add_argument("--inputs", type=int, default=10**6, help="random inputs for the worst output error")
    ap.add_argument("--round-decimals", type=int, default=None, help="the oracle rounds its values to N decimals")
    ap.add_argument("--answers", default="value", choices=["value", "probabilities"],
                    help="what the oracle answers: values, or softmax/sigmoid probabilities (read in log space)")
    ap.add_argument("--json", default=None, help="write the rows here")
    ap.add_argument("--attack-seed", type=int, default=0, help="the attack's own seed (its random lines)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print("| network | status | queries | per neuron | log2 | published log2 | fewer | worst output error | bits "
          "| weight bits | wall / CPU time | verified / answers' error bound (of the scale) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    rows = []
    for name in args.only.split(","):
        r = run(name, args.inputs, args.round_decimals, args.answers, args.attack_seed)
        rows.append({k: v for k, v in r.items() if isinstance(v, (int, float, str, type(None)))})
        fewer = f"{2 ** (r['published_log2'] - r['log2_queries']):.1f}x" if r["published_log2"] and r["status"] == "complete" else "-"
        err = r.get("worst_output_error")
        neurons = sum(int(w) for w in name.split("-")[1:-1])
        print(f"| {name} | {r['status']} | {r['queries']:,} | {r['queries'] / neurons:,.0f} | {r['log2_queries']:.1f} | "
              f"{r['published_log2'] if r['published_log2'] else '-'} | {fewer} | "
              f"{'%.1e' % err if err is not None and math.isfinite(err) else '-'} | "
              f"{'%.1f' % r['worst_output_error_bits'] if 'worst_output_error_bits' in r and r['status'] == 'complete' else '-'} | "
              f"{'%.1f' % r['precision_bits'] if 'precision_bits' in r and r['status'] == 'complete' else '-'} | "
              f"{r['wall_s']:.0f} s / {r['cpu_s']:.0f} s | {_g(r['verified_relative_error'])} / {_g(r['answers_error'])} |",
              flush=True)
        if r["status"] != "complete":
            print(f"|  | {r['message'][:300]} |||||||||||", flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
