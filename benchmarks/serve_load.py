"""Bounded loopback load test of the explanation service.

A service for ``builtin:digits-mlp`` (gradient and SmoothGrad explanations) runs in a
subprocess (``modelrecon serve``) on 127.0.0.1; C client threads send requests of B digits
test inputs for T seconds each to /v1/predict and /v1/explain.  Prints requests/s, inputs/s
and p50/p99 latency, and checks that the queries the clients were charged equal the
queries the service logged (none lost, none double-counted).

    OMP_NUM_THREADS=1 python benchmarks/serve_load.py [--seconds 5] [--clients 1,4,8]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from modelrecon import report
from modelrecon.data import digits


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--target", default="builtin:digits-mlp")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="serve_load_"))
    keys = {"load": {"key": "load-secret-123", "rate": 1e6, "burst": 1000000},
            "root": {"key": "root-secret-123", "admin": True}}
    (tmp / "keys.json").write_text(json.dumps(keys))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "modelrecon.cli", "serve", args.target, "--port", str(port),
                             "--keys", str(tmp / "keys.json"), "--db", str(tmp / "log.sqlite"),
                             "--explanations", "gradient,smoothgrad"], env={**os.environ, "OMP_NUM_THREADS": "1"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        for _ in range(600):
            try:
                httpx.get(url + "/v1/metadata").raise_for_status()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        X = digits().X_test
        rows = []
        charged_total = 0
        for endpoint, body_of in [
            ("predict", lambda x: {"inputs": x.tolist(), "outputs": ["probabilities", "label"]}),
            ("explain gradient", lambda x: {"inputs": x.tolist(), "methods": ["gradient"], "predictions": ["label"]}),
            ("explain smoothgrad", lambda x: {"inputs": x.tolist(), "methods": ["smoothgrad"], "predictions": ["label"]}),
        ]:
            path = "/v1/predict" if endpoint == "predict" else "/v1/explain"
            for c in [int(v) for v in args.clients.split(",")]:
                lat: list[float] = []
                charged = [0]
                errors = [0]
                lock = threading.Lock()
                stop = time.perf_counter() + args.seconds

                def client(seed: int) -> None:
                    rng = np.random.default_rng(seed)
                    with httpx.Client(base_url=url, headers={"X-API-Key": "load-secret-123"}, timeout=60) as h:
                        while time.perf_counter() < stop:
                            x = X[rng.choice(len(X), args.batch, replace=False)]
                            t0 = time.perf_counter()
                            r = h.post(path, json=body_of(x))
                            dt = time.perf_counter() - t0
                            with lock:
                                if r.status_code == 200:
                                    lat.append(dt)
                                    charged[0] += r.json()["charged"]
                                else:
                                    errors[0] += 1

                threads = [threading.Thread(target=client, args=(i,)) for i in range(c)]
                t0 = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                wall = time.perf_counter() - t0
                charged_total += charged[0]
                lat_ms = np.array(lat) * 1000
                rows.append((endpoint, c, args.batch, len(lat), len(lat) / wall, len(lat) * args.batch / wall,
                             float(np.percentile(lat_ms, 50)), float(np.percentile(lat_ms, 99)), errors[0], charged[0]))
        admin = httpx.get(url + "/admin", headers={"X-API-Key": "root-secret-123"}).json()
        logged = admin["keys"]["load"]["queries_logged"]
        report.console.print(report.comparison_table(
            f"loopback load test: {args.target}, {args.seconds:g} s per row, 2-core shared machine",
            ["endpoint", "clients", "batch", "requests", "requests/s", "inputs/s", "p50 ms", "p99 ms", "errors",
             "queries charged"], rows))
        verdict = "agree" if logged == charged_total else "DISAGREE"
        report.console.print(f"queries charged to clients: {charged_total}; logged by the service: {logged} ({verdict})")
        if logged != charged_total:
            sys.exit(1)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
