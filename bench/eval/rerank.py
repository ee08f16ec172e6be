"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), sparse and chunked.

The items are the queries and the whole gallery (N = Q + G, queries first); d is the method's
distance. N(i, k) are the k + 1 items nearest to i, i itself included (ties by index), as in
the authors' code; ``k/2`` is ``round(k1 / 2)``.

- eq. 4, k-reciprocal neighbours: R(i, k) = {j in N(i, k) : i in N(j, k)}.
- eq. 6, expansion: R*(i, k) = R(i, k) united with R(j, k/2) for every j in R(i, k) such that
  |R(i, k) & R(j, k/2)| >= 2/3 |R(j, k/2)|.
- eq. 7, Gaussian kernel: V_i[j] = exp(-d(i, j)) for j in R*(i, k1), else 0.
- eq. 11, local query expansion: V_i <- mean of V_j over the k2 nearest items j of i (i first).
- eq. 10, Jaccard distance: d_J(p, g) = 1 - sum_j min(V_p[j], V_g[j]) / sum_j max(V_p[j], V_g[j]),
  with sum max = sum V_p + sum V_g - sum min.
- eq. 12: d*(p, g) = (1 - lambda) d_J(p, g) + lambda d(p, g).

V is held as sparse rows (column indices and values, width = the largest row), so memory grows
with N times the neighbourhood size, never N^2; distances are computed in row chunks (twice:
once for the neighbour lists, once for the kernel values) and the Jaccard numerators of a chunk
of queries come from an inverted index of the gallery's V columns.
"""

from __future__ import annotations

import torch

from bench.eval.blocks import Distance, Embedding, count, gallery_blocks


class KReciprocal:
    """Re-ranked distances for chunks of queries; see the module docstring."""

    def __init__(
        self,
        distance: Distance,
        query: Embedding,
        gallery: Embedding,
        budget: int,
        k1: int = 20,
        k2: int = 6,
        lambda_: float = 0.3,
    ):
        self.q, self.n = count(query), count(query) + count(gallery)
        self.lam, self.budget = lambda_, budget
        to_query = gallery_blocks(distance, query, None, budget)
        to_gallery = gallery_blocks(distance, gallery, None, budget)
        self.query, self.gallery = query, gallery
        self.to_all = lambda rows: torch.cat([to_query(rows), to_gallery(rows)], 1)
        nn = self._sweep(lambda d, i: nearest(d, min(k1 + 1, self.n)))
        expanded = expand(nn, k1, round(k1 / 2))
        weights = self._sweep(lambda d, i: kernel(d, expanded[i], self.n))
        cols, vals = query_expansion(expanded, weights, nn[:, :k2], self.n)
        self.cols, self.vals, self.mass = cols, vals, vals.sum(1)
        self.index = inverted_index(cols[self.q :], vals[self.q :], self.n)

    def _item_rows(self, index: torch.Tensor) -> Embedding:
        """Embedding rows of items ``index`` (sorted: queries first)."""
        qi, gi = index[index < self.q], index[index >= self.q] - self.q
        return {k: torch.cat([self.query[k][qi], self.gallery[k][gi]]) for k in self.query}

    def _sweep(self, per_chunk) -> torch.Tensor:
        """per_chunk(d (r, N), item indices (r,)) over row chunks of all items -> cat of the
        results."""
        step = max(1, self.budget // (16 * self.n))
        device = next(iter(self.query.values())).device
        out = []
        for s in range(0, self.n, step):
            index = torch.arange(s, min(s + step, self.n), device=device)
            out.append(per_chunk(self.to_all(self._item_rows(index)), index))
        return torch.cat(out)

    def rerank(self, rows: torch.Tensor, dist: torch.Tensor, keep: torch.Tensor | None):
        """rows (q,) query indices, dist (q, G kept) their plain distances -> d* (q, G kept)."""
        inter = jaccard_overlap(self.cols[rows], self.vals[rows], self.index, self.n - self.q)
        union = self.mass[rows][:, None] + self.mass[self.q :][None, :] - inter
        d_j = 1 - inter / union
        if keep is not None:
            d_j = d_j[:, keep]
        return (1 - self.lam) * d_j + self.lam * dist.double()


def nearest(d: torch.Tensor, k: int) -> torch.Tensor:
    """d (r, N) -> (r, k) indices of the k smallest per row, by (distance, index)."""
    kth = torch.topk(d, k, dim=1, largest=False).values[:, -1:]
    tied = d == kth
    take = (d < kth) | (tied & (tied.cumsum(1) <= k - (d < kth).sum(1, keepdim=True)))
    index = take.nonzero()[:, 1].view(len(d), k)
    return index.gather(1, torch.sort(d.gather(1, index), dim=1, stable=True).indices)


#: rows per step of the neighbourhood computations (bounds their memory)
ROWS = 1024


def by_rows(fn, n: int, fill: int | float) -> torch.Tensor:
    """fn(rows slice) -> (r, W_r) for ROWS rows at a time -> (n, max W_r), padded with fill."""
    parts = [fn(slice(s, s + ROWS)) for s in range(0, n, ROWS)]
    width = max(p.shape[1] for p in parts)
    pad = torch.nn.functional.pad
    return torch.cat([pad(p, (0, width - p.shape[1]), value=fill) for p in parts])


def reciprocal(nn: torch.Tensor, k: int) -> torch.Tensor:
    """nn (N, >= k + 1) -> R(i, k) of eq. 4 as (N, k + 1) item indices, -1 where not one."""

    def rows(part: slice) -> torch.Tensor:
        fwd = nn[part, : k + 1]
        me = torch.arange(len(nn), device=nn.device)[part, None, None]
        return torch.where((nn[fwd][:, :, : k + 1] == me).any(2), fwd, -1)

    return by_rows(rows, len(nn), -1)


def expand(nn: torch.Tensor, k: int, half: int) -> torch.Tensor:
    """Eq. 6: R*(i, k) as (N, W) item indices ascending, padded with N."""
    r_all, rh = reciprocal(nn, k), reciprocal(nn, half)

    def rows(part: slice) -> torch.Tensor:
        r = r_all[part]
        cand = rh[r.clamp_min(0)]  # (r, k + 1, half + 1): R(j, k/2) of every j in R(i, k)
        real = (cand >= 0) & (r >= 0)[:, :, None]
        shared = ((cand[..., None] == r[:, None, None, :]) & real[..., None]).any(-1).sum(-1)
        accept = 3 * shared >= 2 * real.sum(-1)
        added = torch.where(accept[..., None] & real, cand, -1).flatten(1)
        return _unique_rows(torch.cat([r, added], 1), len(nn))

    return by_rows(rows, len(nn), len(nn))


def _unique_rows(items: torch.Tensor, n: int) -> torch.Tensor:
    """(N, W) indices with -1 for none -> each row's distinct indices ascending, padded with n."""
    v = torch.sort(torch.where(items < 0, n, items), dim=1).values
    repeat = torch.zeros_like(v, dtype=torch.bool)
    repeat[:, 1:] = v[:, 1:] == v[:, :-1]
    v = torch.sort(torch.where(repeat, n, v), dim=1).values
    return v[:, : int((v < n).sum(1).max())]


def kernel(d: torch.Tensor, members: torch.Tensor, n: int) -> torch.Tensor:
    """Eq. 7: d (r, N), members (r, W) padded with n -> V values (r, W), 0 at padding."""
    w = torch.exp(-d.double().gather(1, members.clamp_max(n - 1)))
    return torch.where(members < n, w, 0)


def query_expansion(
    cols: torch.Tensor, vals: torch.Tensor, nbrs: torch.Tensor, n: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 11: sparse V rows (N, W) -> the mean of each item's k2 neighbours' rows, (N, W')."""
    pairs = [_mean_rows(cols, vals, nbrs[s : s + ROWS], n) for s in range(0, len(nbrs), ROWS)]
    width = max(c.shape[1] for c, _ in pairs)
    pad = torch.nn.functional.pad
    out_c = torch.cat([pad(c, (0, width - c.shape[1]), value=n) for c, _ in pairs])
    return out_c, torch.cat([pad(v, (0, width - v.shape[1])) for _, v in pairs])


def _mean_rows(cols: torch.Tensor, vals: torch.Tensor, nbrs: torch.Tensor, n: int):
    """Sparse rows (N, W), neighbours (r, k2) -> their mean rows (r, W') (merged columns)."""
    c = cols[nbrs].flatten(1)  # (r, k2 W)
    v = (vals[nbrs] / nbrs.shape[1]).flatten(1)
    c, order = torch.sort(c, dim=1, stable=True)
    v = v.gather(1, order)
    start = torch.ones_like(c, dtype=torch.bool)
    start[:, 1:] = c[:, 1:] != c[:, :-1]
    seg = start.long().cumsum(1) - 1
    width = int(seg.max()) + 1
    out_c = torch.full((len(c), width), n, dtype=c.dtype, device=c.device).scatter_(1, seg, c)
    out_v = torch.zeros(len(c), width, dtype=v.dtype, device=v.device).scatter_add_(1, seg, v)
    out_v = torch.where(out_c < n, out_v, 0)
    keep = int((out_c < n).sum(1).max())
    return out_c[:, :keep], out_v[:, :keep]


def inverted_index(cols: torch.Tensor, vals: torch.Tensor, n: int):
    """Gallery V rows (G, W) -> (start (n,), length (n,), row (E,), value (E,)) by column."""
    row = torch.arange(len(cols), device=cols.device)[:, None].expand_as(cols)
    real = cols < n
    c, r, v = cols[real], row[real], vals[real]
    order = torch.sort(c, stable=True).indices
    length = torch.bincount(c, minlength=n)
    return length.cumsum(0) - length, length, r[order], v[order]


def jaccard_overlap(cols: torch.Tensor, vals: torch.Tensor, index, n_gallery: int):
    """Query V rows (q, W) -> sum_j min(V_p[j], V_g[j]) for every gallery item g, (q, G)."""
    start, length, g_row, g_val = index
    q = len(cols)
    real = cols < len(start)
    p = torch.arange(q, device=cols.device)[:, None].expand_as(cols)[real]
    j, v = cols[real], vals[real]
    reps = length[j]
    first = torch.repeat_interleave(start[j] - (reps.cumsum(0) - reps), reps)
    at = first + torch.arange(int(reps.sum()), device=cols.device)
    mins = torch.minimum(torch.repeat_interleave(v, reps), g_val[at])
    flat = torch.repeat_interleave(p, reps) * n_gallery + g_row[at]
    out = torch.zeros(q * n_gallery, dtype=vals.dtype, device=cols.device)
    return out.index_add_(0, flat, mins).view(q, n_gallery)
