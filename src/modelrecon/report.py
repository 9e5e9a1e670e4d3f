"""Rendering of results: rich tables for the terminal, progress bars. Results stay data."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from modelrecon.result import Result

console = Console(width=None if sys.stdout.isatty() else 140)

STATUS_STYLE = {"complete": "bold green", "partial": "bold yellow", "failed": "bold red"}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return str(v)


def result_table(result: Result) -> Table:
    t = Table(title=f"modelrecon · {result.attack}", show_header=False, title_justify="left")
    t.add_column(style="bold cyan")
    t.add_column()
    t.add_row("target", result.target)
    t.add_row("status", f"[{STATUS_STYLE[result.status]}]{result.status}[/]")
    t.add_row("message", result.message)
    q = result.queries
    t.add_row("queries", f"{q.get('total', 0)}  ({_fmt(q.get('by_kind', {}))})")
    for phase, v in q.items():
        if isinstance(v, dict) and "total" in v:
            t.add_row(f"  + {phase}", f"{v['total']}  ({_fmt(v['by_kind'])})")
    if q.get("replayed"):
        t.add_row("  replayed", _fmt(q["replayed"]))
    t.add_row("model evaluations", str(q.get("evaluations", 0)))
    t.add_row("wall time", f"{result.wall_time_s:.3f} s")
    for k, v in result.metrics.items():
        t.add_row(k, _fmt(v))
    return t


def show(result: Result) -> None:
    console.print(result_table(result))


def comparison_table(title: str, columns: list[str], rows: Iterable[Iterable[Any]]) -> Table:
    t = Table(title=title, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*[_fmt(x) for x in r])
    return t


def save_figure(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Lay out, write (creating the folder) and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def progress(transient: bool = False) -> Progress:
    """A progress bar for long work (rich), quiet when output is not a terminal."""
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console, transient=transient)
