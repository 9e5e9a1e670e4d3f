"""The service against crashes and hostile requests (issue 13): one transaction per answer, admin
changes that survive restarts, validated keys and options, limits before authentication, strict
types, one refusal format, time-outs for stalled connections."""

from __future__ import annotations

import json
import re
import socket
import sqlite3
import time

import httpx
import numpy as np
import pytest

from modelrecon.serve.app import ApiKey, Limits, ServerThread, Service, create_app
from modelrecon.targets import load

SPEC = "builtin:logistic?d=20&seed=3"
KEYS = [ApiKey("alice", "alice-secret-1"), ApiKey("eve", "eve-secret-12"), ApiKey("root", "root-secret-1", admin=True)]


@pytest.fixture(scope="module")
def target():
    return load(SPEC)


class _Crash(BaseException):
    """The process dies here: nothing after this statement runs."""


class _DiesAt:
    """A connection that dies (like kill -9) when it reaches a statement."""

    def __init__(self, db: sqlite3.Connection, statement: str):
        self.db, self.statement = db, statement

    def execute(self, sql, *args):
        if sql.startswith(self.statement):
            raise _Crash(sql)
        return self.db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.db, name)


def test_a_crash_between_charge_and_stored_answer_charges_nothing(target, tmp_path):
    """Defect 1: the charge row and the stored answer are one transaction; a crash between them
    leaves neither, so the client's retry after the restart is charged exactly once."""
    db = tmp_path / "log.sqlite"
    body = {"inputs": [[0.1] * 20] * 3, "outputs": ["value"], "request_id": "r-1"}
    s1 = Service(target, keys=KEYS, db=db)
    real = s1.db
    s1.db = _DiesAt(real, "INSERT INTO responses")
    key = s1.authenticate("alice-secret-1")
    with pytest.raises(_Crash):
        s1.answer(key, "predict", body)
    real.close()  # the process is gone: its open transaction with it
    s2 = Service(target, keys=KEYS, db=db)
    resp = s2.answer(s2.authenticate("alice-secret-1"), "predict", body)  # the client's retry
    assert resp["charged"] == 3
    assert s2.logged_total("alice") == 3
    again = s2.answer(s2.authenticate("alice-secret-1"), "predict", body)
    assert again["charged"] == 0 and again["replayed"]
    assert s2.logged_total("alice") == 3
    assert s2.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_admin_changes_survive_a_restart(target, tmp_path):
    """Defect 2: an admin's block on a key outlives the restart; the keys file still says which
    keys exist (a key removed from it is revoked) and sets what no admin changed."""
    db = tmp_path / "log.sqlite"
    s1 = Service(target, keys=KEYS, db=db)
    assert s1.set_key("eve", quota=0) == {"name": "eve", "quota": 0, "rate": None, "burst": None}
    s1.set_key("alice", rate=7.5)
    s1.close()
    keys = [ApiKey("alice", "alice-secret-1", quota=100, rate=3.0), ApiKey("eve", "eve-secret-12", quota=50),
            ApiKey("root", "root-secret-1", admin=True)]
    s2 = Service(target, keys=keys, db=db)
    eve = s2.authenticate("eve-secret-12")
    assert eve["quota"] == 0  # the admin's block holds
    alice = s2.authenticate("alice-secret-1")
    assert alice["quota"] == 100 and alice["rate"] == 7.5  # the file's quota, the admin's rate
    from modelrecon.serve.app import ServiceError

    with pytest.raises(ServiceError, match="quota"):
        s2.answer(eve, "predict", {"inputs": [[0.0] * 20]})
    s2.close()
    s3 = Service(target, keys=keys[:1] + keys[2:], db=db)  # eve removed from the file: revoked
    with pytest.raises(ServiceError, match="not known"):
        s3.authenticate("eve-secret-12")


def test_local_oracle_refuses_rounding_outside_0_15(target):
    """Defect 3: the local oracle refuses what the service refuses, instead of answering NaN."""
    from modelrecon.oracle import OracleError, local_oracle

    for bad in (400, -1, 16, 2.5, True):
        with pytest.raises(OracleError, match=r"\[0, 15\]"):
            local_oracle(target, round_decimals=bad)
    assert local_oracle(target, round_decimals=15).value(np.zeros(20)) == pytest.approx(target.truth["b"], abs=1e-15)


@pytest.mark.parametrize("args", [["--round", "400"], ["--round", "-1", "--method", "equations"]])
def test_cli_refuses_rounding_outside_0_15(args):
    from typer.testing import CliRunner

    from modelrecon.cli import app

    r = CliRunner().invoke(app, ["attack", "linear", "--target", "builtin:logistic?d=10", *args])
    assert r.exit_code != 0 and "[0, 15]" in str(r.exception)


class _Killed(BaseException):
    """The client process dies."""


class _DiesAfterAnswers(httpx.HTTPTransport):
    """Real HTTP; the client dies right after the service answered its n-th predict request."""

    def __init__(self, n: int):
        super().__init__()
        self.left = n

    def handle_request(self, request):
        response = super().handle_request(request)
        if request.url.path == "/v1/predict":
            self.left -= 1
            if self.left == 0:
                response.read()
                raise _Killed()
        return response


def test_a_resumed_http_run_is_not_charged_again_for_requests_in_flight(target, tmp_path):
    """Defect 4: request ids are journaled before the requests are sent; after a kill, the resumed
    run sends the batches in flight under the same ids and the service replays them for free."""
    from modelrecon.serve.client import http_oracle

    service = Service(target, keys=KEYS, db=tmp_path / "log.sqlite")
    X = np.random.default_rng(0).normal(size=(10, 20))
    journal = tmp_path / "run.sqlite"
    with ServerThread(create_app(service)) as server:
        dying = http_oracle(server.url, "alice-secret-1", journal=journal, batch_size=4, concurrency=1,
                            transport=_DiesAfterAnswers(2))
        with pytest.raises(_Killed):
            dying.query(X, ("value",))
        assert service.logged_total("alice") == 8  # two batches answered and charged, none journaled
        dying.journal.close()
        resumed = http_oracle(server.url, "alice-secret-1", journal=journal, batch_size=4, concurrency=1)
        values = resumed.query(X, ("value",))["value"]
    assert np.allclose(values, target.forward_numpy(X)[:, 0], rtol=0, atol=1e-12)
    assert service.logged_total("alice") == 10  # each query charged exactly once


# -- defects 5-9: validation, limits before authentication, strict types, one refusal format, time-outs


@pytest.mark.parametrize("entry, bad", [
    ({"key": "k" * 10, "quota": "lots"}, "lots"), ({"key": "k" * 10, "quota": -1}, "-1"),
    ({"key": "k" * 10, "quota": 2 ** 70}, str(2 ** 70)), ({"key": "k" * 10, "rate": 0}, "0"),
    ({"key": "k" * 10, "rate": "fast"}, "fast"), ({"key": "k" * 10, "burst": 0.5}, "0.5"),
    ({"key": "k" * 10, "admin": "yes"}, "yes"), ({"key": 12345678}, "key"), ({"key": "short"}, "8 characters"),
])
def test_a_bad_keys_file_is_refused_naming_the_value(tmp_path, entry, bad):
    from modelrecon.serve.app import read_keys

    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"mallory": entry}))
    with pytest.raises(ValueError, match="mallory") as e:
        read_keys(path)
    assert bad in str(e.value)


@pytest.mark.parametrize("option, value", [("--max-batch", "0"), ("--max-body-bytes", "-1"), ("--quota", "-5"),
                                           ("--rate", "-1"), ("--rate", "inf"), ("--port", "70000"),
                                           ("--address-rate", "0"), ("--header-timeout", "0")])
def test_cli_serve_refuses_bad_options(tmp_path, option, value):
    from typer.testing import CliRunner

    from modelrecon.cli import app

    r = CliRunner().invoke(app, ["serve", "builtin:logistic?d=4", "--db", str(tmp_path / "log.sqlite"), option, value])
    assert r.exit_code != 0 and value.lstrip("-") in str(r.exception).replace("inf", "inf")


@pytest.fixture(scope="module")
def guarded(target, tmp_path_factory):
    db = tmp_path_factory.mktemp("svc") / "log.sqlite"
    keys = KEYS + [ApiKey("slow", "slow-secret-1", rate=1.0, burst=2)]
    service = Service(target, explanations=["gradient"], keys=keys, db=db,
                      limits=Limits(address_rate=2.0, address_burst=20, logged_refusals_rate=1.0,
                                    logged_refusals_burst=5, header_timeout=0.5, body_timeout=0.5))
    with ServerThread(create_app(service)) as server:
        yield service, server


def _post(server, path, body, key="alice-secret-1", method="POST"):
    headers = {"X-API-Key": key, "content-type": "application/json"}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.request(method, server.url + path, content=content, headers=headers, timeout=30)


def _calm(service):
    """A fresh start for the per-address and log buckets (the tests share one server)."""
    service._buckets.clear()
    service.refusals_not_logged.clear()


def test_admin_put_validates(guarded):
    service, server = guarded
    _calm(service)
    for body in (b'{"quota": ' + str(2 ** 70).encode() + b"}", b'{"rate": Infinity}', b'{"rate": NaN}',
                 b'{"quota": "5"}', b'{"burst": true}', b'{"quota": -1}'):
        r = _post(server, "/admin/keys/eve", body, key="root-secret-1", method="PUT")
        assert r.status_code == 422 and r.json()["error"]["code"] == "bad_request", (body, r.text)
    assert service.authenticate("eve-secret-12")["quota"] is None
    r = _post(server, "/admin/keys/eve", {"quota": 5, "rate": 2.5}, key="root-secret-1", method="PUT")
    assert r.status_code == 200 and r.json()["quota"] == 5


def test_requests_are_limited_per_address_before_authentication_and_the_log_is_bounded(guarded):
    service, server = guarded
    _calm(service)
    rows = service.db.execute("SELECT COUNT(*) FROM queries").fetchone()[0]
    start = time.monotonic()
    codes = [_post(server, "/v1/predict", {"inputs": [[0.0] * 20]}, key="wrong-key-123").status_code
             for _ in range(80)]
    elapsed = time.monotonic() - start
    assert set(codes) == {401, 429}
    assert codes.count(401) <= 20 + 2 * elapsed + 1  # the address's burst, then its rate (2/s)
    logged = service.db.execute("SELECT COUNT(*) FROM queries").fetchone()[0] - rows
    assert logged <= 5 + 1 * elapsed + 1  # the log's burst, then its rate (1 refusal/s)
    messages = [m for (m,) in service.db.execute("SELECT message FROM queries WHERE id > ?", (rows,))]
    told = sum(int(m) for msg in messages for m in re.findall(r"\[(\d+) earlier refusals", msg))
    assert told + service.refusals_not_logged.get("127.0.0.1", 0) == 80 - logged  # counted, not lost
    # the next refusal is logged and says how many were not since the last logged one (none, when the flood's
    # last refusal fell on a refilled log bucket: then a logged refusal of the flood told them)
    pending = service.refusals_not_logged.get("127.0.0.1", 0)
    service._buckets.clear()
    r = _post(server, "/v1/predict", b'{"inputs": [[0, 1', key="wrong-key-123")
    skipped = service.db.execute("SELECT message FROM queries ORDER BY id DESC LIMIT 1").fetchone()[0]
    assert r.status_code == 400
    if pending:
        assert f"[{pending} earlier refusals from 127.0.0.1 not logged" in skipped
    else:
        assert "not logged" not in skipped and told == 80 - logged


def test_replays_of_one_request_id_are_rate_limited(guarded):
    service, server = guarded
    _calm(service)
    body = {"inputs": [[0.3] * 20], "outputs": ["value"], "request_id": "replayed-1"}
    codes = [_post(server, "/v1/predict", body, key="slow-secret-1").status_code for _ in range(6)]
    assert codes[0] == 200 and 429 in codes


@pytest.mark.parametrize("field, value", [("output", True), ("output", "3"), ("output", 1.0), ("output", None),
                                          ("request_id", 5), ("methods", [1]), ("predictions", "label")])
def test_explain_validates_types_before_converting(guarded, field, value):
    service, server = guarded
    _calm(service)
    r = _post(server, "/v1/explain", {"inputs": [[0.1] * 20], "methods": ["gradient"], field: value})
    assert r.status_code == 422 and r.json()["error"]["code"] == "bad_request", r.text


def _refusal(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) >= {"code", "message"} and err["code"] == code and err["message"]


@pytest.mark.parametrize("body, code", [
    (b"[" * 1000 + b"]" * 1000, "malformed_request"),
    (b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "malformed_request"),
    (b'{"inputs": [[0.5]], "request_id": "\xff\xfe"}', "malformed_request"),
])
def test_unparseable_bodies_get_the_documented_refusal_and_are_logged(guarded, body, code):
    service, server = guarded
    _calm(service)
    rows = service.db.execute("SELECT COUNT(*) FROM queries WHERE status = 400").fetchone()[0]
    _refusal(_post(server, "/v1/predict", body), 400, code)
    assert service.db.execute("SELECT COUNT(*) FROM queries WHERE status = 400").fetchone()[0] == rows + 1


def test_every_4xx_has_the_refusal_format(guarded):
    service, server = guarded
    _calm(service)
    _refusal(httpx.get(server.url + "/v1/nothing"), 404, "not_found")
    _refusal(httpx.delete(server.url + "/v1/predict"), 405, "method_not_allowed")
    _refusal(_post(server, "/admin/keys/nobody", {"quota": 1}, key="root-secret-1", method="PUT"), 404, "no_such_key")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:  # not HTTP at all
        s.sendall(b"\x16\x03\x01 hello\r\n\r\n")
        raw = _read_all(s)
    assert raw.startswith(b"HTTP/1.1 400") and json.loads(raw.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "malformed_http"


def _read_all(s: socket.socket) -> bytes:
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    return out


def test_stalled_connections_are_closed(guarded):
    """Defect 9: connections that send nothing, half the headers, or half the body are closed
    after the header or body timeout (0.5 s here), with a 408 refusal when part of a request came."""
    service, server = guarded
    _calm(service)
    before = service.logged_total("alice")
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(3)]
    socks[1].sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: alice-")
    socks[2].sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: alice-secret-1\r\n"
                     b"content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"inputs\": [[0.1")
    got = [_read_all(s) for s in socks]  # each returns once the server closes the connection
    for s in socks:
        s.close()
    assert got[0] == b""
    assert got[1].startswith(b"HTTP/1.1 408") and b'"header_timeout"' in got[1]
    assert got[2].startswith(b"HTTP/1.1 408") and b'"body_timeout"' in got[2]
    assert service.logged_total("alice") == before  # nothing is charged for a stalled request


def test_a_failure_inside_the_service_is_a_logged_json_500(guarded, monkeypatch):
    service, server = guarded
    _calm(service)

    def broken(key):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(service, "usage", broken)
    r = httpx.get(server.url + "/v1/usage", headers={"X-API-Key": "alice-secret-1"}, timeout=30)
    assert r.status_code == 500 and r.json()["error"]["code"] == "internal"
    row = service.db.execute("SELECT status, code, message FROM queries ORDER BY id DESC LIMIT 1").fetchone()
    assert row[:2] == (500, "internal") and "disk on fire" in row[2]
