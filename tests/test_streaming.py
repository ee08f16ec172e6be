"""Streamed evaluation and k-reciprocal re-ranking against the full-matrix paths."""

import numpy as np
import pytest
import torch
from rerank_reference import literal_reference, published_reference

import bench.eval.memory
import bench.eval.rerank
from bench.config import EvalConfig
from bench.data.base import Protocol
from bench.eval.distance import cosine, euclidean
from bench.eval.memory import memory_budget
from bench.eval.metrics import evaluate
from bench.eval.rerank import KReciprocal
from bench.eval.streaming import evaluate_features
from methods.stal import local_distance


def clustered(n_ids: int, q: int, g: int, dim: int = 16, seed: int = 0):
    """Features around identity centres, identities, cameras, with junk (-1) in the gallery."""
    gen = torch.Generator().manual_seed(seed)
    centres = 2 * torch.randn(n_ids, dim, generator=gen)
    q_pids = torch.randint(0, n_ids, (q,), generator=gen)
    g_pids = torch.randint(-1, n_ids, (g,), generator=gen)
    feats = centres[torch.cat([q_pids, g_pids]).clamp_min(0)] + torch.randn(
        q + g, dim, generator=gen
    )
    cams = torch.randint(0, 3, (q + g,), generator=gen)
    return feats[:q], feats[q:], (q_pids, g_pids, cams[:q], cams[q:])


def feat_cosine(a, b):
    return cosine(a["feat"], b["feat"])


@pytest.mark.parametrize("rule", ["mean", "trapezoid"])
def test_streamed_equals_the_full_matrix_in_small_chunks_and_blocks(monkeypatch, rule):
    qf, gf, ids = clustered(8, 23, 70)
    expected = evaluate(cosine(qf, gf), *ids, Protocol(ap=rule))
    monkeypatch.setattr(bench.eval.memory, "CPU_BUDGET", 4096)  # gallery blocks of a few items
    got = evaluate_features(feat_cosine, {"feat": qf}, {"feat": gf}, ids, Protocol(ap=rule), 5)
    assert got["per_query"] == expected["per_query"]
    assert {k: got[k] for k in ("R1", "mAP", "mINP")} == {
        k: expected[k] for k in ("R1", "mAP", "mINP")
    }


def test_streamed_stal_part_distance_equals_the_full_matrix():
    qf, gf, ids = clustered(6, 11, 40, dim=24)
    q = {"f": qf.view(11, 3, 8), "a": torch.rand(11, 3) + 0.1, "g": qf}
    g = {"f": gf.view(40, 3, 8), "a": torch.rand(40, 3) + 0.1, "g": gf}

    def stal(a, b):
        return local_distance(a["f"], a["a"], b["f"], b["a"]) + 0.3 * euclidean(a["g"], b["g"])

    expected = evaluate(stal(q, g), *ids)
    got = evaluate_features(stal, q, g, ids, Protocol(), chunk_size=4)
    assert got["per_query"]["first"] == expected["per_query"]["first"]
    assert got["mAP"] == pytest.approx(expected["mAP"], rel=1e-6)


def test_chunks_are_sized_from_free_memory(monkeypatch):
    assert 0 < memory_budget(torch.device("cpu")) <= bench.eval.memory.CPU_BUDGET
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (8 * 2**30, 16 * 2**30))
    assert memory_budget(torch.device("cuda")) == 2 * 2**30


@pytest.mark.parametrize(("k1", "k2", "lam"), [(6, 3, 0.3), (20, 6, 0.3), (4, 1, 0.0), (3, 2, 1)])
def test_the_literal_form_matches_a_loop_over_the_paper_equations(monkeypatch, k1, k2, lam):
    monkeypatch.setattr(bench.eval.rerank, "ROWS", 7)  # several row steps
    qf, gf, _ = clustered(6, 9, 35, dim=8, seed=k1)
    full = euclidean(torch.cat([qf, gf]), torch.cat([qf, gf]))
    expected = literal_reference(full.double().numpy(), 9, k1, k2, lam)

    def dist(a, b):
        return euclidean(a["f"], b["f"])

    reranker = KReciprocal(dist, {"f": qf}, {"f": gf}, 2**12, k1, k2, lam, form="literal")
    got = reranker.rerank(torch.arange(9), full[:9, 9:], None)
    assert np.abs(got.numpy() - expected).max() < 1e-9


@pytest.mark.parametrize("seed", range(50))
def test_the_published_form_equals_the_authors_algorithm(monkeypatch, seed):
    """50 random problems: sizes, k1, k2, lambda, distance, clustered or not, several chunks."""
    rng = np.random.default_rng(seed)
    monkeypatch.setattr(bench.eval.rerank, "ROWS", int(rng.integers(3, 20)))
    q, g, dim = int(rng.integers(2, 16)), int(rng.integers(5, 60)), int(rng.integers(2, 12))
    if seed % 2:
        qf, gf, _ = clustered(int(rng.integers(2, 10)), q, g, dim=dim, seed=seed)
    else:
        qf, gf = torch.randn(q, dim), torch.randn(g, dim)
    metric = (cosine, euclidean)[seed % 3 == 0]
    k1 = int(rng.integers(1, 30))
    k2 = int(rng.integers(1, k1 + 2))
    lam = float(rng.choice([0.0, 1.0, rng.uniform()], p=[0.1, 0.1, 0.8]))
    full = metric(torch.cat([qf, gf]), torch.cat([qf, gf]))
    expected = published_reference(full.double().numpy(), q, k1, k2, lam)

    def dist(a, b):
        return metric(a["f"], b["f"])

    budget = int(rng.integers(2**9, 2**14))
    reranker = KReciprocal(dist, {"f": qf}, {"f": gf}, budget, k1, k2, lam)
    got = reranker.rerank(torch.arange(q), full[:q, q:], None)
    assert np.abs(got.numpy() - expected).max() < 1e-6


def test_a_form_that_does_not_exist_is_refused():
    qf, gf, _ = clustered(3, 4, 10)
    with pytest.raises(ValueError, match="form: expected one of published, literal"):
        KReciprocal(lambda a, b: cosine(a["f"], b["f"]), {"f": qf}, {"f": gf}, 2**12, form="x")


@pytest.mark.parametrize(
    ("form", "reference"), [("published", published_reference), ("literal", literal_reference)]
)
def test_rerank_is_reported_beside_the_plain_metrics(monkeypatch, form, reference):
    monkeypatch.setattr(bench.eval.memory, "CPU_BUDGET", 2**15)  # ranked a few queries at a time
    qf, gf, ids = clustered(8, 20, 60)
    plain = evaluate_features(feat_cosine, {"feat": qf}, {"feat": gf}, ids, Protocol())
    settings = {"k1": 6, "k2": 3, "lambda": 0.3} | ({"form": form} if form == "literal" else {})
    rerank = EvalConfig(rerank=settings).rerank.model_dump()
    assert rerank["form"] == form  # published by default
    both = evaluate_features(feat_cosine, {"feat": qf}, {"feat": gf}, ids, Protocol(), 6, rerank)
    assert {k: both[k] for k in plain if k != "per_query"} == {
        k: plain[k] for k in plain if k != "per_query"
    }
    names = {f"rerank.{k}" for k in ("R1", "R5", "R10", "R20", "mAP", "mINP")}
    assert names <= set(both) and len(both["rerank"]["cmc"]) == len(plain["cmc"])
    # the re-ranked numbers are those of the re-ranked matrix (junk dropped after re-ranking)
    full = cosine(torch.cat([qf, gf]), torch.cat([qf, gf]))
    d_star = reference(full.double().numpy(), 20, 6, 3, 0.3)
    expected = evaluate(torch.tensor(d_star), *ids)
    assert both["rerank.mAP"] == pytest.approx(expected["mAP"], rel=1e-6)
    assert both["rerank.R1"] == pytest.approx(expected["R1"])
