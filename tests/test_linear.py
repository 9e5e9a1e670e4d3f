import pytest

from modelrecon.attacks.linear import LinearAttack
from modelrecon.evaluate import evaluate
from modelrecon.oracle import OracleError, local_oracle
from modelrecon.targets import load


def run(spec, attack=None, **oracle):
    target = load(spec)
    result = (attack or LinearAttack()).run(local_oracle(target, **oracle))
    evaluate(result, target)
    return result


@pytest.mark.parametrize("d", [1, 64, 784, 10_000])
@pytest.mark.parametrize("family", ["linear", "logistic"])
def test_exact_from_two_queries(family, d):
    r = run(f"builtin:{family}?d={d}&seed={d}")
    assert r.status == "complete", r.message
    assert r.queries["total"] == 2
    assert r.queries["by_kind"] == {"gradient": 1, "value": 1}
    assert r.metrics["parameter_relative_error"] < 1e-10
    assert r.metrics["agreement"] == 1.0


@pytest.mark.parametrize("d", [10, 784, 10_000])
def test_logistic_from_probability_and_its_gradient(d):
    r = run(f"builtin:logistic?d={d}", kinds=["gradient", "probabilities"], explain_space="probability")
    assert r.status == "complete", r.message
    assert r.queries["by_kind"] == {"gradient": 1, "probabilities": 1}
    assert r.metrics["parameter_relative_error"] < 1e-10


@pytest.mark.parametrize("method", ["input-x-gradient", "integrated-gradients", "deeplift", "smoothgrad",
                                    "guided-backprop", "saliency-signed"])
def test_exact_from_one_explanation(method):
    r = run("builtin:linear?d=300", LinearAttack(explanation=method), ig_baseline=0.3)
    assert r.status == "complete", r.message
    assert r.queries["total"] == 2
    assert r.metrics["parameter_relative_error"] < 1e-10


def test_absolute_saliency_does_not_determine_the_weights():
    with pytest.raises(OracleError, match="loses the signs"):
        run("builtin:linear?d=5", LinearAttack(explanation="saliency"))


@pytest.mark.parametrize("kind", ["value", "probabilities"])
def test_equation_solving_baseline_exact_with_d_plus_1(kind):
    d = 200
    r = run(f"builtin:logistic?d={d}", LinearAttack(method="equations"), kinds=[kind])
    assert r.status == "complete", r.message
    assert r.queries["total"] == d + 1
    assert r.metrics["parameter_relative_error"] < 1e-10


def test_bias_unidentifiable_without_predictions():
    r = run("builtin:linear?d=20", kinds=["gradient"])
    assert r.params["b"] is None
    assert "not identifiable" in r.message
    assert r.metrics["parameter_relative_error"] < 1e-12  # of w alone


@pytest.mark.parametrize("spec", ["builtin:relu2?d=30&h=8", "builtin:mlp?d=30&widths=10&act=tanh"])
def test_non_linear_target_fails_with_measured_residual(spec):
    r = run(spec)
    assert r.status == "failed"
    assert "not a linear model" in r.message
    assert r.details["verification"]["residual_over_tolerance"] > 1e3
    assert r.queries["verify"]["total"] == 2


def test_rounded_oracle_is_accounted_for_in_the_tolerance():
    r = run("builtin:linear?d=50", round_decimals=6)
    assert r.status == "complete", r.message
    assert 1e-9 < r.metrics["parameter_relative_error"] < 1e-4


def test_budget_exhausted_gives_partial_result():
    r = run("builtin:linear?d=100", LinearAttack(method="equations"), budget=50)
    assert r.status == "partial"
    assert r.queries["total"] == 50


def test_multiclass_target_without_output_is_refused():
    with pytest.raises(OracleError, match="pick the one"):
        run("builtin:relu2?k=3")


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="unknown method"):
        LinearAttack(method="magic")
