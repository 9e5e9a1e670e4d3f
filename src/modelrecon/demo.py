"""``modelrecon demo``: every attack on a built-in target, one table of what leaked."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from modelrecon import report


@dataclass
class Step:
    title: str
    target: str
    make_attack: Callable[[], Any]
    oracle: dict[str, Any] = field(default_factory=dict)
    headline: str = "parameter_relative_error"


def _surrogate(interface: str, budget: int):
    from modelrecon import data
    from modelrecon.attacks.surrogate import SurrogateAttack

    return lambda: SurrogateAttack(budget=budget, interface=interface, pool=data.digits().X_pool, steps=300)


def _obfuscation():
    from modelrecon.attacks.obfuscate import Obfuscation
    from modelrecon.data import digits

    ds = digits()
    return Obfuscation(None, ds.X_test[:100], noise=5.0,
                       recover={"setting": "relu-value", "output": 0, "points": "region", "centres": ds.X_pool})


def steps() -> list[Step]:
    from modelrecon.attacks.linear import LinearAttack
    from modelrecon.attacks.relu2 import Relu2Attack
    from modelrecon.attacks.span import SpanRecovery

    return [
        Step("linear: gradient + value", "builtin:logistic?d=784", LinearAttack, {"kinds": ["gradient", "value"]}),
        Step("linear: probabilities only (Tramer)", "builtin:logistic?d=784",
             lambda: LinearAttack(method="equations"), {"kinds": ["probabilities"]}),
        Step("linear: input x gradient", "builtin:linear?d=10000",
             lambda: LinearAttack(explanation="input-x-gradient"), {"kinds": ["explanation:input-x-gradient", "value"]}),
        Step("span: ReLU values (Jayaram et al.)", "builtin:mlp?d=100&widths=10,40&k=1&act=relu",
             lambda: SpanRecovery(setting="relu-value"), {"kinds": ["value"]}, "max_principal_angle_rad"),
        Step("span: tanh, 0/1 labels", "builtin:mlp?d=30&widths=5,10&k=1&act=tanh",
             lambda: SpanRecovery(setting="threshold"), {"kinds": ["label"]}, "max_principal_angle_rad"),
        Step("surrogate: 50 gradient + probability queries", "builtin:digits-mlp", _surrogate("gradient", 50),
             headline="agreement"),
        Step("surrogate: 50 probability queries (baseline)", "builtin:digits-mlp", _surrogate("probabilities", 50),
             headline="agreement"),
        Step("relu2: value + gradient (exact two-layer net)", "builtin:relu2?d=784&h=128",
             lambda: Relu2Attack(mode="value+gradient"), {"kinds": ["value", "gradient"]}),
        Step("obfuscate: span from values, noise 5x", "builtin:digits-mlp", _obfuscation, {"kinds": ["value"]},
             "label_preserved_rate"),
    ]


def run_demo(out: Path) -> None:
    from modelrecon.evaluate import evaluate
    from modelrecon.oracle import local_oracle
    from modelrecon.targets import load

    rows = []
    plan = steps()
    with report.progress() as bar:
        task = bar.add_task("demo", total=len(plan))
        for i, step in enumerate(plan):
            bar.update(task, description=step.title[:60])
            target = load(step.target)
            result = step.make_attack().run(local_oracle(target, **step.oracle))
            evaluate(result, target)
            result.save_json(out / f"{i:02d}-{result.attack}.json")
            rows.append((step.title, step.target.removeprefix("builtin:"), result.status, result.queries.get("total", 0),
                         step.headline, result.metrics.get(step.headline, float("nan")), result.wall_time_s))
            bar.advance(task)
    report.console.print(report.comparison_table(
        "modelrecon demo: what each interface gives away",
        ["attack", "target", "status", "queries", "metric", "value", "time (s)"], rows))
    report.console.print(f"result JSON files in {out}/")
