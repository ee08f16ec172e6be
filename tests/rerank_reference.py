"""k-reciprocal re-ranking written loop by loop from the equations of Zhong et al. (CVPR 2017),
on a full (N, N) float64 distance matrix: the reference for :mod:`bench.eval.rerank`."""

from __future__ import annotations

import numpy as np


def rerank_reference(dist: np.ndarray, q: int, k1: int, k2: int, lam: float) -> np.ndarray:
    """dist (N, N) over queries then gallery -> d* (q, N - q)."""
    n = len(dist)
    order = [list(np.argsort(dist[i], kind="stable")) for i in range(n)]

    def neighbours(i, k):  # N(i, k): the k + 1 nearest, i itself included
        return order[i][: k + 1]

    def reciprocal(i, k):  # eq. 4
        return {j for j in neighbours(i, k) if i in neighbours(j, k)}

    half = round(k1 / 2)
    v = np.zeros((n, n))
    for i in range(n):
        r = reciprocal(i, k1)
        star = set(r)
        for j in r:  # eq. 6
            rj = reciprocal(j, half)
            if len(r & rj) >= 2 / 3 * len(rj):
                star |= rj
        for j in star:  # eq. 7
            v[i, j] = np.exp(-dist[i, j])
    v_qe = np.zeros_like(v)
    for i in range(n):  # eq. 11
        for j in order[i][:k2]:
            v_qe[i] += v[j] / k2
    out = np.zeros((q, n - q))
    for p in range(q):
        for g in range(q, n):  # eq. 10 and 12
            d_j = 1 - np.minimum(v_qe[p], v_qe[g]).sum() / np.maximum(v_qe[p], v_qe[g]).sum()
            out[p, g - q] = (1 - lam) * d_j + lam * dist[p, g]
    return out
