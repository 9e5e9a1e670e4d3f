"""Wall time of one fixed grid on 1 local worker process, 2 local worker processes and a
2-worker Dask LocalCluster (processes, one thread each), and the overhead per run of each.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/sweep.py [--runs-per-point N]

The grid: exact recovery of logistic models (the linear attack), d in {300, 1000, 3000},
method gradient (2 queries) or equations (d+1 queries), 6 seeds: 36 runs from a few
milliseconds to about a second each.  "in-process" runs the same grid in this process,
one run after another, for reference.  The local pools' sweep wall time includes starting
their worker processes (a forkserver that imports torch and captum once); a Dask cluster
is started (its workers importing the same modules) before the sweep and timed apart.

overhead per run = (wall time x workers - sum of the runs' own time) / runs: the
worker-seconds spent on anything but running (starting processes, importing torch,
shipping runs and results, writing the database), divided over the runs.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from modelrecon import report
from modelrecon.sweep import Study, run_sweep

GRID = {
    "study": {"name": "bench", "attack": "linear", "target": "builtin:logistic?d={d}&seed={seed}"},
    "attack": {"seed": "{seed}", "verify": 2},
    "grid": {"d": [300, 1000, 3000], "seed": list(range(6)), "attack": {"method": ["gradient", "equations"]}},
}


PRELOAD = ["modelrecon.sweep", "modelrecon.explain", "modelrecon.evaluate", "modelrecon.attacks.linear", "captum.attr"]


def run_time_sum(db: Path) -> tuple[int, float]:
    con = sqlite3.connect(db)
    n, total = con.execute("SELECT COUNT(*), SUM(run_time_s) FROM runs WHERE status != 'pending'").fetchone()
    con.close()
    return n, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-inprocess", action="store_true")
    args = parser.parse_args()
    study = Study.from_dict(GRID)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        setups = [("1 local process", 1, None), ("2 local processes", 2, None), ("Dask LocalCluster, 2 workers", 2, "dask")]
        if not args.skip_inprocess:
            setups.insert(0, ("in-process, serial (reference)", 1, "inline"))
        for label, workers, kind in setups:
            db = tmp / f"{len(rows)}.sqlite"
            startup = 0.0
            if kind == "dask":
                from distributed import LocalCluster

                t = time.perf_counter()
                # workers import the library (torch, captum) while the cluster starts, as the local
                # pool's forkserver does before its first run
                cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       worker_dashboard_address=None, silence_logs=40, preload=PRELOAD)
                startup = time.perf_counter() - t
                try:
                    s = run_sweep(study, db=db, scheduler=cluster, progress=False)
                finally:
                    cluster.close()
            else:
                s = run_sweep(study, db=db, workers=0 if kind == "inline" else workers, progress=False)
            n, busy = run_time_sum(db)
            assert n == s.total == s.complete, (n, s)
            overhead = (s.wall_time_s * workers - busy) / n
            rows.append((label, n, s.wall_time_s, startup, s.wall_time_s + startup, busy, overhead * 1e3))
            report.console.print(f"{label}: {s.wall_time_s:.2f} s")
    base = next(r[4] for r in rows if r[0] == "1 local process")
    report.console.print(report.comparison_table(
        f"sweep of {rows[0][1]} linear-attack runs on {os.cpu_count()} cores (machine shared with other jobs)",
        ["backend", "runs", "sweep wall time (s)", "cluster start (s)", "total (s)", "sum of run times (s)",
         "overhead per run (ms, worker time)", "speed-up (total) vs 1 process"],
        [r + (base / r[4],) for r in rows]))


if __name__ == "__main__":
    main()
