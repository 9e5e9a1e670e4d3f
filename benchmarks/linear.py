"""Linear / logistic recovery: queries, parameter error and wall time per interface.

    python benchmarks/linear.py [--dims 10,784,10000]

Explanation interfaces need 2 queries whatever d is; prediction-only equation solving
(Tramer et al. 2016) needs d + 1.  Verification queries (2 per run) are reported apart.
"""

from __future__ import annotations

import argparse
import time

from modelrecon import report
from modelrecon.attacks.linear import LinearAttack
from modelrecon.evaluate import evaluate
from modelrecon.oracle import local_oracle
from modelrecon.targets import load

INTERFACES = [
    ("gradient + value", "linear", {"kinds": ["gradient", "value"]}, {}),
    ("gradient + probability (prob. space)", "logistic",
     {"kinds": ["gradient", "probabilities"], "explain_space": "probability"}, {}),
    ("input x gradient + value", "linear", {"kinds": ["explanation:input-x-gradient", "value"]}, {}),
    ("integrated gradients + value", "linear", {"kinds": ["explanation:integrated-gradients", "value"]}, {}),
    ("values only (equations)", "linear", {"kinds": ["value"]}, {"method": "equations"}),
    ("probabilities only (equations)", "logistic", {"kinds": ["probabilities"]}, {"method": "equations"}),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dims", default="10,784,3072,10000")
    dims = [int(d) for d in ap.parse_args().dims.split(",")]
    rows = []
    for d in dims:
        for name, family, oracle, attack in INTERFACES:
            target = load(f"builtin:{family}?d={d}&seed={d}")
            start = time.perf_counter()
            result = LinearAttack(**attack).run(local_oracle(target, **oracle))
            wall = time.perf_counter() - start
            evaluate(result, target)
            rows.append((d, name, result.status, result.queries["total"], result.queries["verify"]["total"],
                         result.metrics["parameter_relative_error"], f"{wall:.3f}"))
    report.console.print(report.comparison_table(
        "linear / logistic recovery", ["d", "interface", "status", "queries", "+verify", "param. rel. error",
                                       "wall (s)"], rows))


if __name__ == "__main__":
    main()
