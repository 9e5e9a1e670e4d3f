"""Models as users bring them (issue 12): scikit-learn models copied into torch and exported with
skl2onnx's default options, networks ending in sigmoid or softmax, a conv net, a factory with
arguments, a module with an unused layer.  Every attack either succeeds with verified figures
or ends failed / partial with a reason."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from modelrecon.attacks.linear import LinearAttack
from modelrecon.attacks.relu import ReluAttack
from modelrecon.attacks.relu2 import Relu2Attack
from modelrecon.attacks.span import SpanRecovery
from modelrecon.attacks.surrogate import SurrogateAttack
from modelrecon.evaluate import evaluate
from modelrecon.oracle import local_oracle
from modelrecon.targets import TargetSpecError, load

skl2onnx = pytest.importorskip("skl2onnx")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


@pytest.fixture(scope="module")
def sk_mlp(digits):
    from sklearn.neural_network import MLPClassifier

    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MLPClassifier(hidden_layer_sizes=(16,), max_iter=60, random_state=0).fit(X[:1200], y[:1200])


@pytest.fixture(scope="module")
def sk_logistic(digits):
    from sklearn.linear_model import LogisticRegression

    X, y = digits
    return LogisticRegression(max_iter=500).fit(X[:1200], (y[:1200] == 3).astype(int))


def export_onnx(model, X, path):
    onx = skl2onnx.to_onnx(model, X[:1].astype(np.float32))
    path.write_bytes(onx.SerializeToString())
    return path


def mlp_in_torch(clf) -> nn.Module:
    """The MLPClassifier's weights in a torch module (logits out)."""
    (W1, W2), (b1, b2) = clf.coefs_, clf.intercepts_
    net = nn.Sequential(nn.Linear(*W1.shape), nn.ReLU(), nn.Linear(*W2.shape)).double()
    with torch.no_grad():
        for layer, W, b in ((net[0], W1, b1), (net[2], W2, b2)):
            layer.weight.copy_(torch.as_tensor(W.T))
            layer.bias.copy_(torch.as_tensor(b))
    return net.eval()


# -- defect 5: a multi-output ONNX file -------------------------------------------------------
def test_skl2onnx_classifier_is_read_as_its_probabilities(sk_mlp, digits, tmp_path):
    """main took the first output (the int64 label) as a scalar regression value, without a word."""
    X, _ = digits
    t = load(str(export_onnx(sk_mlp, X, tmp_path / "mlp.onnx")))
    assert t.n_outputs == 10 and t.outputs == "probabilities" and t.task == "multiclass"
    assert "output_probability" in t.description
    np.testing.assert_allclose(t.forward_numpy(X[:20]), sk_mlp.predict_proba(X[:20]), atol=1e-6)
    # the truth follows the graph to the probabilities: two layers, ReLU, softmax
    assert t.truth["family"] == "mlp" and t.truth["activations"] == ["relu"]
    assert t.truth["output_activation"] == "softmax"
    np.testing.assert_allclose(t.truth["layers"][0][0], sk_mlp.coefs_[0].T, rtol=1e-6, atol=1e-7)
    # the label output on request, declared as labels: the oracle answers labels only
    t_label = load(f"{tmp_path / 'mlp.onnx'}?output=output_label")
    assert t_label.outputs == "label" and local_oracle(t_label).kinds == ("label",)
    with pytest.raises(TargetSpecError, match="has no output"):
        load(f"{tmp_path / 'mlp.onnx'}?output=nope")


def test_probabilities_of_a_declared_probability_model_are_not_softmaxed_again(sk_mlp, digits, tmp_path):
    X, _ = digits
    t = load(str(export_onnx(sk_mlp, X, tmp_path / "mlp.onnx")))
    p = local_oracle(t).probabilities(X[:5])
    np.testing.assert_allclose(p, sk_mlp.predict_proba(X[:5]), atol=1e-6)


# -- declared outputs: a logistic regression with its sigmoid ---------------------------------
def test_linear_attack_recovers_a_logistic_regression_behind_its_sigmoid(sk_logistic, tmp_path):
    model = nn.Sequential(nn.Linear(64, 1), nn.Sigmoid()).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.as_tensor(sk_logistic.coef_))
        model[0].bias.copy_(torch.as_tensor(sk_logistic.intercept_))
    path = tmp_path / "logreg.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    t = load(f"{path}?box=0,1")
    assert t.truth["output_activation"] == "sigmoid"
    assert any("look like sigmoid" in w for w in t.warnings)  # undeclared: the loader says what it sees
    r = LinearAttack().run(local_oracle(t))
    evaluate(r, t)
    assert r.status == "complete", r.message
    assert r.details["link"] == "sigmoid" and r.queries["total"] == 2
    assert r.metrics["parameter_relative_error"] < 1e-10
    w = np.append(sk_logistic.coef_[0], sk_logistic.intercept_)
    np.testing.assert_allclose(np.append(r.params["w"], r.params["b"]), w, rtol=1e-9)


def test_declared_outputs_fix_the_link_and_a_wrong_declaration_warns():
    t = load("factories:logistic_with_sigmoid?outputs=sigmoid")
    assert t.warnings == [] and t.task == "binary"
    r = LinearAttack(method="equations").run(local_oracle(t))
    evaluate(r, t)
    assert r.status == "complete" and r.details["link"] == "sigmoid"
    assert r.metrics["parameter_relative_error"] < 1e-8
    wrong = load("factories:tiny_relu?outputs=probabilities")
    assert wrong.warnings and "declared probabilities" in wrong.warnings[0]


def test_two_class_softmax_followed_on_one_output():
    """skl2onnx exports a binary classifier as [1 - p, p]: output 1 is the sigmoid of z1 - z0."""
    model = nn.Sequential(nn.Linear(5, 2), nn.Softmax(dim=1)).double()
    torch.manual_seed(1)
    from modelrecon.targets import Target
    from modelrecon.targets.graph import module_truth

    t = Target("two-class softmax", model.eval(), (5,), 2, "multiclass", truth=module_truth(model, (5,)),
               outputs="probabilities")
    r = LinearAttack(output=1).run(local_oracle(t))
    evaluate(r, t)
    assert r.status == "complete" and r.details["link"] == "sigmoid", r.message
    assert r.metrics["parameter_relative_error"] < 1e-10


# -- defect 7: factories with arguments, truth from the graph ---------------------------------
def test_factory_with_constructor_arguments():
    t = load("factories:mlp_needing_arguments?d=7&hidden=3")
    assert t.input_shape == (7,) and t.truth["layers"][0][0].shape == (3, 7)
    with pytest.raises(TargetSpecError, match="missing a required argument: 'hidden'.*\\?name=value"):
        load("factories:mlp_needing_arguments?d=7")
    with pytest.raises(TargetSpecError, match="unexpected keyword"):
        load("factories:tiny_relu?width=3")


def test_cli_factory_without_its_arguments_is_one_line(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    out = subprocess.run([sys.executable, "-c", "from modelrecon.cli import main; main()", "attack", "relu2",
                          "--target", "factories:mlp_needing_arguments?d=7"], capture_output=True, text=True,
                         cwd=str(tmp_path), env={"PYTHONPATH": str(Path(__file__).parent), "PATH": ""})
    assert out.returncode == 2 and "Traceback" not in out.stderr + out.stdout
    assert "hidden" in out.stdout


def test_unused_layer_is_not_the_truth():
    """main read the nn.Linear modules in registration order: the unused 50-unit layer was 'the first layer'."""
    t = load("factories:WithUnusedLayer")
    assert [W.shape for W, _ in t.truth["layers"]] == [(4, 6), (2, 4)]
    r = Relu2Attack().run(local_oracle(t))
    evaluate(r, t)
    assert r.status == "complete", r.message
    assert r.metrics["hidden_units_true"] == 4 and r.metrics["parameter_relative_error"] < 1e-9
    span = SpanRecovery(setting="relu-value", output=0).run(local_oracle(t, ["value"]))
    evaluate(span, t)
    assert span.metrics["true_dim"] == 4 and span.metrics["recovered_dim"] <= 4


def test_conv_net_truth_says_it_cannot():
    t = load("captum.testing.helpers.basic_models:BasicModel_ConvNet_One_Conv?shape=1x4x4")
    assert t.truth["family"] == "unknown" and "convolution" in t.truth["reason"]
    r = SpanRecovery(setting="relu-value", output=0).run(local_oracle(t, ["value"]))
    evaluate(r, t)
    assert "captured_energy" not in r.metrics and "convolution" in r.metrics["truth"]


# -- defect 8: smooth targets are told apart at once ------------------------------------------
@pytest.mark.parametrize("spec", ["factories:sigmoid_net?d=20&h=10", "factories:softmax_net"])
@pytest.mark.parametrize("mode", ["value+gradient", "value", "gradient"])
def test_relu2_on_a_smooth_network_fails_early(spec, mode):
    """main spent 40k to 330k queries before 'more than 20000 linear pieces'; the failed result (a model of no
    units) is evaluated too (on a k-output target the evaluator crashed: "cannot reshape array of size 0")."""
    target = load(spec)
    r = Relu2Attack(mode=mode).run(local_oracle(target))
    assert r.status == "failed" and "not piecewise linear" in r.message
    assert r.queries["total"] <= 8
    evaluate(r, target)
    assert r.metrics["hidden_units_recovered"] == 0


# -- defect 6: evaluation data declared ---------------------------------------------------------
def test_surrogate_agreement_says_on_what_inputs(sk_mlp, digits, tmp_path):
    """main printed agreement on N(0, 1) noise labelled 'random inputs in the input box'."""
    X, _ = digits
    pt = tmp_path / "mlp.pt"
    torch.jit.save(torch.jit.script(mlp_in_torch(sk_mlp)), str(pt))
    np.save(tmp_path / "pool.npy", X[:1200])
    np.save(tmp_path / "held.npy", X[1200:])
    bare = load(str(pt))
    r = SurrogateAttack(budget=40, interface="gradient", strategy="gaussian", steps=50).run(local_oracle(bare))
    evaluate(r, bare)
    assert "Gaussian" in r.metrics["agreement_data"] and "no input box" in r.metrics["agreement_data"]
    t = load(f"{pt}?box=0,1&data={tmp_path / 'pool.npy'}&eval={tmp_path / 'held.npy'}")
    from modelrecon.studies.queries import load_pool

    pool = load_pool(t)
    assert pool.shape == (1200, 64)
    r = SurrogateAttack(budget=40, interface="gradient", pool=pool, steps=50).run(local_oracle(t))
    evaluate(r, t)
    assert "held.npy" in r.metrics["inputs"]["data"] and "597 inputs" in r.metrics["inputs"]["data"]
    assert "input box [0, 1]" in r.metrics["inputs"]["random"]
    assert r.metrics["agreement_data"].startswith("the data inputs")


# -- defect 3: what the answers bound ----------------------------------------------------------
def test_relu2_value_gradient_complete_when_the_gradients_bound_a_missed_unit(digits):
    """main: all 64 units of a digits MLPClassifier (one nearly dead unit, |w| = 1e-3) recovered to 3e-11,
    reported 'failed' (units 'known only to 2.6e-07 relative'): the output fit's condition number bound.
    The followed output's gradients are checked to float64 precision: they bound a missed unit."""
    from sklearn.neural_network import MLPClassifier

    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MLPClassifier(hidden_layer_sizes=(64,), random_state=0, max_iter=100).fit(X, y)
    shrink = 1e-3 / np.linalg.norm(clf.coefs_[0][:, 0])  # unit 0 nearly dead: |w| = 1e-3
    clf.coefs_[0][:, 0] *= shrink
    clf.intercepts_[0][0] *= shrink
    from modelrecon.targets import Target
    from modelrecon.targets.graph import module_truth

    net = mlp_in_torch(clf)
    t = Target("digits MLPClassifier(64)", net, (64,), 10, "multiclass", truth=module_truth(net, (64,)))
    r = Relu2Attack(mode="value+gradient").run(local_oracle(t))
    evaluate(r, t)
    assert r.metrics["hidden_units_recovered"] == 64 and r.metrics["parameter_relative_error"] < 1e-8
    assert r.status == "complete", r.message
    assert r.details["verification"]["missed_unit_bound"] < 1e-3 * 1e-3  # far below the smallest unit


# -- the recovered model as a file ------------------------------------------------------------
def test_save_loads_again_and_compares(tmp_path):
    from typer.testing import CliRunner

    from modelrecon.cli import app
    from modelrecon.evaluate.compare import compare

    t = load("factories:WithUnusedLayer")
    r = Relu2Attack().run(local_oracle(t))
    pt, npz = r.save_model(tmp_path / "relu2", t.input_shape)
    assert set(np.load(npz).files) >= {"W", "b", "V", "c"}
    back = load(str(pt))
    assert back.input_shape == (6,) and back.truth["family"] == "mlp"
    X = np.random.default_rng(0).normal(size=(200, 6))
    out = compare(t, back, X, "200 Gaussian inputs")
    assert out["fidelity_relative_error"] < 1e-12 and out["agreement"] == 1.0
    assert out["parameter_relative_error"] < 1e-9 and out["hidden_units_recovered"] == 4
    # a logistic regression behind its sigmoid: saved with its sigmoid, compared as one linear layer
    lt = load("factories:logistic_with_sigmoid?outputs=sigmoid")
    lr = LinearAttack().run(local_oracle(lt))
    lpt, _ = lr.save_model(tmp_path / "logreg", lt.input_shape)
    assert compare(lt, load(str(lpt)), X[:, :1].repeat(8, 1), "x")["parameter_relative_error"] < 1e-10
    # a surrogate is saved too; the CLI compares on a data file
    s = SurrogateAttack(budget=30, interface="gradient", strategy="gaussian", steps=20).run(local_oracle(t))
    spt, _ = s.save_model(tmp_path / "clone", t.input_shape)
    np.save(tmp_path / "x.npy", X)
    res = CliRunner().invoke(app, ["compare", "factories:WithUnusedLayer", str(spt), "--data", str(tmp_path / "x.npy"),
                                   "--json", str(tmp_path / "c.json")])
    assert res.exit_code == 0, res.output
    import json

    got = json.loads((tmp_path / "c.json").read_text())
    assert "x.npy" in got["inputs"] and 0 <= got["agreement"] <= 1 and "not compared" in got["parameter_error"]


# -- attacks through defended explanations on a multi-output model -----------------------------
@pytest.mark.parametrize("through", ["saliency", "integrated-gradients"])
def test_one_output_followed_through_an_explanation_is_evaluated_on_that_output(sk_mlp, through):
    """relu2 through saliency / IG recovers the followed logit's network (one row of V); the evaluator compared it
    with all ten logits: a verified exact recovery read 'parameter error 0.73' and 'fidelity shape mismatch'."""
    from modelrecon.attacks.through import IGRelu2Attack, through_saliency
    from modelrecon.targets.base import Target, sequential_truth

    net = mlp_in_torch(sk_mlp)
    t = Target("sk-mlp", net, (64,), 10, "multiclass", truth=sequential_truth(net))
    if through == "saliency":
        attack, kinds = through_saliency(Relu2Attack(mode="value+gradient"), 2), ["explanation:saliency", "value"]
    else:
        attack, kinds = IGRelu2Attack(output=2), ["explanation:integrated-gradients", "value"]
    result = attack.run(local_oracle(t, kinds))
    evaluate(result, t)
    assert result.status == "complete"
    assert result.metrics["parameter_relative_error"] < 1e-9
    assert result.metrics["fidelity_relative_error"] < 1e-9


def test_linear_model_of_an_image_shaped_target_is_evaluated_and_saved(tmp_path):
    """The recovered linear model took flat inputs only: evaluating (or saving) it on a target that takes (1, 4, 4)
    inputs raised 'mat1 and mat2 shapes cannot be multiplied' (benchmarks/external.py, captum-conv x linear)."""
    from modelrecon.targets.base import Target

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 1)).double().eval()
    t = Target("image-shaped", net, (1, 4, 4), 1, "regression")
    result = LinearAttack(method="gradient").run(local_oracle(t, ["gradient", "value"]))
    evaluate(result, t)
    assert result.status == "complete" and result.metrics["fidelity_relative_error"] < 1e-12
    pt, _ = result.save_model(tmp_path / "lin", (1, 4, 4))
    assert load(str(pt)).forward_numpy(np.ones((2, 1, 4, 4))).shape == (2, 1)


# -- the deep attacks on models as users bring them ------------------------------------------
def test_deep_attack_on_one_input_ends_partial_not_in_an_oracle_error():
    """d = 1: the trace within a first-layer surface (a point) divided by a zero norm and asked NaN inputs."""
    r = ReluAttack(mode="value+gradient").run(local_oracle(load("factories:mlp_needing_arguments?d=1&hidden=4"),
                                                           ["value", "gradient"]))
    assert r.status == "partial" and "orientation" in r.message


def test_worst_output_error_of_a_target_answering_nan_is_infinite():
    """max(0.0, nan) is 0.0: a target answering NaN read as reproduced to 1074 bits."""
    from modelrecon.evaluate.relu import worst_output_error

    target = load("factories:nan_net")
    got = worst_output_error(target, target.model.net.double(), 1000)
    assert got["worst_output_error"] == float("inf") and got["worst_output_error_relative"] == float("inf")


def test_value_mode_on_softmax_probabilities_is_evaluated_on_logit_differences():
    """The model read from k = 3 probabilities outputs log p_k - log p_0 (2 outputs); the evaluator compared it with
    the 3 probabilities and crashed aligning the output layer."""
    from modelrecon.attacks.relu_value import DeepValueAttack

    target = load("factories:softmax_net?d=6&h=5&k=3&outputs=probabilities")
    r = DeepValueAttack().run(local_oracle(target, ["probabilities"]))
    evaluate(r, target)
    assert r.status == "complete" and r.metrics["hidden_units_matched"] == 5
    assert r.metrics["worst_output_error_relative"] < 1e-9 and r.metrics["parameter_relative_error"] < 1e-9


def test_gradient_of_a_label_returning_target_is_one_clear_error():
    """An argmax module: torch's 'element 0 of tensors does not require grad' came out as an internal error."""
    from modelrecon.oracle import OracleError

    o = local_oracle(load("factories:label_net"), ["gradient", "value"])
    with pytest.raises(OracleError, match="no gradient"):
        o.query(np.zeros((1, 6)), ("gradient",), 0)


def test_value_mode_on_a_target_answering_nan_fails_at_once():
    """NaN answers never made a collinear stencil: the line search ran past 120 s."""
    from modelrecon.attacks.relu_value import DeepValueAttack

    r = DeepValueAttack().run(local_oracle(load("factories:nan_net"), ["value"]))
    assert r.status == "failed" and "NaN" in r.message and r.queries["total"] < 100


def test_value_and_gradient_mode_on_a_target_answering_nan_fails_at_once():
    """The deep attack's probe took NaN values for pieces: 51,013 queries, then 'more than 50000 points on one line'."""
    r = ReluAttack(mode="value+gradient").run(local_oracle(load("factories:nan_net"), ["value", "gradient"]))
    assert r.status == "failed" and "NaN" in r.message and r.queries["total"] < 100


def test_value_line_search_on_a_smooth_target_stops_at_its_cap():
    """A saturated sigmoid passed the curvature probe, then every bend was split down to 1e-12 of the line: over
    600 000 values in 120 s and no end; a line now stops at max_values, and the attack ends failed."""
    from modelrecon.attacks.piecewise import NotPiecewiseLinear
    from modelrecon.attacks.value_probe import ValueProbe

    probe = ValueProbe(local_oracle(load("factories:tanh_net?d=4&h=3"), ["value"]))
    with pytest.raises(NotPiecewiseLinear, match="2000 values") as raised:
        probe.kinks(np.zeros(4), np.ones(4), -5.0, 5.0, max_values=2000)
    assert probe.asked <= 2100 and "rounded" not in str(raised.value)


def test_value_line_search_on_float32_relu_answers_says_they_are_rounded():
    """A float32 ReLU net passed the curvature probe, then its rounding split one line past 100 000 values: 'not a
    ReLU network'.  At the cap, second differences that do not shrink with the step name the rounding."""
    from modelrecon.attacks.piecewise import RoundedAnswers
    from modelrecon.attacks.value_probe import ValueProbe
    from modelrecon.targets.base import Target

    net = load("factories:mlp_needing_arguments?d=20&hidden=8").model.float()
    t = Target("float32", None, (20,), 1, "regression", backend="onnx",
               _forward=lambda x: net(torch.as_tensor(np.asarray(x), dtype=torch.float32)).detach().numpy())
    probe = ValueProbe(local_oracle(t, ["value"]))
    with pytest.raises(RoundedAnswers, match="answers are rounded"):
        probe.kinks(np.zeros(20), np.ones(20) / np.sqrt(20), -8.0, 8.0, max_values=2000)


def test_deep_attack_whose_budget_ends_in_verification_is_partial_with_its_model():
    """'report' was unbound when the verify phase ran out: an UnboundLocalError instead of the partial model."""
    from modelrecon.attacks.relu import ReluAttack

    spec = "factories:mlp_needing_arguments?d=20&hidden=8"
    full = ReluAttack(mode="value+gradient").run(local_oracle(load(spec), ["value", "gradient"]))
    budget = full.queries["all_phases_total"] - 20  # the attack phase fits, the verification does not
    r = ReluAttack(mode="value+gradient").run(local_oracle(load(spec), ["value", "gradient"], budget=budget))
    assert r.status == "partial" and "no budget left to verify" in r.message and r.model is not None
    assert "nan" not in r.message


def test_value_mode_whose_budget_ends_in_verification_keeps_its_model():
    """The verify phase's exhausted budget dropped the recovered layers: 'stopped', no model."""
    from modelrecon.attacks.relu_value import DeepValueAttack

    spec = "factories:mlp_needing_arguments?d=20&hidden=8"
    full = DeepValueAttack().run(local_oracle(load(spec), ["value"]))
    r = DeepValueAttack().run(local_oracle(load(spec), ["value"], budget=full.queries["all_phases_total"] - 20))
    assert r.status == "partial" and "no budget left to verify" in r.message and r.model is not None


def test_value_mode_on_a_float32_onnx_relu_net_says_its_answers_are_rounded(sk_mlp, digits, tmp_path):
    """A float32 ONNX ReLU classifier was refused as 'a smooth activation, not ReLU' (2.75e6 x the tolerance): its
    float32 rounding read as curvature.  The bends do not shrink with the step: the message says the answers are
    rounded, and never calls a ReLU network smooth."""
    from modelrecon.attacks.relu_value import DeepValueAttack

    X, _ = digits
    r = DeepValueAttack().run(local_oracle(load(str(export_onnx(sk_mlp, X, tmp_path / "mlp.onnx"))), ["probabilities"]))
    assert r.status == "failed" and "answers are rounded" in r.message and "--round-decimals" in r.message
    assert "not ReLU" not in r.message and 0 < r.details["answers_rounded_at"] < 1e-5
    assert r.queries["total"] <= 20


def test_value_mode_on_a_net_with_a_dead_unit_is_complete():
    """12-6-2 with a never-active unit: the plane refitted through the crossings replaced a precise derivative row
    (1e-13) by one 1.3e-5 off (a crossing of another neuron in the fit), the neuron was then found again, over the
    1e-5 duplicate tolerance, and its duplicate's sign test was flat on both sides: 'failed'."""
    from modelrecon.attacks.relu_value import DeepValueAttack

    target = load("factories:deep_with_dead_unit")
    for seed in (0, 3):
        r = DeepValueAttack(seed=seed).run(local_oracle(target, ["value"]))
        evaluate(r, target)
        assert r.status == "complete" and r.details["widths"] == [5]
        assert r.metrics["worst_output_error_relative"] < 1e-10


def test_value_mode_on_one_input_says_why_it_cannot():
    """d = 1: 'no first-layer neuron found on the searched lines' after 320 values; the parallel lines coincide."""
    from modelrecon.attacks.relu_value import DeepValueAttack

    r = DeepValueAttack().run(local_oracle(load("factories:mlp_needing_arguments?d=1&hidden=4"), ["value"]))
    assert r.status == "failed" and "one input (d = 1)" in r.message and r.queries["total"] == 0
