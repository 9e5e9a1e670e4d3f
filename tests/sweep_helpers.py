"""Attacks for the sweep tests: the real linear attack, plus a log of finished executions
and scripted interruptions, errors, delays and hangs (what a killed or crashing sweep looks like)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from modelrecon.attacks.linear import LinearAttack


class Scripted(LinearAttack):
    name = "linear"  # evaluated as the linear attack it is

    def __init__(self, log: str, tag: str, interrupt_at: int = -1, marker: str = "", fail_at: int = -1,
                 sleep: float = 0.0, hang_at: int = -1, **kwargs):
        super().__init__(**kwargs)
        self.log, self.tag, self.interrupt_at, self.marker = log, tag, interrupt_at, marker
        self.fail_at, self.sleep, self.hang_at = fail_at, sleep, hang_at

    def execute(self, oracle):
        if self.seed == self.interrupt_at and not Path(self.marker).exists():
            Path(self.marker).touch()  # interrupt only the first time: the restart gets through
            raise KeyboardInterrupt
        if self.seed == self.hang_at and not Path(self.marker).exists():
            Path(self.marker).touch()  # a long run, the first time only: the one a Ctrl-C arrives during
            time.sleep(120)
        if self.seed == self.fail_at:
            raise RuntimeError(f"scripted failure at seed {self.seed}")
        time.sleep(self.sleep)
        result = super().execute(oracle)
        with open(self.log, "a") as f:  # one line per finished execution, appended atomically
            f.write(f"{self.tag}\n")
            f.flush()
            os.fsync(f.fileno())
        return result


def count_recipe(rows, out: Path) -> list[Path]:
    """A plot recipe: how many runs are done, per method."""
    path = out / "done.txt"
    done = sorted(r["point"]["attack.method"] for r in rows if r["status"] != "pending")
    path.write_text(" ".join(done))
    return [path]
