"""Input obfuscation on the digits networks: tables and pictures for docs/obfuscate.md.

For each study (ReLU digits MLP with the span recovered from value queries; tanh digits
MLP with the span recovered from a thresholded, label-only oracle) it prints:

* the span: recovered dimension vs true, largest principal angle, first-layer leak
  ||A (I - B^T B)|| / ||A||, queries spent;
* label preserved / max logit change / cosine / ratio at noise-to-signal 5 and 10 for the
  recovered span, the true span and a random subspace of the same dimension (control);
* what keeping inputs in [0, 1] costs: plain clipping vs the exact box projection;
* the reverse direction: noise-looking inputs of each class;

and writes docs/img/obfuscate-*.png (picture grids, label-preserved curves).
``--span-relu FILE`` / ``--span-tanh FILE`` use a saved basis instead of recovering one.

Run: OMP_NUM_THREADS=1 python benchmarks/obfuscate.py [--quick]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from modelrecon import report
from modelrecon.studies import obfuscate_plots
from modelrecon.attacks.obfuscate import Obfuscation, load_basis, obfuscate, random_basis
from modelrecon.data import digits
from modelrecon.evaluate import evaluate
from modelrecon.evaluate.obfuscate import compare, curve, first_layer_leak, true_span
from modelrecon.studies.obfuscate import picture_rows
from modelrecon.oracle import local_oracle
from modelrecon.targets import load

IMG = Path(__file__).resolve().parent.parent / "docs" / "img"
RATIOS = [0, 0.5, 1, 2, 3, 5, 7, 10, 20]


def recover(target, setting: str, output: int, points: str, centres: np.ndarray, seed: int):
    """The span from the span-recovery attack (attack side: it sees only the oracle), its
    query points in the box or where the obfuscated inputs will live (ratio 5)."""
    from modelrecon.attacks.obfuscate import recover_span

    kinds = ["value"] if setting == "relu-value" else ["label"]
    r = recover_span(local_oracle(target, kinds), setting, output, points, centres=centres, ratio=5.0, seed=seed)
    return r.params["basis"], r


def span_table(title, target, spans):
    from scipy.linalg import subspace_angles

    Bt = true_span(target)
    rows = []
    for source, (B, r) in spans.items():
        rows.append((source, B.shape[0], Bt.shape[0], float(np.max(subspace_angles(B.T, Bt.T))) if len(B) else None,
                     first_layer_leak(target, B), r.queries.get("total", 0) if r is not None else 0,
                     r.wall_time_s if r is not None else 0.0, r.status if r is not None else "given"))
    report.console.print(report.comparison_table(
        title, ["span source", "dim", "true dim", "max angle (rad)", "first-layer leak", "queries", "time (s)", "status"],
        rows))


def hide_table(title, target, X, bases, ratios=(5, 10), seed=0):
    rows = []
    for name, B in bases.items():
        for ratio in ratios:
            Xp, _ = obfuscate(X, B, ratio, seed)
            m = compare(target, X, Xp)
            rows.append((name, B.shape[0], ratio, m["label_preserved_rate"], m["max_abs_logit_difference"],
                         m["cosine_to_original"], m["cosine_to_original_max"], m["noise_to_signal"]))
    report.console.print(report.comparison_table(
        title, ["span", "dim", "ratio", "label preserved", "max |logit change|", "cosine (mean)", "cosine (max)",
                "noise/signal"], rows))
    return rows


def clip_table(title, target, X, bases, ratio=5.0, seed=0):
    rows = []
    for name, B in bases.items():
        for clip in ("none", "clip", "project"):
            t0 = time.perf_counter()
            Xp, info = obfuscate(X, B, ratio, seed, clip, target.input_box)
            dt = time.perf_counter() - t0
            m = compare(target, X, Xp)
            inside = bool(Xp.min() >= target.input_box[0] and Xp.max() <= target.input_box[1])
            rows.append((name, clip, inside, m["label_preserved_rate"], m["max_abs_logit_difference"],
                         m["noise_to_signal"], m["cosine_to_original"], dt))
    report.console.print(report.comparison_table(
        title, ["span", "box handling", "in [0,1]", "label preserved", "max |logit change|", "noise/signal (achieved)",
                "cosine (mean)", "time (s)"], rows))
    return rows


def class_table(title, target, B, pool, ratio=5.0, count=100, seed=0):
    from modelrecon.evaluate.obfuscate import class_rate
    from modelrecon.attacks.obfuscate import noise_as_class

    rows, results = [], {}
    Br = random_basis(B.shape[0], B.shape[1], seed=seed + 7919)
    for c in range(target.n_outputs):
        oracle = local_oracle(target, ["probabilities"])
        res = Obfuscation(B, pool, noise=ratio, target_class=c, count=count, seed=seed).run(oracle)
        if res.status != "complete":
            rows.append((c, res.status, None, None, None, None))
            continue
        m = evaluate(res, target)
        rc = class_rate(target, noise_as_class(res.params["exemplar"], Br, ratio, count, seed), c)
        rows.append((c, m["target_class_rate"], m["mean_confidence_target_class"], m["cosine_to_original"],
                     rc["target_class_rate"], res.queries.get("total", 0)))
        results[c] = res
    report.console.print(report.comparison_table(
        title, ["class", "classified as class", "mean confidence", "cosine to exemplar", "random-subspace control",
                "queries (exemplar search)"], rows))
    return results


def study(name, spec, setting, output, span_file, quick, seed=0):
    target = load(spec)
    ds = digits()
    X = ds.X_test[:120] if quick else ds.X_test
    report.console.print(f"\n[bold]{name}[/]: {target.description}")
    if span_file:
        spans = {f"file {span_file}": (load_basis(span_file), None)}
    else:
        other = 1 if output == 0 else 0
        spans = {"recovered span (region points)": recover(target, setting, output, "region", ds.X_pool, seed),
                 f"recovered span (box points, output {output})": recover(target, setting, output, "box", ds.X_pool,
                                                                          seed),
                 f"recovered span (box points, output {other})": recover(target, setting, other, "box", ds.X_pool,
                                                                         seed)}
        for label, (_, r) in spans.items():
            report.console.print(f"{label}: {r.status}: {r.message}")
    span_table(f"{name}: the span (span attack {setting}: {'value' if setting == 'relu-value' else 'label'} queries; "
               f"region = query points where obfuscated inputs live, box = uniform in the input box)", target, spans)
    labels = list(spans)
    B = spans[labels[0]][0]
    short = {k: k for k in labels}
    bases = {short[k]: v[0] for k, v in spans.items() if len(v[0])}
    bases["true span"] = true_span(target)
    bases["random subspace"] = random_basis(B.shape[0], B.shape[1], seed=seed + 7919)
    hide_table(f"{name}: hiding test inputs in complement noise (true network; {len(X)} test digits)", target, X, bases)
    clip_table(f"{name}: keeping inputs in [0, 1] at ratio 5", target, X[:60] if quick else X,
               {short[labels[0]]: B})
    rows = curve(target, X, bases, RATIOS, seed)
    obfuscate_plots.curve(rows, IMG / f"obfuscate-curve-{name}.png", chance=0.1,
                          title=f"{spec}: span attack {setting}, output {output}")
    # the picture grid: attack-side labels and confidences from the oracle
    oracle = local_oracle(target, ["probabilities", "value"])
    res = Obfuscation(B, X[:10], noise=5.0, seed=seed, span_source=labels[0]).run(oracle)
    obfuscate_plots.grid(picture_rows(res, target), IMG / f"obfuscate-grid-{name}.png", image_shape=(8, 8),
                         title=f"{spec}: noise 5x the image norm in the complement of the recovered span")
    classes = class_table(f"{name}: noise-looking inputs classified as a chosen class (ratio 5, 100 each)", target, B,
                          ds.X_pool, count=20 if quick else 100)
    if 3 in classes:
        obfuscate_plots.grid(picture_rows(classes[3], target), IMG / f"obfuscate-class-{name}.png",
                             image_shape=(8, 8), title=f"{spec}: noise-looking inputs built to be read as 3")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer inputs (a smoke run)")
    ap.add_argument("--span-relu", help="basis file for the ReLU study instead of recovering it")
    ap.add_argument("--span-tanh", help="basis file for the tanh study instead of recovering it")
    ap.add_argument("--output", type=int, default=0, help="the scalar output the span attack follows")
    ap.add_argument("--skip-tanh", action="store_true")
    args = ap.parse_args()
    report.console.width = max(report.console.width, 150)
    study("relu", "builtin:digits-mlp", "relu-value", args.output, args.span_relu, args.quick)
    if not args.skip_tanh:
        study("tanh", "builtin:digits-mlp?act=tanh", "threshold", args.output, args.span_tanh, args.quick)
    report.console.print(f"\npictures in {IMG}/")


if __name__ == "__main__":
    main()
