"""The file ``bench extract`` writes: one embedding per tracklet of a dataset split, by a
trained method, with what identifies each tracklet; and its reader, :func:`read_embeddings`.

The file is a NumPy ``.npz`` (a zip of ``.npy`` arrays) holding only numbers and fixed-width
strings, read with ``allow_pickle=False``: nothing in it is ever unpickled. Arrays, for N
tracklets:

- ``emb.<name>``: float32 (N, ...), each tensor of the method's embedding (``feat`` for the
  baseline, IAUnet and RGSA-RGTR; ``g``, ``f`` (N, 6, D), ``a`` (N, 6) for STAL, whose
  distance combines them: docs/api.md);
- ``pid``, ``camid``: int64 (N,);
- ``query_id``, ``gallery_id``, ``train_id``: int64 (N,), the tracklet's id in the split's
  query, gallery or training order (-1: not in that set; MARS's gallery holds its queries, so
  one tracklet may have both), the ids ``per_query.csv`` uses;
- ``frames``: str (F,), every tracklet's frame files one tracklet after the other, and
  ``frame_start``: int64 (N + 1,): tracklet i's frames are ``frames[frame_start[i]:
  frame_start[i + 1]]``;
- ``about``: str (), JSON: the method, its run, the dataset, split and options, the test
  protocol (``eval``) the embeddings were made with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.data.base import Tracklet
from bench.files.atomic import atomic_path

EMB = "emb."
ROLES = ("query", "gallery", "train")


@dataclass
class Embeddings:
    """The content of an embeddings file."""

    emb: dict[str, np.ndarray]
    pid: np.ndarray
    camid: np.ndarray
    ids: dict[str, np.ndarray]  # 'query' | 'gallery' | 'train' -> (N,) ids, -1 = not in it
    frames: list[tuple[str, ...]]
    about: dict

    def __len__(self) -> int:
        return len(self.pid)


def write_embeddings(
    path: Path,
    emb: dict[str, np.ndarray],
    tracks: list[Tracklet],
    ids: dict[str, list[int]],
    about: dict,
) -> Path:
    """Write the file (atomically: a crash leaves no half file); ``ids`` per role as above."""
    starts = np.cumsum([0, *(len(t.frames) for t in tracks)]).astype(np.int64)
    arrays = {f"{EMB}{k}": np.ascontiguousarray(v, dtype=np.float32) for k, v in emb.items()}
    arrays.update(
        pid=np.array([t.pid for t in tracks], dtype=np.int64),
        camid=np.array([t.camid for t in tracks], dtype=np.int64),
        frames=np.array([f for t in tracks for f in t.frames], dtype=str),
        frame_start=starts,
        about=np.array(json.dumps(about, sort_keys=True, default=str)),
        **{f"{role}_id": np.asarray(ids[role], dtype=np.int64) for role in ROLES},
    )
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path


def read_embeddings(path: str | Path) -> Embeddings:
    """An embeddings file written by ``bench extract`` (never unpickled)."""
    with np.load(path, allow_pickle=False) as z:
        starts = z["frame_start"]
        frames = z["frames"].tolist()
        return Embeddings(
            emb={k.removeprefix(EMB): z[k] for k in z.files if k.startswith(EMB)},
            pid=z["pid"],
            camid=z["camid"],
            ids={role: z[f"{role}_id"] for role in ROLES},
            frames=[tuple(frames[a:b]) for a, b in zip(starts[:-1], starts[1:], strict=True)],
            about=json.loads(str(z["about"])),
        )
