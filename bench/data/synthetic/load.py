"""Reading a finished cache folder back as tracklets by role (train, query, gallery)."""

from __future__ import annotations

from pathlib import Path

from bench.data.base import Tracklet
from bench.data.synthetic.store import frame_name, read_index

ROLES = ("train", "query", "gallery")


def tracklet(folder: Path, row: dict) -> Tracklet:
    """A tracklet from an index row; frames and masks listed by frame index, never by glob."""
    base = folder / row["path"]
    names = [frame_name(i) for i in range(row["frames"])]
    return Tracklet(
        frames=tuple(str(base / "frames" / n) for n in names),
        pid=int(row["pid"]),
        camid=int(row["camid"]),
        masks=tuple(str(base / "masks" / n) for n in names),
        keypoints=str(base / "keypoints.npy"),
    )


def load_tracklets(folder: Path) -> dict[str, list[Tracklet]]:
    """Role -> tracklets, in the index's (deterministic) order."""
    rows = read_index(folder)["tracklets"]
    return {role: [tracklet(folder, r) for r in rows if r["role"] == role] for role in ROLES}
