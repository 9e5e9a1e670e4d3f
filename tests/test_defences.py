"""The operator's trade-off (issue 17): the audit's advice, tested against served models, and the
honest-user cost measures."""

from __future__ import annotations

import numpy as np

from modelrecon.evaluate import evaluate
from modelrecon.oracle import OracleError
from modelrecon.serve.app import ApiKey, OutputOptions, ServerThread, Service, create_app
from modelrecon.serve.audit import AUDIT_ATTACKS, LADDER, audit, explanation_fidelity
from modelrecon.serve.client import http_oracle
from modelrecon.targets import load

KEYS = [ApiKey("alice", "alice-secret-1")]
EXPLANATIONS = ["integrated-gradients", "saliency"]
# rounding to 2 and 8 decimals and 1% noise (the whole ladder: `audit --ladder`; absolute values, whose what-if
# costs the IG attack ~1100 queries over HTTP before it fails, are left out to keep the test short)
LADDER_SHORT = [d for d in LADDER if d.option in ({"round_decimals": 2}, {"round_decimals": 8},
                                                  {"explanation_noise": 0.01})]


def test_audit_advice_stops_each_named_attack(tmp_path):
    """The audit finds both exact attacks through defended explanations, names for each the cheapest option
    that stops it, and a service with that option in force does stop it."""
    target = load("builtin:relu2?d=12&h=3&seed=0")
    service = Service(target, explanations=EXPLANATIONS, keys=KEYS)
    with ServerThread(create_app(service)) as server:
        rep = audit(server.url, "alice-secret-1", 20000, tmp_path / "audit", probes=20,
                    attacks=["relu2-ig", "relu2-saliency"], defences=LADDER_SHORT)
    for name in ("relu2-ig", "relu2-saliency"):
        assert rep["attacks"][name]["exact_copy"], rep["attacks"][name]["message"]
    # rounding (even to 2 decimals) does not stop the IG attack: the audit must not recommend it
    row = next(d for d in rep["defences"] if d["option"] == "round to 2 decimals")
    assert row["attacks"]["relu2-ig"]["exact_copy"]
    assert rep["advice"]["relu2-ig"]["cheapest_stop"] == "1% noise on explanations"
    html = (tmp_path / "audit" / "audit.html").read_text()
    assert 'id="advice"' in html
    for name, advice in rep["advice"].items():
        assert advice["cheapest_stop"] is not None, (name, advice)
        defended = Service(target, explanations=EXPLANATIONS, keys=KEYS, options=OutputOptions(**advice["setting"]))
        with ServerThread(create_app(defended)) as server:
            oracle = http_oracle(server.url, "alice-secret-1", budget=20000)
            entry = next(a for a in AUDIT_ATTACKS if a.name == name)
            try:
                result = entry.load()(**entry.kwargs(oracle.metadata, {})).run(oracle)
            except OracleError:  # the option withdrew what the attack needs
                continue
        evaluate(result, target)
        assert result.status != "complete" or result.metrics["parameter_relative_error"] > 1e-9, (name, advice)


def test_explanation_fidelity_measures():
    rng = np.random.default_rng(0)
    e = {"k": rng.normal(size=(5, 50))}
    same = explanation_fidelity(e, e)
    assert same["explanation_relative_error"] == 0.0 and same["explanation_top10_overlap"] == 1.0
    assert abs(same["explanation_rank_correlation"] - 1.0) < 1e-12
    noisy = explanation_fidelity(e, {"k": e["k"] + rng.normal(size=(5, 50))})
    assert noisy["explanation_relative_error"] > 0.5 and noisy["explanation_rank_correlation"] < 0.9
    flipped = explanation_fidelity(e, {"k": np.abs(e["k"])})
    assert flipped["explanation_top10_overlap"] == 1.0 and flipped["explanation_rank_correlation"] < 0.9


def test_what_if_grows_a_clone_that_an_option_only_delays(tmp_path, monkeypatch):
    """A growing attack (the surrogate) that an option costs agreement at the points it needed without it,
    but not at twice as many, is delayed, not stopped: the what-if re-run grows its points as far as its
    share pays (it used to re-run at the same points only, and the advice named the option as a stop)."""
    import copy

    import torch

    from modelrecon.attacks import Attack
    from modelrecon.result import Result
    from modelrecon.serve import audit as au

    target = load("builtin:mlp?d=6&widths=5&k=3&seed=1")
    wrong = copy.deepcopy(target.model)
    with torch.no_grad():  # the argmin of the logits: a clone that disagrees with the service
        wrong[-1].weight.neg_()
        wrong[-1].bias.neg_()

    class NeedsPoints(Attack):
        """Agrees with the service from 32 points on, or 64 when answers are rounded."""
        name = "needs-points"

        def __init__(self, budget: int, rounded: bool):
            self.budget, self.rounded = budget, rounded

        def execute(self, oracle):
            oracle.query(np.random.default_rng(0).uniform(size=(self.budget, 6)), ["label"])
            enough = self.budget >= (64 if self.rounded else 32)
            return Result(self.name, "complete", "", model=target.model if enough else wrong)

    entry = au.AuditAttack("needs-points", __name__, "NeedsPoints", False, lambda meta: None,
                           lambda meta, ctx: {"budget": ctx["points"],
                                              "rounded": meta["options"].get("round_decimals") is not None},
                           grows=True)
    entry.load = lambda: NeedsPoints
    monkeypatch.setattr(au, "AUDIT_ATTACKS", [entry])
    rounding = next(d for d in au.DEFENCES if d.option == {"round_decimals": 2})
    with ServerThread(create_app(Service(target, explanations=[], keys=KEYS))) as server:
        rep = au.audit(server.url, "alice-secret-1", 1000, tmp_path / "audit", probes=20, defences=[rounding])
    assert rep["attacks"]["needs-points"]["points"] == 32 and rep["attacks"]["needs-points"]["succeeded"]
    row = rep["defences"][0]["attacks"]["needs-points"]
    assert row["points"] == 64 and row["succeeded"] and not row["stopped"]
    assert row["queries"] == 64  # 64 points once each: the 32 asked first are replayed, not counted twice
    assert rep["advice"]["needs-points"]["cheapest_stop"] is None


def test_precision_study_is_a_sweep_with_a_recipe(tmp_path):
    """configs/defences-precision.toml at a few of its points: rounding to 2 decimals bounds only the naive
    attacker; a budget that does not pay for an attacker is a partial run, a '-' in the recipe's table."""
    import tomllib
    from pathlib import Path

    from modelrecon.sweep import ResultsDB, Study, run_recipe, run_sweep

    cfg = tomllib.loads((Path(__file__).parent.parent / "configs" / "defences-precision.toml").read_text())
    cfg["grid"]["case"] = [c for c in cfg["grid"]["case"] if c["labels"]["defence"] == "round to 2 decimals"
                           and c["labels"]["model"].startswith("linear")
                           or c["labels"]["attacker"].startswith("gradient only") and "1%" in c["labels"]["defence"]]
    cfg["grid"]["oracle"] = {"budget": [1000]}
    study = Study.from_dict(cfg)
    db = tmp_path / "p.sqlite"
    run_sweep(study, db=db, workers=0, progress=False)
    errors = {r["point"]["attacker"]: (r["status"], r["metrics"].get("parameter_relative_error"))
              for r in ResultsDB(db).rows(study.name)}
    assert 1e-3 < errors["naive: 1 gradient + 1 value"][1] < 0.1
    assert errors["adaptive: d + 1 values at steps of 2^40, b by bisection"][1] < 1e-12
    assert errors["adaptive: 1 IG answer 2^40 from the baseline, b by bisection"][1] < 1e-12
    assert errors["gradient only: gradient mode on the mean of b/250 answers"][0] == "partial"
    md, png = run_recipe(db, study.name, tmp_path / "figs")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| relu2 d=16 h=4 seed=0 | noise 1% of RMS | gradient only: gradient mode on the mean of b/250 answers | - |" \
        in md.read_text()
