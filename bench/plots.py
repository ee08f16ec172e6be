"""Figures: CMC curves and sequence-length heat maps (PNG, matplotlib's Agg backend)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.atomic import atomic_path  # noqa: E402


def cmc_figure(curves: dict[str, list[float]], title: str, path: Path) -> Path:
    """One CMC curve (rank 1..len, percent) per label, saved to ``path``."""
    fig, ax = plt.subplots(figsize=(5, 3.6), dpi=120)
    for label, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, label=label, linewidth=1.5)
    ax.set(xlabel="rank", ylabel="matching rate (%)", title=title, ylim=(0, 100))
    ax.set_xscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def heatmap_figure(grid: dict[tuple[int, int], float], title: str, path: Path) -> Path:
    """Rank-1 over (probe length, gallery length); length 0 is shown as 'all'."""
    lengths = sorted({q for q, _ in grid}, key=lambda n: n or 10**9)
    names = [str(n) if n else "all" for n in lengths]
    values = [[grid.get((q, g), float("nan")) for g in lengths] for q in lengths]
    fig, ax = plt.subplots(figsize=(4.4, 3.8), dpi=120)
    im = ax.imshow(values, cmap="viridis", vmin=0, vmax=100, origin="lower")
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.0f}", ha="center", va="center", color="w", fontsize=7)
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="gallery length", ylabel="probe length", title=title)
    fig.colorbar(im, ax=ax, label="rank-1 (%)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path
