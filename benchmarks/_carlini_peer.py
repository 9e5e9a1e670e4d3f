"""Run Carlini, Jagielski, Mironov's public extraction code (CRYPTO 2020,
google-research/cryptanalytic-model-extraction) on one of its own networks, with a query
counter that works, and print queries, worst output error and time.

Nothing of the peer is in this repository: give the path of a checkout (or of a bare git
mirror, exported to a scratch folder first).  Run it with a Python that has the peer's
dependencies (an old jax: 0.4.13 on Python 3.8 works with the shim below):

    /tmp/carlini_venv/bin/python benchmarks/_carlini_peer.py PEER_PATH 10-10-10-1 --seed 42

What the harness changes, and nothing else:
- ``jax.experimental.optimizers`` (removed from jax) is aliased to ``jax.example_libraries.optimizers``;
- the peer's query counter always reads 0 (its issue 3: ``global query_count`` in src/utils.py is a
  copy made by ``from src.global_vars import *``), so its oracle ``src.utils.run`` is wrapped, before the
  attack's modules import it, by one that counts every input row it is asked (in a counter shared with
  the worker processes), except the calls that pass weights explicitly (its own final evaluation);
- its worker pool (cpu_count // 4 processes, none on 2 cores) gets one worker;
- the network is trained by the peer's train_models.py (its way: N(0,1)/sqrt(fan_out), zero biases,
  100 epochs of Adam on 20 random points), and the worst output error is measured here on 10^6
  N(0, I) inputs from the two pickles its extract.py writes.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import pickle
import runpy
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np


def _export(peer: str, work: str) -> None:
    if os.path.isfile(os.path.join(peer, "extract.py")):
        shutil.copytree(peer, work, dirs_exist_ok=True)
        return
    archive = subprocess.run(["git", "--git-dir", peer, "archive", "HEAD"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", work], input=archive, check=True)


def _shim_jax() -> None:
    import jax
    import jax.example_libraries.optimizers as optimizers

    sys.modules["jax.experimental.optimizers"] = optimizers
    jax.experimental.optimizers = optimizers


def _forward(x, A, B):
    for i, (a, b) in enumerate(zip(A, B)):
        x = x @ np.asarray(a, dtype=np.float64) + np.asarray(b, dtype=np.float64)
        if i < len(A) - 1:
            x = np.maximum(x, 0)
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("peer", help="path of the peer's checkout or bare git mirror")
    ap.add_argument("arch", help="widths, e.g. 10-10-10-1")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--inputs", type=int, default=10**6, help="random inputs for the worst output error")
    args = ap.parse_args()
    if not os.path.exists(args.peer):
        sys.exit(f"error: no peer at {args.peer}")

    for stale in (f"/tmp/real-{args.arch}.p", f"/tmp/extracted-{args.arch}.p"):
        if os.path.exists(stale):
            os.remove(stale)
    work = tempfile.mkdtemp(prefix="carlini_peer_")
    _export(args.peer, work)
    os.makedirs(os.path.join(work, "models"), exist_ok=True)
    os.chdir(work)
    sys.path.insert(0, work)
    _shim_jax()

    sys.argv = ["train_models.py", args.arch, str(args.seed)]
    runpy.run_path("train_models.py", run_name="__main__")

    sys.argv = ["extract.py", args.arch, str(args.seed)]
    mp.cpu_count = lambda: 4  # its pool has cpu_count // 4 workers: none on a 2-core machine; one here
    import src.utils as utils

    counter = mp.Value("q", 0)
    peer_run = utils.run

    def counted_run(x, *a, **kw):
        if not a and not kw:
            with counter.get_lock():
                counter.value += int(np.shape(x)[0])
        return peer_run(x, *a, **kw)

    utils.run = counted_run
    start = time.perf_counter()

    main_pid = os.getpid()

    def on_term(signum, frame):  # killed from outside (a time limit): report what it had spent
        if os.getpid() != main_pid:  # a worker (it inherits the handler) ended by the pool: not a time limit
            os._exit(0)
        print("PEER_RESULT", {"arch": args.arch, "seed": args.seed, "outcome": "killed (time limit)",
                              "queries_so_far": counter.value, "wall_s": round(time.perf_counter() - start, 1)},
              flush=True)
        os._exit(3)

    signal.signal(signal.SIGTERM, on_term)
    outcome = "finished"
    try:
        runpy.run_path("extract.py", run_name="__main__")
    except SystemExit as e:
        outcome = f"exit {e.code}"
    except Exception as e:  # the peer's own failure is a result to report
        outcome = f"{type(e).__name__}: {e}"
    wall = time.perf_counter() - start

    row = {"arch": args.arch, "seed": args.seed, "outcome": outcome, "queries": counter.value,
           "log2_queries": round(math.log2(counter.value), 2) if counter.value else None, "wall_s": round(wall, 1)}
    try:
        A1, B1 = pickle.load(open(f"/tmp/real-{args.arch}.p", "rb"))
        A2, B2 = pickle.load(open(f"/tmp/extracted-{args.arch}.p", "rb"))
        rng = np.random.default_rng(0)
        worst = 0.0
        for start_i in range(0, args.inputs, 100_000):
            X = rng.standard_normal((min(100_000, args.inputs - start_i), np.asarray(A1[0]).shape[0]))
            worst = max(worst, float(np.max(np.abs(_forward(X, A1, B1) - _forward(X, A2, B2)))))
        row["worst_output_error"] = worst
        row["log2_worst_output_error"] = round(math.log2(worst), 1) if worst > 0 else None
    except (OSError, ValueError) as e:
        row["worst_output_error"] = f"no extracted model ({e})"
    print("PEER_RESULT", row, flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
