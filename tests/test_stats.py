"""The paired cluster bootstrap and the sign-flip test on cases whose answer is known."""

import numpy as np
import pytest
import torch

from bench.eval.per_query import per_query_columns, query_values, read_per_query, write_per_query
from bench.report.stats import bootstrap_differences, compare, split_data


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
    for d in compare(rows, rows, ["R1", "R5", "mAP"], n_boot=300, n_perm=300):
        assert d.diff == 0 and d.lo == pytest.approx(0) and d.hi == pytest.approx(0)
        assert d.p == 1.0 and not d.significant


def test_a_constant_shift_comes_back_as_that_shift():
    a = random_rows(np.random.default_rng(1))
    b = {k: {**v, "ap": v["ap"] + 0.07} for k, v in a.items()}
    (d,) = compare(a, b, ["mAP"], n_boot=300, n_perm=300)
    assert d.diff == pytest.approx(7.0)
    assert d.lo == pytest.approx(7.0) and d.hi == pytest.approx(7.0)
    assert d.significant and d.p < 0.01


def test_an_obvious_difference_is_significant_and_noise_is_not():
    rng = np.random.default_rng(2)
    a = random_rows(rng)
    better = {k: {**v, "first": np.ones_like(v["first"])} for k, v in a.items()}
    (d,) = compare(a, better, ["R1"], n_boot=500, n_perm=500)
    assert d.diff > 50 and d.lo > 0 and d.p < 0.01 and d.significant
    (n,) = compare(a, random_rows(rng), ["R1"], n_boot=500, n_perm=500)
    assert n.lo < 0 < n.hi and n.p > 0.05


def test_counts_and_pairing_use_common_seeds_and_valid_queries():
    rng = np.random.default_rng(3)
    a = random_rows(rng, n_ids=10, per_id=2, seeds=(0, 1, 2))
    b = random_rows(rng, n_ids=10, per_id=2, seeds=(1, 2, 5))
    for runs in (a, b):
        for cols in runs.values():
            cols["first"][:2] = 0  # identity 0 has no valid match: left out
    (d,) = compare(a, b, ["R1"], n_boot=100, n_perm=100)
    assert (d.queries, d.identities, d.seeds) == (18, 9, 2)


def test_identities_are_resampled_as_clusters():
    """Two identities, many queries each: the interval is as wide as two units allow, not as
    narrow as forty independent queries would give."""
    pids = np.repeat([0, 1], 20)
    a = {(0, 0): run(pids, np.full(40, 5), np.zeros(40))}
    b = {(0, 0): run(pids, np.r_[np.ones(20), np.full(20, 5)], np.zeros(40))}
    splits = [split_data([a[(0, 0)]], [b[(0, 0)]], "R1")]
    boot = bootstrap_differences(splits, n_boot=400)
    assert set(np.round(boot, 6)) <= {0.0, 50.0, 100.0}


def test_coverage_on_a_synthetic_population():
    """Identities with their own difficulty, a true R1 difference of 10 points: the 95 %
    interval covers the truth in most of 40 replicates (a loose sanity bound)."""
    rng = np.random.default_rng(4)
    covered = 0
    for _ in range(40):
        n_ids, per_id = 40, 3
        pids = np.repeat(np.arange(n_ids), per_id)
        ease = np.repeat(rng.uniform(0.2, 0.6, n_ids), per_id)
        rows = [{}, {}]
        for s in range(3):
            for row, p in zip(rows, (ease, ease + 0.1), strict=True):
                hit = rng.uniform(size=len(pids)) < p
                row[(0, s)] = run(pids, np.where(hit, 1, 7), np.zeros(len(pids)))
        (d,) = compare(*rows, ["R1"], n_boot=400, n_perm=10)
        covered += d.lo <= 10 <= d.hi
    assert covered >= 32


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
