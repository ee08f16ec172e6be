"""Query x gallery distances block by block: the embedding and distance types of the
evaluation, and the function that computes distance rows a gallery block at a time."""

from __future__ import annotations

from collections.abc import Callable

import torch

#: Named tensors of N items, each (N, ...): what a method's ``aggregate`` returns.
Embedding = dict[str, torch.Tensor]
#: A method's distance: (a, b) embeddings of n and m items -> (n, m) distances.
Distance = Callable[[Embedding, Embedding], torch.Tensor]


def rows_of(emb: Embedding, index: torch.Tensor | slice) -> Embedding:
    return {k: v[index] for k, v in emb.items()}


def count(emb: Embedding) -> int:
    return len(next(iter(emb.values())))


def gallery_blocks(
    distance: Distance, gallery: Embedding, keep: torch.Tensor | None, budget: int
) -> Callable[[Embedding], torch.Tensor]:
    """-> f(query rows) = distances (q, G kept) to the kept gallery items (all when ``keep`` is
    None), computed ``budget``-sized gallery blocks at a time."""
    n = count(gallery) if keep is None else len(keep)
    item_bytes = 8 * sum(v[0].numel() for v in gallery.values())  # float64 work copies
    block = max(1, min(n, budget // (4 * item_bytes)))

    def rows(query: Embedding) -> torch.Tensor:
        ref = next(iter(query.values()))
        out = torch.empty(count(query), n, dtype=ref.dtype, device=ref.device)
        for s in range(0, n, block):
            part = slice(s, s + block) if keep is None else keep[s : s + block]
            out[:, s : s + block] = distance(query, rows_of(gallery, part))
        return out

    return rows
