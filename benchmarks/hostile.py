"""Hostile use of the service, the journal and every command: counts per category (tried /
handled / failed), the figures of issue 13.  It uses only interfaces that main's code has too,
so the same script measures before and after:

    OMP_NUM_THREADS=1 nice python benchmarks/hostile.py --label after
    git archive MAIN src | tar -x -C /tmp/base && \
        OMP_NUM_THREADS=1 PYTHONPATH=/tmp/base/src nice python benchmarks/hostile.py --label before

Categories (what "handled" means):

* requests: malformed, oversized, mistyped, unparseable or stalled HTTP requests -> a 4xx in the
  documented format {"error": {code, message}}, nothing charged, logged; stalled connections
  closed by the server within 5 s of its time-outs.
* keys: wrong-key floods and replays limited (some 429) with a bounded log; invalid keys files
  refused at start; admin PUTs of out-of-range values refused; an admin block surviving a restart.
* server kills: a service under load from 4 clients, killed with SIGKILL and restarted; a kill is
  handled when afterwards every client's ledger equals the log and no request id is charged twice.
* attack kills: `modelrecon attack relu2 --target URL --journal J` killed mid-run and resumed; a
  kill is handled when the service charged exactly the queries in the journal.
* sweep kills: `modelrecon sweep` killed with SIGKILL; handled when no process of it is left 15 s later.
* command lines: bad target specs, options, config files and corrupt files; handled when the
  command ends with one `error: ...` line and a non-zero exit (no traceback, not accepted).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from modelrecon import report
from modelrecon.serve.app import ApiKey, Limits, ServerThread, Service, create_app
from modelrecon.serve.client import http_oracle
from modelrecon.targets import load

ROOT = Path(__file__).resolve().parents[1]
ZYGOTE = ROOT / "tests" / "cli_zygote.py"
KEYS = [ApiKey("alice", "alice-secret-1"), ApiKey("eve", "eve-secret-12"), ApiKey("root", "root-secret-1", admin=True)]


class Tally:
    def __init__(self) -> None:
        self.rows: dict[str, list[int]] = {}
        self.failures: dict[str, list[str]] = {}

    def add(self, category: str, ok: bool, what: str) -> None:
        row = self.rows.setdefault(category, [0, 0])
        row[0] += 1
        row[1] += bool(ok)
        if not ok:
            self.failures.setdefault(category, []).append(what)


# -- requests and keys ---------------------------------------------------------------------------
def _refusal_ok(r: httpx.Response) -> bool:
    try:
        err = r.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return 400 <= r.status_code < 500 and isinstance(err, dict) and bool(err.get("code")) and bool(err.get("message"))


def _read_until_closed(s: socket.socket, limit: float) -> tuple[bool, bytes]:
    s.settimeout(limit)
    out = b""
    try:
        while chunk := s.recv(65536):
            out += chunk
    except (socket.timeout, TimeoutError):
        return False, out
    except OSError:
        pass
    return True, out


def requests_and_keys(tally: Tally, tmp: Path) -> None:
    target = load("builtin:logistic?d=20&seed=3")
    # an operator's settings: 20 requests/s per address (burst 100), 2 s to send headers, 2 s for a body;
    # settings this version of the service does not have are left out
    wanted = {"max_batch": 64, "max_body_bytes": 200_000, "address_rate": 20.0, "address_burst": 100,
              "header_timeout": 2.0, "body_timeout": 2.0}
    limits = Limits(**{k: v for k, v in wanted.items() if k in Limits.__dataclass_fields__})
    service = Service(target, explanations=["gradient"], keys=KEYS, db=tmp / "svc.sqlite", limits=limits)
    row = [0.1] * 20
    cases = [
        ("bad shape", {"inputs": [[0.0] * 19]}), ("ragged", {"inputs": [row, row[:19]]}),
        ("strings", {"inputs": [["0"] * 20]}), ("booleans", {"inputs": [[True] * 20]}),
        ("nulls", {"inputs": [[None] * 20]}), ("empty batch", {"inputs": []}), ("batch too large", {"inputs": [row] * 65}),
        ("unknown output", {"inputs": [row], "outputs": ["logits"]}), ("unknown field", {"inputs": [row], "x": 1}),
        ("NaN", b'{"inputs": [[NaN' + b", 0" * 19 + b"]]}"), ("Infinity", b'{"inputs": [[Infinity' + b", 0" * 19 + b"]]}"),
        ("truncated JSON", b'{"inputs": [[0, 1'), ("oversized body", b'{"inputs": [' + b"[0.5],  " * 40_000 + b"]}"),
        ("JSON 1000 deep", b"[" * 1000 + b"]" * 1000),
        ("JSON 100000 deep", b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("invalid UTF-8", b'{"inputs": [[0.5]], "request_id": "\xff\xfe"}'),
        ("request_id a number", {"inputs": [row], "request_id": 5}),
    ]
    explain = [("output true", True), ("output '3'", "3"), ("output 1.0", 1.0), ("output null", None),
               ("output 7 (no such class)", 7), ("methods [1]", [1])]
    with ServerThread(create_app(service)) as server:
        def post(path, body, key="alice-secret-1", method="POST"):
            content = body if isinstance(body, bytes) else json.dumps(body).encode()
            return httpx.request(method, server.url + path, content=content, timeout=30,
                                 headers={"X-API-Key": key, "content-type": "application/json"})

        for name, body in cases:
            before = service.logged_total("alice")
            r = post("/v1/predict", body)
            alive = post("/v1/predict", {"inputs": [row], "outputs": ["label"]}).status_code == 200
            tally.add("requests", _refusal_ok(r) and service.logged_total("alice") == before + 1 and alive,
                      f"{name}: {r.status_code} {r.text[:80]}")
        for name, value in explain:
            key = "methods" if name.startswith("methods") else "output"
            body = {"inputs": [row], "methods": ["gradient"], key: value}
            r = post("/v1/explain", body)
            tally.add("requests", _refusal_ok(r), f"explain {name}: {r.status_code} {r.text[:80]}")
        for name, r in (("unknown path", httpx.get(server.url + "/v1/nothing")),
                        ("wrong method", httpx.delete(server.url + "/v1/predict"))):
            tally.add("requests", _refusal_ok(r), f"{name}: {r.status_code} {r.text[:80]}")
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(b"\x16\x03\x01 not http\r\n\r\n")
            closed, raw = _read_until_closed(s, 10)
            body = raw.split(b"\r\n\r\n", 1)[-1]
            ok = raw.startswith(b"HTTP/1.1 400") and body.startswith(b'{"error"')
            tally.add("requests", ok, f"non-HTTP bytes: {raw[:60]!r}")
        # stalled connections: nothing sent, half the headers, half the body
        stalls = [b"", b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: alice-",
                  b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nX-API-Key: alice-secret-1\r\ncontent-type: application/json"
                  b"\r\ncontent-length: 100\r\n\r\n{\"inputs\": [[0.1"]
        socks = []
        for data in stalls:
            s = socket.create_connection(("127.0.0.1", server.port))
            s.sendall(data)
            socks.append(s)
        deadline = time.time() + 10  # 2 s time-outs, and a loaded machine
        for name, s in zip(("sends nothing", "stalls in its headers", "stalls in its body"), socks):
            closed, raw = _read_until_closed(s, max(deadline - time.time(), 0.01))
            tally.add("requests", closed, f"stalled connection that {name}: still open after 10 s")
            s.close()

        # keys: admin values, blocks across restarts, then floods of wrong keys and of replays
        for name, raw in (("quota 2**70", b'{"quota": ' + str(2 ** 70).encode() + b"}"), ("rate Infinity", b'{"rate": Infinity}'),
                          ("quota '5'", b'{"quota": "5"}'), ("burst true", b'{"burst": true}')):
            r = post("/admin/keys/eve", raw, key="root-secret-1", method="PUT")
            tally.add("keys", _refusal_ok(r), f"admin PUT {name}: {r.status_code} {r.text[:60]}")
        r = post("/admin/keys/eve", {"quota": 0}, key="root-secret-1", method="PUT")
        def flood(n: int, body: dict, key: str) -> list[int]:  # 16 keep-alive connections at once
            from concurrent.futures import ThreadPoolExecutor

            with httpx.Client(base_url=server.url, timeout=30, headers={"X-API-Key": key},
                              limits=httpx.Limits(max_connections=16)) as c, ThreadPoolExecutor(16) as pool:
                return list(pool.map(lambda _: c.post("/v1/predict", json=body).status_code, range(n)))

        body = {"inputs": [row], "outputs": ["value"], "request_id": "replayed"}
        codes = flood(300, body, "alice-secret-1")
        tally.add("keys", 429 in codes, f"300 replays of one request id: never rate limited ({set(codes)})")
        rows = service.db.execute("SELECT COUNT(*) FROM queries").fetchone()[0]
        codes = flood(600, {"inputs": [row]}, "wrong-key-123")
        logged = service.db.execute("SELECT COUNT(*) FROM queries").fetchone()[0] - rows
        tally.add("keys", 429 in codes, f"600 wrong-key requests: never rate limited ({set(codes)})")
        tally.add("keys", logged < 300, f"600 wrong-key requests: {logged} log rows")
    service.close()
    again = Service(target, explanations=["gradient"], keys=KEYS, db=tmp / "svc.sqlite")
    blocked = again.authenticate("eve-secret-12")["quota"] == 0
    tally.add("keys", r.status_code == 200 and blocked, "an admin block on a key is lost on restart")
    again.close()
    from modelrecon.serve.app import read_keys

    for name, entry in (("quota 'lots'", {"quota": "lots"}), ("quota -1", {"quota": -1}), ("rate 0", {"rate": 0}),
                        ("burst 0.5", {"burst": 0.5}), ("admin 'yes'", {"admin": "yes"})):
        path = tmp / "keys.json"
        path.write_text(json.dumps({"mallory": {"key": "mallory-secret", **entry}}))
        try:
            read_keys(path)
            ok = False
        except ValueError:
            ok = True
        tally.add("keys", ok, f"keys file with {name} accepted")


# -- kills ---------------------------------------------------------------------------------------
class Zygote:
    """tests/cli_zygote.py: modelrecon imported once, a command line forked per request."""

    def __init__(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen([sys.executable, str(ZYGOTE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env)
        assert self.line(180) == "ready"
        self.pids: list[int] = []

    def line(self, timeout: float) -> str:
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            raise TimeoutError("the zygote did not answer")
        return self.proc.stdout.readline().strip()

    def spawn(self, argv: list[str], log: Path, env: dict[str, str] | None = None) -> int:
        self.proc.stdin.write(json.dumps({"argv": argv, "env": env or {}, "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        self.pids.append(int(self.line(60)))
        return self.pids[-1]

    def close(self) -> None:
        for pid in self.pids:
            _kill(pid)
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str) -> None:
    deadline = time.time() + 120
    while time.time() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(url)


def server_kills(tally: Tally, tmp: Path, zygote: Zygote, kills: int, rng: random.Random) -> dict:
    names = [f"user{i}" for i in range(4)]
    keys = tmp / "keys.json"
    keys.write_text(json.dumps({n: {"key": f"{n}-secret-key", "rate": 1000, "burst": 1000} for n in names}))
    db, port = tmp / "kill.sqlite", _free_port()
    url = f"http://127.0.0.1:{port}"
    argv = ["serve", "builtin:logistic?d=20&seed=3", "--port", str(port), "--keys", str(keys), "--db", str(db)]

    def start(i: int) -> int:
        pid = zygote.spawn(argv, tmp / f"server{i}.log")
        _wait_up(url)
        return pid

    pid = start(0)
    oracles = [http_oracle(url, f"{n}-secret-key", batch_size=4, concurrency=2, retries=60, backoff=0.02)
               for n in names]
    go, stop, idle = threading.Event(), threading.Event(), [threading.Event() for _ in names]
    errors: list[str] = []

    def load_(i: int) -> None:
        r = np.random.default_rng(i)
        while not stop.is_set():
            if not go.is_set():
                idle[i].set()
                time.sleep(0.01)
                continue
            idle[i].clear()
            kinds = ("value", "label") if r.random() < 0.5 else ("gradient", "value")
            try:
                oracles[i].query(r.normal(size=(int(r.integers(1, 9)), 20)), kinds)
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e)[:200])
        idle[i].set()

    threads = [threading.Thread(target=load_, args=(i,), daemon=True) for i in range(len(names))]
    go.set()
    for t in threads:
        t.start()
    extra_total = 0
    for k in range(kills):
        time.sleep(rng.uniform(0.3, 1.0))
        _kill(pid)
        pid = start(k + 1)
        time.sleep(0.3)
        go.clear()
        for e in idle:
            e.wait(120)
        con = sqlite3.connect(str(db))
        extra = sum(con.execute("SELECT COALESCE(SUM(charged), 0) FROM queries WHERE key_name=?", (n,)).fetchone()[0]
                    - o.ledger.total() for n, o in zip(names, oracles)) - extra_total
        twice = con.execute("SELECT COUNT(*) FROM (SELECT 1 FROM queries WHERE charged > 0 "
                            "GROUP BY key_name, request_id HAVING COUNT(*) > 1)").fetchone()[0]
        con.close()
        extra_total += extra
        tally.add("server kills", extra == 0 and not errors, f"kill {k + 1}: {extra} queries charged twice, "
                  f"{twice} request ids charged twice so far, client errors {errors[:1]}")
        go.set()
    stop.set()
    go.set()
    for t in threads:
        t.join(60)
    _kill(pid)
    con = sqlite3.connect(str(db))
    integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    queries = sum(o.ledger.total() for o in oracles)
    return {"queries_charged_to_clients": queries, "charged_twice": extra_total, "integrity": integrity}


def attack_kills(tally: Tally, tmp: Path, zygote: Zygote, kills: int, rng: random.Random) -> dict:
    target = load("builtin:relu2?d=20&h=8&seed=1")
    extra_total = 0
    for k in range(kills):
        db, journal = tmp / f"attack{k}.sqlite", tmp / f"journal{k}.sqlite"
        service = Service(target, explanations=["gradient"], keys=KEYS, db=db)
        with ServerThread(create_app(service)) as server:
            argv = ["attack", "relu2", "--target", server.url, "--mode", "gradient", "--journal", str(journal)]
            env = {"MODELRECON_API_KEY": "alice-secret-1"}
            pid = zygote.spawn(argv, tmp / f"attack{k}.log", env)
            deadline = time.time() + 120
            while service.logged_total("alice") == 0 and time.time() < deadline:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.2, 1.0))
            _kill(pid)
            log = tmp / f"attack{k}-resumed.log"
            zygote.spawn(argv, log, env)
            rc = Path(str(log) + ".rc")
            deadline = time.time() + 300
            while not rc.exists() and time.time() < deadline:
                time.sleep(0.05)
            answers = sqlite3.connect(str(journal)).execute("SELECT COUNT(*) FROM answers").fetchone()[0]
            extra = service.logged_total("alice") - answers
        service.close()
        extra_total += extra
        tally.add("attack kills", rc.exists() and rc.read_text() == "0" and extra == 0,
                  f"kill {k + 1}: {extra} queries paid again on resume")
    return {"paid_again": extra_total}


def _session(sid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rpartition(")")[2].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                out.append(int(stat.parent.name))
    return out


def sweep_kills(tally: Tally, tmp: Path, kills: int) -> None:
    cfg = tmp / "slow.toml"
    cfg.write_text('[study]\nname = "orphans"\nattack = "sweep_helpers:Scripted"\n'
                   'target = "builtin:linear?d=4&seed={seed}"\n[attack]\nseed = "{seed}"\ntag = "{seed}"\n'
                   f'log = "{tmp / "executions.log"}"\nsleep = 30\n[grid]\nseed = [0, 1, 2, 3]\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    for k in range(kills):
        db = tmp / f"sweep{k}.sqlite"
        proc = subprocess.Popen([sys.executable, "-m", "modelrecon.cli", "sweep", str(cfg), "--db", str(db),
                                 "--workers", "2"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        deadline = time.time() + 120
        while len(_session(proc.pid)) < 4 and time.time() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.time() + 15
        while _session(proc.pid) and time.time() < deadline:
            time.sleep(0.1)
        left = _session(proc.pid)
        for pid in left:
            _kill(pid)
        tally.add("sweep kills", not left, f"kill {k + 1}: {len(left)} orphan processes")


# -- command lines -------------------------------------------------------------------------------
def command_lines(tally: Tally, tmp: Path) -> None:
    from onnx import TensorProto, helper, save

    import modelrecon.cli as cli

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, ["N", 3])])
    save(helper.make_model(graph), str(tmp / "int.onnx"))
    (tmp / "corrupt.onnx").write_bytes(b"\x08\x07garbage" * 10)
    (tmp / "empty.onnx").write_bytes(b"")
    (tmp / "text.sqlite").write_text("not a database" * 20)
    Service(load("builtin:logistic?d=3"), db=tmp / "service.sqlite").close()
    (tmp / "corrupt.npz").write_bytes(b"PK\x03\x04 truncated")
    (tmp / "pool.npy").write_bytes(b"\x93NUMPY garbage")
    head = '[study]\nname = "s"\nattack = "linear"\ntarget = "builtin:linear?d=3"\n'
    for name, body in {"unknown-hp": head + "[attack]\nnosuch = 1\n", "negative-budget": head + "[oracle]\nbudget = -5\n",
                       "threads": head + 'threads = "many"\n', "threads0": head + "threads = 0\n",
                       "no-name": '[study]\nattack = "linear"\ntarget = "builtin:linear?d=3"\n',
                       "bad-round": head + "[oracle]\nround_decimals = 99\n"}.items():
        (tmp / f"{name}.toml").write_text(body)
    keys = {"lots": {"quota": "lots"}, "neg": {"quota": -5}, "infrate": {"rate": 1e400}}
    for name, entry in keys.items():
        (tmp / f"keys-{name}.json").write_text(json.dumps({"a": {"key": "a-secret-key", **entry}}).replace("1e+400", "1e400"))
    t = str(tmp)
    lines = [
        ["attack", "linear", "--target", "builtin:logistic?d=-5"], ["attack", "relu2", "--target", "builtin:relu2?h=-1"],
        ["attack", "linear", "--target", "builtin:logistic?d=100000000000"], ["attack", "linear", "--target", "builtin:logistic?d=0"],
        ["attack", "linear", "--target", "builtin:logistic?d=10&d=20"], ["attack", "span", "--target", "builtin:mlp?widths=0,5"],
        ["attack", "linear", "--target", "builtin:relu2?bias_scale=nan"], ["attack", "linear", "--target", "builtin:mlp?widths=a"],
        ["attack", "linear", "--target", "builtin:relu2?d=1000000&h=1000"],
        ["attack", "linear", "--target", f"{t}/corrupt.onnx"], ["attack", "linear", "--target", f"{t}/empty.onnx"],
        ["attack", "linear", "--target", f"{t}/int.onnx"], ["serve", f"{t}/corrupt.onnx", "--db", f"{t}/s1.sqlite"],
        ["serve", f"{t}/empty.onnx", "--db", f"{t}/s2.sqlite"], ["serve", f"{t}/int.onnx", "--db", f"{t}/s3.sqlite"],
        ["attack", "linear", "--target", "math:pi"], ["attack", "linear", "--target", "torch.nn:Linear"],
        ["attack", "linear", "--target", "torch.nn:ReLU?d=x"], ["attack", "linear", "--target", "nosuch.module:f"],
        ["attack", "linear", "--target", "builtin:logistic?d=3", "--journal", f"{t}/text.sqlite"],
        ["attack", "linear", "--target", "builtin:logistic?d=3", "--journal", f"{t}/service.sqlite"],
        ["serve", "builtin:logistic?d=3", "--db", f"{t}/text.sqlite"], ["journal", f"{t}/text.sqlite"],
        ["journal", f"{t}/service.sqlite"], ["results", f"{t}/text.sqlite"], ["results", f"{t}/service.sqlite"],
        ["sweep", f"{t}/unknown-hp.toml", "--workers", "0", "--db", f"{t}/text.sqlite"],
        ["sweep", f"{t}/unknown-hp.toml", "--workers", "0", "--db", f"{t}/service.sqlite"],
        ["serve", "builtin:logistic?d=3", "--db", f"{t}/no/such/dir/log.sqlite"],
        ["obfuscate", "--target", "builtin:mlp?d=64&widths=8&k=10", "--span", f"{t}/corrupt.npz"],
        ["attack", "surrogate", "--target", "builtin:mlp?d=3&widths=2&k=2", "--pool", f"{t}/pool.npy", "--budget", "4"],
        ["attack", "linear", "--target", "builtin:logistic?d=3", "--budget", "-5"],
        ["attack", "linear", "--target", "builtin:logistic?d=3", "--budget-per-kind", "nosuch=5"],
        ["attack", "linear", "--target", "builtin:logistic?d=10", "--round", "400"],
        ["attack", "linear", "--target", "builtin:logistic?d=10", "--round", "-1", "--method", "equations"],
        ["sweep", f"{t}/unknown-hp.toml", "--workers", "0", "--db", f"{t}/r1.sqlite"],
        ["sweep", f"{t}/negative-budget.toml", "--workers", "0", "--db", f"{t}/r2.sqlite"],
        ["sweep", f"{t}/threads.toml", "--workers", "0", "--db", f"{t}/r3.sqlite"],
        ["sweep", f"{t}/threads0.toml", "--workers", "0", "--db", f"{t}/r4.sqlite"],
        ["sweep", f"{t}/no-name.toml", "--workers", "0", "--db", f"{t}/r5.sqlite"],
        ["sweep", f"{t}/bad-round.toml", "--workers", "0", "--db", f"{t}/r6.sqlite"],
        ["serve", "builtin:logistic?d=3", "--keys", f"{t}/keys-lots.json", "--db", f"{t}/k1.sqlite"],
        ["serve", "builtin:logistic?d=3", "--keys", f"{t}/keys-neg.json", "--db", f"{t}/k2.sqlite"],
        ["serve", "builtin:logistic?d=3", "--keys", f"{t}/keys-infrate.json", "--db", f"{t}/k3.sqlite"],
        *[["serve", "builtin:logistic?d=3", "--db", f"{t}/o{i}.sqlite", opt, v] for i, (opt, v) in enumerate(
            [("--max-batch", "0"), ("--max-body-bytes", "-1"), ("--quota", "-5"), ("--rate", "-1"), ("--port", "70000"),
             ("--round", "16"), ("--top-k", "0"), ("--explanation-noise", "nan")])],
    ]
    import uvicorn

    uvicorn.run = lambda *a, **k: None  # serve builds and checks everything, then does not listen

    def run_isolated(argv: list[str]) -> tuple[int, str, str]:
        """The command in a forked child with 6 GB of address space and 120 s: a huge model
        that the code tries to build fails there, not on the shared machine."""
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            import resource

            os.close(r)
            resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
            signal.alarm(120)
            out, code, crashed = io.StringIO(), 0, ""
            sys.argv = ["modelrecon", *argv]
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                try:
                    cli.main()
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else 1
                except BaseException as e:  # a traceback would reach the user
                    crashed, code = f"{type(e).__name__}: {e}"[:120], 1
            os.write(w, json.dumps([code, out.getvalue()[-4000:], crashed]).encode())
            os._exit(0)
        os.close(w)
        with os.fdopen(r, "rb") as f:
            data = f.read()
        _, status = os.waitpid(pid, 0)
        if not data:
            return 1, "", f"killed by signal {os.WTERMSIG(status) if os.WIFSIGNALED(status) else status}"
        code, text, crashed = json.loads(data)
        return code, text, crashed

    for argv in lines:
        code, text, crashed = run_isolated(argv)
        lines_out = [line for line in text.strip().splitlines() if line.strip()]
        ok = not crashed and code != 0 and lines_out and lines_out[-1].startswith("error: ") \
            and "  needs" not in lines_out[-1] and "Traceback" not in text
        why = crashed or ("accepted (exit 0)" if code == 0 else (lines_out[-1][:120] if lines_out else "no output"))
        tally.add("command lines", ok, f"{' '.join(argv)[:90]} -> {why}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--label", default="now", help="name of this run (before / after)")
    ap.add_argument("--kills", type=int, default=5, help="server kills; attack kills and sweep kills: half")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    tally, figures = Tally(), {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        command_lines(tally, tmp)
        requests_and_keys(tally, tmp)
        zygote = Zygote()
        try:
            figures["server kills"] = server_kills(tally, tmp, zygote, args.kills, rng)
            figures["attack kills"] = attack_kills(tally, tmp, zygote, max(1, args.kills // 2), rng)
        finally:
            zygote.close()
        sweep_kills(tally, tmp, max(1, args.kills // 2))
    rows = [(c, t, h, t - h) for c, (t, h) in tally.rows.items()]
    report.console.print(report.comparison_table(f"hostile use ({args.label}, {time.perf_counter() - t0:.0f} s)",
                                                 ["category", "tried", "handled", "failed"], rows))
    for c, items in tally.failures.items():
        for what in items:
            report.console.print(f"  failed [{c}]: {what}", markup=False)
    report.console.print(f"figures: {json.dumps(figures)}", markup=False)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"hostile-{args.label}.json"
    path.write_text(json.dumps({"label": args.label, "counts": {c: {"tried": t, "handled": h, "failed": f}
                                                                  for c, t, h, f in rows},
                                "failures": tally.failures, "figures": figures}, indent=2) + "\n")
    report.console.print(f"written to {path}")


if __name__ == "__main__":
    main()
