"""The oracle: bench.eval.metrics as it was before the sort-free evaluator (commit bd58667), kept
verbatim to test that the new evaluator gives the same results.

CMC and mAP for re-ID, vectorised over the gallery.

For each query, gallery items of its identity seen by its own camera and items of junk
identities are removed; queries left with no true match are left out of the averages. Ties in
distance are broken by gallery order (a stable sort), so results are deterministic.
"""

from __future__ import annotations

import torch

from bench.data.base import Protocol, Split

RANKS = (1, 5, 10, 20)
CURVE_LEN = 50
STANDARD = Protocol()


def _average_precision(good: torch.Tensor, pos: torch.Tensor, rule: str) -> torch.Tensor:
    """good: (Q, G) true matches in ranked order; pos: (Q, G) 1-based rank among valid items.

    'mean': mean over hits i of i / pos_i. 'trapezoid' (Market-1501 / MARS official code):
    mean over hits of (i / pos_i + (i - 1) / (pos_i - 1)) / 2, with 1 for the second term at
    pos_i = 1.
    """
    hits = good.cumsum(1).float()
    posf = pos.float()
    precision = hits / posf
    if rule == "trapezoid":
        before = torch.where(pos > 1, (hits - 1) / (posf - 1).clamp_min(1), torch.ones_like(posf))
        precision = (precision + before) / 2
    n_good = good.sum(1).clamp_min(1)
    return torch.where(good, precision, torch.zeros_like(precision)).sum(1) / n_good


def rank_queries(
    dist: torch.Tensor,
    q_pids: torch.Tensor,
    g_pids: torch.Tensor,
    q_cams: torch.Tensor,
    g_cams: torch.Tensor,
    protocol: Protocol,
) -> tuple[torch.Tensor, torch.Tensor]:
    """dist: (Q, G) -> (first-match rank (Q,) 1-based or 0 if none, AP (Q,))."""
    order = torch.sort(dist, dim=1, stable=True).indices
    gp, gc = g_pids[order], g_cams[order]
    same_id = gp == q_pids[:, None]
    junk = (same_id & (gc == q_cams[:, None])) | torch.isin(gp, torch.tensor(protocol.junk_pids))
    valid = ~junk
    good = same_id & valid
    pos = valid.cumsum(1)
    big = torch.iinfo(pos.dtype).max
    first = torch.where(good, pos, torch.full_like(pos, big)).amin(1)
    first = torch.where(good.any(1), first, torch.zeros_like(first))
    return first, _average_precision(good, pos, protocol.ap)


def evaluate(
    dist: torch.Tensor,
    q_pids: torch.Tensor,
    g_pids: torch.Tensor,
    q_cams: torch.Tensor,
    g_cams: torch.Tensor,
    protocol: Protocol = STANDARD,
    chunk: int = 256,
) -> dict[str, object]:
    """CMC/mAP in percent: {'R1', 'R5', 'R10', 'R20', 'mAP' (if the protocol reports it),
    'cmc' (list of CURVE_LEN values), 'queries' (number with a valid match)}."""
    firsts, aps = [], []
    for s in range(0, len(q_pids), chunk):
        sl = slice(s, s + chunk)
        f, ap = rank_queries(dist[sl], q_pids[sl], g_pids, q_cams[sl], g_cams, protocol)
        firsts.append(f)
        aps.append(ap)
    first, ap = torch.cat(firsts), torch.cat(aps)
    ok = first > 0
    n = int(ok.sum())
    if n == 0:
        raise ValueError("no query has a valid match in the gallery")
    ranks = torch.arange(1, CURVE_LEN + 1)
    curve = (first[ok, None] <= ranks[None]).float().mean(0) * 100
    out: dict[str, object] = {f"R{k}": float(curve[k - 1]) for k in RANKS}
    if protocol.report_map:
        out["mAP"] = float(ap[ok].mean() * 100)
    out["cmc"] = curve.tolist()
    out["queries"] = n
    return out


def evaluate_split(dist: torch.Tensor, split: Split) -> dict[str, object]:
    """:func:`evaluate` with identities and cameras taken from a split's query and gallery."""
    return evaluate(
        dist,
        torch.tensor([t.pid for t in split.query]),
        torch.tensor([t.pid for t in split.gallery]),
        torch.tensor([t.camid for t in split.query]),
        torch.tensor([t.camid for t in split.gallery]),
        split.protocol,
    )
