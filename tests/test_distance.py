"""Euclidean and STAL part distances against float64 pairwise loops."""

import pytest
import torch

from bench.eval.distance import euclidean
from methods.stal import local_distance


def loop_euclidean(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = a.double(), b.double()
    return torch.tensor([[float(((x - y) ** 2).sum().sqrt()) for y in b] for x in a])


@pytest.mark.parametrize("offset", [0.0, 30.0])
def test_euclidean_matches_a_float64_loop_with_a_zero_diagonal(offset):
    # a large common offset is where a^2 + b^2 - 2ab in float32 loses digits (7e-3 off)
    torch.manual_seed(0)
    x = torch.randn(40, 256) + offset
    y = torch.cat([x[:5], torch.randn(20, 256) + offset])
    assert (euclidean(x, y).double() - loop_euclidean(x, y)).abs().max() < 1e-5
    d = euclidean(x, x)
    assert (d.double() - loop_euclidean(x, x)).abs().max() < 1e-5
    assert torch.equal(d.diag(), torch.zeros(40))
    assert torch.equal(euclidean(x, y)[:5, :5].diag(), torch.zeros(5))


def test_euclidean_gradient_is_that_of_the_norm_and_finite_at_zero():
    torch.manual_seed(0)
    x = (torch.randn(6, 8) + 10).double().requires_grad_()
    euclidean(x, x).sum().backward()
    assert torch.isfinite(x.grad).all()
    y = x.detach().clone().requires_grad_()
    d = torch.stack(
        [
            torch.stack([(a - b).norm() if i != j else a.sum() * 0 for j, b in enumerate(y)])
            for i, a in enumerate(y)
        ]
    )
    d.sum().backward()
    assert torch.allclose(x.grad, y.grad)


def test_stal_part_distance_matches_a_float64_loop_of_eq_8():
    torch.manual_seed(0)
    f = torch.randn(9, 6, 64) + 20
    a = torch.rand(9, 6) + 0.1
    d = local_distance(f, a, f, a)
    w = a.double() / a.double().norm(dim=1, keepdim=True)
    for i in range(9):
        for j in range(9):
            parts = [w[i, r] * w[j, r] * (f[i, r] - f[j, r]).double().norm() for r in range(6)]
            assert float(d[i, j]) == pytest.approx(float(sum(parts)), abs=1e-5)
    assert torch.equal(d.diag(), torch.zeros(9))
