"""Optimiser and learning-rate schedule from a TrainConfig: two parameter groups, the
backbone's pretrained parameters at ``lr`` and the modules a method adds at
``lr * new_lr_mult``, with the backbone frozen (lr 0) for the first ``freeze_backbone_epochs``."""

from __future__ import annotations

import torch
from torch import nn

from bench.config import TrainConfig
from bench.method import Method

GROUPS = ("backbone", "new")


def param_groups(method: nn.Module, cfg: TrainConfig) -> list[dict]:
    """[backbone, new]: the trainable parameters of each, with its base lr (a module that is
    not a Method has no backbone: all of it is new)."""
    found = method.pretrained_parameters() if isinstance(method, Method) else []
    pretrained = {id(p) for p in found}
    trainable = [p for p in method.parameters() if p.requires_grad]
    backbone = [p for p in trainable if id(p) in pretrained]
    new = [p for p in trainable if id(p) not in pretrained]
    return [
        {"name": "backbone", "params": backbone, "lr": cfg.lr},
        {"name": "new", "params": new, "lr": cfg.lr * cfg.new_lr_mult},
    ]


def build_optimizer(method: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(method, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True
        )
    return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def lr_factor(epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the base lr in ``epoch`` (0-based): linear warm-up, then step decays."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    if cfg.scheduler == "step":
        return cfg.gamma ** (epoch // cfg.step_size)
    if cfg.scheduler == "multistep":
        return cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
    return 1.0


def frozen(epoch: int, cfg: TrainConfig) -> bool:
    """Whether the backbone is frozen in ``epoch`` (0-based)."""
    return epoch < cfg.freeze_backbone_epochs


def build_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig):
    """An epoch-wise LambdaLR: :func:`lr_factor` for both groups, and 0 for the backbone
    while it is frozen."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt,
        [
            lambda e: 0.0 if frozen(e, cfg) else lr_factor(e, cfg),
            lambda e: lr_factor(e, cfg),
        ],
    )
