import numpy as np
import pytest
import torch

from modelrecon.oracle import KINDS, OracleError, QueryBudgetExceeded, local_oracle, replay_oracle
from modelrecon.targets import load


@pytest.fixture
def relu2():
    return load("builtin:relu2?d=6&h=4&k=3&seed=1")


def test_batch_counts_one_query_per_input_and_kind(relu2):
    o = local_oracle(relu2)
    x = np.random.default_rng(0).normal(size=(7, 6))
    out = o.query(x, ("value", "gradient"))
    assert out["value"].shape == (7, 3) and out["gradient"].shape == (7, 6)
    o.value(x[0])
    assert o.ledger.by_kind() == {"value": 8, "gradient": 7}
    assert o.ledger.total() == 15
    # one shared forward pass for the predictions, one backward for the gradient
    assert o.ledger.evaluations == 7 + 7 + 1


def test_evaluations_behind_integrated_gradients_and_smoothgrad(relu2):
    o = local_oracle(relu2, ig_steps=20, smoothgrad_samples=5)
    x = np.ones((3, 6))
    o.explanation(x, "integrated-gradients")
    assert o.ledger.evaluations == 3 * 20
    o.explanation(x, "smoothgrad")
    assert o.ledger.evaluations == 3 * 20 + 3 * 5
    assert o.ledger.by_kind() == {"explanation:integrated-gradients": 3, "explanation:smoothgrad": 3}


def test_total_budget_stops_at_the_exact_query(relu2):
    o = local_oracle(relu2, budget=10)
    x = np.zeros((4, 6))
    o.query(x, ("value", "gradient"))  # 8 queries
    with pytest.raises(QueryBudgetExceeded) as err:
        o.query(np.ones((3, 6)), ("value", "gradient"))  # room for one input of both kinds
    assert err.value.answered == 1
    assert err.value.answers["value"].shape == (1, 3)
    assert o.ledger.total() == 10


def test_per_kind_budget(relu2):
    o = local_oracle(relu2, budgets={"gradient": 5})
    o.value(np.zeros((50, 6)))
    with pytest.raises(QueryBudgetExceeded) as err:
        o.gradient(np.zeros((6, 6)))
    assert err.value.answered == 5
    assert o.ledger.by_kind() == {"value": 50, "gradient": 5}
    with pytest.raises(QueryBudgetExceeded):
        o.gradient(np.zeros(6))
    assert o.ledger.by_kind()["gradient"] == 5


def test_journal_resumes_without_reasking(relu2, tmp_path):
    path = tmp_path / "j.sqlite"
    x = np.random.default_rng(1).normal(size=(5, 6))
    first = local_oracle(relu2, journal=path)
    a = first.query(x[:3], ("value", "gradient"), output=1)
    assert first.ledger.total() == 6
    second = local_oracle(relu2, journal=path)
    b = second.query(x, ("value", "gradient"), output=1)
    assert second.ledger.by_kind() == {"value": 2, "gradient": 2}  # only the two new inputs were paid for
    assert dict(second.ledger.replayed) == {"value": 3, "gradient": 3}
    np.testing.assert_array_equal(a["gradient"], b["gradient"][:3])
    # a different output index is a different question
    second.query(x[:1], ("gradient",), output=2)
    assert second.ledger.by_kind()["gradient"] == 3


def test_replay_offline_and_refuse_unknown_questions(relu2, tmp_path):
    path = tmp_path / "j.sqlite"
    x = np.random.default_rng(2).normal(size=(4, 6))
    answers = local_oracle(relu2, journal=path).value(x)
    offline = replay_oracle(path)
    np.testing.assert_array_equal(offline.value(x), answers)
    assert offline.ledger.total() == 0
    with pytest.raises(OracleError, match="journal holds no answer"):
        offline.value(x + 1)


def test_journal_of_another_oracle_is_refused(relu2, tmp_path):
    path = tmp_path / "j.sqlite"
    local_oracle(relu2, journal=path).value(np.zeros(6))
    with pytest.raises(OracleError, match="recorded for another oracle"):
        local_oracle(relu2, journal=path, round_decimals=3)


def _reachable(obj, seen=None, depth=0):
    seen = seen if seen is not None else set()
    if id(obj) in seen or depth > 6:
        return
    seen.add(id(obj))
    yield obj
    children = []
    if isinstance(obj, dict):
        children = list(obj.keys()) + list(obj.values())
    elif isinstance(obj, (list, tuple, set)):
        children = list(obj)
    elif hasattr(obj, "__dict__") and not isinstance(obj, type):
        children = list(vars(obj).values())
    for c in children:
        yield from _reachable(c, seen, depth + 1)


def test_oracle_exposes_no_handle_to_the_model(relu2):
    o = local_oracle(relu2, journal=None)
    o.value(np.zeros(6))
    for obj in _reachable(o):
        assert not isinstance(obj, (torch.nn.Module, torch.Tensor)), f"oracle reaches {type(obj)}"
        assert type(obj).__name__ != "Target"
    for name in ("model", "target", "truth", "_target", "_model"):
        assert not hasattr(o, name)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 5)), "does not fit"),
    (np.zeros((2, 6, 1)), "does not fit"),
    (np.array([[np.nan] * 6]), "NaN or Inf"),
    (np.array([[0, 0, np.inf, 0, 0, 0]]), "NaN or Inf"),
])
def test_bad_inputs_are_refused_and_cost_nothing(relu2, bad, match):
    o = local_oracle(relu2)
    with pytest.raises(OracleError, match=match):
        o.value(bad)
    assert o.ledger.total() == 0


def test_unknown_kind_method_and_output(relu2):
    o = local_oracle(relu2)
    with pytest.raises(OracleError, match="unknown query kind"):
        o.query(np.zeros(6), ("logits",))
    with pytest.raises(OracleError, match="unknown query kind"):
        o.explanation(np.zeros(6), "lime")
    with pytest.raises(OracleError, match="class index"):
        o.gradient(np.zeros(6), output=3)
    with pytest.raises(OracleError, match="does not answer"):
        local_oracle(relu2, ["value"]).gradient(np.zeros(6))
    with pytest.raises(OracleError, match="unknown oracle options"):
        local_oracle(relu2, ig_stepz=3)
    assert o.ledger.total() == 0


def test_output_post_processing(relu2):
    x = np.random.default_rng(3).normal(size=(4, 6))
    exact = local_oracle(relu2)
    rounded = local_oracle(relu2, round_decimals=2)
    np.testing.assert_array_equal(rounded.value(x), np.round(exact.value(x), 2))
    np.testing.assert_array_equal(rounded.gradient(x), np.round(exact.gradient(x), 2))
    top1 = local_oracle(relu2, top_k=1).probabilities(x)
    assert ((top1 > 0).sum(axis=1) == 1).all()
    np.testing.assert_allclose(top1.max(axis=1), exact.probabilities(x).max(axis=1))
    labels = local_oracle(relu2, label_only=True)
    assert labels.kinds == ("label",)
    np.testing.assert_array_equal(labels.label(x), exact.value(x).argmax(axis=1))
    with pytest.raises(OracleError):
        labels.value(x)


def test_scalar_labels_against_a_threshold():
    t = load("builtin:linear?d=3")
    x = np.random.default_rng(4).normal(size=(20, 3))
    v = local_oracle(t).value(x)
    np.testing.assert_array_equal(local_oracle(t, threshold=0.2).label(x), (v > 0.2).astype(int))
    np.testing.assert_array_equal(local_oracle(t, label_format="sign").label(x), np.where(v > 0, 1, -1))
    with pytest.raises(OracleError, match="cannot offer 'probabilities'"):
        local_oracle(t, ["probabilities"])


def test_every_kind_is_answered(relu2):
    o = local_oracle(relu2)
    x = np.random.default_rng(5).normal(size=(2, 6))
    out = o.query(x, KINDS, output=0)
    assert set(out) == set(KINDS)
    assert o.ledger.total() == 2 * len(KINDS)


# -- properties of the ledger (hypothesis) ------------------------------------------------
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

CHEAP = ("value", "probabilities", "label", "gradient", "explanation:saliency", "explanation:input-x-gradient")
RELU2 = load("builtin:relu2?d=6&h=4&k=3&seed=1")


@settings(max_examples=30, deadline=None)
@given(batches=st.lists(st.tuples(st.integers(1, 5), st.sets(st.sampled_from(CHEAP), min_size=1)),
                        min_size=1, max_size=6))
def test_ledger_counts_inputs_times_kinds(batches):
    o = local_oracle(RELU2)
    expected: dict[str, int] = {}
    for n, kinds in batches:
        o.query(np.zeros((n, 6)), tuple(sorted(kinds)))
        for k in kinds:
            expected[k] = expected.get(k, 0) + n
    assert o.ledger.by_kind() == expected
    assert o.ledger.total() == sum(n * len(k) for n, k in batches)


def test_a_recharged_verification_counts_as_the_attacks_and_the_total_stays():
    o = local_oracle(RELU2)
    o.query(np.zeros((3, 6)), ("value",))
    with o.ledger.phase("verify"):
        o.query(np.zeros((5, 6)), ("value", "gradient"))
    o.ledger.recharge(("value", "gradient"), 2, "verify", "attack")
    doc = o.ledger.to_dict()
    assert doc["by_kind"] == {"value": 5, "gradient": 2} and doc["verify"]["by_kind"] == {"value": 3, "gradient": 3}
    assert doc["total"] == 7 and doc["all_phases_total"] == 13


@settings(max_examples=30, deadline=None)
@given(budget=st.integers(0, 30), sizes=st.lists(st.integers(1, 8), min_size=1, max_size=8),
       kinds=st.sets(st.sampled_from(CHEAP), min_size=1, max_size=3))
def test_budget_is_never_exceeded_and_answers_what_fits(budget, sizes, kinds):
    o = local_oracle(RELU2, budget=budget)
    kinds = tuple(sorted(kinds))
    for n in sizes:
        before = o.ledger.total()
        try:
            o.query(np.ones((n, 6)), kinds)
        except QueryBudgetExceeded as e:
            assert e.answered == (budget - before) // len(kinds)
            assert all(len(v) == e.answered for v in e.answers.values() if e.answered)
        assert o.ledger.total() <= budget
