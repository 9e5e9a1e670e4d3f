"""Crash tests (issue 13): a loaded service killed with SIGKILL and restarted, and an HTTP attack
with a journal killed mid-run and resumed.  Whatever the moment of the kill, every client's
ledger equals the service's log, each request id is charged at most once, each charge has its
stored answer, and the SQLite file passes its integrity check.

Servers and attacks are real `modelrecon` command lines forked from a zygote that imported
modelrecon once (tests/cli_zygote.py), so a restart costs milliseconds, not the imports."""

from __future__ import annotations

import json
import os
import random
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from modelrecon.serve.app import ApiKey, ServerThread, Service, create_app
from modelrecon.serve.client import http_oracle
from modelrecon.targets import load

HERE = Path(__file__).resolve().parent
STARTUP_S = 120  # generous: a loaded 2-core machine; correctness never waits on it


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError("the zygote did not answer")
    return proc.stdout.readline().strip()


@pytest.fixture(scope="module")
def spawn():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(HERE / "cli_zygote.py")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    assert _readline(proc, STARTUP_S) == "ready"
    pids = []

    def run(argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
        proc.stdin.write(json.dumps({"argv": argv, "env": env or {}, "log": str(log)}) + "\n")
        proc.stdin.flush()
        pids.append(int(_readline(proc, STARTUP_S)))
        return pids[-1]

    yield run
    for pid in pids:
        _kill(pid)
    proc.stdin.close()
    proc.wait(timeout=30)


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, pid: int) -> None:
    deadline = time.time() + STARTUP_S
    while time.time() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        os.kill(pid, 0)  # still alive (raises if it died)
        time.sleep(0.05)
    raise TimeoutError(f"no service at {url}")


def _check_log(db: Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(db))
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    twice = con.execute("SELECT key_name, request_id, COUNT(*) FROM queries WHERE charged > 0 "
                        "GROUP BY key_name, request_id HAVING COUNT(*) > 1").fetchall()
    assert twice == [], f"request ids charged more than once: {twice[:5]}"
    unanswered = con.execute("SELECT COUNT(*) FROM queries q WHERE charged > 0 AND NOT EXISTS (SELECT 1 FROM "
                             "responses r WHERE r.key_name = q.key_name AND r.request_id = q.request_id)").fetchone()[0]
    assert unanswered == 0, "charges without a stored answer"
    return con


def test_a_loaded_service_killed_and_restarted_charges_each_request_once(spawn, tmp_path):
    rng = random.Random(13)
    names = [f"user{i}" for i in range(4)]
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({n: {"key": f"{n}-secret-key", "rate": 1000, "burst": 1000} for n in names}))
    db, port = tmp_path / "log.sqlite", _free_port()
    url = f"http://127.0.0.1:{port}"
    argv = ["serve", "builtin:logistic?d=20&seed=3", "--port", str(port), "--keys", str(keys), "--db", str(db),
            "--address-rate", "5000"]

    def start(i: int) -> int:
        pid = spawn(argv, tmp_path / f"server{i}.log")
        _wait_up(url, pid)
        return pid

    pid = start(0)
    oracles = [http_oracle(url, f"{n}-secret-key", batch_size=4, concurrency=2, retries=60, backoff=0.02)
               for n in names]
    stop, errors = threading.Event(), []

    def load_(oracle, seed: int) -> None:
        r = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                kinds = ("value", "label") if r.random() < 0.5 else ("gradient", "value")
                oracle.query(r.normal(size=(int(r.integers(1, 9)), 20)), kinds)
        except Exception as e:  # noqa: BLE001  (reported below)
            errors.append(repr(e))

    threads = [threading.Thread(target=load_, args=(o, i)) for i, o in enumerate(oracles)]
    for t in threads:
        t.start()
    def charged() -> int:
        return sum(o.ledger.total() for o in oracles)

    def serving_load(since: int) -> None:  # the restarted service answered again: load is on
        deadline = time.time() + STARTUP_S
        while charged() <= since and not errors:
            assert time.time() < deadline, "no answers after the restart"
            time.sleep(0.02)

    charged_at_kill = [0]
    for i in range(1, 4):
        serving_load(charged_at_kill[-1])
        time.sleep(rng.uniform(0.2, 0.8))
        _kill(pid)
        charged_at_kill.append(charged())
        pid = start(i)
    serving_load(charged_at_kill[-1])
    stop.set()
    for t in threads:
        t.join(timeout=STARTUP_S)
    _kill(pid)
    assert errors == []
    con = _check_log(db)
    for n, o in zip(names, oracles):
        logged = con.execute("SELECT COALESCE(SUM(charged), 0) FROM queries WHERE key_name=?", (n,)).fetchone()[0]
        assert o.ledger.total() == logged, n


def test_an_http_attack_killed_and_resumed_is_charged_once_per_query(spawn, tmp_path):
    rng = random.Random(7)
    target = load("builtin:relu2?d=20&h=8&seed=1")
    service = Service(target, explanations=["gradient"], keys=[ApiKey("alice", "alice-secret-1")],
                      db=tmp_path / "log.sqlite")
    journal, out = tmp_path / "run.sqlite", tmp_path / "result.json"
    env = {"MODELRECON_API_KEY": "alice-secret-1"}
    with ServerThread(create_app(service)) as server:
        argv = ["attack", "relu2", "--target", server.url, "--mode", "gradient", "--journal", str(journal),
                "--json", str(out)]
        for i in range(2):  # killed twice, at a random moment after it started paying
            before = service.logged_total("alice")
            log = tmp_path / f"attack{i}.log"
            pid = spawn(argv, log, env)
            deadline = time.time() + STARTUP_S
            while service.logged_total("alice") == before and not Path(str(log) + ".rc").exists():
                assert time.time() < deadline, "the attack did not start"
                time.sleep(0.02)
            time.sleep(rng.uniform(0.1, 0.6))
            _kill(pid)
        log = tmp_path / "attack-last.log"
        spawn(argv, log, env)
        rc = Path(str(log) + ".rc")
        deadline = time.time() + 300
        while not rc.exists():
            assert time.time() < deadline, "the resumed attack did not finish"
            time.sleep(0.05)
        assert rc.read_text() == "0", log.read_text()
        assert json.loads(out.read_text())["status"] == "complete"
    answers = sqlite3.connect(str(journal)).execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    assert service.logged_total("alice") == answers  # each query charged exactly once
    _check_log(tmp_path / "log.sqlite")
