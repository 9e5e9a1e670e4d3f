"""The IBM ART peer of benchmarks/relu2.py: the wrapper must give ART float64 inputs and answers,
count every distinct query, and measure ART's own parameters.  Skipped without the ``bench`` extra."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("art")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from _art_relu2 import CountingPredict, run_art  # noqa: E402

from modelrecon.oracle import local_oracle  # noqa: E402
from modelrecon.targets import load  # noqa: E402

SPEC = "builtin:relu2?d=4&h=2"


def _run(**kw):
    target = load(SPEC)
    oracle = local_oracle(target, ["value"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return oracle, run_art(target, oracle, seed=0, **kw)


def test_float64_wrapper_lets_art_finish_and_counts_distinct_queries():
    oracle, out = _run()
    assert out["phases"]["critical_points_found"] == 2
    assert out["queries"] == oracle.ledger.total() > 0
    assert out["raw_calls"] > out["queries"]  # ART repeats inputs; repeats are not charged
    assert out["hidden_units_recovered"] == 2
    # ART is precise on this small target once it sees float64 (measured 5.4e-9)
    assert out["parameter_relative_error"] < 1e-6
    assert out["fidelity_relative_error"] < 1e-6


def test_float32_interface_breaks_arts_critical_point_search():
    # ART's defaults (inputs and answers in float32) make its slope test see false kinks
    with pytest.raises(AssertionError, match="critical points found"):
        _run(float64=False)


def test_counting_predict_answers_nan_rows_uncounted_and_duplicates_scalar():
    target = load(SPEC)
    oracle = local_oracle(target, ["value"])
    predict = CountingPredict(oracle)
    x = np.random.default_rng(0).normal(size=(3, 4))
    x[1] = np.nan
    z = predict(np.vstack([x, x[:1]]))
    assert z.shape == (4, 2) and np.isnan(z[1]).all()
    np.testing.assert_array_equal(z[:, 0], -z[:, 1])
    np.testing.assert_allclose(z[[0, 2, 3], 0], target.forward_numpy(x[[0, 2, 0]]).ravel(), rtol=0, atol=0)
    assert oracle.ledger.total() == 2 and predict.calls == 4 and predict.nan_rows == 1
