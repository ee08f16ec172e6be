"""Features of test tracklets -> the method's distance -> CMC/mAP."""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from bench.config import DataConfig, EvalConfig
from bench.data.base import Split, Tracklet
from bench.data.loader import eval_loader
from bench.engine.device import autocast, float32, placement_of, to_device
from bench.eval.metrics import split_ids
from bench.eval.streaming import evaluate_features
from bench.method import Embedding, Method


@torch.no_grad()
def extract(
    method: Method,
    tracks: list[Tracklet],
    data: DataConfig,
    ev: EvalConfig,
    aux: frozenset[str],
    length: int | None = None,
    desc: str = "features",
) -> Embedding:
    """One embedding per tracklet from clips covering all its frames (``method.aggregate``),
    on the method's device, under its training precision's autocast (kept in float32)."""
    loader = eval_loader(tracks, data, ev, aux, length, placement_of(method).device)
    clips, owners = embed_clips(method, loader, aux, desc)
    return method.aggregate(clips, owners, len(tracks), ev.clip_norm)


@torch.no_grad()
def embed_clips(
    method: Method, loader, aux: frozenset[str], desc: str
) -> tuple[Embedding, torch.Tensor]:
    """Embeddings of every clip of ``loader`` (N rows, in order) and their owners (N,)."""
    method.eval()
    where = placement_of(method)
    parts: list[Embedding] = []
    owners = []
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False, dynamic_ncols=True):
        batch = to_device(batch, where.device)
        extra = {k: batch[k] for k in aux if k in batch}
        with autocast(where):
            parts.append(float32(method.embed(batch["clips"], extra)))
        owners.append(batch["owner"])
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}, torch.cat(owners)


def _rows(emb: Embedding, index: torch.Tensor) -> Embedding:
    return {k: v[index] for k, v in emb.items()}


def _unique(split: Split) -> list[Tracklet]:
    """Query and gallery tracklets without repeats (MARS's official gallery holds the queries)."""
    return list(dict.fromkeys(split.query + split.gallery))


def score_embeddings(
    method: Method,
    split: Split,
    q_emb: Embedding,
    g_emb: Embedding,
    ev: EvalConfig | None = None,
    rerank: bool = False,
):
    """Metrics from embeddings of ``_unique(split)`` (probe side and gallery side), streamed
    (:func:`bench.eval.streaming.evaluate_features`); re-ranked too when ``rerank`` and
    ``ev.rerank`` ask for it."""
    index = {t: i for i, t in enumerate(_unique(split))}
    device = next(iter(q_emb.values())).device
    qi = torch.tensor([index[t] for t in split.query], device=device)
    gi = torch.tensor([index[t] for t in split.gallery], device=device)
    chunk = ev.chunk_size if ev is not None else None
    again = ev.rerank.model_dump() if rerank and ev is not None and ev.rerank else None
    return evaluate_features(
        method.distance,
        _rows(q_emb, qi),
        _rows(g_emb, gi),
        split_ids(split),
        split.protocol,
        chunk,
        again,
    )


def score(method: Method, split: Split, data: DataConfig, ev: EvalConfig, aux: frozenset[str]):
    """Metrics of ``method`` on a split, every tracklet embedded once from all its frames,
    with the method's own diagnostics of its test embeddings (``diag.*``)."""
    emb = extract(method, _unique(split), data, ev, aux)
    result = score_embeddings(method, split, emb, emb, ev, rerank=True)
    with torch.no_grad():
        return {**result, **method.diagnostics(emb)}
