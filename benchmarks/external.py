"""Models as users bring them: every attack on external-style targets, one table.

Targets are built here the way users have them: scikit-learn models (digits) copied into torch and
saved as TorchScript, the same exported with skl2onnx's default options (sk-mlp2: two hidden layers, 64-32-32-10,
declared ``box=0,1&data=digits``), networks ending in sigmoid
or softmax, Captum's one-conv test network, a factory that needs constructor arguments, a module with
an unused layer, a residual net, a hand-written deep ReLU net, a dead neuron, leaky-ReLU and tanh nets, one input,
a model that answers NaN, one that answers integer labels.  The deep attacks are relu-gradient, relu-value+gradient
and relu-value (`--attacks relu-gradient,relu-value+gradient,relu-value`).  Each cell: status, attack queries, the error the attack verified (its residual over
its own tolerance, 'verify' column) and the error against the truth the evaluator measured
(parameter error when known, else output fidelity).  Runs on any checkout (issue 12's before/after):

    OMP_NUM_THREADS=1 nice python benchmarks/external.py            # this checkout
    PYTHONPATH=/path/to/main/src python benchmarks/external.py      # another one
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

# the hand-written models are the tests' own (tests/factories.py), at the sizes given in their specs
sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))


def build_files(folder: Path) -> dict[str, str]:
    """scikit-learn digits models as .pt (copied into torch) and .onnx (skl2onnx defaults)."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from skl2onnx import to_onnx

    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp = MLPClassifier(hidden_layer_sizes=(32,), random_state=0, max_iter=300).fit(X, y)
        lr = LogisticRegression(max_iter=500).fit(X, (y == 3).astype(int))
        deep = MLPClassifier(hidden_layer_sizes=(32, 32), random_state=0, max_iter=300).fit(X, y)
    net = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).double()
    net2 = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10)).double()
    logreg = nn.Sequential(nn.Linear(64, 1), nn.Sigmoid()).double()
    with torch.no_grad():
        for layer, W, b in ((net[0], mlp.coefs_[0], mlp.intercepts_[0]), (net[2], mlp.coefs_[1], mlp.intercepts_[1]),
                            (logreg[0], lr.coef_.T, lr.intercept_),
                            *zip(net2[::2], deep.coefs_, deep.intercepts_)):
            layer.weight.copy_(torch.as_tensor(W.T))
            layer.bias.copy_(torch.as_tensor(b))
    specs = {}
    for name, model in (("sk-mlp.pt", net), ("sk-logreg+sigmoid.pt", logreg), ("sk-mlp2.pt", net2)):
        torch.jit.save(torch.jit.script(model.eval()), str(folder / name))
        specs[name] = str(folder / name)
    for name, model in (("sk-mlp.onnx", mlp), ("sk-logreg.onnx", lr), ("sk-mlp2.onnx", deep)):
        (folder / name).write_bytes(to_onnx(model, X[:1].astype(np.float32)).SerializeToString())
        specs[name] = str(folder / name)
    for name in ("sk-mlp2.pt", "sk-mlp2.onnx"):  # two hidden layers, declared as users would: box and data
        specs[name] += "?box=0,1&data=digits"
    specs.update({
        "sigmoid-net": "factories:sigmoid_net?d=20&h=10",
        "softmax-net": "factories:softmax_net?d=20&h=10",
        "captum-conv": "captum.testing.helpers.basic_models:BasicModel_ConvNet_One_Conv?shape=1x4x4",
        "unused-layer": "factories:WithUnusedLayer?d=20&h=8",
        "factory-args": "factories:mlp_needing_arguments?d=20&hidden=8",
        "residual-relu": "factories:ResidualRelu",
        "deep-relu": "factories:HandWrittenDeepRelu",
        "dead-neuron": "factories:deep_with_dead_unit",
        "leaky-relu": "factories:leaky_relu_net",
        "tanh-net": "factories:tanh_net",
        "one-input": "factories:mlp_needing_arguments?d=1&hidden=4",
        "softmax-declared": "factories:softmax_net?d=20&h=10&outputs=probabilities",
        "nan-answers": "factories:nan_net",
        "label-answers": "factories:label_net",
    })
    return specs


class CellTimeout(Exception):
    pass


def _timeout(*_):
    raise CellTimeout


def run_cell(spec: str, attack: str, limit: int = 300) -> dict:
    from modelrecon.evaluate import evaluate
    from modelrecon.oracle import local_oracle
    from modelrecon.targets import load

    start = time.perf_counter()
    kinds = None
    signal.signal(signal.SIGALRM, _timeout)
    signal.alarm(limit)
    try:
        target = load(spec)
        if attack == "linear":
            from modelrecon.attacks.linear import LinearAttack
            a = LinearAttack()
        elif attack == "relu2":
            from modelrecon.attacks.relu2 import Relu2Attack
            a = Relu2Attack(mode="value+gradient" if target.differentiable else "value")
        elif attack in ("relu-gradient", "relu-value+gradient"):
            from modelrecon.attacks.relu import ReluAttack
            a = ReluAttack(mode=attack.removeprefix("relu-"))
            kinds = ["gradient", "value"]
        elif attack == "relu-value":
            from modelrecon.attacks.relu_value import DeepValueAttack
            a = DeepValueAttack()
            kinds = ["probabilities" if target.outputs == "probabilities" else "value"]
        elif attack == "relu2-ig":
            from modelrecon.attacks.through import IGRelu2Attack
            a = IGRelu2Attack()
            kinds = ["explanation:integrated-gradients", "value"]
        elif attack in ("relu2-saliency", "linear-saliency"):
            from modelrecon.attacks.linear import LinearAttack
            from modelrecon.attacks.relu2 import Relu2Attack
            from modelrecon.attacks.through import through_saliency
            a = through_saliency(Relu2Attack(mode="value+gradient") if attack == "relu2-saliency"
                                 else LinearAttack(method="gradient"))
            kinds = ["explanation:saliency", "value"]
        elif attack == "span":
            from modelrecon.attacks.span import SpanRecovery
            a = SpanRecovery(setting="relu-value", output=0 if target.n_outputs > 1 else None)
        else:
            from modelrecon.attacks.surrogate import SurrogateAttack
            a = SurrogateAttack(budget=200, interface="gradient" if target.differentiable else "value",
                                strategy="gaussian", steps=200)
        if attack == "span":
            kinds = ["value"]
        result = a.run(local_oracle(target, kinds))
        evaluate(result, target)
    except CellTimeout:
        return {"status": "timeout", "note": f"over {limit} s", "time": time.perf_counter() - start}
    except Exception as e:  # noqa: BLE001 - a row of the table, not a crash
        traceback.print_exc()
        return {"status": "error", "note": f"{type(e).__name__}: {str(e).splitlines()[0][:70] if str(e) else ''}",
                "time": time.perf_counter() - start}
    finally:
        signal.alarm(0)
    m, ver = result.metrics, result.details.get("verification", {})
    verified = ver.get("residual_over_tolerance")
    if verified is None and "tolerance" in ver:  # the deep attack: value and gradient errors relative to their scale
        verified = max(ver.get("value_error", 0.0), ver.get("gradient_error", 0.0)) / ver["tolerance"]
    if verified is None and "verified_relative_error" in result.details:  # the value-only deep attack
        verified = result.details["verified_relative_error"] / a.precision
    param = m.get("parameter_relative_error", m.get("max_principal_angle_rad"))
    true_err = m.get("agreement") if attack == "surrogate" else m.get("fidelity_relative_error")
    return {"status": result.status, "queries": result.queries.get("total", 0), "verified": verified,
            "param": param, "true": true_err, "note": result.message[:90], "time": time.perf_counter() - start}


def fmt(v) -> str:
    if v is None:
        return "-"
    return f"{v:.2g}" if isinstance(v, float) else str(v)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attacks", default="linear,relu2,span,surrogate")
    parser.add_argument("--targets", default=None, help="comma-separated names (default: all)")
    parser.add_argument("--limit", type=int, default=300, help="seconds per cell (then 'timeout')")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        specs = build_files(Path(tmp))
        names = args.targets.split(",") if args.targets else list(specs)
        print("| target | attack | status | queries | verified (resid/tol) | parameter error | fidelity error "
              "(surrogate: agreement) | time s | message |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name in names:
            for attack in args.attacks.split(","):
                c = run_cell(specs[name], attack, args.limit)
                print(f"| {name} | {attack} | {c['status']} | {fmt(c.get('queries'))} | {fmt(c.get('verified'))} | "
                      f"{fmt(c.get('param'))} | {fmt(c.get('true'))} | {c['time']:.1f} | {c['note'].replace('|', '/')} |", flush=True)


if __name__ == "__main__":
    main()
