"""Shared losses against hand computations."""

import math

import pytest
import torch

from bench.losses import batch_hard_triplet, triplet_from_distances, weighted_triplet


def test_batch_hard_triplet_picks_hardest_pairs():
    # 1-d features: ids 0,0,1,1
    f = torch.tensor([[0.0], [1.0], [1.5], [4.0]])
    pids = torch.tensor([0, 0, 1, 1])
    # anchor 0: hardest pos 1.0, hardest neg 1.5 -> 0.3+1-1.5 < 0 -> 0
    # anchor 1: pos 1.0, neg 0.5 -> 0.8 ; anchor 2: pos 2.5, neg 0.5 -> 2.3 ; anchor 3: pos 2.5,
    # neg 3.0 -> 0
    expected = (0 + 0.8 + 2.3 + 0) / 4
    assert batch_hard_triplet(f, pids, margin=0.3).item() == pytest.approx(expected, abs=1e-5)


def test_triplet_ignores_anchors_without_positive():
    dist = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 3.0], [2.0, 3.0, 0.0]])
    pids = torch.tensor([0, 0, 1])
    # anchors 0 and 1 only: max(0, .5+1-2)=0 and max(0, .5+1-3)=0
    assert triplet_from_distances(dist, pids, 0.5).item() == 0.0
    assert triplet_from_distances(dist, pids, 1.5).item() == pytest.approx((0.5 + 0) / 2)


def test_weighted_triplet_matches_hand_computation():
    f = torch.tensor([[0.0], [1.0], [3.0], [3.5]])
    pids = torch.tensor([0, 0, 1, 1])
    d = (f - f.t()).abs()

    def anchor(a, pos, neg):
        wp = [math.exp(d[a, p]) for p in pos]
        wn = [math.exp(-d[a, n]) for n in neg]
        dp = sum(w * d[a, p] for w, p in zip(wp, pos, strict=True)) / sum(wp)
        dn = sum(w * d[a, n] for w, n in zip(wn, neg, strict=True)) / sum(wn)
        return math.log1p(math.exp(dp - dn))

    expected = (
        anchor(0, [1], [2, 3])
        + anchor(1, [0], [2, 3])
        + anchor(2, [3], [0, 1])
        + anchor(3, [2], [0, 1])
    ) / 4
    assert weighted_triplet(f, pids).item() == pytest.approx(expected, rel=1e-4)


def test_losses_have_gradients():
    f = torch.randn(8, 5, requires_grad=True)
    pids = torch.arange(4).repeat_interleave(2)
    (batch_hard_triplet(f, pids, 1.0) + weighted_triplet(f, pids, "cosine")).backward()
    assert f.grad is not None and f.grad.abs().sum() > 0
