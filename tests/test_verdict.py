"""Verdicts that cannot lie (issue 12, defect 1): NaN, an empty set, a zero tolerance are failures."""

from __future__ import annotations

import math

import numpy as np
import torch

from modelrecon.attacks.relu2 import Relu2Attack
from modelrecon.oracle import local_oracle
from modelrecon.targets import load
from modelrecon.verdict import passes, worst_ratio

CAPTUM_CONV = "captum.testing.helpers.basic_models:BasicModel_ConvNet_One_Conv?shape=1x4x4"


def test_worst_ratio_fails_nan_empty_and_zero_tolerance():
    assert worst_ratio([1.0, 2.0], [2.0, 4.0]) == 0.5
    assert worst_ratio([0.0, np.nan], 1.0) == math.inf
    assert worst_ratio([], 1.0) == math.inf
    assert worst_ratio([0.0, 0.0], [0.0, 0.0]) == math.inf  # a tolerance of zero everywhere verifies nothing
    assert worst_ratio([0.0, 3.0], [0.0, 1.0]) == 3.0  # one exact zero at a zero tolerance is a match
    assert worst_ratio([1e-300, 3.0], [0.0, 1.0]) == math.inf
    assert worst_ratio([1.0], [np.inf]) == math.inf
    assert not passes(math.nan) and not passes(math.inf) and passes(1.0) and not passes(1.0 + 1e-12)


def test_relu2_on_captum_conv_net_is_not_a_fake_success():
    """main: 0 units, 'complete', 'verified' with residual 2.7e6 (a 0/0 read as 0).  The convolution
    feeds a ReLU layer (8 units): the recovered model must match the target where it is not zero."""
    t = load(CAPTUM_CONV)
    r = Relu2Attack(mode="value+gradient").run(local_oracle(t))
    assert r.status == "complete", r.message
    assert r.details["hidden_units_found"] > 0
    ver = r.details["verification"]
    assert passes(ver["residual_over_tolerance"])
    X = np.random.default_rng(1).normal(size=(500, 1, 4, 4)) * 30  # patch sums past the biases (-50, -75)
    y = t.forward_numpy(X)
    y_hat = r.model(torch.as_tensor(X)).detach().numpy().reshape(len(X), -1)
    assert np.abs(y).max() > 10
    assert np.abs(y - y_hat).max() <= 1e-9 * np.abs(y).max()


def test_relu2_zero_units_is_never_complete():
    """An affine target has no kink: 0 units is no two-layer network recovered."""
    r = Relu2Attack(mode="value+gradient").run(local_oracle(load("builtin:linear?d=5")))
    assert r.status == "failed" and "no hidden unit" in r.message
