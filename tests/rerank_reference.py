"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) on a full (N, N) float64 distance matrix
over queries then gallery, written loop by loop: the references for :mod:`bench.eval.rerank`.

:func:`literal_reference` follows the paper's equations as written; :func:`published_reference`
follows the algorithm of the authors' code (which torchreid and fast-reid carry): squared
distances over each row's maximum, the expansion at more than 2/3, rows of V summing to 1, no
query expansion for k2 = 1, and the Jaccard distance as 1 - m / (2 - m)."""

from __future__ import annotations

import numpy as np


def _orders(dist: np.ndarray) -> list[list[int]]:
    return [list(np.argsort(dist[i], kind="stable")) for i in range(len(dist))]


def _expanded(order: list[list[int]], i: int, k1: int, accept) -> set[int]:
    """R*(i, k1) of eq. 6: R(i, k1) and each R(j, k1/2) that ``accept(shared, size)``."""

    def reciprocal(i, k):  # eq. 4; N(i, k): the k + 1 nearest, i itself included
        return {j for j in order[i][: k + 1] if i in order[j][: k + 1]}

    r = reciprocal(i, k1)
    star = set(r)
    for j in r:
        rj = reciprocal(j, round(k1 / 2))
        if accept(len(r & rj), len(rj)):
            star |= rj
    return star


def _query_expansion(v: np.ndarray, order: list[list[int]], k2: int) -> np.ndarray:
    """Eq. 11: each row the mean of the rows of its k2 nearest items."""
    return np.stack([v[order[i][:k2]].mean(0) for i in range(len(v))])


def literal_reference(dist: np.ndarray, q: int, k1: int, k2: int, lam: float) -> np.ndarray:
    """The paper's equations: dist (N, N) -> d* (q, N - q)."""
    n = len(dist)
    order = _orders(dist)
    v = np.zeros((n, n))
    for i in range(n):
        for j in _expanded(order, i, k1, lambda shared, size: shared >= 2 / 3 * size):
            v[i, j] = np.exp(-dist[i, j])  # eq. 7
    v = _query_expansion(v, order, k2)
    out = np.zeros((q, n - q))
    for p in range(q):
        for g in range(q, n):  # eq. 10 and 12
            d_j = 1 - np.minimum(v[p], v[g]).sum() / np.maximum(v[p], v[g]).sum()
            out[p, g - q] = (1 - lam) * d_j + lam * dist[p, g]
    return out


def published_reference(dist: np.ndarray, q: int, k1: int, k2: int, lam: float) -> np.ndarray:
    """The authors' algorithm: dist (N, N), symmetric -> d* (q, N - q)."""
    n = len(dist)
    squared = dist**2
    original = squared / squared.max(axis=1, keepdims=True)
    order = _orders(original)
    v = np.zeros((n, n))
    for i in range(n):
        star = sorted(_expanded(order, i, k1, lambda shared, size: shared > 2 / 3 * size))
        weight = np.exp(-original[i, star])
        v[i, star] = weight / weight.sum()
    if k2 != 1:
        v = _query_expansion(v, order, k2)
    out = np.zeros((q, n - q))
    for p in range(q):
        for g in range(q, n):
            shared = np.minimum(v[p], v[g]).sum()
            out[p, g - q] = (1 - lam) * (1 - shared / (2 - shared)) + lam * original[p, g]
    return out
