"""Figures: CMC curves, validation curves, sequence-length heat maps and stress sweeps (PNG,
matplotlib's Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.files.atomic import atomic_path  # noqa: E402

#: line styles cycled after the 10 colours, so that no two of up to 40 curves look alike
STYLES = ("-", "--", ":", "-.")


def curve_style(i: int) -> dict[str, str]:
    """The colour and line style of the i-th curve: distinct for the first 40."""
    return {"color": f"C{i % 10}", "linestyle": STYLES[i // 10 % len(STYLES)]}


def cmc_figure(curves: dict[str, list[float]], title: str, path: Path) -> Path:
    """One CMC curve (rank 1..len, percent) per label, saved to ``path``; the legend sits
    outside the axes, in rank-1 order, so that it hides no curve however many rows there are."""
    fig, ax = plt.subplots(figsize=(5 + 2.5 * (len(curves) > 6), 3.6), dpi=120)
    order = sorted(curves, key=lambda label: -curves[label][0] if curves[label] else 0)
    for i, label in enumerate(order):
        curve = curves[label]
        ax.plot(range(1, len(curve) + 1), curve, label=label, linewidth=1.5, **curve_style(i))
    ax.set(xlabel="rank", ylabel="matching rate (%)", title=title, ylim=(0, 100))
    ax.set_xscale("log")
    ax.grid(True, alpha=0.3)
    if len(curves) > 6:
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    else:
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


def rerank_figure(gains: dict[str, dict[str, tuple[float, float]]], title: str, path: Path) -> Path:
    """Plain vs re-ranked R1 and mAP per row: ``gains[label][metric] = (plain, re-ranked)``."""
    metrics = [m for m in ("R1", "mAP") if any(m in g for g in gains.values())]
    labels = list(gains)
    fig, axes = plt.subplots(1, len(metrics), figsize=(2 + 1.2 * len(labels) * len(metrics), 3.6))
    axes = [axes] if len(metrics) == 1 else list(axes)
    x = range(len(labels))
    for ax, metric in zip(axes, metrics, strict=True):
        plain = [gains[k].get(metric, (float("nan"),) * 2)[0] for k in labels]
        reranked = [gains[k].get(metric, (float("nan"),) * 2)[1] for k in labels]
        ax.bar([i - 0.2 for i in x], plain, width=0.4, label="plain")
        ax.bar([i + 0.2 for i in x], reranked, width=0.4, label="re-ranked")
        ax.set_xticks(list(x), labels, rotation=30, ha="right", fontsize=7)
        ax.set(ylabel=f"{metric} (%)", ylim=(0, 100), title=metric)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)
    return path


def curves_figure(curves: dict[str, list[float]], title: str, path: Path) -> Path:
    """One curve per label over epochs 1..len (validation mAP, percent), saved to ``path``."""
    fig, ax = plt.subplots(figsize=(5 + 2.5 * (len(curves) > 6), 3.6), dpi=120)
    order = sorted(curves, key=lambda label: -curves[label][-1] if curves[label] else 0)
    for i, label in enumerate(order):
        curve = curves[label]
        ax.plot(range(1, len(curve) + 1), curve, label=label, marker=".", **curve_style(i))
    ax.set(xlabel="epoch", ylabel="validation mAP (%)", title=title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def sweep_figure(
    panels: dict[str, dict[str, list[tuple[float, float, float, float]]]],
    title: str,
    xlabel: str,
    today: float,
    path: Path,
    zero: bool = False,
) -> Path:
    """One panel per name (its y label) with one line per series over the levels of a sweep,
    each point (level, value, low, high) with its interval as an error bar (the series set a
    little apart at each level); today's level is a dotted vertical line, ``zero`` draws y = 0."""
    cols = min(len(panels), 3)
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.3 * cols, 3.3 * rows), squeeze=False, dpi=120)
    levels = [p[0] for series in panels.values() for points in series.values() for p in points]
    dodge = 0.012 * ((max(levels) - min(levels)) or 1.0)  # series side by side at a level
    for ax, (name, series) in zip(list(axes.flat)[: len(panels)], panels.items(), strict=True):
        for i, (label, points) in enumerate(sorted(series.items())):
            x, y, lo, hi = zip(*sorted(points), strict=True)
            x = [v + (i - (len(series) - 1) / 2) * dodge for v in x]
            below = [max(0.0, v - low) for v, low in zip(y, lo, strict=True)]
            above = [max(0.0, high - v) for v, high in zip(y, hi, strict=True)]
            style = curve_style(i)
            ax.errorbar(x, y, yerr=[below, above], label=label, marker="o", capsize=3, **style)
        ax.axvline(today, color="grey", linestyle=":", linewidth=1)
        if zero:
            ax.axhline(0.0, color="black", linewidth=0.6)
        ax.set(xlabel=xlabel, ylabel=name)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path
