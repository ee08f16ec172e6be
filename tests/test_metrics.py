"""CMC / mAP against cases computed by hand."""

import pytest
import torch

from bench.data.base import Protocol
from bench.metrics import evaluate


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
