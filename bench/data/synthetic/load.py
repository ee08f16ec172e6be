"""Reading a finished cache folder back as tracklets by role (train, query, gallery).

``aux`` picks the annotations the tracklets point at: ``exact`` (the generator's own) or
``estimated`` (the estimation model's, under each tracklet's ``estimated/``). ``queries`` picks
the test protocol (docs/synthetic.md, "Protocol"):

- ``per_camera`` (MARS-like): the first tracklet of every test identity in every one of its
  cameras is a query; the gallery holds every test tracklet, queries included, and the
  distractors (a query's own camera is ignored by the metric);
- ``one``: one query per test identity (its first tracklet in its query camera), the gallery
  every other test tracklet and the distractors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from bench.data.base import ExactAnnotations, Tracklet
from bench.data.synthetic.store import ESTIMATED, NUISANCES, frame_name, read_index

ROLES = ("train", "query", "gallery")
Aux = Literal["estimated", "exact"]
Queries = Literal["per_camera", "one"]


def tracklet(folder: Path, row: dict, aux: Aux = "estimated") -> Tracklet:
    """A tracklet from an index row; frames and masks listed by frame index, never by glob.
    Its ``exact`` annotations are the generator's own whatever ``aux`` gives the methods."""
    base = folder / row["path"]
    notes = base / ESTIMATED if aux == "estimated" else base
    names = [frame_name(i) for i in range(row["frames"])]
    exact = ExactAnnotations(
        masks=tuple(str(base / "masks" / n) for n in names),
        keypoints=str(base / "keypoints.npy"),
        nuisances=str(base / NUISANCES),
    )
    return Tracklet(
        frames=tuple(str(base / "frames" / n) for n in names),
        pid=int(row["pid"]),
        camid=int(row["camid"]),
        masks=exact.masks if aux == "exact" else tuple(str(notes / "masks" / n) for n in names),
        keypoints=exact.keypoints if aux == "exact" else str(notes / "keypoints.npy"),
        exact=exact,
    )


def roles_of(rows: list[dict], queries: Queries) -> list[tuple[str, ...]]:
    """The roles of every index row under a query protocol (a row may be query and gallery)."""
    if queries == "one":
        return [(r["role"],) for r in rows]
    test_pids = {r["pid"] for r in rows if r["role"] == "query"}
    seen: set[tuple[int, int]] = set()
    out = []
    for r in rows:
        key = (r["pid"], r["camid"])
        first = r["role"] != "train" and r["pid"] in test_pids and key not in seen
        seen.add(key)
        if r["role"] == "train":
            out.append(("train",))
        else:
            out.append(("query", "gallery") if first else ("gallery",))
    return out


def load_tracklets(
    folder: Path, aux: Aux = "estimated", queries: Queries = "per_camera"
) -> dict[str, list[Tracklet]]:
    """Role -> tracklets, in the index's (deterministic) order."""
    rows = read_index(folder)["tracklets"]
    out: dict[str, list[Tracklet]] = {role: [] for role in ROLES}
    for row, roles in zip(rows, roles_of(rows, queries), strict=True):
        t = tracklet(folder, row, aux)
        for role in roles:
            out[role].append(t)
    return out
