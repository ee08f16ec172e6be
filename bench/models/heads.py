"""Embedding heads shared by the method plugins."""

from __future__ import annotations

import torch
from torch import nn


class BNNeck(nn.Module):
    """BatchNorm before a bias-free identity classifier (Luo et al. 2019).

    forward(f: (B, D)) -> (bn feature (B, D), logits (B, num_classes)).
    """

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.bn = nn.BatchNorm1d(dim)
        self.bn.bias.requires_grad_(False)
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.bn(f)
        return z, self.classifier(z)


class LinearClassifier(nn.Module):
    """A bias-free identity classifier on the feature itself, without a neck (BNNeck's
    initialisation). forward(f: (B, D)) -> (f, logits (B, num_classes))."""

    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return f, self.classifier(f)


def spatial_avg(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, T, C): global average pooling per frame."""
    return x.mean(dim=(-2, -1))


def temporal_avg(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B, C): spatial then temporal average pooling (the baseline head)."""
    return spatial_avg(x).mean(1)
