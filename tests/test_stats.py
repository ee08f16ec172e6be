"""The intervals and p-values of bench.report.stats on cases whose answer is known, their
coverage in simulation, and the correction of many comparisons."""

import numpy as np
import pytest
import torch
from scipy import stats as sps

from bench.eval.per_query import per_query_columns, query_values, read_per_query, write_per_query
from bench.report.stats import (
    Difference,
    compare,
    corrected,
    fdr_adjusted,
    interval,
    p_value,
    pooled,
    split_spread,
)
from tests.stats_simulation import SCENARIOS, covered, draw


def run(pids, first, ap, camid=None):
    pids = np.asarray(pids)
    return {
        "pid": pids,
        "camid": np.zeros_like(pids) if camid is None else np.asarray(camid),
        "first": np.asarray(first),
        "ap": np.asarray(ap, dtype=float),
    }


def random_rows(rng, n_ids=30, per_id=3, seeds=(0, 1, 2)):
    pids = np.repeat(np.arange(n_ids), per_id)
    rows = {}
    for s in seeds:
        first = rng.integers(1, 30, size=len(pids))
        rows[(0, s)] = run(pids, first, rng.uniform(0.05, 0.9, size=len(pids)))
    return rows


def test_identical_rows_give_an_interval_at_zero_and_p_one():
    rows = random_rows(np.random.default_rng(0))
    for d in compare(rows, rows, ["R1", "R5", "mAP"]):
        assert d.diff == 0 and d.lo == pytest.approx(0) and d.hi == pytest.approx(0)
        assert d.p == 1.0 and not d.significant


def test_a_constant_shift_comes_back_as_that_shift():
    a = random_rows(np.random.default_rng(1))
    b = {k: {**v, "ap": v["ap"] + 0.07} for k, v in a.items()}
    (d,) = compare(a, b, ["mAP"])
    assert d.diff == pytest.approx(7.0)
    assert d.lo == pytest.approx(7.0) and d.hi == pytest.approx(7.0)
    assert d.significant and d.p < 0.01


def test_an_obvious_difference_is_significant_and_noise_is_not():
    rng = np.random.default_rng(2)
    a = random_rows(rng)
    better = {k: {**v, "first": np.ones_like(v["first"])} for k, v in a.items()}
    (d,) = compare(a, better, ["R1"])
    assert d.diff > 50 and d.lo > 0 and d.p < 0.01 and d.significant
    (n,) = compare(a, random_rows(rng), ["R1"])
    assert n.lo < 0 < n.hi and n.p > 0.05


def test_counts_and_pairing_use_common_seeds_and_valid_queries():
    rng = np.random.default_rng(3)
    a = random_rows(rng, n_ids=10, per_id=2, seeds=(0, 1, 2))
    b = random_rows(rng, n_ids=10, per_id=2, seeds=(1, 2, 5))
    for runs in (a, b):
        for cols in runs.values():
            cols["first"][:2] = 0  # identity 0 has no valid match: left out
    (d,) = compare(a, b, ["R1"])
    assert (d.queries, d.identities, d.seeds) == (18, 9, 2)


def test_identities_are_clusters_not_independent_queries():
    """B hits every query of identity 0 and A none; identity 1 is a tie. Two identities of 20
    queries are two units (1 degree of freedom: the interval spans -100 to +100 points and
    more), not the forty independent queries that 40 one-query identities are."""
    first_a, first_b = np.full(40, 5), np.r_[np.ones(20), np.full(20, 5)]
    clustered = [{(0, 0): run(np.repeat([0, 1], 20), f, np.zeros(40))} for f in (first_a, first_b)]
    (wide,) = compare(*clustered, ["R1"])
    assert wide.diff == pytest.approx(50) and wide.lo < -100 and wide.hi > 100
    single = [{(0, 0): run(np.arange(40), f, np.zeros(40))} for f in (first_a, first_b)]
    (narrow,) = compare(*single, ["R1"])
    assert narrow.diff == pytest.approx(50) and narrow.hi - narrow.lo < 40 and narrow.lo > 0


def test_seeds_that_disagree_leave_the_difference_open_however_many_identities_agree():
    """Every identity moves with its seed: B - A is +10, +12 and -8 points under the three
    seeds. A test that averages the seeds first and flips identities finds p ~ 0; the seeds
    are three draws, and their t test (2 degrees of freedom) does not."""
    a = random_rows(np.random.default_rng(5), n_ids=60)
    shifts = {0: 0.10, 1: 0.12, 2: -0.08}
    b = {k: {**v, "ap": v["ap"] + shifts[k[1]]} for k, v in a.items()}
    (d,) = compare(a, b, ["mAP"])
    per_seed = np.array(list(shifts.values())) * 100
    half = sps.t.ppf(0.975, 2) * per_seed.std(ddof=1) / np.sqrt(3)
    assert d.diff == pytest.approx(per_seed.mean())
    assert d.hi - d.diff == pytest.approx(half) and d.lo < 0 < d.hi and d.p > 0.3


@pytest.mark.parametrize("seeds", [3, 5])
def test_the_95_interval_covers_the_true_difference(seeds):
    """1,000 repetitions per scenario of tests/stats_simulation.py (known difference, identity
    and seed effects): coverage at least 93 %, and no interval narrower than the t interval of
    the per-seed differences alone."""
    rng = np.random.default_rng(seeds)
    for scenario in SCENARIOS:
        diff, counts = draw(rng, scenario, reps=1000, seeds=seeds)
        lo, hi = interval(split_spread(diff, counts))
        coverage = covered(lo, hi).mean()
        assert coverage >= 0.93, f"{scenario.name}: {coverage:.1%}"
        per_seed = diff.sum(-1) / counts.sum()
        seeds_alone = sps.t.ppf(0.975, seeds - 1) * per_seed.std(-1, ddof=1) / np.sqrt(seeds)
        assert np.all((hi - lo) / 2 >= seeds_alone * (1 - 1e-12))


@pytest.mark.parametrize("level", [0.95, 0.9, 0.99])
def test_p_is_below_one_minus_level_exactly_when_the_interval_excludes_zero(level):
    rng = np.random.default_rng(7)
    spreads = [
        split_spread(*draw(rng, scenario, reps=500, seeds=3, delta=0.02)) for scenario in SCENARIOS
    ]
    for spread in [*spreads, pooled(spreads)]:
        lo, hi = interval(spread, level)
        excludes = (lo > 0) | (hi < 0)
        assert 0 < excludes.mean() < 1  # both outcomes occur
        assert np.array_equal(p_value(spread) < 1 - level, excludes)


def test_splits_pool_as_independent_estimates():
    diff, counts = draw(np.random.default_rng(8), SCENARIOS[2], reps=10, seeds=3)
    one = split_spread(diff, counts)
    two = pooled([one, one])
    assert np.allclose(two.estimate, one.estimate) and np.allclose(two.var, one.var / 2)
    assert np.allclose(two.seed_df, 2 * one.seed_df)


def test_many_comparisons_are_corrected_by_benjamini_hochberg():
    assert fdr_adjusted([0.01, 0.02, 0.03, 0.5]) == pytest.approx([0.04, 0.04, 0.04, 0.5])
    diffs = {
        k: Difference("R1", 1.0, 0.1, 2.0, p, 9, 9, 3)
        for k, p in {"x": 0.01, "y": 0.04, "z": 0.3}.items()
    }
    out = corrected(diffs)
    assert all(d.significant for d in diffs.values())  # each interval excludes 0 alone
    assert [out[k].discovered for k in "xyz"] == [True, False, False]
    assert out["y"].q == pytest.approx(0.06) and out["y"].p == 0.04


def test_per_query_csv_round_trip(tmp_path):
    from types import SimpleNamespace

    query = [SimpleNamespace(pid=p, camid=c) for p, c in [(3, 0), (3, 1), (8, 0)]]
    result = {
        "per_query": {"first": [1, 0, 4], "ap": [1.0, 0.0, 0.25]},
        "rerank.per_query": {"first": [2, 0, 1], "ap": [0.5, 0.0, 1.0], "inp": [0.5, 0, 1]},
        "R1": 33.3,
    }
    nested = {"per_query": result["per_query"], "rerank": {"per_query": result["rerank.per_query"]}}
    assert per_query_columns(nested) == per_query_columns(result)
    as_tensors = {"per_query": {k: torch.tensor(v) for k, v in result["per_query"].items()}}
    assert per_query_columns(as_tensors) == {"first": [1, 0, 4], "ap": [1.0, 0.0, 0.25]}
    write_per_query(tmp_path / "pq.csv", result, query)
    cols = read_per_query(tmp_path / "pq.csv")
    assert cols["pid"].tolist() == [3, 3, 8] and cols["camid"].tolist() == [0, 1, 0]
    assert query_values(cols, "R1").tolist() == [1, 0, 0]
    assert query_values(cols, "R5").tolist() == [1, 0, 1]
    assert query_values(cols, "rerank.R1").tolist() == [0, 0, 1]
    assert query_values(cols, "rerank.mINP").tolist() == [0.5, 0, 1]
    assert query_values(cols, "mINP") is None
