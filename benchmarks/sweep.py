"""Wall time of one fixed grid on 1 local worker process, 2 local worker processes and a
2-worker Dask LocalCluster (processes, one thread each), and the overhead per run of each.

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python benchmarks/sweep.py [--skip-inprocess]

The grid: exact recovery of logistic models (the linear attack), d in {300, 1000, 3000},
method gradient (2 queries) or equations (d+1 queries), 6 seeds: 36 runs from a few
milliseconds to about a second each.  "in-process" runs the same grid in this process,
one run after another, for reference.

start-up = from the call until the first run starts (starting worker processes or the
Dask cluster, importing torch and captum in them); running = first run start to last run
finish; overhead per run while running = (running x workers - sum of the runs' own times)
/ runs: worker-seconds spent on anything but running (shipping runs and results, writing
the database, idling), per run.
"""

from __future__ import annotations

import argparse
import os
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
            t0 = time.time()
            if kind == "dask":
                from distributed import LocalCluster

                # workers import the library (torch, captum) while the cluster starts, as the local
                # pool's forkserver does before its first run
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
            total = last - t0
            span = last - first
            overhead = (span * workers - busy) / n
            rows.append((label, n, first - t0, span, total, busy, overhead * 1e3))
            report.console.print(f"{label}: {total:.2f} s")
    base = next(r[4] for r in rows if r[0] == "1 local process")
    report.console.print(report.comparison_table(
        f"sweep of {rows[0][1]} linear-attack runs on {os.cpu_count()} cores (machine shared with other jobs)",
        ["backend", "runs", "start-up (s)", "running (s)", "total (s)", "sum of run times (s)",
         "overhead per run while running (ms of worker time)", "speed-up (total) vs 1 process"],
        [r + (base / r[4],) for r in rows]))


if __name__ == "__main__":
    main()
