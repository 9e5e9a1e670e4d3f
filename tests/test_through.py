"""Exact attacks through defended explanations: integrated gradients and absolute saliency (issue 17)."""

from __future__ import annotations

import numpy as np
import pytest

from modelrecon.attacks.linear import LinearAttack
from modelrecon.attacks.relu2 import Relu2Attack
from modelrecon.attacks.through import IGRelu2Attack, far_field_oracle, signed_gradient_oracle, through_saliency
from modelrecon.evaluate import evaluate
from modelrecon.oracle import OracleError, local_oracle
from modelrecon.targets import load

EXACT = 1e-9
IG = "explanation:integrated-gradients"
SAL = "explanation:saliency"


def run(attack, target, kinds, **options):
    oracle = local_oracle(target, kinds, **options)
    result = attack.run(oracle)
    evaluate(result, target)
    return result, oracle


@pytest.mark.parametrize("kinds", [[IG], [IG, "value"]])
def test_ig_relu2_exact(kinds):
    t = load("builtin:relu2?d=32&h=8&seed=1")
    r, o = run(IGRelu2Attack(), t, kinds)
    assert r.status == "complete", r.message
    assert r.metrics["parameter_relative_error"] <= EXACT
    assert r.metrics["hidden_units_recovered"] == 8
    assert r.details["bias_identified"] == ("value" in kinds)
    # every query was asked of the real oracle, in its own kinds
    assert set(r.queries["by_kind"]) == set(kinds) and r.queries == o.ledger.to_dict()


@pytest.mark.parametrize("options", [{"ig_steps": 8, "ig_baseline": 0.5, "ig_method": "riemann_middle"},
                                     {"round_decimals": 2}])
def test_ig_relu2_published_quadrature_and_rounding(options):
    """Another published quadrature and baseline; IG rounded to 2 decimals: the units are still exact."""
    t = load("builtin:relu2?d=24&h=6&seed=2")
    r, _ = run(IGRelu2Attack(), t, [IG], **options)
    assert r.status == "complete", r.message
    assert r.metrics["parameter_relative_error"] <= EXACT


def test_ig_quadrature_with_a_node_at_the_baseline_is_refused():
    t = load("builtin:relu2?d=8&h=2")
    with pytest.raises(OracleError, match="node at the baseline"):
        far_field_oracle(local_oracle(t, [IG], ig_method="riemann_left"))


def test_ig_relu2_on_a_deeper_network_fails():
    t = load("builtin:mlp?d=12&widths=6,6&seed=0")
    r, _ = run(IGRelu2Attack(verify=8, max_pieces=400), t, [IG, "value"])
    assert r.status == "failed", r.message


def test_ig_noise_is_not_read_as_exact():
    t = load("builtin:relu2?d=16&h=4&seed=0")
    r, _ = run(IGRelu2Attack(max_pieces=400), t, [IG, "value"], explanation_noise=0.01)
    assert r.status != "complete"


def test_ig_budget_gives_partial():
    t = load("builtin:relu2?d=16&h=4&seed=0")
    r, o = run(IGRelu2Attack(), t, [IG], budget=30)
    assert r.status == "partial"
    assert o.ledger.total() <= 30


def test_abs_saliency_relu2_exact_and_charged():
    t = load("builtin:relu2?d=32&h=8&seed=1")
    r, o = run(through_saliency(Relu2Attack(mode="value+gradient")), t, [SAL, "value"])
    assert r.status == "complete", r.message
    assert r.metrics["parameter_relative_error"] <= EXACT
    assert set(r.queries["by_kind"]) == {SAL, "value"} and r.queries == o.ledger.to_dict()
    # the adapter's gradients cost one saliency each (and values for the signs), after two asked at one
    # input to check that the answers are not random
    assert r.queries["by_kind"][SAL] == r.details["adapter_queries"]["by_kind"]["gradient"] + 2


def test_abs_saliency_linear_exact():
    t = load("builtin:linear?d=100&seed=3")
    r, _ = run(through_saliency(LinearAttack(method="gradient")), t, [SAL, "value"])
    assert r.status == "complete" and r.metrics["parameter_relative_error"] <= EXACT
    # 2 saliency answers at one input (not random?), then 1 saliency, 1 value and 2 values per block of 24
    assert r.queries["total"] == 2 + 2 + 2 * int(np.ceil(100 / 24))


def test_signed_gradient_oracle_matches_the_gradient_near_a_kink():
    """A point just off a kink: the clean side's slope gives the signs of the point's own piece."""
    t = load("builtin:relu2?d=12&h=3&seed=4")
    W, b = t.truth["W"], t.truth["b"]
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    x -= (W[0] @ x + b[0]) / (W[0] @ W[0]) * W[0]  # on unit 0's hyperplane
    x += 1e-9 * W[0]  # just on its active side
    signed = signed_gradient_oracle(local_oracle(t, [SAL, "value"])).gradient(x)
    truth = local_oracle(t, ["gradient"]).gradient(x)
    np.testing.assert_allclose(signed, truth, rtol=0, atol=1e-15)


def test_signing_needs_values():
    t = load("builtin:relu2?d=8&h=2")
    with pytest.raises(OracleError, match="saliency and value"):
        signed_gradient_oracle(local_oracle(t, [SAL]))


def test_unsignable_saliency_is_a_failed_result():
    """Rounded values: the line search asks gradients within a rounding's reach of two kinks; the attack
    ends failed with the reason (it used to escape as an error the audit read as 'not applicable')."""
    t = load("builtin:relu2?d=12&h=3&seed=0")
    r, _ = run(through_saliency(Relu2Attack(mode="value+gradient")), t, [SAL, "value"], round_decimals=4)
    assert r.status == "failed" and "cannot sign" in r.message


def test_ig_with_labels_beside_gives_c_too():
    """Label-only predictions beside exact explanations: c by bisection to the decision threshold."""
    t = load("builtin:relu2?d=32&h=8&seed=1")
    r, _ = run(IGRelu2Attack(), t, [IG, "label"])
    assert r.status == "complete" and r.details["bias_identified"] and r.metrics.get("c_identified") is None
    assert r.metrics["parameter_relative_error"] <= EXACT and r.queries["by_kind"]["label"] <= 80


def test_cli_attack_through(tmp_path):
    import json

    from typer.testing import CliRunner

    from modelrecon.cli import app

    out = tmp_path / "r.json"
    r = CliRunner().invoke(app, ["attack", "relu2", "-t", "builtin:relu2?d=16&h=4", "--through", "integrated-gradients",
                                 "--json", str(out)])
    assert r.exit_code == 0, r.output
    got = json.loads(out.read_text())
    assert got["status"] == "complete" and got["metrics"]["parameter_relative_error"] <= EXACT
    assert set(got["queries"]["by_kind"]) == {IG, "value"}
    r = CliRunner().invoke(app, ["attack", "linear", "-t", "builtin:linear?d=20", "--through", "saliency"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["attack", "relu2", "--through", "smoothgrad"])
    assert r.exit_code != 0 and "--through takes" in str(r.exception or r.output)  # main() prints it on one line


def test_cli_through_saliency_follows_any_output(tmp_path):
    """--through saliency --output 2 built relu2 with output 2 over the adapter, which offers that one output alone:
    'output 2 out of range: the target has 1 outputs' on a 3-output target."""
    import json

    from typer.testing import CliRunner

    from modelrecon.cli import app

    out = tmp_path / "r.json"
    r = CliRunner().invoke(app, ["attack", "relu2", "-t", "builtin:relu2?d=12&h=4&k=3", "--through", "saliency",
                                 "--output", "2", "--json", str(out)])
    assert r.exit_code == 0, r.output
    got = json.loads(out.read_text())
    assert got["status"] == "complete" and got["metrics"]["parameter_relative_error"] <= EXACT
