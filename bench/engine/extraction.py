"""``bench extract``: the embeddings of a dataset split by a trained method, into the file
format of :mod:`bench.eval.embeddings_file`."""

from __future__ import annotations

from pathlib import Path

from bench.data.base import Split, Tracklet
from bench.data.cell_data import DataRef
from bench.engine.evaluator import extract
from bench.engine.trained import Trained, rebuild, retarget
from bench.eval.embeddings_file import ROLES, write_embeddings

#: which tracklets of a split ``bench extract`` embeds
TRACKLET_SETS = ("test", "query", "gallery", "train")


def tracklet_set(split: Split, which: str) -> tuple[list[Tracklet], dict[str, list[int]]]:
    """The tracklets of ``which`` (test: query and gallery, each tracklet once) and their ids
    in the split's query, gallery and training orders (-1: not in that set)."""
    roles = {"test": ("query", "gallery")}.get(which, (which,))
    tracks = list(dict.fromkeys(t for role in roles for t in getattr(split, role)))
    ids = {}
    for role in ROLES:
        index = {t: i for i, t in enumerate(getattr(split, role))} if role in roles else {}
        ids[role] = [index.get(t, -1) for t in tracks]
    return tracks, ids


def extract_to_file(
    trained: Trained,
    target: DataRef | None,
    which: str,
    out: Path,
    data_root: str | None = None,
    device: str | None = None,
) -> tuple[Path, int]:
    """Embed the ``which`` tracklets of ``target`` (None: the trained cell's own test split)
    with the method's test protocol; (the file, the number of tracklets)."""
    cell = retarget(trained.cell, target, trained.cell.suite)
    method, data, aux, _ = rebuild(trained, cell, data_root, device)
    tracks, ids = tracklet_set(data.split, which)
    s = cell.sections
    emb = extract(method, tracks, s.data, s.eval, aux)
    about = {
        "method": cell.method,
        "variant": cell.variant,
        "trained_by": trained.run_id or trained.source,
        "dataset": {"name": cell.dataset, **cell.dataset_options},
        "split": cell.split,
        "tracklets": which,
        "eval": s.eval.model_dump(mode="json"),
    }
    arrays = {k: v.detach().float().cpu().numpy() for k, v in emb.items()}
    return write_embeddings(out, arrays, tracks, ids, about), len(tracks)
