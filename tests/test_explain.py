"""Each explanation method against a value computed by hand on a tiny model."""

import numpy as np
import pytest
import torch
from torch import nn

from modelrecon.oracle import local_oracle
from modelrecon.targets import Target

W = np.array([[1.0, -2.0, 0.5], [0.5, 1.0, -1.0]])
B = np.array([0.25, -0.5])
A = np.array([[2.0, -3.0]])


def tiny_target() -> Target:
    """f(x) = 2 relu(w1.x + 0.25) - 3 relu(w2.x - 0.5)."""
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU(), nn.Linear(2, 1, bias=False)).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.as_tensor(W))
        model[0].bias.copy_(torch.as_tensor(B))
        model[2].weight.copy_(torch.as_tensor(A))
    return Target("tiny", model.eval(), (3,), 1, "regression")


X = np.array([1.0, 0.0, -0.5])  # pre-activations 1.0 and 0.5: both units active


def by_hand_gradient(x):
    active = (W @ x + B > 0).astype(float)
    return (A[0] * active) @ W


def test_gradient_and_saliency():
    o = local_oracle(tiny_target())
    g = by_hand_gradient(X)
    np.testing.assert_allclose(g, [0.5, -7.0, 4.0])
    np.testing.assert_allclose(o.gradient(X), g, rtol=0, atol=1e-15)
    np.testing.assert_allclose(o.explanation(X, "saliency-signed"), g, atol=1e-15)
    np.testing.assert_allclose(o.explanation(X, "saliency"), np.abs(g), atol=1e-15)
    np.testing.assert_allclose(o.explanation(X, "input-x-gradient"), X * g, atol=1e-15)


def test_guided_backprop_drops_negative_signals():
    # the backward signal into unit 2 is -3 < 0: guided backprop clamps it, leaving 2 * w1
    o = local_oracle(tiny_target())
    np.testing.assert_allclose(o.explanation(X, "guided-backprop"), 2.0 * W[0], atol=1e-15)


def test_deeplift_rescale_rule_against_zero_baseline():
    # multiplier of each ReLU = (relu(z) - relu(z0)) / (z - z0), z0 = pre-activation at the baseline
    z, z0 = W @ X + B, B
    m = (np.maximum(z, 0) - np.maximum(z0, 0)) / (z - z0)
    expected = X * ((A[0] * m) @ W)
    o = local_oracle(tiny_target())
    np.testing.assert_allclose(o.explanation(X, "deeplift"), expected, atol=1e-12)
    # completeness: attributions sum to f(x) - f(baseline)
    assert o.explanation(X, "deeplift").sum() == pytest.approx(o.value(X) - o.value(np.zeros(3)), abs=1e-12)


class Quadratic(nn.Module):
    """f(x) = (u.x)^2: integrated gradients from 0 is x_i u_i (u.x), exact under Gauss-Legendre."""

    def __init__(self, u):
        super().__init__()
        self.u = nn.Parameter(torch.as_tensor(u), requires_grad=False)

    def forward(self, x):
        return ((x @ self.u) ** 2)[:, None]


def test_integrated_gradients_by_hand():
    u = np.array([0.5, -1.0, 2.0])
    t = Target("quad", Quadratic(u).double(), (3,), 1, "regression")
    o = local_oracle(t, ig_steps=4)
    expected = X * u * (u @ X)
    np.testing.assert_allclose(o.explanation(X, "integrated-gradients"), expected, rtol=1e-14)
    # a baseline b: (x - b)_i u_i (u.x + u.b) / 1 ... checked through completeness
    ob = local_oracle(t, ig_steps=4, ig_baseline=0.5)
    ig = ob.explanation(X, "integrated-gradients")
    assert ig.sum() == pytest.approx((u @ X) ** 2 - (u @ np.full(3, 0.5)) ** 2, rel=1e-13)


def test_smoothgrad_of_a_linear_model_is_its_weights():
    model = nn.Linear(3, 1).double()
    t = Target("lin", model, (3,), 1, "regression")
    o = local_oracle(t, smoothgrad_samples=7, smoothgrad_stdev=0.5)
    np.testing.assert_allclose(o.explanation(X, "smoothgrad"), model.weight.detach().numpy()[0], atol=1e-15)


def test_smoothgrad_averages_gradients_across_a_kink():
    # at a point right at unit 1's kink, noisy copies fall on both sides: the average lies strictly between
    x = np.array([-0.25, 0.0, 0.0])  # w1.x + 0.25 = 0, unit 2 off
    o = local_oracle(tiny_target(), smoothgrad_samples=200, smoothgrad_stdev=0.5)
    sg = o.explanation(x, "smoothgrad")
    on = 2 * W[0]
    assert 0.2 < sg[0] / on[0] < 0.8


def test_probability_space():
    t = tiny_target()
    t.task = "binary"
    o = local_oracle(t, explain_space="probability")
    p = o.probabilities(X)
    np.testing.assert_allclose(o.gradient(X), p * (1 - p) * by_hand_gradient(X), atol=1e-15)


def small_cnn() -> Target:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4)).double().eval()
    return Target("cnn", model, (1, 6, 6), 4, "multiclass")


CNN_X = np.random.default_rng(0).normal(size=(23, 1, 6, 6))
ALL_KINDS = ("gradient",) + tuple(f"explanation:{m}" for m in ("saliency", "saliency-signed", "input-x-gradient",
                                                               "integrated-gradients", "smoothgrad", "deeplift",
                                                               "guided-backprop"))


def test_explanations_in_passes_agree_with_one_pass(monkeypatch):
    from modelrecon import explain

    opts = {**explain.DEFAULT_OPTIONS, "ig_steps": 5, "smoothgrad_samples": 6}
    monkeypatch.setattr(explain, "MAX_ROWS", 10_000)
    whole, cost = explain.explanations(small_cnn().model, CNN_X, ALL_KINDS, "predicted", opts)
    monkeypatch.setattr(explain, "MAX_ROWS", 7)  # 7 inputs a pass, 3 for DeepLift, 1 for SmoothGrad
    parts, parts_cost = explain.explanations(small_cnn().model, CNN_X, ALL_KINDS, "predicted", opts)
    assert parts_cost == cost == len(CNN_X) * (1 + 1 + 1 + 1 + 5 + 6 + 2 + 1)
    for kind in ALL_KINDS:  # rows are independent: same answers bit for bit
        np.testing.assert_array_equal(parts[kind], whole[kind], err_msg=kind)


def test_smoothgrad_is_captums_noise_tunnel():
    from captum.attr import NoiseTunnel, Saliency

    from modelrecon import explain

    t = small_cnn()
    x = torch.as_tensor(CNN_X)
    idx = torch.as_tensor([0, 1, 2, 3] * 5 + [0, 1, 2])
    with torch.random.fork_rng():
        torch.manual_seed(5)
        captum = NoiseTunnel(Saliency(t.model)).attribute(x, nt_type="smoothgrad", target=idx.tolist(), abs=False,
                                                          nt_samples=6, stdevs=0.3)
    np.testing.assert_array_equal(explain.smoothgrad(t.model, x, idx, 6, 0.3, seed=5).detach().numpy(),
                                  captum.detach().numpy())


@pytest.mark.parametrize("kind", ["smoothgrad", "integrated-gradients", "deeplift", "saliency"])
def test_a_large_batch_is_explained_in_bounded_passes(monkeypatch, kind):
    from modelrecon import explain

    monkeypatch.setattr(explain, "MAX_ROWS", 32)
    t = small_cnn()
    rows: list[int] = []
    t.model.register_forward_hook(lambda module, args, out: rows.append(len(args[0])))
    o = local_oracle(t, smoothgrad_samples=16, ig_steps=4)
    rows.clear()  # (the oracle may probe the model when built)
    x = np.random.default_rng(1).normal(size=(100, 1, 6, 6))
    o.explanation(x, kind)
    assert o.ledger.by_kind() == {f"explanation:{kind}": 100}  # a query is an input point, not a pass
    assert max(rows) <= 32 and sum(rows) >= 100  # before: 1,600 noisy points in one pass for SmoothGrad
