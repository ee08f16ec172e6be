"""Paired comparisons of two rows (method / variant) from their runs' per-query results.

A row's runs are keyed by (split, seed); two rows are paired on their common keys, and a pair
shares its split's query set. A metric is a mean over valid queries of per-query values (hit at
rank k, AP, INP), in percent, averaged over seeds and then splits.

- **Cluster bootstrap** (:func:`bootstrap_differences`): each resample draws the split's test
  identities with replacement (all queries of a drawn identity come along: queries of one
  identity are not independent) and the seeds with replacement, and applies the same draw to
  both rows. Vectorised: per-identity sums (S, I) times multinomial count matrices.
  The 95 % interval is the 2.5 / 97.5 percentile of the resampled differences.
- **Sign-flip permutation test** (:func:`permutation_pvalue`): under "no difference" the two
  rows' labels are exchangeable within an identity, so the per-identity differences (summed
  over that identity's queries, averaged over the paired seeds) get random signs; the p-value
  is two-sided, (1 + #{|T*| >= |T|}) / (1 + n).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.errors import BenchError
from bench.eval.per_query import query_values, valid_queries

Columns = dict[str, np.ndarray]
RunSet = dict[tuple[int, int], Columns]  # (split, seed) -> per-query columns
N_BOOT = 2000
N_PERM = 2000


@dataclass(frozen=True)
class SplitData:
    """One split's paired data for one metric: per-identity sums of the per-query values of
    each row over the common seeds, (S, I), and the number of valid queries per identity (I,)."""

    sums_a: np.ndarray
    sums_b: np.ndarray
    counts: np.ndarray

    @property
    def diff(self) -> np.ndarray:
        return self.sums_b - self.sums_a


@dataclass(frozen=True)
class Difference:
    """B - A in percentage points, its 95 % interval and the permutation p-value."""

    metric: str
    diff: float
    lo: float
    hi: float
    p: float
    queries: int
    identities: int
    seeds: int
    n_boot: int

    @property
    def significant(self) -> bool:
        return self.lo > 0 or self.hi < 0


def cluster_sums(values: np.ndarray, groups: np.ndarray, n_groups: int) -> np.ndarray:
    """values (S, Q), groups (Q,) in 0..I-1 -> per-group sums (S, I)."""
    onehot = np.zeros((len(groups), n_groups))
    onehot[np.arange(len(groups)), groups] = 1.0
    return values @ onehot


def split_data(a: list[Columns], b: list[Columns], metric: str) -> SplitData | None:
    """Paired runs (same seeds in the same order) of one split -> SplitData; None if a run
    lacks the metric's per-query values."""
    for x, y in zip(a, b, strict=True):
        if not np.array_equal(x["pid"], y["pid"]) or not np.array_equal(x["camid"], y["camid"]):
            raise BenchError(f"{metric}: paired runs were scored on different query sets")
    valid = valid_queries(a[0])
    ids, groups = np.unique(a[0]["pid"][valid], return_inverse=True)
    rows = []
    for side in (a, b):
        values = [query_values(c, metric) for c in side]
        if any(v is None for v in values):
            return None
        rows.append(cluster_sums(np.stack([v[valid] for v in values]), groups, len(ids)))
    return SplitData(rows[0], rows[1], np.bincount(groups, minlength=len(ids)).astype(float))


def point_difference(splits: list[SplitData]) -> float:
    """The observed B - A (points): per-seed means over queries, averaged over seeds and
    splits."""
    return float(np.mean([(s.diff.sum(1) / s.counts.sum()).mean() for s in splits]) * 100)


def resample_weights(
    splits: list[SplitData], n_boot: int = N_BOOT, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per split: how often each identity (n_boot, I) and each seed (n_boot, S) is drawn."""
    rng = np.random.default_rng(seed)
    out = []
    for s in splits:
        n_seeds, n_ids = s.diff.shape
        out.append((_counts(rng, n_boot, n_ids), _counts(rng, n_boot, n_seeds)))
    return out


def _counts(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """(n_boot, n) counts of n draws with replacement from n items."""
    draws = rng.integers(0, n, size=(n_boot, n)) + n * np.arange(n_boot)[:, None]
    return np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(float)


def bootstrap_differences(
    splits: list[SplitData], n_boot: int = N_BOOT, seed: int = 0, weights: list | None = None
) -> np.ndarray:
    """(n_boot,) resampled B - A (points), identities and seeds resampled per split (pass
    ``weights`` from :func:`resample_weights` to apply one resample to several metrics)."""
    weights = weights or resample_weights(splits, n_boot, seed)
    total = np.zeros(len(weights[0][0]))
    for s, (w_ids, w_seeds) in zip(splits, weights, strict=True):
        per_seed = (w_ids @ s.diff.T) / (w_ids @ s.counts)[:, None]  # (n_boot, S)
        total += (per_seed * w_seeds).sum(1) / s.diff.shape[0]
    return total / len(splits) * 100


def random_signs(n_ids: int, n_perm: int = N_PERM, seed: int = 0) -> np.ndarray:
    """(n_perm, n_ids) random signs, one per identity."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2, size=(n_perm, n_ids)).astype(float) * 2 - 1


def permutation_pvalue(
    splits: list[SplitData], n_perm: int = N_PERM, seed: int = 0, signs: np.ndarray | None = None
) -> float:
    """Two-sided sign-flip p-value of B - A, one sign per identity (shared by its seeds)."""
    per_id = np.concatenate(
        [s.diff.mean(0) / s.counts.sum() / len(splits) for s in splits]
    )  # sums to the observed difference (as a fraction)
    observed = abs(per_id.sum())
    signs = random_signs(len(per_id), n_perm, seed) if signs is None else signs
    flipped = np.abs(signs @ per_id)
    tol = 1e-12 * max(1.0, observed)
    return float((1 + np.sum(flipped >= observed - tol)) / (1 + len(signs)))


def paired_keys(a: RunSet, b: RunSet) -> dict[int, list[int]]:
    """split -> the seeds both rows ran on it."""
    common = sorted(set(a) & set(b))
    out: dict[int, list[int]] = {}
    for split, seed in common:
        out.setdefault(split, []).append(seed)
    return out


def compare(
    a: RunSet,
    b: RunSet,
    metrics: list[str],
    n_boot: int = N_BOOT,
    n_perm: int = N_PERM,
    seed: int = 0,
) -> list[Difference]:
    """B - A for each metric both rows' per-query results give (an empty list when they share
    no (split, seed))."""
    keys = paired_keys(a, b)
    out = []
    weights = signs = None
    for metric in metrics:
        splits = [
            split_data([a[(sp, s)] for s in seeds], [b[(sp, s)] for s in seeds], metric)
            for sp, seeds in keys.items()
        ]
        if not splits or any(s is None for s in splits):
            continue
        if weights is None:  # one resample and one set of signs for every metric
            weights = resample_weights(splits, n_boot, seed)
            signs = random_signs(sum(len(s.counts) for s in splits), n_perm, seed)
        boot = bootstrap_differences(splits, weights=weights)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        out.append(
            Difference(
                metric,
                point_difference(splits),
                float(lo),
                float(hi),
                permutation_pvalue(splits, signs=signs),
                int(sum(s.counts.sum() for s in splits)),
                int(sum(len(s.counts) for s in splits)),
                max(len(v) for v in keys.values()),
                n_boot,
            )
        )
    return out
