"""The picture of ``bench show attention``: a method's attention over the frames of one test
tracklet, beside the exact part masks and what went wrong in each frame when the data is
generated (one PNG)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.files.atomic import atomic_path
from bench.models.part_boxes import PART_NAMES, part_visibility
from bench.models.probes import AttentionView
from bench.report.figures import plt

#: part-mask colours: background, head, upper body, lower body, shoes (docs/synthetic.md)
MASK_COLOURS = np.array(
    [[0, 0, 0], [220, 40, 40], [40, 180, 40], [40, 80, 220], [230, 200, 30]], np.uint8
)


@dataclass
class Truth:
    """The exact annotations of the drawn frames: part masks (T, H, W), the kind of each
    frame's misdetection ("" for a good crop) and its occluded joints (T, 14) bool."""

    masks: np.ndarray
    misdetection: list[str]
    occluded: np.ndarray

    def frame_note(self, t: int) -> str:
        if self.misdetection[t]:
            return f"misdetected ({self.misdetection[t]})"
        hidden = int(self.occluded[t].sum())
        return f"{hidden} joints occluded" if hidden else "clean"


@dataclass
class AttentionShot:
    """What is drawn: the frames (T, H, W, 3) uint8 at the input size, their frame indices, the
    method's view, the truth (None on real data) and a title."""

    frames: np.ndarray
    indices: list[int]
    view: AttentionView
    truth: Truth | None
    title: str


def _numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy()


def _image_rows(shot: AttentionShot) -> list[tuple[str, str, object]]:
    """(row label, kind, data) of the rows of frame-sized panels."""
    rows: list[tuple[str, str, object]] = [("frames", "frame", None)]
    if shot.truth is not None:
        rows.append(("exact part masks", "mask", shot.truth.masks))
    rows += [(name, "map", _numpy(m)) for name, m in shot.view.maps.items()]
    if shot.view.boxes is not None:
        rows.append(("part boxes by score", "boxes", None))
    return rows


def _extra_panels(shot: AttentionShot) -> list[tuple[str, str, object]]:
    """(title, kind, data) of the panels below the frames: per-frame values, unit scores (with
    the exact visibility when known) and matrices."""
    view, out = shot.view, []
    if view.per_frame:
        out.append(("per frame", "bars", {k: _numpy(v) for k, v in view.per_frame.items()}))
    if view.box_scores is not None:
        out.append(("unit scores (part x frame)", "units", _numpy(view.box_scores).T))
        if shot.truth is not None:
            visible = part_visibility(
                torch.from_numpy(shot.truth.occluded),
                torch.tensor([bool(k) for k in shot.truth.misdetection]),
            )
            out.append(("exact visibility (part x frame)", "visibility", visible.numpy().T))
    for name, (matrix, labels) in view.matrices.items():
        out.append((name, "matrix", (_numpy(matrix), labels)))
    return out


def _draw_frame_panel(ax, shot: AttentionShot, t: int, kind: str, data) -> None:
    frame = shot.frames[t]
    h, w = frame.shape[:2]
    if kind == "mask":
        ax.imshow(MASK_COLOURS[data[t]])
    else:
        ax.imshow(frame)
    if kind == "map":
        lo, hi = float(np.min(data)), float(np.max(data))
        ax.imshow(data[t], extent=(0, w, h, 0), alpha=0.55, cmap="jet", vmin=lo, vmax=hi or 1)
    if kind == "boxes":
        scores = _numpy(shot.view.box_scores)
        lo, hi = scores.min(), scores.max()
        for r, (x1, y1, x2, y2) in enumerate(_numpy(shot.view.boxes[t])):
            level = (scores[t, r] - lo) / (hi - lo) if hi > lo else 0.5
            colour = plt.cm.viridis(level)
            ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=colour))
    ax.set_xticks([])
    ax.set_yticks([])


def _draw_extra(ax, shot: AttentionShot, title: str, kind: str, data) -> None:
    ax.set_title(title, fontsize=7)
    if kind == "bars":
        x = np.arange(len(shot.indices))
        width = 0.8 / len(data)
        for i, (name, values) in enumerate(data.items()):
            ax.bar(x + i * width, values, width=width, label=name)
        ax.set_xticks(x + 0.4 - width / 2, [str(i) for i in shot.indices], fontsize=6)
        ax.legend(fontsize=5)
        if shot.truth is not None:
            for t, kind_ in enumerate(shot.truth.misdetection):
                if kind_:
                    ax.axvspan(t - 0.5, t + 0.5, color="red", alpha=0.12)
    elif kind in ("units", "visibility"):
        scale = {"vmin": 0.0, "vmax": 1.0} if kind == "visibility" else {}
        image = ax.imshow(data, cmap="viridis", aspect="auto", **scale)
        ax.set_yticks(range(len(PART_NAMES)), PART_NAMES, fontsize=5)
        ax.set_xticks(range(len(shot.indices)), [str(i) for i in shot.indices], fontsize=6)
        plt.colorbar(image, ax=ax)
    else:
        matrix, labels = data
        image = ax.imshow(matrix, cmap="magma")
        step = max(1, len(labels) // 16)
        ticks = range(0, len(labels), step)
        ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=90, fontsize=4)
        ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize=4)
        plt.colorbar(image, ax=ax)


def attention_figure(shot: AttentionShot, path: Path) -> Path:
    """One PNG: a column per frame, a row per frame-sized panel (frames, exact masks, each
    attention map over the frames, part boxes coloured by score), then the other panels."""
    rows, extras = _image_rows(shot), _extra_panels(shot)
    t = len(shot.indices)
    extra_rows = math.ceil(len(extras) / 2)
    fig = plt.figure(figsize=(max(6.0, 1.1 * t + 1.5), 2.0 * len(rows) + 2.6 * extra_rows), dpi=130)
    grid = fig.add_gridspec(
        len(rows) + extra_rows, max(t, 2), height_ratios=[2.0] * len(rows) + [2.6] * extra_rows
    )
    for r, (label, kind, data) in enumerate(rows):
        for f in range(t):
            ax = fig.add_subplot(grid[r, f])
            _draw_frame_panel(ax, shot, f, kind, data)
            if r == 0:
                note = f"\n{shot.truth.frame_note(f)}" if shot.truth is not None else ""
                ax.set_title(f"frame {shot.indices[f]}{note}", fontsize=6)
            if f == 0:
                ax.set_ylabel(label, fontsize=6)
    half = max(t, 2) // 2
    for i, (title, kind, data) in enumerate(extras):
        row, col = len(rows) + i // 2, i % 2
        span = slice(0, half) if col == 0 else slice(half, max(t, 2))
        _draw_extra(fig.add_subplot(grid[row, span]), shot, title, kind, data)
    fig.suptitle(shot.title, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path
