"""How early the service's extraction-pattern detector flags our attacks, and how often it
flags ordinary users.

Attacks run over HTTP against loopback services (each on its own API key); the table gives
the query count at the first warning, the attack's total, and the signals raised.  Ordinary
traffic is fed to a detector with the service's settings: 30 users per profile, 10 requests
of 1-16 digits test images each ("test digits"), the same with small Gaussian noise
("noisy copies"), and a user stepping the brightness of one image ("brightness sweep",
inputs c*x on a line through the origin: a pattern the line rule cannot tell from an attack).

    OMP_NUM_THREADS=1 python benchmarks/serve_detect.py
"""

from __future__ import annotations

import httpx
import numpy as np

from modelrecon import report
from modelrecon.data import digits
from modelrecon.serve.app import ApiKey, ServerThread, Service, create_app
from modelrecon.serve.client import http_oracle
from modelrecon.serve.detect import Detector
from modelrecon.targets import load


def attack_runs() -> list[tuple[str, str, list[str], object]]:
    """(label, target spec, explanations offered, attack factory) for the attacks in this build."""
    from modelrecon.attacks.linear import LinearAttack

    from modelrecon.attacks.relu2 import Relu2Attack
    from modelrecon.attacks.span import SpanRecovery
    from modelrecon.attacks.surrogate import SurrogateAttack

    pool = digits().X_pool
    runs = [("linear (1 gradient)", "builtin:logistic?d=64", ["gradient"], lambda: LinearAttack(method="gradient")),
            ("linear (d+1 values, Tramer)", "builtin:logistic?d=64", ["gradient"],
             lambda: LinearAttack(method="equations")),
            ("relu2 (gradients, Milli)", "builtin:relu2?d=64&h=16", ["gradient"], lambda: Relu2Attack(mode="gradient")),
            ("relu2 (values + gradients)", "builtin:relu2?d=64&h=16", ["gradient"],
             lambda: Relu2Attack(mode="value+gradient")),
            ("span (gradient source)", "builtin:digits-mlp", ["gradient"], lambda: SpanRecovery(output=0)),
            ("surrogate (128 pool points + gradients)", "builtin:digits-mlp", ["gradient"],
             lambda: SurrogateAttack(budget=128, strategy="pool", pool=pool)),
            ("surrogate (128 uniform points + gradients)", "builtin:digits-mlp", ["gradient"],
             lambda: SurrogateAttack(budget=128, strategy="uniform"))]
    return runs


def honest_users(profile: str, X: np.ndarray, users: int = 30, requests: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    for u in range(users):
        base = X[rng.choice(len(X))]
        batches = []
        for _ in range(requests):
            n = int(rng.integers(1, 17))
            if profile == "test digits":
                batches.append(X[rng.choice(len(X), n)])
            elif profile == "noisy copies":
                x = X[rng.choice(len(X), n)]
                batches.append(np.clip(x + rng.normal(0, 0.05, x.shape), 0, 1))
            else:  # brightness sweep of one image, then ordinary images
                if not batches:
                    batches.append(np.linspace(0.5, 1.0, 8)[:, None] * base[None])
                else:
                    batches.append(X[rng.choice(len(X), n)])
        yield f"{profile}-{u}", batches


def main() -> None:
    ds = digits()
    rows = []
    keys = [ApiKey("root", "root-secret-123", admin=True)]
    for i, (label, spec, expl, make) in enumerate(attack_runs()):
        target = load(spec)
        service = Service(target, explanations=expl, keys=keys + [ApiKey("attacker", "attacker-secret-1")])
        with ServerThread(create_app(service)) as server:
            oracle = http_oracle(server.url, "attacker-secret-1")
            result = make().run(oracle)
            admin = httpx.get(server.url + "/admin", headers={"X-API-Key": "root-secret-123"}).json()
        k = admin["keys"]["attacker"]
        rows.append((label, spec.removeprefix("builtin:"), result.status, k["queries"],
                     k["first_warning_at_query"] if k["first_warning_at_query"] is not None else "never",
                     ", ".join(f"{w['signal']}@{w['at_query']}" for w in k["warnings"]) or "-"))
    report.console.print(report.comparison_table(
        "detector vs our attacks (over HTTP)", ["attack", "target", "status", "queries", "first warning at query",
                                                "warnings"], rows))

    X = ds.X_test
    hrows = []
    for profile in ("test digits", "noisy copies", "brightness sweep"):
        det = Detector(64, (0.0, 1.0))
        flagged, signals, inputs = 0, {}, 0
        users = list(honest_users(profile, X))
        for key, batches in users:
            seen = set()
            spent = 0
            for b in batches:
                for f in det.observe(key, b, spent):
                    seen.add(f.signal)
                spent += len(b)
                inputs += len(b)
            flagged += bool(seen)
            for s in seen:
                signals[s] = signals.get(s, 0) + 1
        hrows.append((profile, len(users), inputs, f"{flagged}/{len(users)}", flagged / len(users),
                      ", ".join(f"{s}: {n}" for s, n in signals.items()) or "-"))
    report.console.print(report.comparison_table(
        "false alarms on ordinary digits traffic (detector with the service's defaults, box [0, 1])",
        ["profile", "users", "inputs", "users flagged", "false-alarm rate", "signals"], hrows))


if __name__ == "__main__":
    main()
