"""Relation vectors between feature vectors (Li et al., AAAI 2020, Sec. 3.2, Eq. 1-2).

``RelationModule`` maps a pair (f1, f2) of C-d features to a compact C/r2-d relation vector
``RM(f1, f2) = ReLU(BN(W (theta(f1) - phi(f2))))`` with ``theta, phi = ReLU(BN(Linear C -> C/r1))``
and ``W: C/r1 -> C/r2``. ``InnerProductRelation`` is the paper's "IP" ablation: a 1-d relation,
the scaled inner product. Both expose ``out_dim`` and ``pairwise(x)``, which relates every pair of
a set of features at once. ``RelationGuided`` is the step RGSA and RGTR share: project each
feature together with its global relation vector (Fig. 2, Eq. 4-5 and 8-9).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def reduced(channels: int, ratio: int) -> int:
    """channels // ratio, but at least 1 (so that small backbones still get a relation)."""
    return max(1, channels // ratio)


class LinearBN(nn.Module):
    """A bias-free linear map followed by BatchNorm over the last dim: (..., C_in) -> (..., C_out).

    BatchNorm statistics are taken over every leading index (all positions, pairs or frames).
    """

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim, bias=False)
        self.bn = nn.BatchNorm1d(out_dim)

    def norm(self, y: torch.Tensor) -> torch.Tensor:
        """BatchNorm of (..., C_out) over all leading indices."""
        return self.bn(y.reshape(-1, y.shape[-1])).reshape(y.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.linear(x))


class RelationModule(nn.Module):
    """RM(f1, f2) = ReLU(BN(W (theta(f1) - phi(f2)))), Eq. 1-2: (..., C) x (..., C) -> (..., C/r2).

    Hidden width C/r1 and output width C/r2 are floored at 1 (see :func:`reduced`).
    """

    def __init__(self, channels: int, r1: int = 32, r2: int = 256):
        super().__init__()
        hidden = reduced(channels, r1)
        self.out_dim = reduced(channels, r2)
        self.theta = LinearBN(channels, hidden)
        self.phi = LinearBN(channels, hidden)
        self.w = LinearBN(hidden, self.out_dim)

    def forward(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        """The relation of each pair (f1[k], f2[k]), literally as Eq. 1-2."""
        diff = F.relu(self.theta(f1)) - F.relu(self.phi(f2))
        return F.relu(self.w(diff))

    def pairwise(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, C) -> (B, N, N, C/r2) with out[b, i, j] = RM(x[b, i], x[b, j]).

        W is linear, so W (theta_i - phi_j) = W theta_i - W phi_j: each feature is projected
        once and only the (B, N, N, C/r2) result is formed, never the (B, N, N, C/r1)
        differences. BatchNorm statistics run over all B * N * N pairs, as for ``forward`` on
        the flattened pairs (repeating each theta_i / phi_j N times leaves their statistics as is).
        """
        u = self.w.linear(F.relu(self.theta(x)))
        v = self.w.linear(F.relu(self.phi(x)))
        return F.relu(self.w.norm(u[:, :, None] - v[:, None, :]))


class InnerProductRelation(nn.Module):
    """The "IP" ablation of Table 1: relation = <f1, f2> / sqrt(C), a 1-d vector.

    The 1/sqrt(C) scale (as in scaled dot-product attention) keeps the relation on the scale of
    the feature entries it is concatenated with; the paper does not state a scale.
    """

    out_dim = 1

    def __init__(self, channels: int):
        super().__init__()
        self.scale = channels**-0.5

    def forward(self, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        """(..., C) x (..., C) -> (..., 1)."""
        return (f1 * f2).sum(-1, keepdim=True) * self.scale

    def pairwise(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, N, C) -> (B, N, N, 1) with out[b, i, j] = <x[b, i], x[b, j]> / sqrt(C)."""
        return (x @ x.transpose(1, 2)).unsqueeze(-1) * self.scale


class RelationGuided(nn.Module):
    """BN(W [x_i, r~_i]) with the global relation vector r~_i = concat_j rel(x_i, x_j).

    Eq. 4-5 (inside the sigmoid, W = W_A over N positions) and Eq. 8-9 (W = W_R over T frames):
    (B, N, C) -> (B, N, C). W takes C + N * rel.out_dim inputs (= (N / r2 + 1) C), so the set
    size N is fixed at construction; relations are concatenated in the order j = 1..N.
    ``stop_gradient`` computes r~_i from x without gradient (x still gets it through W).
    """

    def __init__(self, channels: int, count: int, relation: nn.Module, stop_gradient: bool = False):
        super().__init__()
        self.count = count
        self.relation = relation
        self.stop_gradient = stop_gradient
        self.proj = LinearBN(channels + count * relation.out_dim, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.relation.pairwise(x.detach() if self.stop_gradient else x).flatten(2)
        return self.proj(torch.cat([x, r], dim=-1))


def build_relation(kind: str, channels: int, r1: int, r2: int) -> nn.Module:
    """'rm' -> :class:`RelationModule`, 'inner-product' -> :class:`InnerProductRelation`."""
    if kind == "rm":
        return RelationModule(channels, r1, r2)
    if kind == "inner-product":
        return InnerProductRelation(channels)
    raise ValueError(f"unknown relation '{kind}'; expected 'rm' or 'inner-product'")
