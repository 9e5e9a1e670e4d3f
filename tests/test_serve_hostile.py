"""The service against crashes and hostile requests (issue 13): one transaction per answer, admin
changes that survive restarts, validated keys and options, limits before authentication, strict
types, one refusal format, time-outs for stalled connections."""

from __future__ import annotations

import json
import sqlite3

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
