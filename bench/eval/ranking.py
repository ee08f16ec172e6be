"""Ranks of each query's true matches in its gallery ranking, without sorting the gallery.

A query's true matches ("goods") are the gallery items of its identity seen by another camera;
items of its identity seen by its own camera are junk, and so are items of junk identities
(dropped from the gallery before ranking, see :class:`GalleryIndex`). With ties broken by
gallery order, the 1-based rank of good j among the valid items is

    1 + #{valid k : d_k < d_j} + #{valid k : d_k = d_j, k < j},

and that is all CMC (the first good's rank), AP (every good's rank) and INP (the last good's
rank) need. For a chunk of queries: gather and sort the goods' distances (a few per query),
locate every distance among them (and the next floats above them) with one ``searchsorted``
(only the distances up to each query's hardest good, when those are few: one pass over the
distances finds them) and count per good with one histogram; take the same-camera junk out
again (it sits among the query's own identity) and settle ties among the goods by index. Ties
of a good with an item of another identity (rare: equal float distances) show up as a count at
a good's distance larger than its identity accounts for; only those goods' rows are looked at
again, item by item.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: elements per step of the tie count (bounds its memory)
TIE_ELEMENTS = 2**22
#: up to this share of a chunk's distances below its queries' hardest goods, only those are
#: placed among the cuts (see :func:`_bins`)
SPARSE_SHARE = 0.25


@dataclass
class GalleryIndex:
    """The gallery's identities and cameras, and its items grouped by identity.

    pids, cams: (G,) of the ranked gallery (junk identities already dropped); by_pid: (G,)
    gallery indices sorted by identity, ascending within an identity; pid_values, starts,
    counts: (U,) each identity's slice of ``by_pid``.
    """

    pids: torch.Tensor
    cams: torch.Tensor
    by_pid: torch.Tensor
    pid_values: torch.Tensor
    starts: torch.Tensor
    counts: torch.Tensor

    @classmethod
    def build(cls, pids: torch.Tensor, cams: torch.Tensor) -> GalleryIndex:
        by_pid = torch.sort(pids, stable=True).indices
        values, counts = torch.unique_consecutive(pids[by_pid], return_counts=True)
        starts = counts.cumsum(0) - counts
        return cls(pids, cams, by_pid, values, starts, counts)

    def to(self, device: torch.device) -> GalleryIndex:
        return GalleryIndex(*(t.to(device) for t in vars(self).values()))

    def same_identity(self, q_pids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q_pids: (q,) -> gallery indices of each query's identity (q, K), ascending, and
        which of the K slots are real (q, K) bool."""
        if len(self.pid_values) == 0:
            empty = torch.zeros(len(q_pids), 0, dtype=torch.long, device=q_pids.device)
            return empty, empty.bool()
        pos = torch.searchsorted(self.pid_values, q_pids).clamp_max(len(self.pid_values) - 1)
        found = self.pid_values[pos] == q_pids
        count = torch.where(found, self.counts[pos], 0)
        slot = torch.arange(int(count.max()) if len(count) else 0, device=q_pids.device)
        real = slot < count[:, None]
        at = (self.starts[pos][:, None] + slot).clamp_max(len(self.by_pid) - 1)
        return self.by_pid[at], real


def match_ranks(
    dist: torch.Tensor, q_pids: torch.Tensor, q_cams: torch.Tensor, gallery: GalleryIndex
) -> tuple[torch.Tensor, torch.Tensor]:
    """dist: (q, G) -> ranks (q, K) of each query's goods among its valid items, ascending,
    0 past the query's count; counts (q,) of goods."""
    if torch.isnan(dist.sum()) and torch.isnan(dist).any():
        raise ValueError("distances contain NaN: the features or the method's distance broke")
    idx, same = gallery.same_identity(q_pids)
    if idx.shape[1] == 0:  # no query of the chunk has its identity in the gallery
        return torch.zeros(len(q_pids), 1, dtype=torch.long, device=idx.device), idx.sum(1)
    own_cam = gallery.cams[idx] == q_cams[:, None]
    good, junk = same & ~own_cam, same & own_cam
    d_same = dist.gather(1, idx)
    order = torch.sort(torch.where(good, d_same, torch.inf), dim=1, stable=True).indices
    order = order.gather(1, torch.sort((~good).gather(1, order).byte(), dim=1, stable=True).indices)
    is_good, g_idx = good.gather(1, order), idx.gather(1, order)
    s = torch.where(is_good, d_same.gather(1, order), torch.inf)  # goods by (distance, index)
    lt, le = _count_below(dist, s, is_good)
    same_value = (d_same[:, None, :] == s[:, :, None]) & same[:, None, :]  # (q, K goods, K)
    earlier = same_value & good[:, None, :] & (idx[:, None, :] < g_idx[:, :, None])
    nearer = lt + earlier.sum(2) - ((d_same[:, None, :] < s[:, :, None]) & junk[:, None, :]).sum(2)
    rows, goods = ((le - lt > same_value.sum(2)) & is_good).nonzero(as_tuple=True)
    if len(rows):  # a good tied with items of other identities: count those before it
        nearer[rows, goods] += _earlier_other_ties(dist, s, g_idx, q_pids, gallery, rows, goods)
    ranks = torch.where(is_good, nearer + 1, 0)
    return ranks, is_good.sum(1)


def _count_below(
    dist: torch.Tensor, s: torch.Tensor, is_good: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """dist (q, G), s (q, K) sorted, is_good (q, K) -> #{k : d_k < s_m} and #{k : d_k <= s_m},
    each (q, K) (exact for the goods; padding slots get what falls below them).

    Every distance that can count is placed among the cuts {s_m} and {next float above s_m}
    (:func:`_bins`), and one histogram of where they fall is summed up to each cut.
    """
    up = torch.nextafter(s, torch.full_like(s, torch.inf))
    cuts = torch.sort(torch.cat([s, up], 1), dim=1).values
    q, c = cuts.shape
    top = torch.where(is_good, s, -torch.inf).amax(1)  # each query's hardest good
    bins = _bins(dist, cuts, top)
    below = torch.bincount(bins, minlength=q * (c + 1)).view(q, c + 1).cumsum(1)
    at = torch.searchsorted(cuts, torch.cat([s, up], 1))  # where s and up sit among the cuts
    le = below.gather(1, at[:, s.shape[1] :])
    le = torch.where(s == torch.inf, dist.shape[1], le)  # all <= inf (nextafter(inf) is inf)
    return below.gather(1, at[:, : s.shape[1]]), le


def _bins(dist: torch.Tensor, cuts: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """Flat histogram bins, row r's slot j at r (c + 1) + j, of the distances that can count:
    slot j = #{cuts of the row <= d}.

    Only distances up to the query's hardest good ``top`` (q,) count for any good. When they
    are few (a trained model: the goods sit near the top) only they are placed, by one
    ``searchsorted`` of their (row, value) keys among the cuts' (:func:`_ordered_keys`);
    otherwise (or for float64 distances) every distance, by a row-wise ``searchsorted``.
    """
    q, c = cuts.shape
    near = dist <= top[:, None]
    if dist.dtype != torch.float64 and int(near.count_nonzero()) <= SPARSE_SHARE * near.numel():
        rows, cols = near.nonzero(as_tuple=True)
        cut_rows = torch.arange(q, device=dist.device).repeat_interleave(c)
        cut_keys = _ordered_keys(cuts.flatten(), cut_rows)
        slot = torch.searchsorted(cut_keys, _ordered_keys(dist[rows, cols], rows), right=True)
        return slot + rows  # slot counts the r c cuts of the rows before too
    slot = torch.searchsorted(cuts, dist, right=True)
    slot += torch.arange(0, q * (c + 1), c + 1, device=slot.device)[:, None]
    return slot.view(-1)


def _ordered_keys(values: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Floats (n,) of rows (n,) -> int64 keys ordered as (row, value), equal for equal values:
    row x 2^32 + the value's IEEE bits as an int32 in the floats' order (a negative float's
    other bits reversed), so the rows' ranges never overlap."""
    bits = (values.float() + 0.0).view(torch.int32)  # + 0.0: -0.0 becomes 0.0
    return (rows << 32) + (bits ^ ((bits >> 31) & 0x7FFFFFFF))


def _earlier_other_ties(
    dist: torch.Tensor,
    s: torch.Tensor,
    g_idx: torch.Tensor,
    q_pids: torch.Tensor,
    gallery: GalleryIndex,
    rows: torch.Tensor,
    goods: torch.Tensor,
) -> torch.Tensor:
    """(P,) for the (query row, good) pairs given: #{k of another identity : d_k = s_m, k <
    index of good m}. Only goods with such ties (rare) come here, each one pass over its row."""
    position = torch.arange(dist.shape[1], device=dist.device)
    step = max(1, TIE_ELEMENTS // dist.shape[1])
    counts = []
    for i in range(0, len(rows), step):  # a few rows at a time: each pair copies its row
        r, m = rows[i : i + step], goods[i : i + step]
        other = gallery.pids[None, :] != q_pids[r][:, None]
        tied = (dist[r] == s[r, m][:, None]) & other & (position < g_idx[r, m][:, None])
        counts.append(tied.sum(1))
    return torch.cat(counts)


def query_scores(
    ranks: torch.Tensor, counts: torch.Tensor, rule: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ranks (q, K), counts (q,) from :func:`match_ranks` -> first-match rank (q,) (0 if no
    match), AP (q,) and INP (q,) in [0, 1] (0 if no match).

    AP 'mean': mean over goods i of i / r_i. 'trapezoid' (Market-1501 / MARS official code):
    mean over goods of (i / r_i + (i - 1) / (r_i - 1)) / 2, with 1 for the second term at
    r_i = 1. INP (Ye et al., TPAMI 2021, eq. 5): |goods| / rank of the hardest good.
    """
    real = ranks > 0
    r = ranks.double().clamp_min(1)
    i = torch.arange(1, ranks.shape[1] + 1, device=ranks.device, dtype=torch.float64)
    precision = i / r
    if rule == "trapezoid":
        before = torch.where(r > 1, (i - 1) / (r - 1).clamp_min(1), torch.ones_like(r))
        precision = (precision + before) / 2
    n = counts.clamp_min(1).double()
    ap = torch.where(real, precision, 0).sum(1) / n
    last = ranks.gather(1, (counts - 1).clamp_min(0)[:, None])[:, 0]
    inp = torch.where(counts > 0, counts / last.clamp_min(1).double(), 0)
    return ranks[:, 0], ap, inp
