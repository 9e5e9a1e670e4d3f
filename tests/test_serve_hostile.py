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
