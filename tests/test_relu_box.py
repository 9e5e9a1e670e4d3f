"""The deep ReLU attack on targets that declare an input box: lines leave a box the oracle does not enforce (the
result is exact on R^d), and stay in one it enforces (never a query outside, never a false complete)."""

import numpy as np
import pytest

from modelrecon.attacks.relu import ReluAttack
from modelrecon.evaluate import evaluate
from modelrecon.oracle import OracleError, local_oracle, replay_oracle
from modelrecon.targets import load

DIGITS = "builtin:digits-mlp?widths=32,32"  # 64-32-32-10 trained on scikit-learn digits, box [0, 1]


def test_oracle_enforcing_its_box_refuses_inputs_outside_and_counts_nothing(tmp_path):
    target = load("builtin:digits-mlp?widths=32,32")
    o = local_oracle(target, ["value"], enforce_box=True, journal=tmp_path / "j.sqlite")
    assert o.enforce_box and o.describe()["enforce_box"] is True
    o.query(np.full((1, 64), 0.5))
    with pytest.raises(OracleError, match=r"outside the input box \[0, 1\] \(rows \[1\]\)"):
        o.query(np.vstack([np.full(64, 0.5), np.full(64, 1.0 + 1e-12)]))
    assert o.ledger.total() == 1
    assert replay_oracle(tmp_path / "j.sqlite").enforce_box  # the journal's fingerprint keeps it
    free = local_oracle(target, ["value"])
    assert not free.enforce_box and "enforce_box" not in free.describe()  # old journals keep their fingerprint
    free.query(np.full((1, 64), 2.0))  # a box the oracle does not enforce is a hint


def test_trained_digits_mlp_64_32_32_10_is_exact_on_r_d_with_lines_leaving_its_box():
    target = load(DIGITS)
    r = ReluAttack(mode="value+gradient").run(local_oracle(target, ["value", "gradient"]))
    evaluate(r, target)
    assert r.status == "complete", r.message
    assert r.details["region"] == "R^d"
    m = r.metrics
    assert m["hidden_units_matched"] == m["hidden_units_true"] == 64
    assert m["parameter_relative_error"] <= 1e-9
    assert m["worst_output_error_relative"] <= 1e-9  # in the box
    assert m["rd_worst_output_error_relative"] <= 1e-9  # and on R^d
    assert r.queries["total"] / 64 <= 60


def test_a_box_kept_to_is_never_left_and_never_reads_complete_with_a_wrong_model():
    # before: a chord searched on [-extent, extent] about a random point ran out of the box behind it (OracleError)
    target = load(DIGITS)
    enforced = ReluAttack(max_lines=6).run(local_oracle(target, ["value", "gradient"], enforce_box=True))
    asked = ReluAttack(max_lines=6, inside_box=True).run(local_oracle(target, ["value", "gradient"]))
    assert enforced.details["region"] == asked.details["region"] == "input box"
    assert (enforced.status, enforced.queries) == (asked.status, asked.queries)  # the same queries, all in the box
    evaluate(enforced, target)
    if enforced.status == "complete":
        assert enforced.metrics["worst_output_error_relative"] <= 1e-9
    else:
        assert enforced.status in ("partial", "failed") and enforced.message


def test_cli_attack_relu_inside_box_keeps_every_query_in_the_box(tmp_path):
    import json

    from typer.testing import CliRunner

    from modelrecon.cli import app

    out = tmp_path / "r.json"
    res = CliRunner().invoke(app, ["attack", "relu", "--target", DIGITS, "--inside-box", "--max-lines", "2",
                                   "--verify", "64", "--json", str(out)])
    assert res.exit_code == 0, res.output
    doc = json.loads(out.read_text())
    assert doc["details"]["region"] == "input box" and doc["details"]["hyperparameters"]["inside_box"] is True
    assert doc["status"] != "complete"  # in the box, 2 lines do not reach this network (nor claim to)
