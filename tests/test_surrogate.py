"""Surrogate attack: the double-backprop loss, exact budgets per strategy, the resumable study."""

import json
import os

import numpy as np
import pytest
import torch
from torch import nn

from modelrecon.attacks.surrogate import STRATEGIES, SurrogateAttack, surrogate_explanation, surrogate_loss
from modelrecon.data import DatasetMissing
from modelrecon.oracle import local_oracle
from modelrecon.studies import queries as study
from modelrecon.targets import load

torch.set_num_threads(1)
TINY = "builtin:mlp?d=6&widths=5&k=3&seed=1"


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory, monkeypatch):
    if "MODELRECON_CACHE" not in os.environ:
        monkeypatch.setenv("MODELRECON_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def _tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).double()


@pytest.mark.parametrize("method", ["gradient", "explanation:input-x-gradient", "explanation:integrated-gradients",
                                    "explanation:saliency-signed"])
@pytest.mark.parametrize("pred_kind", ["probabilities", "value", "label"])
def test_double_backprop_loss_gradient_matches_finite_differences(method, pred_kind):
    g = torch.Generator().manual_seed(3)
    model = _tiny_model()
    x = torch.rand(7, 4, generator=g, dtype=torch.float64)
    logits = torch.randn(7, 3, generator=g, dtype=torch.float64)
    pred = {"probabilities": torch.softmax(logits, 1), "value": logits, "label": logits.argmax(1)}[pred_kind]
    expl = torch.randn(7, 4, generator=g, dtype=torch.float64)
    opts = {"ig_baseline": 0.0}

    def loss_of():
        return surrogate_loss(model, x, pred, pred_kind, expl, method, 0.7, 2.0, options=opts, ig_steps=3)

    total, _, e_term = loss_of()
    params = list(model.parameters())
    grads = torch.autograd.grad(total, params)
    # the explanation term alone must depend on the parameters (double backprop is exercised)
    e_grads = torch.autograd.grad(loss_of()[2], params, allow_unused=True)
    assert max(float(eg.abs().max()) for eg in e_grads if eg is not None) > 0
    h = 1e-5
    eps = torch.finfo(torch.float64).eps
    # central differences: rounding ~ eps |L| / h (x10 for the sums inside L), truncation ~ h^2 |L'''| (x10)
    tol = 10 * eps * (1 + abs(total.item())) / h + 10 * h ** 2
    for p, gp in zip(params, grads):
        flat = p.data.view(-1)
        fd = torch.empty_like(flat)
        for i in range(flat.numel()):
            old = flat[i].item()
            flat[i] = old + h
            up = loss_of()[0].item()
            flat[i] = old - h
            down = loss_of()[0].item()
            flat[i] = old
            fd[i] = (up - down) / (2 * h)
        err = float((gp.view(-1) - fd).abs().max())
        assert err <= tol, (method, pred_kind, err, tol)


def test_surrogate_gradient_explanation_is_the_input_gradient():
    model = _tiny_model()
    x = torch.rand(5, 4, dtype=torch.float64)
    idx = torch.tensor([0, 1, 2, 0, 1])
    e = surrogate_explanation(model, x, idx, "gradient")
    xr = x.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(model(xr).gather(1, idx[:, None]).sum(), xr)
    assert torch.allclose(e, ref, atol=0, rtol=0)
    ixg = surrogate_explanation(model, x, idx, "explanation:input-x-gradient")
    assert torch.allclose(ixg, x * ref)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("interface", ["gradient", "label"])
def test_each_strategy_spends_exactly_its_budget(strategy, interface):
    target = load(TINY)
    pool = np.random.default_rng(0).normal(size=(20, 6))
    oracle = local_oracle(target)
    budget = 37  # beyond the pool: the pool strategy mixes pool points
    res = SurrogateAttack(budget=budget, interface=interface, strategy=strategy, pool=pool, steps=5,
                          jbda_seed=4, jbda_round_steps=3).run(oracle)
    expected = {"label": budget} if interface == "label" else {"probabilities": budget, "gradient": budget}
    assert res.status == "complete"
    assert oracle.ledger.by_kind() == expected
    assert res.queries["by_kind"] == expected
    assert res.details["points"] == budget
    if strategy == "jbda":
        assert sum(res.details["jbda_rounds"]) == budget and res.details["jbda_rounds"][0] == 4


def test_exhausted_oracle_budget_gives_partial_result():
    target = load(TINY)
    oracle = local_oracle(target, budget=20)  # 10 points of (probabilities, gradient)
    res = SurrogateAttack(budget=30, interface="gradient", strategy="uniform", steps=3).run(oracle)
    assert res.status == "partial"
    assert res.details["points"] == 10
    assert oracle.ledger.total() == 20
    assert res.model is not None


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError):
        SurrogateAttack(strategy="nope")
    with pytest.raises(ValueError):
        SurrogateAttack(interface="telepathy")
    target = load(TINY)
    with pytest.raises(ValueError, match="pool"):
        SurrogateAttack(budget=3, strategy="pool").run(local_oracle(target))
    from modelrecon.oracle import OracleError

    with pytest.raises(OracleError):
        SurrogateAttack(budget=3, interface="gradient", strategy="uniform").run(local_oracle(target, ["label"]))


def test_study_is_a_sweep_that_resumes_and_never_reuses_runs_of_another_setup(tmp_path):
    from modelrecon.sweep import ResultsDB

    cfg = study.StudyConfig(target=TINY, budgets=(5,), interfaces=("label", "gradient"), seeds=2,
                            strategy="uniform", steps=5)
    first = study.run_study(cfg, tmp_path, show_progress=False)
    assert first["ran"] == 4
    grown = study.StudyConfig(**{**cfg.__dict__, "budgets": (5, 10)})
    summary = study.run_study(grown, tmp_path, show_progress=False)
    assert summary["ran"] == 8 - 4  # only the runs not in the database
    for name in ("results.sqlite", "headline.json", "headline.md", "agreement.png"):
        assert (tmp_path / name).stat().st_size > 0
    records = summary["records"]
    assert {(r["label"], r["budget"], r["seed"]) for r in records} == {
        (i, b, s) for i in ("label", "gradient") for b in (5, 10) for s in (0, 1)}
    assert all(r["points"] == r["budget"] and 0 <= r["agreement"] <= 1 for r in records)
    assert study.run_study(grown, tmp_path, show_progress=False)["ran"] == 0  # everything done: nothing re-run
    other = study.StudyConfig(**{**cfg.__dict__, "steps": 7})
    assert study.run_study(other, tmp_path, show_progress=False)["ran"] == 4  # trained differently: run afresh
    db = ResultsDB(tmp_path / "results.sqlite")
    assert set(db.studies()) == {cfg.name} == {"queries-builtin-mlp-d-6-widths-5-k-3-seed-1"}
    db.close()


def test_digits_queries_sweep_recipe_writes_the_headline_and_plot(tmp_path):
    """configs/surrogate-digits-queries.toml at 2 small budgets, 1 seed, few steps: the recipe rebuilds the
    headline table and the plot from the database alone, and refuses runs of two setups at one grid point."""
    import tomllib
    from pathlib import Path

    from modelrecon.sweep import Study, StudyError, run_recipe, run_sweep

    cfg = tomllib.loads((Path(__file__).parent.parent / "configs" / "surrogate-digits-queries.toml").read_text())
    assert cfg["results"]["recipe"] == study.sweep_config(study.StudyConfig(target=TINY), None)["results"]["recipe"]
    cfg["grid"]["interface"] = [i for i in cfg["grid"]["interface"] if i["name"] in ("probabilities", "gradient")]
    cfg["grid"].update({"attack.budget": [10, 30], "seed": [0]})
    cfg["attack"]["steps"] = 5
    db = tmp_path / "results.sqlite"
    assert run_sweep(Study.from_dict(cfg), db=db, workers=0, progress=False).complete == 4
    md, js, png = run_recipe(db, cfg["study"]["name"], tmp_path / "figs")
    assert png.name == "agreement.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = md.read_text()
    assert "Target `builtin:digits-mlp`, 1 seeds, budgets 10, 30 query points" in table
    assert [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ")][1:] == [
        "| probabilities", "| gradient"]
    assert set(json.loads(js.read_text())["interfaces"]) == {"probabilities", "gradient"}
    cfg["attack"]["steps"] = 6  # another training setup into the same database: the recipe must not average them
    run_sweep(Study.from_dict(cfg), db=db, workers=0, progress=False)
    with pytest.raises(StudyError, match="two runs of surrogate-digits-queries"):
        run_recipe(db, cfg["study"]["name"], tmp_path / "figs")


def test_headline_counts_queries_to_threshold():
    recs = [{"label": lab, "budget": b, "agreement": a}
            for lab, curve in {"probabilities": {10: 0.5, 100: 0.91, 1000: 0.96},
                               "gradient": {10: 0.96, 100: 0.97, 1000: 0.97}}.items() for b, a in curve.items()]
    h = study.headline(recs)
    assert h["interfaces"]["probabilities"]["q95"] == 1000 and h["interfaces"]["gradient"]["q95"] == 10
    assert h["ratios"]["gradient"]["q95"]["ratio"] == 100 and h["ratios"]["gradient"]["q90"]["ratio"] == 10


def test_image_zoo_entries_need_local_files(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELRECON_MNIST", str(tmp_path / "mnist"))
    monkeypatch.setenv("MODELRECON_CIFAR10", str(tmp_path / "cifar"))
    for spec in ("builtin:mnist-cnn", "builtin:mnist-mlp?act=sigmoid", "builtin:mnist-relu2?h=8"):
        with pytest.raises(DatasetMissing, match=f"{tmp_path / 'mnist'}.*modelrecon data fetch mnist"):
            load(spec)
    with pytest.raises(DatasetMissing, match=str(tmp_path / "cifar")):
        load("builtin:cifar-cnn")


def test_cli_attack_surrogate_reports_agreement_and_ledger(tmp_path):
    from typer.testing import CliRunner

    from modelrecon.cli import app

    out = tmp_path / "r.json"
    r = CliRunner().invoke(app, ["attack", "surrogate", "--target", "builtin:digits-mlp?widths=8&seed=3",
                                 "--interface", "gradient", "--budget", "12", "--steps", "20", "--json", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert 0 <= d["metrics"]["agreement"] <= 1
    assert d["queries"]["by_kind"] == {"probabilities": 12, "gradient": 12}
    assert d["metrics"]["agreement_data"] == "test split of digits"


def test_evaluation_computes_the_targets_test_outputs_once_in_batches(monkeypatch):
    """A study evaluates many surrogates on one test split: the target's outputs there are computed
    once, in batches (a CNN on 10,000 images at once took gigabytes and twice the time), and the
    metrics are those of the whole split."""
    from modelrecon.evaluate import surrogate as ev

    target = load(TINY)
    X = np.random.default_rng(3).normal(size=(25, 6))
    y = target.forward_numpy(X).argmax(1)
    res = SurrogateAttack(budget=5, interface="label", strategy="uniform", steps=2).run(local_oracle(target))
    res.model = model = nn.Sequential(nn.Linear(6, 3)).double()
    calls = []
    forward = target.forward_numpy
    monkeypatch.setattr(target, "forward_numpy", lambda x: (calls.append(len(x)), forward(x))[1])
    monkeypatch.setattr(ev, "BATCH", 10)
    monkeypatch.setattr(ev, "_last_outputs", {})
    first = ev.evaluate_surrogate(res, target, X)
    assert calls[:3] == [10, 10, 5]  # the data split in batches; then the random probes
    calls.clear()
    second = ev.evaluate_surrogate(res, target, X)
    assert 25 not in calls and sum(calls) == 1000  # only the random probes asked the target again
    with torch.no_grad():
        s = model(torch.as_tensor(X)).numpy()
    assert first == second and first["agreement"] == np.mean(s.argmax(1) == y)
    with torch.no_grad():
        target.model[0].weight.add_(1.0)  # other weights: computed afresh
    calls.clear()
    ev.evaluate_surrogate(res, target, X)
    assert calls[:3] == [10, 10, 5]


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 8, 8), (3, 32, 32), (1, 7, 9), (1, 2, 2)])
def test_strided_cnn_surrogate_fits_every_image_size(shape):
    from modelrecon.attacks.surrogate import surrogate_factory

    model = surrogate_factory("strided-cnn")(shape, 10, 0)
    out = model(torch.zeros(3, *shape, dtype=torch.float64))
    assert out.shape == (3, 10) and out.dtype == torch.float64
    again = surrogate_factory("strided-cnn")(shape, 10, 0)  # seeded: the same initial weights
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
