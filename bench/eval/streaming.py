"""Metrics straight from query and gallery features, chunk by chunk, on the features' device.

For each chunk of queries the distances to the gallery are computed block by block (so a
method's per-call work on the gallery, e.g. normalising it, stays the size of a block), ranked
(:mod:`bench.eval.ranking`, in slices of the chunk) and dropped: the (Q, G) matrix is never held.
Chunks are sized from the free memory (:mod:`bench.eval.memory`; ``torch.cuda.mem_get_info`` on
CUDA) unless ``chunk_size`` fixes the queries per chunk.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from bench.data.base import Protocol
from bench.eval.blocks import Distance, Embedding, count, gallery_blocks, rows_of
from bench.eval.memory import PAIR_BYTES, memory_budget, query_rows
from bench.eval.metrics import Scorer
from bench.eval.rerank import KReciprocal


@torch.no_grad()
def evaluate_features(
    distance: Distance,
    query: Embedding,
    gallery: Embedding,
    ids: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    protocol: Protocol,
    chunk_size: int | None = None,
    rerank: dict | None = None,
) -> dict[str, object]:
    """Metrics of ``distance`` between query and gallery embeddings (see
    :meth:`bench.eval.metrics.Scorer.result`); ids = (query pids, gallery pids, query cameras,
    gallery cameras). ``rerank`` = {k1, k2, lambda}: also the k-reciprocal re-ranked metrics,
    as 'rerank.R1' ... 'rerank.mINP' and 'rerank': {'cmc': curve}."""
    device = next(iter(query.values())).device
    q_pids, g_pids, q_cams, g_cams = (t.to(device) for t in ids)
    scorer = Scorer(g_pids, g_cams, protocol)
    keep = None if bool(scorer.keep.all()) else scorer.keep.nonzero()[:, 0]
    n_gallery, budget = int(scorer.keep.sum()), memory_budget(device)
    # distance rows take half the budget, ranking (and re-ranking) a slice of them the rest
    step = chunk_size or max(1, budget // 2 // (4 * n_gallery))
    pair_bytes = 2 * PAIR_BYTES if rerank is None else 4 * PAIR_BYTES
    rank_step = query_rows(n_gallery, device, pair_bytes)
    dist_rows = gallery_blocks(distance, gallery, keep, budget // 2)
    reranker = re_scorer = None
    if rerank is not None:
        reranker = KReciprocal(distance, query, gallery, budget, **rerank)
        re_scorer = Scorer(g_pids, g_cams, protocol)
    n = count(query)
    for s in tqdm(range(0, n, step), desc="ranking", unit="chunk", leave=False):
        dist = dist_rows(rows_of(query, slice(s, s + step)))
        end = s + len(dist)
        for t in range(s, end, rank_step):
            part, rows = slice(t, min(t + rank_step, end)), slice(t - s, t - s + rank_step)
            scorer.add(dist[rows], q_pids[part], q_cams[part])
            if reranker is not None:
                index = torch.arange(t, min(t + rank_step, end), device=device)
                d_star = reranker.rerank(index, dist[rows], keep)
                re_scorer.add(d_star, q_pids[part], q_cams[part])
    out = scorer.result()
    if re_scorer is not None:
        again = re_scorer.result()
        out.update({f"rerank.{k}": again[k] for k in again if k.startswith(("R", "mAP", "mINP"))})
        out["rerank"] = {"cmc": again["cmc"]}
    return out
