"""Peak memory of explaining a batch in one pass against passes of at most ``explain.MAX_ROWS`` rows.

    python benchmarks/explain_memory.py [--target builtin:mnist-cnn --n 64 --kind smoothgrad]

Each setting runs in a fresh process (peak resident memory is per process): the target and ``n``
MNIST pool images (saved by the parent, so that the dataset does not raise the child's peak) are
loaded, the resident memory read and its high-water mark reset (Linux: /proc/self/clear_refs), then
the images explained through the local oracle.  Prints resident memory before the explanation and
its peak during it (VmHWM), wall and CPU time, and whether the
answers of both settings agree bit for bit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def measure(target: str, inputs: str, kind: str, max_rows: int) -> dict:
    import numpy as np
    import torch

    from modelrecon import explain
    from modelrecon.oracle import local_oracle
    from modelrecon.targets import load

    torch.set_num_threads(1)
    explain.MAX_ROWS = max_rows
    o = local_oracle(load(target))
    x = np.load(inputs)
    loaded = _status_kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak: what follows is the explanation's
        f.write("5")
    wall, cpu = time.perf_counter(), time.process_time()
    answer = o.explanation(x, kind)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    peak = _status_kb("VmHWM")
    return {"loaded_mb": loaded / 1024, "peak_mb": peak / 1024, "wall_s": wall, "cpu_s": cpu,
            "queries": o.ledger.total(), "digest": hashlib.sha256(answer.tobytes()).hexdigest()[:16]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="builtin:mnist-cnn")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--kind", default="smoothgrad")
    ap.add_argument("--max-rows", type=int, default=None, help=argparse.SUPPRESS)  # (the child process)
    ap.add_argument("--inputs", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.max_rows is not None:
        print(json.dumps(measure(a.target, a.inputs, a.kind, a.max_rows)))
        return
    import tempfile

    import numpy as np

    from modelrecon import explain
    from modelrecon.data import mnist

    inputs = os.path.join(tempfile.mkdtemp(), "x.npy")
    np.save(inputs, mnist().X_pool[:a.n])

    settings = {"one pass": 10**12, f"passes of <= {explain.MAX_ROWS} rows": explain.MAX_ROWS}
    rows = {}
    for name, max_rows in settings.items():
        out = subprocess.run([sys.executable, __file__, "--target", a.target, "--n", str(a.n), "--kind", a.kind,
                              "--max-rows", str(max_rows), "--inputs", inputs], capture_output=True, text=True, check=True)
        rows[name] = json.loads(out.stdout.splitlines()[-1])
    print(f"{a.kind} of {a.n} inputs of {a.target}")
    print("| setting | resident before (MB) | peak resident during (MB) | explanation wall (s) | CPU (s) | queries | answer sha256 |")
    print("|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['loaded_mb']:.0f} | {r['peak_mb']:.0f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} "
              f"| {r['queries']} | {r['digest']} |")
    digests = {r["digest"] for r in rows.values()}
    print("answers agree bit for bit" if len(digests) == 1 else "ANSWERS DIFFER")


if __name__ == "__main__":
    main()
