"""Context blocks for clip feature maps (B, T, D, H, W): a residual BN wrapper and the non-local
and squeeze-excitation operations that context-modelling methods are compared against.

Every operation here returns the block's update ``E``; :class:`ResidualBN` turns it into the
residual block ``Y = F + BN(E)`` with a zero-initialised BN weight, so a fresh block is the
identity and a pretrained backbone is undisturbed (Wang et al. 2018, sec. 4.1; IAUnet eq. 14).
"""

from __future__ import annotations

import torch
from torch import nn

from bench.models.backbone import ClipModule


class ResidualBN(ClipModule):
    """``Y = F + BN(E(F))`` (IAUnet eq. 14) for an operation ``E`` on F: (B, T, D, H, W).

    ``E`` may return (B, T, D, H, W) or a per-frame vector (B, T, D), which is broadcast over
    H x W after the BN (batch statistics of the broadcast map equal those of the vectors).
    """

    def __init__(self, operation: nn.Module, dim: int):
        super().__init__()
        self.operation = operation
        self.bn = nn.BatchNorm1d(dim)
        nn.init.zeros_(self.bn.weight)

    @property
    def gate(self) -> torch.Tensor:
        """The zero-initialised scale that opens the block (logged as ``diag.gate.*``)."""
        return self.bn.weight

    def delta(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, T, D, H, W) -> BN(E(x)), (B, T, D, H, W) or (B, T, D, 1, 1)."""
        e = self.operation(x)
        b, t, d = e.shape[:3]
        z = self.bn(e.reshape(b * t, d, -1)).reshape(e.shape)
        return z if z.dim() == 5 else z[..., None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.delta(x)


def per_frame(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Apply a 2-D module frame-wise: (B, T, C, H, W) -> (B, T, C', H', W')."""
    y = module(x.flatten(0, 1))
    return y.reshape(*x.shape[:2], *y.shape[1:])


class NonLocal(nn.Module):
    """Embedded-Gaussian non-local operation over all T x H x W positions of a clip
    (Wang et al., CVPR 2018, eqs. 1-3): ``y_i = sum_j softmax_j(theta(x_i) . phi(x_j)) g(x_j)``,
    ``E = W_z y``. theta, phi, g: 1x1 convs D -> D/2; W_z: 1x1 conv D/2 -> D.

    forward(x: (B, T, D, H, W)) -> E: (B, T, D, H, W).
    """

    def __init__(self, dim: int, inner: int | None = None):
        super().__init__()
        inner = inner or max(dim // 2, 1)
        self.theta = nn.Conv2d(dim, inner, 1)
        self.phi = nn.Conv2d(dim, inner, 1)
        self.g = nn.Conv2d(dim, inner, 1)
        self.out = nn.Conv2d(inner, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _, h, w = x.shape

        def positions(conv: nn.Module) -> torch.Tensor:  # (B, T*H*W, inner)
            return per_frame(conv, x).permute(0, 1, 3, 4, 2).reshape(b, t * h * w, -1)

        theta, phi, g = positions(self.theta), positions(self.phi), positions(self.g)
        attention = torch.softmax(theta @ phi.transpose(1, 2), dim=-1)
        y = (attention @ g).reshape(b, t, h, w, -1).permute(0, 1, 4, 2, 3)
        return per_frame(self.out, y)


class SqueezeExcitation(nn.Module):
    """Squeeze-excitation of each frame (Hu et al., CVPR 2018, eqs. 2-4):
    ``E = F * sigmoid(W_2 relu(W_1 GAP_hw(F)))`` with reduction ratio r (default 16).

    forward(x: (B, T, D, H, W)) -> E: (B, T, D, H, W).
    """

    def __init__(self, dim: int, reduction: int = 16):
        super().__init__()
        hidden = max(dim // reduction, 1)
        self.excite = nn.Sequential(
            nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim), nn.Sigmoid()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.excite(x.mean(dim=(-2, -1)))[..., None, None]
