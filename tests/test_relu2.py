"""Exact reconstruction of two-layer ReLU networks: the three modes and the robustness cases of issue 3."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from modelrecon.attacks.relu2 import Relu2Attack
from modelrecon.evaluate import evaluate
from modelrecon.oracle import OracleError, local_oracle
from modelrecon.targets import Target, load
from modelrecon.targets.base import sequential_truth

KINDS = {"gradient": ["gradient", "value"], "value+gradient": ["value", "gradient"], "value": ["value"]}
EXACT = 1e-9


def net_target(W, b, V, c, name="custom") -> Target:
    W, b, V, c = (np.asarray(a, dtype=np.float64) for a in (W, b, V, c))
    V = V.reshape(len(c), len(b))
    model = nn.Sequential(nn.Linear(W.shape[1], W.shape[0]), nn.ReLU(), nn.Linear(W.shape[0], len(c))).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.as_tensor(W))
        model[0].bias.copy_(torch.as_tensor(b))
        model[2].weight.copy_(torch.as_tensor(V))
        model[2].bias.copy_(torch.as_tensor(c))
    k = len(c)
    return Target(name, model.eval(), (W.shape[1],), k, "regression" if k == 1 else "multiclass",
                  truth={"family": "relu2", "W": W, "b": b, "V": V, "c": c, **sequential_truth(model)})


def attack(target, mode, kinds=None, **kw):
    oracle = local_oracle(target, kinds or KINDS[mode], **{k: kw.pop(k) for k in list(kw) if k in ("round_decimals", "budget")})
    result = Relu2Attack(mode=mode, **kw).run(oracle)
    evaluate(result, target)
    return result


@pytest.mark.parametrize("mode", ["gradient", "value+gradient", "value"])
def test_random_network_exact(mode):
    t = load("builtin:relu2?d=12&h=6&seed=1")
    r = attack(t, mode)
    assert r.status == "complete", r.message
    assert r.metrics["hidden_units_recovered"] == 6
    assert r.metrics["parameter_relative_error"] <= EXACT
    assert r.metrics["fidelity_max_abs_error"] <= EXACT
    assert r.queries["verify"]["total"] > 0  # verification is counted apart


def test_gradient_only_without_values_reports_c_unidentifiable():
    r = attack(load("builtin:relu2?d=10&h=5&seed=2"), "gradient", kinds=["gradient"])
    assert r.status == "complete"
    assert r.details["bias_identified"] is False and "not identifiable" in r.message
    assert r.metrics["parameter_relative_error"] <= EXACT


@pytest.mark.parametrize("mode", ["gradient", "value+gradient", "value"])
def test_multiclass_exact(mode):
    t = load("builtin:relu2?d=10&h=6&k=3&seed=3")
    r = attack(t, mode, output=1)
    assert r.status == "complete", r.message
    assert r.metrics["parameter_relative_error"] <= EXACT


def test_value_gradient_query_count_small():
    t = load("builtin:relu2?d=50&h=40&seed=4")
    r = attack(t, "value+gradient")
    assert r.metrics["parameter_relative_error"] <= EXACT
    # two queries per piece plus two per kink plus the interval search, independent of d
    assert r.queries["total"] <= 8 * 40  # measured 231 (5.8 per unit; the interval search dominates at small h)


def test_kinks_far_out():
    t = load("builtin:relu2?d=8&h=6&bias_scale=50&seed=5")
    r = attack(t, "value+gradient")
    assert r.status == "complete", r.message
    assert r.metrics["parameter_relative_error"] <= EXACT


def test_near_coincident_kinks_and_nearly_parallel_units():
    rng = np.random.default_rng(6)
    d, h = 8, 6
    W = rng.normal(size=(h, d))
    W[1] = W[0] + 1e-6 * rng.normal(size=d)  # nearly parallel to unit 0
    b = rng.normal(size=h)
    b[1] = b[0] + 1e-7
    W[3] = W[2] * 1.0000001  # parallel direction, kink 1e-8 away on every line
    b[3] = b[2] + 1e-8
    V = rng.normal(size=(1, h))
    t = net_target(W, b, V, [0.3])
    r = attack(t, "value+gradient")
    assert r.status == "complete", r.message
    assert r.metrics["fidelity_max_abs_error"] <= EXACT


def test_dead_units_are_reported():
    rng = np.random.default_rng(7)
    W = rng.normal(size=(5, 6))
    V = rng.normal(size=(1, 5))
    W[4] = 0.0  # never switches: a constant relu(b_4), absorbed in c
    V[0, 3] = 0.0  # switches but is never seen
    t = net_target(W, rng.normal(size=5), V, [0.1])
    r = attack(t, "value+gradient")
    assert r.status == "complete", r.message
    assert r.metrics["hidden_units_dead"] == 2
    assert r.metrics["hidden_units_recovered"] == 3
    assert r.metrics["parameter_relative_error"] <= EXACT
    assert r.metrics["fidelity_max_abs_error"] <= EXACT


def test_more_hidden_units_than_inputs():
    t = load("builtin:relu2?d=3&h=9&seed=8")
    r = attack(t, "value+gradient")
    assert r.status == "complete", r.message
    assert r.metrics["hidden_units_recovered"] == 9
    assert r.metrics["fidelity_max_abs_error"] <= EXACT  # the function is exact either way
    if r.details["orientation"] == "resolved":
        assert r.metrics["parameter_relative_error"] <= EXACT
    else:
        assert "affine term" in r.message


@pytest.mark.parametrize("mode", ["value+gradient", "value"])
def test_tiny_output_weight(mode):
    rng = np.random.default_rng(9)
    W, b, V = rng.normal(size=(5, 7)), rng.normal(size=5), rng.normal(size=(1, 5))
    V[0, 2] = 1e-5
    r = attack(net_target(W, b, V, [0.0]), mode)
    assert r.status == "complete", r.message
    assert r.metrics["hidden_units_recovered"] == 5
    # the jump of a unit is known to eps |gradient| / |a_i|: 1e-5 costs five digits, still within 1e-9
    assert r.metrics["parameter_relative_error"] <= EXACT


def test_rounded_answers_reach_the_rounding_precision():
    t = load("builtin:relu2?d=8&h=5&seed=10")
    r = attack(t, "value+gradient", round_decimals=8)
    assert r.metrics["hidden_units_matched"] == r.metrics["hidden_units_recovered"] == 5
    assert r.metrics["fidelity_relative_error"] <= 1e-5
    # the verification allows for the rounding (a unit's jump is off by a rounding unit per coordinate)
    assert r.status == "complete", r.message
    assert "rounded to 8 decimals" in r.message


@pytest.mark.parametrize("seed", [0, 1])
def test_rounded_answers_add_no_spurious_unit(seed):
    # the kink checks compare gradients (activation patterns), not a value beside t*: there the two lines
    # that meet at t* differ by less than the rounding, and a value check used to accept gaps holding
    # several kinks (18 and 22 units for 16 on these seeds)
    t = load(f"builtin:relu2?d=64&h=16&seed={seed}")
    r = attack(t, "value+gradient", round_decimals=6)
    assert r.metrics["hidden_units_recovered"] == 16
    assert r.metrics["hidden_units_matched"] == 16
    assert r.metrics["parameter_relative_error"] <= 1e-3


def test_input_x_gradient_is_exact():
    t = load("builtin:relu2?d=8&h=5&seed=11")
    r = attack(t, "value+gradient", kinds=["value", "explanation:input-x-gradient"])
    assert r.status == "complete", r.message
    assert r.details["explanation_kind"] == "explanation:input-x-gradient"
    assert r.metrics["parameter_relative_error"] <= EXACT


@pytest.mark.parametrize("method", ["saliency", "integrated-gradients"])
def test_explanations_that_are_not_the_gradient_are_refused_and_value_mode_recovers(method):
    t = load("builtin:relu2?d=8&h=5&seed=12")
    oracle = local_oracle(t, ["value", f"explanation:{method}"])
    with pytest.raises(OracleError, match="mode 'value'"):
        Relu2Attack(mode="value+gradient").run(oracle)
    r = attack(t, "value", kinds=["value", f"explanation:{method}"])
    assert r.status == "complete" and r.metrics["parameter_relative_error"] <= EXACT


def test_budget_exhausted_gives_a_usable_partial_network():
    t = load("builtin:relu2?d=10&h=12&seed=13")
    r = attack(t, "value+gradient", budget=40)
    assert r.status == "partial"
    assert 0 < r.details["hidden_units_found"] < 12
    x = torch.zeros(2, 10, dtype=torch.float64)
    assert torch.isfinite(r.model(x)).all()


@pytest.mark.parametrize("spec", ["builtin:mlp?d=6&widths=5,5&seed=14", "builtin:mlp?d=6&widths=6&act=tanh&seed=15"])
def test_not_a_two_layer_relu_network_fails_with_residual(spec):
    r = attack(load(spec), "value+gradient", max_pieces=400, max_lines=2)
    assert r.status == "failed"
    if "tanh" in spec:  # a smooth target is told apart at once (issue 12): no line search on a curve
        assert "not piecewise linear" in r.message and r.queries["total"] <= 8
    else:
        assert "residual" in r.message or "off by" in r.message or "pieces" in r.message


def test_cli_done_criterion(tmp_path):
    import json

    from typer.testing import CliRunner

    from modelrecon.cli import app

    out = tmp_path / "out.json"
    res = CliRunner().invoke(app, ["attack", "relu2", "--target", "builtin:relu2?d=30&h=12", "--mode",
                                   "value+gradient", "--json", str(out)])
    assert res.exit_code == 0, res.output
    data = json.loads(out.read_text())
    assert data["status"] == "complete" and data["metrics"]["parameter_relative_error"] <= EXACT


def test_one_query_confirmation_option_is_cheaper_and_exact_here():
    # confirm='side': one gradient just beyond the intersection (optimistic; composites cancelled on a residual
    # line through a failing check point). Not the default: it can fail where its checks miss a composite.
    t = load("builtin:relu2?d=64&h=16&seed=0")
    pair = attack(t, "value+gradient")
    side = attack(t, "value+gradient", confirm="side")
    assert side.status == "complete", side.message
    assert side.metrics["parameter_relative_error"] <= EXACT
    assert side.queries["total"] < pair.queries["total"]  # measured 73 vs 95


def test_one_query_confirmation_cancels_a_composite_unit():
    # the one-query check is fooled on the first line here (a gap whose kinks all lie on one side);
    # the residual line through a failing check point finds the composite and its parts, and they merge
    t = load("builtin:relu2?d=100&h=64&k=3&seed=0")
    r = attack(t, "value+gradient", confirm="side")
    assert r.status == "complete", r.message
    assert len(r.details["lines"]) >= 2 and r.details["lines"][1]["merged"] > 0
    assert r.metrics["parameter_relative_error"] <= EXACT


def test_one_query_confirmation_falls_back_to_pair_inside_an_input_box():
    # inside a box there are no far check points to show a composite: 'side' uses the two-query check
    t = dataclasses.replace(load("builtin:relu2?d=20&h=8&seed=0"), input_box=(-1.0, 1.0))
    r = attack(t, "value+gradient", confirm="side")
    assert r.details["kink_check"] == "pair"
    assert r.status == "complete", r.message
    assert r.metrics["parameter_relative_error"] <= EXACT


def test_bad_confirm_is_refused():
    with pytest.raises(ValueError, match="confirm"):
        Relu2Attack(confirm="maybe")


# ---------------------------------------------------------------- value mode (values only)
@pytest.mark.parametrize("spec", ["builtin:relu2?d=16&h=24&seed=1", "builtin:relu2?d=32&h=48&seed=0"])
def test_value_mode_more_units_than_half_the_inputs(spec):
    # h > d/2: the cells around the line are small, so the stencils must stay inside them; d=32 h=48 seed 0
    # used to miss a unit and end 'failed' after 1300 queries per unit
    t = load(spec)
    h, d = t.truth["W"].shape
    r = attack(t, "value")
    assert r.status == "complete", r.message
    assert r.metrics["hidden_units_recovered"] == h
    assert r.details["orientation"] == "resolved"
    assert r.metrics["parameter_relative_error"] <= EXACT
    assert r.queries["total"] <= 3 * (h + 1) * (d + 1)


def test_value_mode_exact_where_it_used_to_stop_short():
    # d=128 h=96 seed 0 ended 'complete' at 3.4e-8: stencils far smaller than their cells allowed
    t = load("builtin:relu2?d=128&h=96&seed=0")
    r = attack(t, "value")
    assert r.status == "complete", r.message
    assert r.metrics["hidden_units_recovered"] == 96
    assert r.metrics["parameter_relative_error"] <= EXACT
    assert r.metrics["fidelity_max_abs_error"] <= EXACT


def test_value_mode_kinks_far_out():
    # slopes from value pairs lose precision far out unless the pair's step grows with |t|; this target
    # used to end 'failed' after 64,000 queries (more than 20,000 pieces found on a residual line)
    r = attack(load("builtin:relu2?d=8&h=6&bias_scale=50&seed=5"), "value")
    assert r.status == "complete", r.message
    assert r.metrics["parameter_relative_error"] <= EXACT
    assert r.queries["total"] <= 400


def test_value_mode_three_layer_network_fails_with_residual():
    # used to end 'complete' with a residual of 7e4 on fresh queries (the tolerance carried a worst-case
    # finite-difference error of one column instead of the error of the recovered units)
    r = attack(load("builtin:mlp?d=6&widths=5,5&seed=14"), "value", max_pieces=400, max_lines=2)
    assert r.status == "failed"
    assert "off by" in r.message or "residual" in r.message


def test_value_mode_bad_precision_is_refused():
    with pytest.raises(ValueError, match="value_precision"):
        Relu2Attack(mode="value", value_precision=0.0)


def test_value_mode_slope_pairs_do_not_straddle_a_kink():
    # bisection next to a kink with a small slope change brought the gaps below the value pair's step:
    # every new pair straddled the kink, its slope was neither piece's, and the search ran past 20,000 pieces
    r = attack(load("builtin:relu2?d=64&h=32&bias_scale=20&seed=2"), "value")
    assert r.status == "complete", r.message
    assert r.metrics["hidden_units_recovered"] == 32
    assert r.metrics["parameter_relative_error"] <= EXACT


def test_value_mode_digits_network_ten_logits():
    # a trained network with 10 logits: main's value mode ended 'failed' here (more than 20,000 pieces); with a
    # random combination of the logits for each unit's normal, one unit the combination nearly cancels cost 8.7e-9
    t = load("builtin:digits-mlp?widths=32&seed=1")
    r = attack(t, "value")
    assert r.status == "complete", r.message
    assert r.metrics["hidden_units_recovered"] == 32
    assert r.metrics["parameter_relative_error"] <= EXACT


def test_value_mode_rounded_answers():
    # values rounded to 8 decimals: the slope pairs span 2^20 rounding units and the stencils' rounding counts in
    # their precision; before, the search took rounding noise for kinks and ended 'failed'
    r = attack(load("builtin:relu2?d=20&h=8&seed=1"), "value", round_decimals=8)
    assert r.status == "complete", r.message
    assert r.metrics["hidden_units_recovered"] == 8
    assert r.metrics["parameter_relative_error"] <= 1e-5  # the answers carry 8 digits


def test_value_mode_on_coarsely_rounded_values_is_not_complete_with_units_missing():
    """Values rounded to 2 decimals: one unit of three found, and the verification's tolerance (scaled by the
    rounding and by |x| at the far check points) hid the other two; it was reported complete (error 1.05)."""
    t = load("builtin:relu2?d=12&h=3&seed=0")
    r = Relu2Attack(mode="value").run(local_oracle(t, ["value"], round_decimals=2))
    evaluate(r, t)
    assert r.status != "complete" or r.metrics["parameter_relative_error"] < 1e-2, r.message


def test_value_mode_rounded_answers_with_a_unit_under_the_stated_bound_missed_are_not_complete():
    """Values rounded to 8 decimals: 30 of 32 units found, the two missed (|v| |w| 0.004 and 0.0006) under the bound
    the result states (0.0089), itself above the smallest unit found (0.0071); it was reported complete (function
    3.3e-3 off).  Now partial, with the bound."""
    t = load("builtin:relu2?d=64&h=32&seed=1")
    r = Relu2Attack(mode="value").run(local_oracle(t, ["value"], round_decimals=8))
    evaluate(r, t)
    assert r.metrics["hidden_units_recovered"] < 32  # the case this guards; if all are found, complete is allowed
    assert r.status == "partial", r.message
    assert "units that small may be missing" in r.message


def test_value_mode_a_unit_hidden_beside_its_neighbour_is_not_charged_to_it():
    # mnist-relu2 h = 512 (attack seeds 0-2: 511, 510, 511 units, 'failed'): a unit whose slope change along the
    # first line is within a few times the rounding of the slopes read there cannot be told from its neighbour's
    # piece, and its jump went to the next kink: a unit made of two (here: 11 of 12 units, parameter error 21,
    # and 'complete').  Such a jump has rank 2 over the outputs; it is left out and a residual line finds both units.
    rng = np.random.default_rng(0)
    d, h, k = 100, 12, 3
    W, b, V, c = rng.normal(size=(h, d)), rng.normal(size=h), 100 * rng.normal(size=(k, h)), rng.normal(size=k)
    first = Relu2Attack(mode="value")
    first.run(local_oracle(net_target(W[1:], b[1:], V[:, 1:], c), ["value"]))
    x0, v = first._x0, first._v  # the first line (the same for any target of this shape)
    u = v / np.linalg.norm(v)
    kinks = np.sort(-(W[1:] @ x0 + b[1:]) / (W[1:] @ v))
    t0 = (kinks[4] + kinks[5]) / 2
    # unit 0 at 0.01 rad from the line, crossing it between two kinks, its output weights 1e-5 x the others': its
    # slope change there is 4 x the bound on the slopes' rounding
    W[0] -= (W[0] @ u) * u - 0.01 * np.linalg.norm(W[0]) * u
    b[0] = -t0 * (W[0] @ v) - W[0] @ x0
    V[:, 0] *= 1e-5
    r = attack(net_target(W, b, V, c), "value")
    assert r.details["lines"][0]["composite_kinks_left_out"] >= 1
    assert r.status == "complete", r.message
    assert r.metrics["hidden_units_recovered"] == r.metrics["hidden_units_matched"] == h
    # 4.1e-9: the small unit's digits come from the residual line (its cells there are smaller), not 1e-13
    assert r.metrics["parameter_relative_error"] <= 1e-8


def boxed_target(W, b, V, c):
    return dataclasses.replace(net_target(W, b, V, c), input_box=(0.0, 1.0))


@pytest.mark.parametrize("mode", ["gradient", "value+gradient"])
def test_a_unit_the_line_never_crosses_is_found_along_the_unexplained_affine_part(mode):
    # a unit always on in the box and nearly parallel to the first line (mnist-relu2, h = 128, attack seed 1: its kink
    # lies at t = 32,000, far beyond the others): the line stops growing before it, the check points in the box
    # cannot see it, and no flip set cancels the affine term; what is left of it points a second line at the unit
    rng = np.random.default_rng(3)
    d, h = 20, 8
    W, b, V, c = rng.normal(size=(h, d)), rng.normal(size=h), rng.normal(size=(3, h)), rng.normal(size=3)
    first = Relu2Attack(mode=mode)
    first.run(local_oracle(boxed_target(W[1:], b[1:], V[:, 1:], c), KINDS[mode]))
    v = first._v / np.linalg.norm(first._v)  # the first line's direction (the same for any target of this shape)
    W[0] -= (W[0] @ v) * v - 1e-9 * v
    b[0] = np.clip(-W[0], 0, None).sum() + 0.5  # on everywhere in [0, 1]^d
    r = attack(boxed_target(W, b, V, c), mode)
    assert r.status == "complete", r.message
    assert r.metrics["hidden_units_recovered"] == h
    assert r.metrics["parameter_relative_error"] <= EXACT


@pytest.mark.parametrize("mode", ["gradient", "value+gradient"])
def test_the_other_outputs_and_the_bias_keep_their_digits(mode):
    # the rows of the outputs not followed come from their gradients at the lines' ends (a fit on known normals),
    # c from a value at the box centre; a fit to values (value+gradient before: 1.1e-11 here, 1e-8 on mnist-relu2
    # with h = 512) or c read at the line's far end, where |x| multiplies the units' rounding (gradient mode on
    # mnist-relu2, h = 512: a false 'failed' at 1.9 x the tolerance), lose digits
    rng = np.random.default_rng(0)
    d, h = 784, 32
    W, V, c, b = rng.normal(size=(h, d)) * 0.1, rng.normal(size=(10, h)), rng.normal(size=10), rng.normal(size=h)
    r = attack(boxed_target(W, b, V, c), mode)
    assert r.status == "complete", r.message
    assert r.metrics["parameter_relative_error"] <= 1e-12


# ---------------------------------------------------------------- the piecewise core under relu2 (issue 15)
def test_lazy_value_gradient_probe_finds_the_kinks_bisection_finds_with_fewer_values():
    from modelrecon.attacks.piecewise import GradientProbe, LazyValueGradientProbe, Line, critical_points

    t = load("builtin:relu2?d=12&h=6&seed=1")
    W, b = t.truth["W"], t.truth["b"]
    rng = np.random.default_rng(0)
    line = Line(rng.normal(size=12) * 0.1, rng.normal(size=12))
    crossings = np.sort(-(W @ line.x0 + b) / (W @ line.v))
    T = 2 * np.abs(crossings).max()
    lazy_oracle = local_oracle(t, ["value", "gradient"])
    lazy, _ = critical_points(LazyValueGradientProbe(lazy_oracle), line, -T, T)
    bisected, _ = critical_points(GradientProbe(local_oracle(t, ["gradient"])), line, -T, T,
                                  relative_to="position", resolution=2.0 ** -44)
    assert len(lazy) == len(bisected) == 6
    assert np.allclose([k.t for k in lazy], crossings, rtol=0, atol=1e-9 * T)
    assert np.allclose([k.t for k in bisected], crossings, rtol=0, atol=1e-9 * T)
    counts = lazy_oracle.ledger.counts["attack"]
    assert counts["value"] < counts["gradient"] <= 4 * 6 + 2  # a value only for a new piece
