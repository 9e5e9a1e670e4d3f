"""Plot recipes of the deep ReLU sweeps: queries per hidden neuron.

* :func:`gradient_figures` (configs/deep-relu.toml, the relu attack from gradients): ``deep.png``, a bar
  per run (network and mode), green where the run is exact (complete), grey where it is partial or failed;
* :func:`value_figures` (configs/deep-value.toml, from values alone): ``deep-value-queries.png``, queries
  per hidden neuron against depth (hidden layers) and width (widest hidden layer), o complete, x not.

The networks' widths are read from the runs' target specs (``builtin:deep?...&widths=W1,...,1``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from modelrecon.report import save_figure


def hidden_widths(row: dict[str, Any]) -> list[int]:
    """The hidden layers' widths of a run's ``builtin:deep`` target (its last width is the output)."""
    query = parse_qs(urlsplit(row["target"]).query)
    if "widths" not in query:
        raise ValueError(f"run {row['point']} has no widths in its target {row['target']!r}: not a builtin:deep network")
    return [int(w) for w in query["widths"][0].split(",")][:-1]


def _runs(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    done = [r for r in rows if r["status"] != "pending" and r["queries"]]
    if not done:
        raise ValueError("no finished run with queries to draw")
    return done


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def gradient_figures(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """``deep.png``: queries per hidden neuron of each run, green where exact."""
    from modelrecon.sweep import field_value

    done = _runs(rows)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(7, 1.1 * len(done)), 3.5))
    labels = [f"{field_value(r, 'net')}\n{field_value(r, 'mode') or ''}".strip() for r in done]
    ax.bar(range(len(done)), [r["queries"] / sum(hidden_widths(r)) for r in done],
           color=["tab:green" if r["status"] == "complete" else "tab:gray" for r in done])
    ax.set_xticks(range(len(done)), labels, fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("queries per hidden neuron")
    ax.set_title("deep ReLU extraction from gradients (green: exact, grey: partial / failed)", fontsize=9)
    return [save_figure(fig, out / "deep.png", dpi=120)]


def value_figures(rows: list[dict[str, Any]], out: Path) -> list[Path]:
    """``deep-value-queries.png``: queries per hidden neuron against depth and width."""
    from modelrecon.sweep import field_value

    done = _runs(rows)
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for r in done:
        widths = hidden_widths(r)
        per = r["queries"] / sum(widths)
        ok = r["status"] == "complete"
        for ax, x in zip(axes, (len(widths), max(widths))):
            ax.scatter([x], [per], marker="o" if ok else "x", color="C0" if ok else "C3")
            ax.annotate(str(field_value(r, "net")), (x, per), fontsize=7, xytext=(3, 3), textcoords="offset points")
    axes[0].set_xlabel("hidden layers")
    axes[1].set_xlabel("widest hidden layer")
    axes[1].set_xscale("log")
    axes[0].set_ylabel("value queries per hidden neuron")
    for ax in axes:
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.suptitle("relu --mode value: queries per neuron (o complete, x not complete)", fontsize=9)
    return [save_figure(fig, out / "deep-value-queries.png", dpi=120)]
