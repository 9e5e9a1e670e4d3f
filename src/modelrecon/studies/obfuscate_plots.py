"""Pictures of input obfuscation (matplotlib, PNG): the image grid and the
label-preserved-rate curve.  Pure rendering: everything shown is computed elsewhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from modelrecon.report import save_figure


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def grid(rows: Sequence[dict[str, Any]], path: str | Path, image_shape: tuple[int, int] | None = None,
         title: str = "") -> Path:
    """One row per entry: ``{"title", "images" (N, ...), "labels" (N,), "confidence" (N,) or None}``.

    Every image is shown on its own grey scale (min to max), as a person would see it;
    under it the network's top-1 label and its confidence."""
    plt = _plt()
    n = len(rows[0]["images"])
    fig, axes = plt.subplots(len(rows), n, figsize=(1.15 * n + 1.6, 1.45 * len(rows) + 0.5), squeeze=False)
    for i, row in enumerate(rows):
        imgs = np.asarray(row["images"])
        shape = image_shape or _square(imgs[0].size)
        for j in range(n):
            ax = axes[i, j]
            ax.imshow(imgs[j].reshape(shape), cmap="gray_r", interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            label = row.get("labels")
            if label is not None:
                conf = row.get("confidence")
                text = f"{int(label[j])}" + (f" ({100 * conf[j]:.0f}%)" if conf is not None else "")
                color = "black"
                ref = row.get("reference")
                if ref is not None:
                    color = "tab:green" if int(label[j]) == int(ref[j]) else "tab:red"
                ax.set_xlabel(text, fontsize=8, color=color)
        axes[i, 0].set_ylabel(row["title"], fontsize=8, rotation=0, ha="right", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    return save_figure(fig, path, dpi=110)


def _square(size: int) -> tuple[int, int]:
    side = int(round(np.sqrt(size)))
    return (side, size // side) if side * (size // side) == size else (1, size)


STYLE = {"recovered span": ("tab:blue", "o-"), "recovered span (box, output 0)": ("tab:orange", "d-."),
         "recovered span (box, output 1)": ("tab:purple", "v-."),
         "true span": ("tab:green", "s--"), "random subspace": ("tab:red", "^-")}


def curve(rows: Sequence[dict[str, Any]], path: str | Path, chance: float | None = None, title: str = "") -> Path:
    """Label-preserved rate against noise-to-signal ratio, one line per ``row["span"]``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r["span"] for r in rows):
        pts = sorted((r["ratio"], r["label_preserved_rate"]) for r in rows if r["span"] == name)
        color, style = STYLE.get(name, STYLE.get(name.split(" (")[0], (None, "o-")))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=color, label=name)
    if chance is not None:
        ax.axhline(chance, color="grey", lw=0.8, ls=":", label=f"chance ({chance:.2f})")
    ax.set_xlabel("noise-to-signal ratio ||z|| / ||x||")
    ax.set_ylabel("label preserved (top-1 on x' = on x)")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    return save_figure(fig, path, dpi=110)
