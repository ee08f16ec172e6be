"""CMC / mAP against cases computed by hand."""

import pytest
import torch
from metrics_oracle import evaluate as oracle

import bench.eval.ranking
from bench.data.base import Protocol
from bench.eval.metrics import Scorer, evaluate

#: SPARSE_SHARE forcing each way of placing the distances (bench.eval.ranking._bins)
PATHS = {"near-only": 1.0, "every-distance": -1.0}


def run(dist, qp, gp, qc, gc, **protocol):
    t = torch.tensor
    return evaluate(t(dist, dtype=torch.float), t(qp), t(gp), t(qc), t(gc), Protocol(**protocol))


def test_single_query_ranks_and_ap():
    # gallery order by distance: g1 (wrong id), g0 (match), g2 (wrong), g3 (match)
    r = run([[0.2, 0.1, 0.3, 0.4]], [7], [7, 3, 4, 7], [0], [1, 1, 1, 1])
    assert r["R1"] == 0 and r["R5"] == 100
    # hits at ranks 2 and 4: AP = (1/2 + 2/4) / 2
    assert r["mAP"] == pytest.approx(50.0)
    assert r["cmc"][:4] == [0, 100, 100, 100]


def test_same_camera_matches_are_removed_not_counted():
    # g0 is the same identity in the query's camera: junk; g1 is the true match
    r = run([[0.0, 0.5, 0.2]], [1], [1, 1, 2], [0], [0, 1, 1])
    # after removing g0 the ranking is g2 (wrong), g1 (match): first match at rank 2
    assert r["R1"] == 0 and r["R5"] == 100
    assert r["mAP"] == pytest.approx(50.0)


def test_junk_identity_is_ignored_but_distractors_count():
    # g0 junk (-1) is nearest and ignored; g1 is a distractor (id 0) and counts as a miss
    r = run([[0.0, 0.1, 0.2]], [5], [-1, 0, 5], [0], [1, 1, 1])
    assert r["R1"] == 0 and r["R5"] == 100
    assert r["mAP"] == pytest.approx(50.0)


def test_queries_without_valid_match_are_left_out():
    dist = [[0.1, 0.2], [0.1, 0.2]]
    # query 0 (id 1) matches g0 at rank 1; query 1 (id 9) has no match anywhere
    r = run(dist, [1, 9], [1, 2], [0, 0], [1, 1])
    assert r["queries"] == 1
    assert r["R1"] == 100 and r["mAP"] == 100


def test_no_valid_query_at_all_is_an_error():
    with pytest.raises(ValueError, match="no query"):
        run([[0.1]], [1], [1], [0], [0])


def test_ties_are_broken_by_gallery_order():
    # equal distances: the wrong id g0 comes first, so rank-1 is a miss
    r = run([[0.5, 0.5]], [1], [2, 1], [0], [1, 1])
    assert r["R1"] == 0 and r["R5"] == 100
    r = run([[0.5, 0.5]], [1], [1, 2], [0], [1, 1])
    assert r["R1"] == 100


def test_trapezoid_ap_follows_the_market1501_rule():
    # hits at valid ranks 2 and 4 of 4; rule: sum_i (1/n)(i/r_i + (i-1)/(r_i-1))/2
    r = run([[0.2, 0.1, 0.3, 0.4]], [7], [7, 3, 4, 7], [0], [1, 1, 1, 1], ap="trapezoid")
    expected = 0.5 * ((1 / 2 + 0 / 1) / 2) + 0.5 * ((2 / 4 + 1 / 3) / 2)
    assert r["mAP"] == pytest.approx(100 * expected)


def test_cmc_only_protocol_reports_no_map():
    r = run([[0.1]], [1], [1], [0], [1], report_map=False)
    assert "mAP" not in r and r["R1"] == 100


def test_vectorised_over_many_queries_matches_per_query_results():
    torch.manual_seed(0)
    q, g = 37, 120
    dist = torch.rand(q, g)
    qp, gp = torch.randint(0, 10, (q,)), torch.randint(-1, 10, (g,))
    qc, gc = torch.randint(0, 3, (q,)), torch.randint(0, 3, (g,))
    full = evaluate(dist, qp, gp, qc, gc, chunk=7)
    singles = []
    for i in range(q):
        try:
            singles.append(evaluate(dist[i : i + 1], qp[i : i + 1], gp, qc[i : i + 1], gc))
        except ValueError:
            continue
    assert full["queries"] == len(singles)
    assert full["mAP"] == pytest.approx(sum(s["mAP"] for s in singles) / len(singles))
    assert full["R1"] == pytest.approx(sum(s["R1"] for s in singles) / len(singles))


def test_minp_and_per_query_by_hand():
    # ranked: g1 (wrong), g0 (match), g2 (wrong), g3 (match): hardest match at rank 4, INP 2/4
    r = run([[0.2, 0.1, 0.3, 0.4]], [7], [7, 3, 4, 7], [0], [1, 1, 1, 1])
    assert r["mINP"] == pytest.approx(50.0)
    assert r["per_query"] == {
        "first": [2],
        "ap": [pytest.approx(0.5)],
        "inp": [0.5],
        "top": [[1, 0, 2, 3]],
    }
    # two queries: q0 matches at ranks 1 and 2 (INP 1); q1 at rank 3 of 3 (INP 1/3); q2 none
    dist = [[0.1, 0.2, 0.3], [0.1, 0.2, 0.3], [0.1, 0.2, 0.3]]
    r = run(dist, [1, 2, 9], [1, 1, 2], [0, 0, 0], [1, 1, 1])
    assert r["mINP"] == pytest.approx(100 * (1 + 1 / 3) / 2)
    assert r["per_query"]["first"] == [1, 3, 0]
    assert r["per_query"]["inp"] == [pytest.approx(1), pytest.approx(1 / 3), 0]


def test_top_k_lists_the_nearest_ranked_items_in_gallery_ids_ties_by_index():
    # g1 is a junk identity (never ranked, never listed); g2 and g4 tie: the lower id first
    dist = [[0.5, 0.0, 0.2, 0.9, 0.2, 0.1]]
    r = run(dist, [4], [4, -1, 0, 4, 0, 7], [0], [1, 1, 1, 1, 1, 1])
    assert r["per_query"]["top"] == [[5, 2, 4, 0, 3]]
    assert Scorer(torch.tensor([1, 2, 3]), torch.tensor([0, 0, 0]), top_k=2).top_k == 2


def test_minp_counts_only_valid_items():
    # g0 same camera (junk), g1 junk identity, g2 distractor, g3 match: rank 2 of the valid
    r = run([[0.0, 0.1, 0.2, 0.3]], [4], [4, -1, 0, 4], [0], [0, 1, 1, 1])
    assert r["per_query"]["first"] == [2]
    assert r["mINP"] == pytest.approx(50.0) and r["mAP"] == pytest.approx(50.0)


def test_nan_distances_are_an_error():
    with pytest.raises(ValueError, match="NaN"):
        run([[float("nan"), 0.1]], [1], [1, 2], [0], [1, 1])


def _random_case(seed: int):
    """A random problem; odd seeds draw distances from a few levels (many ties)."""
    g = torch.Generator().manual_seed(seed)
    q, n = (int(torch.randint(1, hi, (1,), generator=g)) for hi in (30, 90))
    levels = int(torch.randint(1, 6, (1,), generator=g))
    if seed % 2:
        dist = torch.randint(0, levels, (q, n), generator=g).float() / levels
    else:
        dist = torch.rand(q, n, generator=g)
    ids = [torch.randint(lo, 6, (m,), generator=g) for lo, m in ((0, q), (-1, n))]
    cams = [torch.randint(0, 3, (m,), generator=g) for m in (q, n)]
    return dist, ids[0], ids[1], cams[0], cams[1]


@pytest.mark.parametrize(("rule", "path"), [("mean", "near-only"), ("trapezoid", "every-distance")])
def test_matches_the_sorting_evaluator_on_random_cases_with_ties(monkeypatch, rule, path):
    """Both MARS protocols' AP rules, against the former sort-based implementation, with the
    distances below the hardest goods placed alone or every distance placed (the ranks do
    not depend on the rule)."""
    monkeypatch.setattr(bench.eval.ranking, "SPARSE_SHARE", PATHS[path])
    checked = 0
    for seed in range(300):
        dist, qp, gp, qc, gc = _random_case(seed)
        protocol = Protocol(ap=rule)
        try:
            expected = oracle(dist, qp, gp, qc, gc, protocol)
        except ValueError:
            with pytest.raises(ValueError):
                evaluate(dist, qp, gp, qc, gc, protocol)
            continue
        got = evaluate(dist, qp, gp, qc, gc, protocol, chunk=7)
        for key in ("R1", "R5", "R10", "R20", "mAP"):
            assert got[key] == pytest.approx(expected[key], rel=1e-6, abs=1e-6), (seed, key)
        assert got["cmc"] == pytest.approx(expected["cmc"], rel=1e-6, abs=1e-6)
        assert got["queries"] == expected["queries"]
        checked += 1
    assert checked > 200


def direct_loop(dist, qp, gp, qc, gc) -> dict[str, list]:
    """Per-query first-match rank, AP and INP by sorting each row by (distance, index)."""
    out = {"first": [], "ap": [], "inp": []}
    for i in range(len(qp)):
        order = sorted(range(len(gp)), key=lambda j: (float(dist[i, j]), j))
        valid = [j for j in order if gp[j] != -1 and not (gp[j] == qp[i] and gc[j] == qc[i])]
        hits = [k + 1 for k, j in enumerate(valid) if gp[j] == qp[i]]
        out["first"].append(hits[0] if hits else 0)
        out["inp"].append(len(hits) / hits[-1] if hits else 0.0)
        out["ap"].append(sum((k + 1) / h for k, h in enumerate(hits)) / len(hits) if hits else 0.0)
    return out


@pytest.mark.parametrize("path", PATHS)
def test_per_query_ranks_match_a_direct_loop(monkeypatch, path):
    monkeypatch.setattr(bench.eval.ranking, "SPARSE_SHARE", PATHS[path])
    for seed in range(40):
        dist, qp, gp, qc, gc = _random_case(seed)
        try:
            r = evaluate(dist, qp, gp, qc, gc)
        except ValueError:
            continue
        expected = direct_loop(dist, qp, gp, qc, gc)
        assert r["per_query"]["first"] == expected["first"]
        assert r["per_query"]["inp"] == pytest.approx(expected["inp"])
        assert r["per_query"]["ap"] == pytest.approx(expected["ap"])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64])
def test_signed_zeros_negative_and_infinite_distances_rank_as_floats(monkeypatch, path, dtype):
    """-0.0 ties with 0.0, negatives come first, infinite distances last (goods included)."""
    monkeypatch.setattr(bench.eval.ranking, "SPARSE_SHARE", PATHS[path])
    values = torch.tensor([-torch.inf, -3.0, -1e-3, -0.0, 0.0, 1e-3, 0.5, 2.0, torch.inf])
    for seed in range(30):
        g = torch.Generator().manual_seed(seed)
        dist = values[torch.randint(0, len(values), (12, 40), generator=g)].to(dtype)
        qp, gp = torch.randint(0, 4, (12,), generator=g), torch.randint(-1, 4, (40,), generator=g)
        qc, gc = torch.randint(0, 2, (12,), generator=g), torch.randint(0, 2, (40,), generator=g)
        try:
            r = evaluate(dist, qp, gp, qc, gc, chunk=5)
        except ValueError:  # no query with a good
            continue
        expected = direct_loop(dist, qp, gp, qc, gc)
        assert r["per_query"]["first"] == expected["first"], seed
        assert r["per_query"]["ap"] == pytest.approx(expected["ap"]), seed
