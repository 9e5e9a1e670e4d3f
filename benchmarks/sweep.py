"""Wall time of one fixed grid on 1 local worker process, 2 local worker processes and a
2-worker Dask LocalCluster (processes, one thread each), and the overhead per run of each.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/sweep.py

The grid: exact recovery of logistic models (the linear attack), d in {300, 1000, 3000},
method gradient (2 queries) or equations (d+1 queries), 6 seeds: 36 runs from a few
milliseconds to about a second each.  "in-process" runs the same grid in this process,
one run after another, for reference.  Each backend is timed in a fresh interpreter
(a cold start, as `modelrecon sweep` has), from the call once the library is imported.

start-up = from the call until the first run starts (starting worker processes or the
Dask cluster, importing torch and captum in them); running = first run start to last run
finish; overhead per run while running = (running x workers - sum of the runs' own times)
/ runs: worker-seconds spent on anything but running (shipping runs and results, writing
the database, idling), per run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import sqlite3
import tempfile
import time
from datetime import datetime
from pathlib import Path

from modelrecon import report
from modelrecon.sweep import Study, run_sweep

GRID = {
    "study": {"name": "bench", "attack": "linear", "target": "builtin:logistic?d={d}&seed={seed}"},
    "attack": {"seed": "{seed}", "verify": 2},
    "grid": {"d": [300, 1000, 3000], "seed": list(range(6)), "attack": {"method": ["gradient", "equations"]}},
}


PRELOAD = ["modelrecon.sweep", "modelrecon.explain", "modelrecon.evaluate", "modelrecon.attacks.linear", "captum.attr"]


def measured(db: Path) -> tuple[int, float, float, float]:
    """(runs, sum of run times, first start, last finish) from the database (epoch seconds)."""
    con = sqlite3.connect(db)
    n, total, first, last = con.execute(
        "SELECT COUNT(*), SUM(run_time_s), MIN(started_at), MAX(finished_at) FROM runs WHERE status != 'pending'").fetchone()
    con.close()
    ts = lambda t: datetime.fromisoformat(t).timestamp()  # noqa: E731
    return n, total, ts(first), ts(last)


SETUPS = {  # name -> (label, workers, kind)
    "inline": ("in-process, serial (reference)", 1, "inline"),
    "local1": ("1 local process", 1, "local"),
    "local2": ("2 local processes", 2, "local"),
    "dask2": ("Dask LocalCluster, 2 workers", 2, "dask"),
}


def one(name: str, db: Path) -> tuple:
    """One backend, timed from the call (this interpreter has imported the library already)."""
    label, workers, kind = SETUPS[name]
    study = Study.from_dict(GRID)
    t0 = time.time()
    if kind == "dask":
        from distributed import LocalCluster

        # the workers import the library (torch, captum) while the cluster starts, as the
        # local pool's forkserver does before its first run
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                               worker_dashboard_address=None, silence_logs=40, preload=PRELOAD)
        try:
            s = run_sweep(study, db=db, scheduler=cluster, progress=False)
        finally:
            cluster.close()
    else:
        s = run_sweep(study, db=db, workers=0 if kind == "inline" else workers, progress=False)
    n, busy, first, last = measured(db)
    assert n == s.total == s.complete, (n, s)
    span = last - first
    return (label, n, first - t0, span, last - t0, busy, (span * workers - busy) / n * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", choices=list(SETUPS), help="(internal) time one backend in this process")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.one:
        args.out.write_text(json.dumps(one(args.one, args.out.with_suffix(".sqlite"))))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in SETUPS:  # each backend in a fresh interpreter: a cold start, as `modelrecon sweep` has
            out = Path(tmp) / f"{name}.json"
            subprocess.run([sys.executable, __file__, "--one", name, "--out", str(out)], check=True)
            rows.append(tuple(json.loads(out.read_text())))
            report.console.print(f"{rows[-1][0]}: {rows[-1][4]:.2f} s")
    base = next(r[4] for r in rows if r[0] == "1 local process")
    report.console.print(report.comparison_table(
        f"sweep of {rows[0][1]} linear-attack runs on {os.cpu_count()} cores (machine shared with other jobs)",
        ["backend", "runs", "start-up (s)", "running (s)", "total (s)", "sum of run times (s)",
         "overhead per run while running (ms of worker time)", "speed-up (total) vs 1 process"],
        [r + (base / r[4],) for r in rows]))


if __name__ == "__main__":
    main()
