"""Do explanation defences stop exact extraction?  (issue 17; docs/defences.md quotes these tables)

    python benchmarks/defences.py tradeoff   [--target 'builtin:relu2?d=12&h=3' --budget 40000]
    python benchmarks/defences.py smoothgrad [--sizes 64x16,784x128]

The studies are sweeps (:mod:`modelrecon.studies.defences`): exact extraction through each explanation,
``modelrecon sweep configs/defences-exact.toml``; rounding and noise against naive and adaptive attackers
per budget, ``modelrecon sweep configs/defences-precision.toml`` then ``modelrecon results
out/sweeps/defences-precision.sqlite --figures docs/figures``.

``smoothgrad``: what SmoothGrad answers determine: the relu2 attack over their far field
(:func:`modelrecon.attacks.through.far_field_oracle` with kind SmoothGrad) against the truth: every
unit's jump v_i w_i (relative error) and normal (angle), and the queries it took.

``tradeoff``: the audit (every option of the ladder simulated) of a served two-layer ReLU network that
offers values, integrated gradients, |saliency| and the signed gradient: per option, what each exact
attack still reaches and the cost to honest users; then the audit's advice.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

from modelrecon import report  # noqa: E402
from modelrecon.attacks.relu2 import Relu2Attack  # noqa: E402
from modelrecon.oracle import local_oracle  # noqa: E402
from modelrecon.targets import load  # noqa: E402


def tradeoff(args) -> None:
    import tempfile

    from modelrecon.serve.app import ApiKey, ServerThread, Service, create_app
    from modelrecon.serve.audit import LADDER, audit

    target = load(args.target)
    service = Service(target, explanations=["gradient", "integrated-gradients", "saliency"],
                      keys=[ApiKey("auditor", "auditor-secret")])
    with ServerThread(create_app(service)) as server, tempfile.TemporaryDirectory() as out:
        rep = audit(server.url, "auditor-secret", args.budget, out, probes=50, defences=LADDER,
                    attacks=["relu2", "relu2-ig", "relu2-saliency"])
    names = [n for n, a in rep["attacks"].items() if a.get("applies")]

    def verdict(r):
        if r is None:
            return "-"
        if r.get("exact_copy"):
            return f"exact ({r['queries']} q)"
        return f"{r['status']}" + (f", {r['agreement']:.0%} agr." if r.get("agreement") is not None else "")

    rows = [("(none: as served)", *[verdict(rep["attacks"][n]) for n in names], "-", "-", "-")]
    for d in rep["defences"]:
        c = d["honest_cost"]
        fmt = lambda key, f: "-" if c.get(key) is None else format(c[key], f)  # noqa: E731
        rows.append((d["option"], *[verdict(d["attacks"].get(n)) for n in names],
                     fmt("explanation_relative_error", ".2g"), fmt("explanation_rank_correlation", ".3f"),
                     fmt("explanation_top10_overlap", ".0%")))
    report.console.print(report.comparison_table(
        f"audit of {args.target} served with values, gradient, IG, |saliency| (budget {args.budget})",
        ["option", *names, "expl. rel. error", "rank corr.", "top-10% overlap"], rows))
    for n, a in rep["advice"].items():
        report.console.print(f"advice: {n} reaches {a['succeeds']} in {a['queries']} queries; cheapest option that "
                             f"stops it: {a['cheapest_stop']} ({a['honest_cost']})")


def smoothgrad(args) -> None:
    import numpy as np

    from modelrecon.attacks.through import SMOOTHGRAD, far_field_oracle

    rows = []
    for size in args.sizes:
        d, h = (int(v) for v in size.split("x"))
        target = load(f"builtin:relu2?d={d}&h={h}&seed=0")
        oracle = local_oracle(target, [SMOOTHGRAD])
        result = Relu2Attack(mode="value+gradient").run(far_field_oracle(oracle, kind=SMOOTHGRAD))
        W, V = target.truth["W"], target.truth["V"][0]
        N, g = result.params["W"], result.params["V"][0]
        cos = (W / np.linalg.norm(W, axis=1, keepdims=True)) @ (N / np.linalg.norm(N, axis=1, keepdims=True)).T
        j = cos.argmax(axis=1)
        jumps = V[:, None] * W
        err = np.linalg.norm(g[j][:, None] * N[j] - jumps) / np.linalg.norm(jumps)
        unit = lambda A: A / np.linalg.norm(A, axis=1, keepdims=True)  # noqa: E731
        sine = np.linalg.norm(unit(N[j]) - unit(W), axis=1).max()  # ~ the angle, without 1 - cos^2 cancelling
        rows.append((f"relu2 d={d} h={h}", result.status, f"{len(N)} of {h}", oracle.ledger.total(),
                     f"{err:.2g}", f"{sine:.2g}"))
    report.console.print(report.comparison_table(
        "SmoothGrad far field (offsets and c are not in it)",
        ["target", "status", "units", "SmoothGrad queries", "jumps v_i w_i rel. error", "max |n_hat - w_hat| (angle)"],
        rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    g = sub.add_parser("smoothgrad")
    g.add_argument("--sizes", type=lambda s: s.split(","), default=["64x16", "784x128"])
    t = sub.add_parser("tradeoff")
    t.add_argument("--target", default="builtin:relu2?d=12&h=3")
    t.add_argument("--budget", type=int, default=40000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    {"tradeoff": tradeoff, "smoothgrad": smoothgrad}[args.what](args)


if __name__ == "__main__":
    main()
