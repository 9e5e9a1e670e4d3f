"""The explanation service, its HTTP oracle, the detector and the audit, on a real loopback server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelrecon.attacks.linear import LinearAttack
from modelrecon.oracle import OracleError, QueryBudgetExceeded
from modelrecon.serve.app import ApiKey, Limits, OutputOptions, ServerThread, Service, create_app
from modelrecon.serve.client import http_oracle
from modelrecon.serve.detect import Detector
from modelrecon.targets import load

KEYS = [ApiKey("alice", "alice-secret-1"), ApiKey("bob", "bob-secret-12", quota=12),
        ApiKey("slow", "slow-secret-1", rate=20.0, burst=2), ApiKey("root", "root-secret-1", admin=True)]
SPEC = "builtin:logistic?d=20&seed=3"


@pytest.fixture(scope="module")
def target():
    return load(SPEC)


@pytest.fixture(scope="module")
def served(target, tmp_path_factory):
    db = tmp_path_factory.mktemp("svc") / "log.sqlite"
    service = Service(target, explanations=["gradient", "smoothgrad", "integrated-gradients"], keys=KEYS, db=db,
                      limits=Limits(max_batch=64, max_body_bytes=200_000))
    with ServerThread(create_app(service)) as server:
        yield service, server


def post(server, path, body=None, key="alice-secret-1", **kw):
    headers = {"X-API-Key": key} if key else {}
    if body is not None and not isinstance(body, (bytes, str)):
        return httpx.post(server.url + path, json=body, headers=headers, timeout=30, **kw)
    return httpx.post(server.url + path, content=body, headers={**headers, "content-type": "application/json"},
                      timeout=30, **kw)


def test_exact_extraction_over_http_ledger_equals_server_log(served, target):
    service, server = served
    before = service.logged_total("alice")
    oracle = http_oracle(server.url, "alice-secret-1", batch_size=4, concurrency=4)
    assert oracle.input_shape == (20,) and oracle.task == "binary"
    assert "explanation:smoothgrad" in oracle.kinds and oracle.options["ig_steps"] == 32
    for method in ("gradient", "equations"):  # one query; and d+1 values sent as 6 concurrent batches
        result = LinearAttack(method=method).run(oracle)
        assert result.status == "complete", result.message
        w, b = target.truth["w"], target.truth["b"]
        err = np.linalg.norm(np.append(result.params["w"] - w, result.params["b"] - b)) / np.linalg.norm(np.append(w, b))
        assert err < 1e-12
    spent = service.logged_total("alice") - before
    assert oracle.ledger.total() == spent == 2 + 2 + 21 + 2  # gradient+value, verify, d+1 values, verify
    assert oracle.usage()["spent"] == service.logged_total("alice")


def test_quota_exhaustion_partial_then_resume_without_repeating(served, tmp_path):
    service, server = served
    journal = tmp_path / "bob.sqlite"
    oracle = http_oracle(server.url, "bob-secret-12", journal=journal)
    first = LinearAttack(method="equations").run(oracle)  # needs 21 values + 2 verify; quota 12
    assert first.status == "partial" and "quota" in first.message
    assert oracle.ledger.total() == 12 == service.logged_total("bob")
    r = httpx.put(server.url + "/admin/keys/bob", json={"quota": 100}, headers={"X-API-Key": "root-secret-1"})
    assert r.status_code == 200 and r.json()["quota"] == 100
    again = http_oracle(server.url, "bob-secret-12", journal=journal)
    second = LinearAttack(method="equations").run(again)
    assert second.status == "complete", second.message
    assert again.ledger.replayed["value"] == 12  # the answered prefix came from the journal
    assert again.ledger.total() == 23 - 12
    assert service.logged_total("bob") == 23
    asked = service.logged_inputs("bob")
    assert len(asked) == 23 and len(np.unique(asked, axis=0)) == 23  # no input was paid for twice


@pytest.mark.parametrize("body, status, code", [
    ({"inputs": [[0.0] * 19]}, 422, "bad_shape"),
    ({"inputs": [[0.0] * 20, [0.0] * 19]}, 422, "bad_dtype"),  # ragged
    ({"inputs": [["0"] * 20]}, 422, "bad_dtype"),
    ({"inputs": [[True] * 20]}, 422, "bad_dtype"),
    ({"inputs": [[None] * 20]}, 422, "bad_dtype"),
    ({"inputs": []}, 422, "bad_inputs"),
    ({"inputs": [[0.0] * 20] * 65}, 413, "batch_too_large"),
    ({"inputs": [[0.0] * 20], "outputs": ["logits"]}, 422, "not_offered"),
    ({"inputs": [[0.0] * 20], "extra": 1}, 422, "bad_request"),
    (b'{"inputs": [[NaN' + b", 0" * 19 + b"]]}", 422, "non_finite"),
    (b'{"inputs": [[Infinity' + b", 0" * 19 + b"]]}", 422, "non_finite"),
    (b'{"inputs": [[0, 1', 400, "malformed_json"),
    (b'{"inputs": [' + b"[0.5],  " * 40_000 + b"]}", 413, "body_too_large"),
])
def test_bad_requests_get_4xx_and_cost_nothing(served, body, status, code):
    service, server = served
    before = service.logged_total("alice")
    r = post(server, "/v1/predict", body)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]
    assert service.logged_total("alice") == before
    ok = post(server, "/v1/predict", {"inputs": [[0.1] * 20], "outputs": ["label"]})  # the server lives on
    assert ok.status_code == 200 and ok.json()["charged"] == 1


def test_explain_validation_and_chunked_oversized_body(served):
    service, server = served
    r = post(server, "/v1/explain", {"inputs": [[0.1] * 20], "methods": ["deeplift"]})
    assert r.status_code == 422 and r.json()["error"]["code"] == "not_offered"
    r = post(server, "/v1/explain", {"inputs": [[0.1] * 20], "output": 3})
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_output"
    r = post(server, "/v1/explain", {"inputs": [[0.1] * 20], "methods": ["gradient", "smoothgrad"],
                                     "predictions": ["probabilities"]})
    assert r.status_code == 200 and r.json()["charged"] == 3
    assert np.asarray(r.json()["explanations"]["smoothgrad"]).shape == (1, 20)
    assert set(r.json()["predictions"]) == {"probabilities"}
    chunks = (b"[0.5, 0.5, 0.5, 0.5]," * 1000 for _ in range(20))  # no content-length: counted while read
    r = httpx.post(server.url + "/v1/predict", content=chunks, headers={"X-API-Key": "alice-secret-1"}, timeout=30)
    assert r.status_code == 413
    assert post(server, "/v1/predict", {"inputs": [[0.1] * 20]}).status_code == 200


def test_wrong_or_missing_key_is_refused(served):
    service, server = served
    assert post(server, "/v1/predict", {"inputs": [[0.1] * 20]}, key="wrong-key-123").status_code == 401
    assert post(server, "/v1/predict", {"inputs": [[0.1] * 20]}, key=None).status_code == 401
    assert httpx.get(server.url + "/admin", headers={"X-API-Key": "alice-secret-1"}).status_code == 403
    with pytest.raises(OracleError, match="refused the key"):
        LinearAttack().run(http_oracle(server.url, "wrong-key-123"))
    summary = httpx.get(server.url + "/admin", headers={"X-API-Key": "root-secret-1"}).json()
    assert summary["keys"]["?"]["refused"].get("bad_key", 0) >= 2


def test_retries_are_never_charged_twice(served):
    service, server = served
    body = {"inputs": [[0.2] * 20], "outputs": ["value"], "request_id": "fixed-id-1"}
    a, b = post(server, "/v1/predict", body), post(server, "/v1/predict", body)
    assert a.json()["charged"] == 1 and b.json()["charged"] == 0 and b.json()["replayed"]
    assert a.json()["predictions"] == b.json()["predictions"]
    assert post(server, "/v1/predict", {**body, "inputs": [[0.3] * 20]}).status_code == 409
    # the same request_id sent 6 times at once is charged once (the others wait: 409 in_progress, or replay)
    from concurrent.futures import ThreadPoolExecutor

    before = service.logged_total("alice")
    same = {"inputs": [[0.4] * 20] * 8, "outputs": ["value"], "request_id": "fixed-id-2"}
    with ThreadPoolExecutor(6) as pool:
        codes = sorted(r.status_code for r in pool.map(lambda _: post(server, "/v1/predict", same), range(6)))
    assert 200 in codes and set(codes) <= {200, 409}
    assert service.logged_total("alice") - before == 8
    # a rate-limited key: concurrent batches get 429s, the client backs off and retries
    before = service.logged_total("slow")
    oracle = http_oracle(server.url, "slow-secret-1", batch_size=2, concurrency=4, backoff=0.02)
    X = np.random.default_rng(0).normal(size=(30, 20))
    oracle.query(X, ("value",))
    assert oracle.connection.retried > 0
    assert oracle.ledger.total() == service.logged_total("slow") - before == 30


def test_output_options_and_metadata(target):
    service = Service(target, explanations=["gradient", "saliency-signed"], keys=KEYS,
                      options=OutputOptions(round_decimals=3, abs_explanations=True, explanation_noise=0.5))
    with ServerThread(create_app(service)) as server:
        meta = httpx.get(server.url + "/v1/metadata").json()
        assert meta["explanations"] == ["gradient", "saliency-signed"] and meta["options"]["round_decimals"] == 3
        assert meta["options"]["abs_explanations"] and meta["classes"] == [0, 1]
        schema = httpx.get(server.url + "/openapi.json").json()
        assert {"/v1/predict", "/v1/explain", "/v1/metadata", "/admin"} <= set(schema["paths"])
        r = post(server, "/v1/explain", {"inputs": [[0.5] * 20] * 2, "methods": ["gradient"],
                                         "predictions": ["probabilities"]}).json()
        g = np.asarray(r["explanations"]["gradient"])
        p = np.asarray(r["predictions"]["probabilities"])
        assert (g >= 0).all() and np.array_equal(np.round(p, 3), p)
        w = target.truth["w"]
        assert not np.allclose(g[0], np.abs(w), atol=1e-3)  # noise
        assert not np.array_equal(g[0], g[1])  # fresh noise per answer
        result = LinearAttack().run(http_oracle(server.url, "alice-secret-1"))
        assert result.status == "failed"  # |gradient| with noise is not a linear model's gradient
    labels = Service(target, keys=KEYS, options=OutputOptions(label_only=True))
    assert labels.metadata()["kinds"] == ["label"]


def test_log_and_usage_survive_a_restart(target, tmp_path):
    db = tmp_path / "log.sqlite"
    s1 = Service(target, keys=KEYS, db=db)
    with ServerThread(create_app(s1)) as server:
        v = np.linspace(-1, 1, 20)
        http_oracle(server.url, "bob-secret-12").query(np.arange(5.0)[:, None] * v, ("value", "label"))
    assert s1.admin_summary()["keys"]["bob"]["warnings"] == []  # 5 points on a line: not yet
    s1.close()
    s2 = Service(target, keys=KEYS, db=db)
    assert s2.logged_total("bob") == 10 and s2.spent["bob"] == 10
    with ServerThread(create_app(s2)) as server:
        r = post(server, "/v1/predict", {"inputs": [[0.0] * 20] * 3}, key="bob-secret-12")
        assert r.status_code == 403 and r.json()["error"]["quota_remaining"] == 2
        assert http_oracle(server.url, "bob-secret-12").usage()["spent"] == 10
        r = post(server, "/v1/predict", {"inputs": [(7.0 * v).tolist()], "outputs": ["label"]}, key="bob-secret-12")
        assert r.status_code == 200
    # the detector's window was refilled from the log: the 6th point on the line, after the restart, is flagged
    assert [w["signal"] for w in s2.admin_summary()["keys"]["bob"]["warnings"]] == ["line"]


def test_detector_flags_attacks_not_ordinary_digits():
    from modelrecon.data import digits

    ds = digits()
    det = Detector(64, (0.0, 1.0))
    honest = ds.X_test
    for u in range(10):  # ten users sending batches of test digits
        rng = np.random.default_rng(u)
        for _ in range(5):
            assert det.observe(f"user{u}", honest[rng.choice(len(honest), 8)]) == []
    x0 = honest[0]
    axis = np.concatenate([x0[None], x0[None] + 0.05 * np.eye(64)[:20]])
    flags = det.observe("tramer", axis)
    assert [f.signal for f in flags] == ["axis-probes"] and flags[0].at_query <= 10
    v = np.random.default_rng(1).normal(size=64)
    t = np.array([0.0, 1.0, 0.5, 0.75, 0.625, 0.6875])  # bisection along a line
    flags = det.observe("milli", x0 + t[:, None] * v, queries_before=100)
    assert {"line", "bisection", "far-out"} <= {f.signal for f in flags}
    assert min(f.at_query for f in flags) <= 106


def test_cli_serve(tmp_path, monkeypatch):
    """``modelrecon serve`` builds the service from its options; uvicorn.run is swapped for a loopback thread."""
    import uvicorn
    from typer.testing import CliRunner

    from modelrecon.cli import app

    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"ci": {"key": "ci-secret-123", "quota": 50}}))
    seen = {}

    def run(asgi, host, port, **kw):
        with ServerThread(asgi) as server:
            o = http_oracle(server.url, "ci-secret-123")
            seen["meta"] = o.metadata
            seen["g"] = o.gradient(np.ones((3, 8)))
            seen["spent"] = o.usage()["spent"]

    monkeypatch.setattr(uvicorn, "run", run)
    r = CliRunner().invoke(app, ["serve", "builtin:relu2?d=8&h=4", "--port", "8123", "--keys", str(keys), "--db",
                                 str(tmp_path / "log.sqlite"), "--explanations", "gradient,integrated-gradients",
                                 "--round", "6"])
    assert r.exit_code == 0, r.output
    assert seen["meta"]["explanations"] == ["gradient", "integrated-gradients"]
    assert seen["meta"]["options"]["round_decimals"] == 6
    assert seen["g"].shape == (3, 8) and seen["spent"] == 3


CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install -y chromium) to render the report")
def test_audit_report_renders_in_headless_chromium(target, tmp_path):
    from modelrecon.serve.audit import audit

    service = Service(target, explanations=["gradient", "smoothgrad"], keys=KEYS)
    with ServerThread(create_app(service)) as server:
        rep = audit(server.url, "alice-secret-1", 600, tmp_path / "audit", probes=50, attacks=["linear", "span"])
        assert rep["server_queries_spent"] == service.logged_total("alice") <= 600
    assert rep["verdict"]["exact_copy"] and rep["attacks"]["linear"]["agreement"] == 1.0
    q95 = rep["verdict"]["queries_to_95_agreement"]
    stopped = {d["option"]: d["attacks"]["linear"]["stopped"] for d in rep["defences"]}
    assert stopped["absolute-value explanations"] and stopped["label only"]
    assert not stopped["round to 2 decimals"]
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          f"--user-data-dir={tmp_path / 'chromium'}", "--dump-dom",
                          (tmp_path / "audit" / "audit.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert 'id="exact-copy">YES<' in dom
    assert f'id="queries-to-95">{q95}<' in dom
    assert "figures decoded: 2 of 2" in dom  # the embedded PNGs decoded in the browser
    assert 'id="span-recovered">1 of 20 dimensions' in dom  # a logistic model's span is its weight vector
    assert "absolute-value explanations" in dom and "stopped" in dom


def test_cli_attack_and_audit_a_service_url(served, tmp_path):
    from typer.testing import CliRunner

    from modelrecon.cli import app

    service, server = served
    env = {"MODELRECON_API_KEY": "alice-secret-1"}
    r = CliRunner().invoke(app, ["attack", "linear", "--target", server.url, "--json", str(tmp_path / "r.json")], env=env)
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "complete"
    r = CliRunner().invoke(app, ["audit", server.url, "--budget", "300", "--out", str(tmp_path / "a"), "--probes", "20",
                                 "--no-what-if", "--attacks", "linear"], env=env)
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "a" / "audit.json").read_text())
    assert rep["verdict"]["exact_copy"] and rep["defences"] == []


def test_exact_relu2_extraction_over_http(tmp_path):
    from modelrecon.attacks.relu2 import Relu2Attack
    from modelrecon.evaluate import evaluate

    target = load("builtin:relu2?d=20&h=8&seed=1")
    service = Service(target, explanations=["gradient"], keys=KEYS, db=tmp_path / "log.sqlite")
    with ServerThread(create_app(service)) as server:
        oracle = http_oracle(server.url, "alice-secret-1", batch_size=8, concurrency=4)
        result = Relu2Attack(mode="gradient").run(oracle)
        assert result.status == "complete", result.message
        evaluate(result, target)
        assert result.metrics["fidelity_relative_error"] < 1e-9
        assert oracle.ledger.total() == service.logged_total("alice") == oracle.usage()["spent"] > 0
        flagged = {w["signal"] for w in httpx.get(server.url + "/admin", headers={"X-API-Key": "root-secret-1"}
                                                  ).json()["keys"]["alice"]["warnings"]}
        assert "line" in flagged  # the line search is what the detector looks for


def test_lost_responses_are_retried_and_charged_once(served):
    """A response lost after the service charged it (a time-out): the retry carries the same
    request_id, the service answers from its log, and the ledger still equals the log."""
    service, server = served

    class Lossy(httpx.HTTPTransport):
        lost = 0

        def handle_request(self, request):
            response = super().handle_request(request)
            if request.method == "POST" and Lossy.lost < 3:
                response.read()
                Lossy.lost += 1
                raise httpx.ReadTimeout("response lost", request=request)
            return response

    before = service.logged_total("alice")
    oracle = http_oracle(server.url, "alice-secret-1", transport=Lossy(), batch_size=5, concurrency=1, backoff=0.01)
    X = np.random.default_rng(3).normal(size=(12, 20))
    got = oracle.query(X, ("value", "label"))
    assert Lossy.lost == 3 and oracle.connection.retried == 3
    assert got["value"].shape == (12,)
    assert oracle.ledger.total() == service.logged_total("alice") - before == 24


def test_concurrent_batches_near_the_quota_keep_the_prefix(target, tmp_path):
    """A key with a quota: the client knows what is left before its first batch, so batches that
    would not all fit are sent one by one and the answered prefix has no gap."""
    service = Service(target, keys=[ApiKey("q", "quota-secret-1", quota=50)], db=tmp_path / "log.sqlite")
    with ServerThread(create_app(service)) as server:
        oracle = http_oracle(server.url, "quota-secret-1", journal=tmp_path / "j.sqlite", batch_size=4, concurrency=4)
        X = np.random.default_rng(5).normal(size=(30, 20))
        with pytest.raises(QueryBudgetExceeded, match="quota") as info:
            oracle.query(X, ("value", "label"))
        assert info.value.answered == 25
        assert oracle.ledger.total() == service.logged_total("q") == 50
        assert len(oracle.journal) == 50


def test_audit_takes_mnist_probes_and_pool(tmp_path, fake_mnist):
    """`audit --data mnist` (and any known data set) reads the honest probes from the test split and the
    attacker's pool from the pool split; it used to accept `digits` only ("known: digits")."""
    from modelrecon.serve.audit import audit

    fake_mnist(3, 12, 7, seed=2)
    target = load("builtin:relu2?d=784&h=2&k=3&seed=0")
    service = Service(target, explanations=["gradient"], keys=KEYS)
    with ServerThread(create_app(service)) as server:
        rep = audit(server.url, "alice-secret-1", 400, tmp_path / "audit", data="mnist", probes=5,
                    attacks=["surrogate"], what_if=False)
        with pytest.raises(OracleError, match="known: digits, mnist, cifar10"):
            audit(server.url, "alice-secret-1", 400, tmp_path / "audit2", data="fashion", attacks=["surrogate"])
    assert rep["probes"] == "5 test inputs of mnist"
    assert rep["attacks"]["surrogate"]["details"]["strategy"] == "pool"
