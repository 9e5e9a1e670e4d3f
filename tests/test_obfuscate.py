"""Input obfuscation: exact invariance with the true span, the random-subspace control
fails, clipping and box projection, noise-as-class, and clear errors on bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from modelrecon.attacks.obfuscate import (Obfuscation, ObfuscationError, check_basis, load_basis, obfuscate,
                                          random_basis)
from modelrecon.evaluate import evaluate
from modelrecon.evaluate.obfuscate import true_span
from modelrecon.oracle import local_oracle
from modelrecon.targets import load

EPS = np.finfo(np.float64).eps
SPEC = "builtin:relu2?d=30&h=8&k=5&seed=3"


@pytest.fixture(scope="module")
def target():
    return load(SPEC)


@pytest.fixture(scope="module")
def inputs():
    return np.random.default_rng(100).normal(size=(200, 30))


def gradient_span(oracle, points: np.ndarray) -> np.ndarray:
    """Attack side: every input gradient of sigma(Ax) lies in rowspan(A); stack and orthonormalise."""
    G = np.concatenate([oracle.gradient(points, output=c) for c in range(oracle.n_outputs)])
    _, s, Vt = np.linalg.svd(G, full_matrices=False)
    return Vt[: int((s > s[0] * max(G.shape) * EPS).sum())]


def lipschitz_scale(target, X):
    """How large a rounding-level perturbation of the first layer can get at the logits:
    product of the layers' spectral norms times the input norms (evaluator side)."""
    L = np.prod([np.linalg.norm(W, 2) for W, _ in target.truth["layers"]])
    return L * np.linalg.norm(X, axis=1).max()


def test_true_span_is_exactly_invisible(target, inputs):
    B = true_span(target)
    assert B.shape == (8, 30)
    Xp, info = obfuscate(inputs, B, ratio=10.0, seed=1)
    assert info["noise_to_signal"] == pytest.approx(10.0, rel=1e-12)
    # noise orthogonal to x as well: cosine is exactly 1/sqrt(1 + ratio^2)
    assert info["cosine_to_original_max"] == pytest.approx(1 / np.sqrt(101), rel=1e-9)
    diff = np.abs(target.forward_numpy(Xp) - target.forward_numpy(inputs)).max()
    n = inputs.shape[1]
    tol = 4 * n * EPS * lipschitz_scale(target, Xp)  # float64 rounding of the projection and the forward pass
    assert diff <= tol, (diff, tol)


def test_attack_with_gradient_span_and_controls(target, inputs):
    oracle = local_oracle(target, ["gradient", "value", "probabilities", "label"])
    B = gradient_span(oracle, np.random.default_rng(5).normal(size=(20, 30)))
    assert B.shape[0] == 8
    result = Obfuscation(B, inputs, noise=5.0, seed=2).run(oracle)
    assert result.status == "complete"
    assert result.details["oracle_check"]["label_preserved_rate"] == 1.0
    assert result.queries["verify"]["by_kind"] == {"probabilities": 2 * len(inputs), "value": 2 * len(inputs)}
    m = evaluate(result, target)
    assert m["label_preserved_rate"] == 1.0
    assert m["max_principal_angle_rad"] < 1e-6
    assert m["max_abs_logit_difference"] <= 1e-9 * lipschitz_scale(target, result.params["obfuscated"])
    assert m["true_span_label_preserved_rate"] == 1.0
    # the control: noise in the complement of a random 8-dimensional subspace is seen
    assert m["random_subspace_label_preserved_rate"] < 0.6
    assert m["random_subspace_max_abs_logit_difference"] > 1e3 * m["max_abs_logit_difference"]
    assert m["cosine_to_original"] == pytest.approx(1 / np.sqrt(26), rel=1e-9)


def test_random_subspace_fails(target, inputs):
    B = random_basis(8, 30, seed=4)
    Xp, _ = obfuscate(inputs, B, ratio=5.0, seed=1)
    same = target.forward_numpy(Xp).argmax(1) == target.forward_numpy(inputs).argmax(1)
    assert same.mean() < 0.6


def test_clip_and_project_stay_in_box():
    t = load("builtin:digits-mlp")
    from modelrecon.data import digits

    X = digits().X_test[:15]
    B = true_span(t)
    clipped, _ = obfuscate(X, B, 5.0, seed=0, clip="clip", box=(0.0, 1.0))
    projected, info = obfuscate(X, B, 5.0, seed=0, clip="project", box=(0.0, 1.0))
    for Xp in (clipped, projected):
        assert Xp.min() >= 0.0 and Xp.max() <= 1.0
    # clipping breaks the invariance, the projection keeps it (rounding level)
    assert np.abs(t.forward_numpy(clipped) - t.forward_numpy(X)).max() > 1.0
    assert info["invariance_residual"] <= 64 * 64 * EPS * 8
    assert np.abs(t.forward_numpy(projected) - t.forward_numpy(X)).max() <= 1e-8
    assert info["noise_to_signal"] > 0.1


def test_noise_as_class(target, inputs):
    oracle = local_oracle(target, ["probabilities", "label"])
    B = true_span(target)
    # class 2 is never the top-1 of this network on these inputs: no exemplar, an honest failure
    failed = Obfuscation(B, inputs, noise=5.0, target_class=2, count=40).run(oracle)
    assert failed.status == "failed" and "no exemplar" in failed.message
    result = Obfuscation(B, inputs, noise=5.0, target_class=4, count=40).run(oracle)
    assert result.status == "complete"
    assert result.details["oracle_check"]["target_class_rate"] == 1.0
    m = evaluate(result, target)
    assert m["target_class_rate"] == 1.0
    assert m["random_subspace_target_class_rate"] < 0.9
    assert m["cosine_to_original"] < 0.25


def test_noise_drawn_again_when_it_vanishes(target):
    # the noise generator draws exactly the inputs themselves: removing the component along
    # each input's complement part leaves nothing, so it must draw again
    X = np.random.default_rng(0).normal(size=(5, 30))
    Xp, info = obfuscate(X, true_span(target), ratio=5.0, seed=0)
    assert info["noise_to_signal_min"] == pytest.approx(5.0, rel=1e-12)


def test_bad_inputs(target, inputs):
    oracle = local_oracle(target, ["label"])
    with pytest.raises(ObfuscationError, match="dimension 20"):
        Obfuscation(np.eye(30)[:8, :20], inputs).run(oracle)
    with pytest.raises(ObfuscationError, match="complement is empty"):
        Obfuscation(np.eye(30), inputs).run(oracle)
    with pytest.raises(ObfuscationError, match="linearly dependent"):
        Obfuscation(np.ones((3, 30)), inputs).run(oracle)
    with pytest.raises(ObfuscationError, match=r"shape \(64,\).*\(30,\)"):
        Obfuscation(true_span(target), np.zeros((4, 64)) + 1).run(oracle)
    with pytest.raises(ObfuscationError, match="zero"):
        Obfuscation(true_span(target), np.zeros((2, 30))).run(oracle)
    with pytest.raises(ObfuscationError, match="clip must be"):
        Obfuscation(true_span(target), inputs, clip="yes")
    with pytest.raises(ObfuscationError, match="input box"):
        Obfuscation(true_span(target), inputs, clip="clip").run(oracle)
    with pytest.raises(ObfuscationError, match="not a class"):
        Obfuscation(true_span(target), inputs, target_class=7).run(oracle)


def test_basis_files(tmp_path, target):
    B = true_span(target)
    np.savez(tmp_path / "span.npz", basis=B)
    np.save(tmp_path / "span.npy", B)
    np.savez(tmp_path / "other.npz", w=B)
    assert np.array_equal(load_basis(tmp_path / "span.npz"), B)
    assert np.array_equal(load_basis(tmp_path / "span.npy"), B)
    with pytest.raises(ObfuscationError, match="no array 'basis'"):
        load_basis(tmp_path / "other.npz")
    with pytest.raises(ObfuscationError, match="no span file"):
        load_basis(tmp_path / "missing.npz")
    # a non-orthonormal basis of the same span is re-orthonormalised, same span
    C, info = check_basis(np.array([[2.0, 1.0], [0.0, 3.0]]) @ B[:2], 30)
    assert info["reorthonormalised"]
    assert np.allclose(C @ C.T, np.eye(2), atol=1e-14)
    assert np.allclose((B[:2] @ C.T) @ C, B[:2], atol=1e-14)


def test_recovered_span_from_values(target, inputs):
    from modelrecon.attacks.obfuscate import recover_span

    oracle = local_oracle(target, ["value"])
    span = recover_span(oracle, "relu-value", output=0, points="region", centres=inputs[:50], ratio=5.0)
    assert span.status == "complete"
    B = span.params["basis"]
    result = Obfuscation(B, inputs, noise=5.0).run(oracle)
    m = evaluate(result, target)
    # the same from inside the attack, on a fresh oracle
    inside = Obfuscation(None, inputs, noise=5.0, recover={"setting": "relu-value", "output": 0,
                                                            "centres": inputs[:50]}).run(local_oracle(target, ["value"]))
    assert inside.details["span_recovery"]["dim"] == 8
    assert evaluate(inside, target)["label_preserved_rate"] == 1.0
    with pytest.raises(ObfuscationError, match="either a basis or recover"):
        Obfuscation(B, inputs, recover={"setting": "relu-value"})
    assert m["recovered_dim"] == m["true_dim"] == 8
    assert m["label_preserved_rate"] == 1.0
    assert m["random_subspace_label_preserved_rate"] < 0.6
    # the span queries and the check queries are both on the ledger
    assert result.queries["total"] == span.queries["total"] > 0
    assert result.queries["verify"]["by_kind"] == {"value": 2 * len(inputs)}
    with pytest.raises(ObfuscationError, match="points must be"):
        recover_span(oracle, points="anywhere", centres=inputs)
    with pytest.raises(ObfuscationError, match="centres"):
        recover_span(oracle, points="region", centres=None)


def test_cli(tmp_path, target, inputs):
    import json

    from typer.testing import CliRunner

    from modelrecon.cli import app

    np.savez(tmp_path / "span.npz", basis=true_span(target))
    np.save(tmp_path / "x.npy", inputs[:20])
    args = ["obfuscate", "--target", SPEC, "--span", str(tmp_path / "span.npz"), "--inputs", str(tmp_path / "x.npy"),
            "--noise", "5", "--out", str(tmp_path / "out"), "--json", str(tmp_path / "r.json")]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["attack"] == "obfuscate" and r["status"] == "complete"
    assert r["metrics"]["label_preserved_rate"] == 1.0
    assert (tmp_path / "out" / "grid.png").stat().st_size > 0
    # a basis for 64-dimensional inputs against a 30-dimensional target: a clear error
    np.savez(tmp_path / "wrong.npz", basis=np.eye(64)[:10])
    run = CliRunner().invoke(app, args[:4] + [str(tmp_path / "wrong.npz")] + args[5:])
    assert run.exit_code != 0
    assert "dimension 64" in str(run.exception)


def test_half_a_span_is_not_complete(target, inputs):
    """issue 12: obfuscate said 'complete' with 15 of 30 directions and 51% of labels kept."""
    half = true_span(target)[:4]
    oracle = local_oracle(target, ["value", "probabilities", "label"])
    result = Obfuscation(half, inputs, noise=5.0, seed=2).run(oracle)
    rate = result.details["oracle_check"]["label_preserved_rate"]
    assert rate < 1.0
    assert result.status == "partial" and "span is short" in result.message
    unchecked = Obfuscation(true_span(target), inputs, noise=5.0, check=False).run(oracle)
    assert unchecked.status == "partial" and "not checked" in unchecked.message


def test_cli_span_step_reaches_the_span_attack(tmp_path, inputs):
    """--span-step sets the span attack's finite-difference step (the MNIST runs need a larger
    one, docs/mnist.md); a step <= 0 is a one-line error."""
    import json

    from typer.testing import CliRunner

    from modelrecon.cli import app

    np.save(tmp_path / "x.npy", inputs[:20])
    args = ["obfuscate", "--target", SPEC, "--recover", "--inputs", str(tmp_path / "x.npy"), "--noise", "5",
            "--out", str(tmp_path / "out"), "--json", str(tmp_path / "r.json"), "--span-step", "0.01"]
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["details"]["span_recovery"]["details"]["step"] == 0.01
    assert r["metrics"]["recovered_dim"] == 8 and r["metrics"]["label_preserved_rate"] == 1.0
    run = CliRunner().invoke(app, args[:-1] + ["0"])
    assert run.exit_code != 0 and "--span-step must be > 0" in str(run.exception)


def test_obfuscation_sweep_recipe_draws_the_run_it_recorded(tmp_path):
    """configs/obfuscate-noise.toml at one point: the recipe's picture grid comes from the same run executed
    again (seeded from its key: the same metrics as recorded)."""
    import tomllib
    from pathlib import Path

    from modelrecon.sweep import ResultsDB, Study, run_attack, run_recipe, run_sweep

    cfg = tomllib.loads((Path(__file__).parent.parent / "configs" / "obfuscate-noise.toml").read_text())
    cfg["grid"] = {"attack": {"noise": [5]}, "seed": [0]}
    study = Study.from_dict(cfg)
    db = tmp_path / "o.sqlite"
    run_sweep(study, db=db, workers=0, progress=False)
    row = ResultsDB(db).rows(study.name)[0]
    assert row["status"] == "complete" and row["metrics"]["label_preserved_rate"] == 1.0
    assert row["metrics"]["random_subspace_label_preserved_rate"] < 0.5
    again, _ = run_attack(row["config"])
    assert {k: again.metrics[k] for k in row["metrics"]} == row["metrics"]
    grid, table = run_recipe(db, study.name, tmp_path / "figs")
    assert grid.name == "grid.png" and grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert table.name == "obfuscate-noise.md" and "| - | recovered span | 5 | none | complete |" in table.read_text()


def test_a_short_span_from_box_points_is_partial(target, inputs):
    """Regression: a span recovered at box points (details["points"] is the span attack's point count,
    not the region's table) that leaves directions out gave AttributeError instead of a partial verdict."""
    r = Obfuscation(None, inputs, noise=5.0, recover={"setting": "relu-value", "output": 0, "points": "box",
                                                      "max_points": 2}).run(local_oracle(target, ["value"]))
    assert r.status == "partial" and "short of the first layer's" in r.message
    assert r.details["span_recovery"]["dim"] < 8 and "points='box'" not in r.message
