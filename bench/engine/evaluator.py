"""Features of test tracklets -> the method's distance -> CMC/mAP."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from bench.config import DataConfig, EvalConfig
from bench.data.base import Split, Tracklet
from bench.data.loader import eval_loader
from bench.engine.device import autocast, float32, placement_of, synchronize, to_device
from bench.eval.metrics import split_ids
from bench.eval.streaming import evaluate_features
from bench.method import Embedding, Method


@dataclass
class Throughput:
    """Clips embedded and the seconds the method's ``embed`` took on its device (data loading
    left out)."""

    clips: int = 0
    seconds: float = 0.0

    @property
    def per_s(self) -> float:
        return self.clips / self.seconds if self.seconds > 0 else float("nan")


@torch.no_grad()
def extract(
    method: Method,
    tracks: list[Tracklet],
    data: DataConfig,
    ev: EvalConfig,
    aux: frozenset[str],
    length: int | None = None,
    desc: str = "features",
    timer: Throughput | None = None,
) -> Embedding:
    """One embedding per tracklet from clips covering all its frames (``method.aggregate``),
    on the method's device, under its training precision's autocast (kept in float32);
    ``timer`` counts the clips and the time their embedding took."""
    loader = eval_loader(tracks, data, ev, aux, length, placement_of(method).device)
    clips, owners = embed_clips(method, loader, aux, desc, timer)
    return method.aggregate(clips, owners, len(tracks), ev.clip_norm)


@torch.no_grad()
def embed_clips(
    method: Method, loader, aux: frozenset[str], desc: str, timer: Throughput | None = None
) -> tuple[Embedding, torch.Tensor]:
    """Embeddings of every clip of ``loader`` (N rows, in order) and their owners (N,)."""
    method.eval()
    where = placement_of(method)
    parts: list[Embedding] = []
    owners = []
    timer = timer or Throughput()
    for batch in tqdm(loader, desc=desc, unit="batch", leave=False, dynamic_ncols=True):
        batch = to_device(batch, where.device)
        extra = {k: batch[k] for k in aux if k in batch}
        start = time.perf_counter()
        with autocast(where):
            parts.append(float32(method.embed(batch["clips"], extra)))
        synchronize(where.device)
        timer.clips += len(batch["clips"])
        timer.seconds += time.perf_counter() - start
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
    with the method's own diagnostics of its test embeddings (``diag.*``) and its inference
    speed (``time.infer_clips_per_s``: clips per second of ``embed`` on its device, batches
    of ``eval.batch_size`` clips, data loading left out)."""
    timer = Throughput()
    emb = extract(method, _unique(split), data, ev, aux, timer=timer)
    result = score_embeddings(method, split, emb, emb, ev, rerank=True)
    with torch.no_grad():
        return {**result, **method.diagnostics(emb), "time.infer_clips_per_s": timer.per_s}
