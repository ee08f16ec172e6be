"""CMC, mAP and mINP for re-ID from per-query ranks of the true matches.

For each query, gallery items of its identity seen by its own camera and items of junk
identities are removed; queries left with no true match are left out of the averages. Ties in
distance are broken by gallery order, so results are deterministic. Nothing is sorted: see
:mod:`bench.eval.ranking`. :func:`evaluate` scores a (Q, G) distance matrix;
:mod:`bench.eval.streaming` scores features without ever holding one.
"""

from __future__ import annotations

import torch

from bench.data.base import Protocol, Split
from bench.eval.memory import query_rows
from bench.eval.per_query import TOP_K
from bench.eval.ranking import GalleryIndex, match_ranks, query_scores

RANKS = (1, 5, 10, 20)
CURVE_LEN = 50
STANDARD = Protocol()


class Scorer:
    """Accumulates per-query scores chunk by chunk; :meth:`result` summarises them.

    g_pids, g_cams: (G,) of the whole gallery; :attr:`keep` (G,) bool marks the items that are
    ranked (not of a junk identity): the distances given to :meth:`add` have those columns only.
    Each query's ``top_k`` nearest ranked items are kept too, as indices into the whole gallery.
    """

    def __init__(
        self,
        g_pids: torch.Tensor,
        g_cams: torch.Tensor,
        protocol: Protocol = STANDARD,
        top_k: int = TOP_K,
    ):
        junk = torch.tensor(protocol.junk_pids, dtype=g_pids.dtype, device=g_pids.device)
        self.keep = ~torch.isin(g_pids, junk)
        self.kept = self.keep.nonzero()[:, 0]
        self.gallery = GalleryIndex.build(g_pids[self.keep], g_cams[self.keep])
        self.protocol = protocol
        self.top_k = min(top_k, len(self.kept))
        self.parts: list[tuple[torch.Tensor, ...]] = []
        self.tops: list[torch.Tensor] = []

    def add(self, dist: torch.Tensor, q_pids: torch.Tensor, q_cams: torch.Tensor) -> None:
        """dist: (q, G kept) distances of the next q queries."""
        ranks, counts = match_ranks(dist, q_pids, q_cams, self.gallery)
        self.parts.append(query_scores(ranks, counts, self.protocol.ap))
        self.tops.append(self.kept[nearest(dist, self.top_k)].cpu())

    def result(self) -> dict[str, object]:
        """{'R1', 'R5', 'R10', 'R20', 'mAP' and 'mINP' (if the protocol reports mAP), 'cmc'
        (CURVE_LEN values), 'queries' (number with a valid match), 'per_query'} in percent;
        per_query = {'first': 1-based rank of the first true match (0: none), 'ap', 'inp'
        (fractions), 'top': (Q, k) gallery indices of the k nearest ranked items}, in query
        order."""
        first, ap, inp = (torch.cat(p).cpu() for p in zip(*self.parts, strict=True))
        ok = first > 0
        n = int(ok.sum())
        if n == 0:
            raise ValueError("no query has a valid match in the gallery")
        ranks = torch.arange(1, CURVE_LEN + 1)
        curve = (first[ok, None] <= ranks[None]).double().mean(0) * 100
        out: dict[str, object] = {f"R{k}": float(curve[k - 1]) for k in RANKS}
        if self.protocol.report_map:
            out["mAP"] = float(ap[ok].mean() * 100)
            out["mINP"] = float(inp[ok].mean() * 100)
        out["cmc"] = curve.tolist()
        out["queries"] = n
        out["per_query"] = {
            "first": first.tolist(),
            "ap": ap.tolist(),
            "inp": inp.tolist(),
            "top": torch.cat(self.tops).tolist(),
        }
        return out


def nearest(dist: torch.Tensor, k: int) -> torch.Tensor:
    """dist (q, G) -> (q, k) column indices of each row's k smallest distances, ordered by
    (distance, index) as the ranking breaks ties."""
    _, idx = dist.topk(k, dim=1, largest=False)
    idx = idx.sort(dim=1).values
    order = dist.gather(1, idx).sort(dim=1, stable=True).indices
    return idx.gather(1, order)


def evaluate(
    dist: torch.Tensor,
    q_pids: torch.Tensor,
    g_pids: torch.Tensor,
    q_cams: torch.Tensor,
    g_cams: torch.Tensor,
    protocol: Protocol = STANDARD,
    chunk: int | None = None,
) -> dict[str, object]:
    """Metrics of a (Q, G) distance matrix, ``chunk`` queries at a time (None: as many as
    the free memory allows; see :meth:`Scorer.result`)."""
    ids = (t.to(dist.device) for t in (q_pids, g_pids, q_cams, g_cams))
    q_pids, g_pids, q_cams, g_cams = ids
    scorer = Scorer(g_pids, g_cams, protocol)
    keep = None if bool(scorer.keep.all()) else scorer.keep.nonzero()[:, 0]
    chunk = chunk or query_rows(int(scorer.keep.sum()), dist.device)
    for s in range(0, len(q_pids), chunk):
        rows = dist[s : s + chunk] if keep is None else dist[s : s + chunk].index_select(1, keep)
        scorer.add(rows, q_pids[s : s + chunk], q_cams[s : s + chunk])
    return scorer.result()


def split_ids(split: Split) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(query pids, gallery pids, query cameras, gallery cameras) of a split."""
    return (
        torch.tensor([t.pid for t in split.query]),
        torch.tensor([t.pid for t in split.gallery]),
        torch.tensor([t.camid for t in split.query]),
        torch.tensor([t.camid for t in split.gallery]),
    )


def evaluate_split(dist: torch.Tensor, split: Split) -> dict[str, object]:
    """:func:`evaluate` with identities and cameras taken from a split's query and gallery."""
    return evaluate(dist, *split_ids(split), split.protocol)
