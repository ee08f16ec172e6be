"""Paired comparisons of two rows (method / variant) from their runs' per-query results.

A row's runs are keyed by (split, seed); two rows are paired on their common keys, and a pair
shares its split's query set. A metric is a mean over valid queries of per-query values (hit at
rank k, AP, INP), in percent, averaged over seeds and then splits.

**What varies.** For one split let ``d[s, i]`` be the sum of B - A over the valid queries of test
identity ``i`` under seed ``s``, ``n[i]`` its number of queries, ``N = sum(n)``. Seed ``s``
measures ``D[s] = sum_i d[s, i] / N``; the estimate is the mean of ``D`` over the ``S`` seeds. It
would change with other seeds (another training run gives another model) and with other test
identities (another draw from the same population; the queries of one identity move together).
Its variance is estimated in two parts (:func:`split_spread`):

- **seeds**: ``V_seed = var(D) / S``, the sample variance of the per-seed differences over the
  seeds. It holds all that changes from seed to seed, the seed x identity noise included (a
  query hit under one seed and missed under another); ``S - 1`` degrees of freedom;
- **identities**: ``V_id``, the identity effect the seeds share (identities on which B is better
  whatever the seed), from the products of identity residuals ``r[s, i] = d[s, i] - n[i] D[s]``
  of distinct seeds: ``I/(I-1) sum_i sum_{s != t} r[s, i] r[t, i] / (S (S-1) N^2)``, 0 when
  negative; ``I - 1`` degrees of freedom. With one seed it is that seed's cluster (sandwich)
  variance, and the seeds' part cannot be estimated (``Difference.seeds == 1`` says so).

Splits are independent: their variances add (divided by K^2 for the mean of K splits).

**Interval.** ``estimate +- t_nu * sqrt(V_seed + V_id)``, ``nu`` the Welch-Satterthwaite degrees
of freedom of the sum, and never narrower than the t interval of the seeds alone
(``t_{S-1} * sqrt(V_seed)``): with 3 seeds the seeds' part is a sample of 3 and its quantile is
t_2 = 4.30, not 1.96. **p-value**: the same t test, ``p = max(p_sum, p_seeds)``, so that
``p < 1 - level`` exactly when the interval excludes 0, at every level.

Why not the earlier paired cluster bootstrap (identities and seeds drawn with replacement,
2.5 / 97.5 percentiles): drawing 3 seeds with replacement shrinks their variance by (S-1)/S and
its percentiles are those of a normal law, not of t with S-1 degrees of freedom; its p-value
(random signs per identity, seeds averaged first) left the seeds out. In the simulation of
``tests/stats_simulation.py`` (known difference, identity effects, seed effects, Bernoulli hits;
``python benchmarks/interval_coverage.py``) the 95 % intervals covered the true difference:

====================  =======  =======  =======  =======  ============================
scenario              old, 3   new, 3   old, 5   new, 5   new width / old (3, 5 seeds)
====================  =======  =======  =======  =======  ============================
seeds dominate        83.4 %   95.1 %   90.5 %   94.8 %   2.36, 1.43
identities dominate   96.3 %   94.8 %   96.8 %   95.6 %   0.92, 0.92
both                  95.8 %   95.2 %   96.8 %   94.8 %   1.18, 0.93
====================  =======  =======  =======  =======  ============================

(2,000 repetitions per cell, 60 identities of 1-8 queries, a true difference of 5 points; the
old bootstrap counts the seed x identity noise twice, hence its over-coverage where identities
dominate.) A hierarchical bootstrap would need a small-sample correction of its own for 3
seeds and many resamples for the levels a correction of many comparisons asks for; the t
interval is exact for normal seed effects and gives every level and its p-value in closed form.

**Many comparisons** (:func:`fdr_adjusted`): a table's comparisons to its reference are
corrected together by Benjamini-Hochberg at a false discovery rate of :data:`FDR`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import stats as sps

from bench.errors import BenchError
from bench.eval.per_query import query_values, valid_queries

Columns = dict[str, np.ndarray]
RunSet = dict[tuple[int, int], Columns]  # (split, seed) -> per-query columns
LEVEL = 0.95
#: The false discovery rate at which a table's comparisons are marked (Benjamini-Hochberg).
FDR = 0.05


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
class Spread:
    """An estimated difference (fraction) and its variance in two parts with their degrees of
    freedom; every field is an array over the same leading axes (one value per comparison)."""

    estimate: np.ndarray
    seed_var: np.ndarray
    seed_df: np.ndarray
    identity_var: np.ndarray
    identity_df: np.ndarray

    @property
    def var(self) -> np.ndarray:
        return self.seed_var + self.identity_var

    @property
    def df(self) -> np.ndarray:
        return satterthwaite([self.seed_var, self.identity_var], [self.seed_df, self.identity_df])


@dataclass(frozen=True)
class Difference:
    """B - A in percentage points, its interval (``level``) and p-value; ``q``: the p-value
    adjusted with the other comparisons of a table (NaN when not adjusted)."""

    metric: str
    diff: float
    lo: float
    hi: float
    p: float
    queries: int
    identities: int
    seeds: int
    q: float = float("nan")

    @property
    def significant(self) -> bool:
        """The interval excludes 0 (uncorrected)."""
        return self.lo > 0 or self.hi < 0

    @property
    def discovered(self) -> bool:
        """Significant after the table's correction (``q`` at most :data:`FDR`)."""
        return bool(self.q <= FDR)


def satterthwaite(variances: list[np.ndarray], dfs: list[np.ndarray]) -> np.ndarray:
    """Welch-Satterthwaite degrees of freedom of a sum of variance estimates (inf when 0)."""
    total = sum(variances)
    with np.errstate(divide="ignore", invalid="ignore"):
        denom = sum(np.where(v > 0, v**2 / d, 0.0) for v, d in zip(variances, dfs, strict=True))
        return np.where(denom > 0, total**2 / denom, np.inf)


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


def split_spread(diff: np.ndarray, counts: np.ndarray) -> Spread:
    """diff (..., S, I): per-identity sums of B - A per seed; counts (..., I) or (I,): queries
    per identity -> the Spread of the mean over seeds (see the module docstring)."""
    n_seeds, n_ids = diff.shape[-2:]
    total = counts.sum(-1)
    per_seed = diff.sum(-1) / total[..., None]  # (..., S)
    resid = diff - counts[..., None, :] * per_seed[..., None]  # (..., S, I)
    small = n_ids / (n_ids - 1) if n_ids > 1 else np.nan  # one identity: no interval
    if n_seeds > 1:
        seed_var = per_seed.var(-1, ddof=1) / n_seeds
        cross = (resid.sum(-2) ** 2 - (resid**2).sum(-2)).sum(-1)  # sum over s != t
        identity_var = np.maximum(cross, 0) * small / (n_seeds * (n_seeds - 1)) / total**2
    else:
        seed_var = np.zeros_like(total)
        identity_var = (resid**2).sum((-2, -1)) * small / total**2
    shape = np.shape(seed_var)
    return Spread(
        per_seed.mean(-1),
        seed_var,
        np.full(shape, n_seeds - 1.0 if n_seeds > 1 else np.inf),
        identity_var,
        np.full(shape, n_ids - 1.0),
    )


def pooled(spreads: list[Spread]) -> Spread:
    """The Spread of the mean of independent splits' estimates."""
    k2 = len(spreads) ** 2
    parts = {}
    for name in ("seed", "identity"):
        variances = [getattr(s, f"{name}_var") for s in spreads]
        parts[name] = (
            sum(variances) / k2,
            satterthwaite(variances, [getattr(s, f"{name}_df") for s in spreads]),
        )
    estimate = np.mean([s.estimate for s in spreads], axis=0)
    return Spread(estimate, *parts["seed"], *parts["identity"])


def interval(spread: Spread, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) of the t interval, at least as wide as the seeds' own t interval."""
    tail = (1 + level) / 2
    half = np.maximum(
        sps.t.ppf(tail, spread.df) * np.sqrt(spread.var),
        sps.t.ppf(tail, spread.seed_df) * np.sqrt(spread.seed_var),
    )
    return spread.estimate - half, spread.estimate + half


def p_value(spread: Spread) -> np.ndarray:
    """Two-sided p of "no difference" from the same t statistics as :func:`interval`."""
    est = np.abs(spread.estimate)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_sum = 2 * sps.t.sf(est / np.sqrt(spread.var), spread.df)
        p_seed = 2 * sps.t.sf(est / np.sqrt(spread.seed_var), spread.seed_df)
    p = np.maximum(np.nan_to_num(p_sum, nan=1.0), np.nan_to_num(p_seed, nan=0.0))
    return np.where(est == 0, 1.0, p)


def fdr_adjusted(p: list[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (a comparison is a discovery at :data:`FDR` when
    its adjusted p is at most FDR)."""
    if not p:
        return []
    return [float(q) for q in sps.false_discovery_control(np.asarray(p), method="bh")]


def paired_keys(a: RunSet, b: RunSet) -> dict[int, list[int]]:
    """split -> the seeds both rows ran on it."""
    common = sorted(set(a) & set(b))
    out: dict[int, list[int]] = {}
    for split, seed in common:
        out.setdefault(split, []).append(seed)
    return out


def difference(metric: str, splits: list[SplitData], level: float = LEVEL) -> Difference:
    """B - A of one metric over the paired splits, its interval and p-value."""
    spread = pooled([split_spread(s.diff, s.counts) for s in splits])
    lo, hi = interval(spread, level)
    return Difference(
        metric,
        float(spread.estimate) * 100,
        float(lo) * 100,
        float(hi) * 100,
        float(p_value(spread)),
        int(sum(s.counts.sum() for s in splits)),
        int(sum(len(s.counts) for s in splits)),
        max(s.diff.shape[0] for s in splits),
    )


def compare(a: RunSet, b: RunSet, metrics: list[str], level: float = LEVEL) -> list[Difference]:
    """B - A for each metric both rows' per-query results give (an empty list when they share
    no (split, seed))."""
    keys = paired_keys(a, b)
    out = []
    for metric in metrics:
        splits = [
            split_data([a[(sp, s)] for s in seeds], [b[(sp, s)] for s in seeds], metric)
            for sp, seeds in keys.items()
        ]
        if splits and all(s is not None for s in splits):
            out.append(difference(metric, splits, level))
    return out


def corrected(diffs: dict) -> dict:
    """The same differences (any keys) with their p-values adjusted together (``q``): one
    family of comparisons, Benjamini-Hochberg."""
    qs = fdr_adjusted([d.p for d in diffs.values()])
    return {k: replace(d, q=q) for (k, d), q in zip(diffs.items(), qs, strict=True)}


def correction_text(comparisons: int) -> str:
    """How a table's marks were corrected, for its caption."""
    return (
        f"Benjamini-Hochberg correction for {comparisons} comparison"
        f"{'s' * (comparisons != 1)} at a false discovery rate of {FDR * 100:g} %"
    )
