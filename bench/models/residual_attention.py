"""A one-level residual attention block (Wang et al. 2017), as STAL puts it on its low-level map."""

from __future__ import annotations

import torch
from timm.layers import ConvNormAct
from torch import nn


class ResidualAttention(nn.Module):
    """Soft-mask attention with an identity path: x (N, C, H, W) -> x + M(x) * x.

    M = sigmoid(up(down(x))) (STAL sec. III-B, Fig. 3a, Table I ``ran_*``): down-pooling is a
    1x1 conv to ``hidden`` channels, a 3x3 max pool of stride 2 and a 3x3 conv to 3 x ``hidden``;
    up-pooling is a 4x4 deconv of stride 2 and a 1x1 conv back to C. The paper's widths are
    576 -> 64 -> 192 -> 576; ``hidden`` defaults to C / 8. Any H x W works: the deconv output
    is cropped to the input size.
    """

    def __init__(self, channels: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or max(channels // 8, 8)
        self.down = nn.Sequential(
            ConvNormAct(channels, hidden, 1),
            nn.MaxPool2d(3, stride=2, padding=1),
            ConvNormAct(hidden, 3 * hidden, 3),
        )
        self.up = nn.Sequential(
            nn.ConvTranspose2d(3 * hidden, 3 * hidden, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(3 * hidden),
            nn.ReLU(inplace=True),
            nn.Conv2d(3 * hidden, channels, 1),
        )

    def mask(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N, C, H, W) -> soft mask M in (0, 1), (N, C, H, W)."""
        m = self.up(self.down(x))[..., : x.shape[-2], : x.shape[-1]]
        return torch.sigmoid(m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mask(x) * x
