"""k-reciprocal re-ranking (Zhong et al., CVPR 2017), sparse and chunked.

The items are the queries and the whole gallery (N = Q + G, queries first); d is the method's
distance. N(i, k) are the k + 1 items nearest to i, i itself included (ties by index), as in
the authors' code; ``k/2`` is ``round(k1 / 2)``.

Two forms (``eval.rerank.form``). **published** (the default) is the authors' code, which
torchreid and fast-reid copy and against which re-ranked results are published; **literal**
follows the paper's equations. They differ in four places:

- the distance o that both use: published, o(i, j) = d(i, j)^2 / max_m d(i, m)^2 (each item's
  row of squared distances over all N items divided by its maximum; the authors divide by
  column maxima and transpose, the same for a symmetric d); literal, o = d.
- eq. 4, k-reciprocal neighbours (both): R(i, k) = {j in N(i, k) : i in N(j, k)}, N by o.
- eq. 6, expansion: R*(i, k) = R(i, k) united with R(j, k/2) for every j in R(i, k) such that
  |R(i, k) & R(j, k/2)| > 2/3 |R(j, k/2)| (published) or >= (literal).
- eq. 7, Gaussian kernel: V_i[j] = exp(-o(i, j)) for j in R*(i, k1), else 0; published, each
  row then divided by its sum.
- eq. 11, local query expansion (both): V_i <- mean of V_j over the k2 nearest items j of i
  (i first); published, none when k2 = 1.
- eq. 10, Jaccard distance: d_J(p, g) = 1 - m / (sum V_p + sum V_g - m), m = sum_j
  min(V_p[j], V_g[j]); published, 1 - m / (2 - m) (its rows sum to 1).
- eq. 12: d*(p, g) = (1 - lambda) d_J(p, g) + lambda o(p, g).

V is held as sparse rows (column indices and values, width = the largest row), so memory grows
with N times the neighbourhood size, never N^2; distances are computed in row chunks (twice:
once for the neighbour lists and each row's maximum, once for the kernel values) and the
Jaccard numerators of a chunk of queries come from an inverted index of the gallery's V columns.
"""

from __future__ import annotations

import torch

from bench.eval.blocks import Distance, Embedding, count, gallery_blocks

#: the forms of :class:`KReciprocal` (see the module docstring)
FORMS = ("published", "literal")


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
        form: str = "published",
    ):
        if form not in FORMS:
            raise ValueError(f"form: expected one of {', '.join(FORMS)} (got {form!r})")
        self.q, self.n = count(query), count(query) + count(gallery)
        self.lam, self.budget, self.published = lambda_, budget, form == "published"
        to_query = gallery_blocks(distance, query, None, budget)
        to_gallery = gallery_blocks(distance, gallery, None, budget)
        self.query, self.gallery = query, gallery
        self.to_all = lambda rows: torch.cat([to_query(rows), to_gallery(rows)], 1)
        nn, self.peak = self._sweep(lambda o, i: (nearest(o, min(k1 + 1, self.n)),))
        expanded = expand(nn, k1, round(k1 / 2), strict=self.published)
        weights, _ = self._sweep(lambda o, i: (kernel(o, expanded[i], self.n, self.published),))
        cols, vals = expanded, weights
        if k2 > 1 or not self.published:
            cols, vals = query_expansion(expanded, weights, nn[:, :k2], self.n)
        self.cols, self.vals, self.mass = cols, vals, vals.sum(1)
        self.index = inverted_index(cols[self.q :], vals[self.q :], self.n)

    def _item_rows(self, index: torch.Tensor) -> Embedding:
        """Embedding rows of items ``index`` (sorted: queries first)."""
        qi, gi = index[index < self.q], index[index >= self.q] - self.q
        return {k: torch.cat([self.query[k][qi], self.gallery[k][gi]]) for k in self.query}

    def _original(self, d: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
        """Plain distances d (r, m) of items whose rows' max d^2 is ``peak`` (r,) -> o (r, m),
        float64 (see the module docstring)."""
        d = d.double()
        return (d * d).div_(peak[:, None]) if self.published else d

    def _sweep(self, per_chunk) -> list[torch.Tensor]:
        """per_chunk(o (r, N), item indices (r,)) -> a tuple of tensors, over row chunks of
        all items -> [each tensor concatenated over the chunks..., the rows' peaks (N,)]."""
        step = max(1, self.budget // (32 * self.n))
        device = next(iter(self.query.values())).device
        out = []
        for s in range(0, self.n, step):
            index = torch.arange(s, min(s + step, self.n), device=device)
            d = self.to_all(self._item_rows(index))
            peak = row_peak(d)
            o = self._original(d, peak)
            del d
            out.append((*per_chunk(o, index), peak))
        return [torch.cat(parts) for parts in zip(*out, strict=True)]

    def rerank(self, rows: torch.Tensor, dist: torch.Tensor, keep: torch.Tensor | None):
        """rows (q,) query indices, dist (q, G kept) their plain distances -> d* (q, G kept)."""
        inter = jaccard_overlap(self.cols[rows], self.vals[rows], self.index, self.n - self.q)
        if self.published:
            union = 2 - inter
        else:
            union = self.mass[rows][:, None] + self.mass[self.q :][None, :] - inter
        d_j = 1 - inter / union
        if keep is not None:
            d_j = d_j[:, keep]
        return (1 - self.lam) * d_j + self.lam * self._original(dist, self.peak[rows])


def row_peak(d: torch.Tensor) -> torch.Tensor:
    """d (r, N) whole rows -> max_j d[i, j]^2 (r,), float64 (1 where a row is all zeros)."""
    peak = d.abs().amax(1).double().square()
    return torch.where(peak > 0, peak, 1)


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


def expand(nn: torch.Tensor, k: int, half: int, strict: bool) -> torch.Tensor:
    """Eq. 6: R*(i, k) as (N, W) item indices ascending, padded with N; ``strict``: a
    neighbour's R(j, k/2) joins when more than 2/3 of it is in R(i, k) (else 2/3 or more)."""
    r_all, rh = reciprocal(nn, k), reciprocal(nn, half)

    def rows(part: slice) -> torch.Tensor:
        r = r_all[part]
        cand = rh[r.clamp_min(0)]  # (r, k + 1, half + 1): R(j, k/2) of every j in R(i, k)
        real = (cand >= 0) & (r >= 0)[:, :, None]
        shared = ((cand[..., None] == r[:, None, None, :]) & real[..., None]).any(-1).sum(-1)
        accept = 3 * shared > 2 * real.sum(-1) if strict else 3 * shared >= 2 * real.sum(-1)
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


def kernel(o: torch.Tensor, members: torch.Tensor, n: int, normalise: bool) -> torch.Tensor:
    """Eq. 7: o (r, N), members (r, W) padded with n -> V values (r, W), 0 at padding; each
    row divided by its sum when ``normalise``."""
    w = torch.exp(-o.gather(1, members.clamp_max(n - 1)))
    w = torch.where(members < n, w, 0)
    return w / w.sum(1, keepdim=True).clamp_min(torch.finfo(w.dtype).tiny) if normalise else w


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
