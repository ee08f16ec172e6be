"""A timm CNN cut into numbered stages, with last stride 1 and modules insertable per stage.

Stage ``k`` (1..4) is the feature level of stride ``2 ** (k + 1)`` in timm's ``feature_info``
(for a ResNet: ``layer1`` .. ``layer4``); everything before stage 1 is the stem. Video inputs
(B, T, C, H, W) run frame-wise through the CNN; an inserted :class:`ClipModule` sees the clip
shape (B, T, C, H, W) so that it can relate frames.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import timm
import torch
from torch import nn

from bench.config import ModelConfig
from bench.errors import BenchError
from bench.models.weights import is_named, load_weights, named_problem


class ClipModule(nn.Module):
    """A module inserted in a backbone stage that takes (B, T, C, H, W) and returns the same."""


class Stage(nn.Module):
    """One backbone stage: a sequence of frame modules, with clip modules spliced in."""

    def __init__(self, modules: list[nn.Module]):
        super().__init__()
        self.body = nn.ModuleList(modules)

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """x: (B*T, C, H, W) -> (B*T, C', H', W')."""
        for module in self.body:
            if isinstance(module, ClipModule):
                bt, c, h, w = x.shape
                x = module(x.reshape(bt // frames, frames, c, h, w)).reshape(bt, c, h, w)
            else:
                x = module(x)
        return x


def create_timm_model(cfg: ModelConfig) -> nn.Module:
    """Create the timm model, with a clear error when weights cannot be had."""
    if not timm.is_model(cfg.backbone):
        raise BenchError(f"unknown timm backbone '{cfg.backbone}'")
    problem = check_weights(cfg)
    if problem is not None:
        raise BenchError(f"model.{problem[0]}: {problem[1]}")
    pretrained = cfg.pretrained and cfg.weights is None
    try:
        model = timm.create_model(cfg.backbone, pretrained=pretrained, num_classes=0, **cfg.kwargs)
    except (OSError, RuntimeError, ValueError) as exc:
        raise BenchError(
            f"could not load pretrained weights for '{cfg.backbone}' from timm's weight hub: "
            f"{exc}. Without network access set model.pretrained: false, or model.weights to a "
            "local weight file or a named source (bench/models/weights.py)."
        ) from exc
    if cfg.weights is not None:
        load_weights(model, cfg.weights)
    return model


def stage_info(model: nn.Module, cfg: ModelConfig) -> list[dict] | str:
    """timm's ``feature_info`` of the 4 stages (stride 4/8/16/32), or why there are not 4."""
    info = [f for f in model.feature_info if f["reduction"] >= 4][-4:]
    strides = [f["reduction"] for f in info]
    if strides == [4, 8, 16, 32]:
        return info
    shown = "/".join(map(str, strides)) or "none"
    hint = f" with model.kwargs {cfg.kwargs}" if cfg.kwargs else ""
    return (
        f"backbone '{cfg.backbone}'{hint} has {len(info)} stages of stride {shown}; expected 4 "
        "stages of stride 4/8/16/32"
    )


def check_backbone(cfg: ModelConfig, height: int, width: int) -> tuple[str, str] | None:
    """(key, problem) if the backbone cannot take this config and input size, else None.

    The model is built on the ``meta`` device (no memory, no weights), so this is cheap."""
    if not timm.is_model(cfg.backbone):
        return "backbone", f"unknown timm backbone (got '{cfg.backbone}')"
    try:
        with torch.device("meta"):
            model = timm.create_model(cfg.backbone, pretrained=False, num_classes=0, **cfg.kwargs)
    except Exception as exc:  # timm models raise TypeError, ValueError, AssertionError, ...
        if not cfg.kwargs:
            return None  # cannot be checked on meta; building it later will tell
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return (
            "kwargs",
            f"timm model '{cfg.backbone}' rejects these kwargs: {first} (got {cfg.kwargs})",
        )
    info = stage_info(model, cfg)
    if isinstance(info, str):
        return ("kwargs" if cfg.kwargs else "backbone"), info
    stride = 32 // (2 if cfg.last_stride == 1 else 1)
    for key, size in (("height", height), ("width", width)):
        if size < stride:
            return key, (
                f"expected at least {stride} pixels, the output stride of '{cfg.backbone}' with "
                f"last_stride {cfg.last_stride} (got {size})"
            )
    return None


def check_weights(cfg: ModelConfig) -> tuple[str, str] | None:
    """(key, problem) if the weights asked for cannot be had without a long wait, else None."""
    if is_named(cfg.weights):
        problem = named_problem(cfg.weights, cfg.backbone)
        return None if problem is None else ("weights", problem)
    if cfg.weights is not None:
        if not Path(cfg.weights).expanduser().is_file():
            return "weights", f"no such file (got '{cfg.weights}')"
        return None
    if cfg.pretrained and not pretrained_cached(cfg.backbone) and not hub_reachable():
        return "pretrained", (
            f"could not load pretrained weights for '{cfg.backbone}': not in the local cache and "
            "the weight hub cannot be reached (offline?); set model.weights: a local weight "
            "file, or model.pretrained: false (got true)"
        )
    return None


def pretrained_cached(backbone: str) -> bool:
    """Whether timm's default pretrained weights of ``backbone`` are in a local cache."""
    cfg = timm.models.get_pretrained_cfg(backbone)
    if cfg is None:
        return False
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        for name in ("model.safetensors", "pytorch_model.bin"):
            if isinstance(try_to_load_from_cache(cfg.hf_hub_id, name), str):
                return True
    if cfg.url:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg.url).name
        return cached.is_file()
    return False


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """One TCP connection attempt to the weight hub (no retries); False if HF_HUB_OFFLINE."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _ordered_modules(model: nn.Module, targets: set[str]) -> list[tuple[str, nn.Module]]:
    """The model's top-level feature path in order, descending into containers of stages."""
    out: list[tuple[str, nn.Module]] = []

    def walk(module: nn.Module, prefix: str) -> bool:
        for name, child in module.named_children():
            full = f"{prefix}{name}"
            if full in targets or not any(t.startswith(full + ".") for t in targets):
                out.append((full, child))
            else:
                walk(child, full + ".")
            targets.discard(full)
            if not targets:
                return True
        return False

    walk(model, "")
    return out


def _set_stride_one(stage: nn.Module) -> None:
    """Turn every stride-2 conv or pool of a stage into stride 1 (no dilation)."""
    for name, module in stage.named_modules():
        if isinstance(module, nn.Conv2d) and module.stride != (1, 1):
            module.stride = (1, 1)
        elif isinstance(module, (nn.AvgPool2d, nn.MaxPool2d)) and module.stride not in (1, (1, 1)):
            parent = stage.get_submodule(name.rsplit(".", 1)[0]) if "." in name else stage
            setattr(parent, name.rsplit(".", 1)[-1], nn.Identity())


#: Top-level modules of a timm model that are its classifier head, never feature layers.
HEAD_NAMES = frozenset({"global_pool", "flatten", "head_drop", "classifier", "fc", "head"})


def feature_head(model: nn.Module, last_stage: str) -> list[tuple[str, nn.Module]]:
    """The layers with weights between the last stage and the classifier head (MobileNetV2's
    1x1 conv to 1280 channels and its BN; none for a ResNet), in order."""
    top = last_stage.split(".")[0]
    names = [name for name, _ in model.named_children()]
    after = names[names.index(top) + 1 :]
    return [
        (name, model.get_submodule(name))
        for name in after
        if name not in HEAD_NAMES and any(True for _ in model.get_submodule(name).parameters())
    ]


def _out_channels(head: list[tuple[str, nn.Module]], channels: int) -> int:
    """The channels after the feature head (those of its last conv), else ``channels``."""
    convs = [m for _, layer in head for m in layer.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels if convs else channels


class Backbone(nn.Module):
    """A timm CNN as stem + 4 stages.

    ``forward(x, start, stop)`` runs stages ``start`` .. ``stop`` (0 = stem) on
    x: (B, T, C, H, W) and returns (B, T, C', H', W'). With ``channels_last`` (set by
    :func:`bench.engine.device.place`) the (B*T, C, H, W) frames run in channels-last memory.
    """

    channels_last: bool = False

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        model = create_timm_model(cfg)
        info = stage_info(model, cfg)
        if isinstance(info, str):
            raise BenchError(info)
        names = [f["module"] for f in info]
        ordered = _ordered_modules(model, set(names))
        cuts = [i for i, (n, _) in enumerate(ordered) if n in names]
        starts = [0, cuts[0], *[c + 1 for c in cuts[:3]]]
        ends = [cuts[0], *[c + 1 for c in cuts]]
        groups = [[m for _, m in ordered[a:b]] for a, b in zip(starts, ends, strict=True)]
        head = feature_head(model, ordered[-1][0]) if cfg.feature_head == "keep" else []
        groups[4] += [m for _, m in head]
        self.stages = nn.ModuleList(Stage(g) for g in groups)
        self.channels = [model.feature_info[0]["num_chs"], *[f["num_chs"] for f in info]]
        self.channels[4] = _out_channels(head, self.channels[4])
        if cfg.last_stride == 1:
            _set_stride_one(self.stages[4])
        self._timm = (model,)  # the timm model, whose modules the stages share (not a child)
        # the stem and stages 1..frozen_stages: modules inserted later into them still train
        self._frozen = [m for stage in self.stages[: cfg.frozen_stages + 1] for m in stage.body]
        if cfg.frozen_stages:
            for module in self._frozen:
                module.requires_grad_(False)
        else:
            self._frozen = []

    def train(self, mode: bool = True) -> Backbone:
        """Train mode, but for the frozen stages (``model.frozen_stages``): their BatchNorm keeps
        its statistics."""
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    def timm_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights under timm's own names, without a classifier: the file that
        ``model.weights`` loads (:mod:`bench.engine.pretrain` writes it)."""
        return {k: v.detach().clone() for k, v in self._timm[0].state_dict().items()}

    @property
    def timm_model(self) -> nn.Module:
        """The timm model whose modules the stages share (its parameters are the backbone's)."""
        return self._timm[0]

    @property
    def out_channels(self) -> int:
        return self.channels[4]

    def _last_blocks(self, stage: int) -> tuple[list[nn.Module], int, list[nn.Module]]:
        """(the stage's body, the index of its last sequence of blocks, those blocks)."""
        body = list(self.stages[stage].body)
        seqs = [i for i, m in enumerate(body) if isinstance(m, nn.Sequential) and len(m)]
        if not seqs:
            raise BenchError(
                f"stage {stage} of this backbone is a {type(body[-1]).__name__}, not a "
                "sequence of residual blocks; modules can only be inserted into sequential stages"
            )
        return body, seqs[-1], list(body[seqs[-1]])

    def last_block_channels(self, stage: int) -> int:
        """The channels entering the last block of ``stage``, where
        :meth:`insert_before_last_block` puts a module: the stage's width, but for a last block
        that widens it (MobileNetV2's stage 4 ends in a 160 -> 320 block)."""
        *_, blocks = self._last_blocks(stage)
        convs = [m for m in blocks[-1].modules() if isinstance(m, nn.Conv2d)]
        return convs[0].in_channels if convs else self.channels[stage]

    def insert_before_last_block(self, stage: int, module: nn.Module) -> None:
        """Insert ``module`` (a ClipModule or a frame module) right before the last residual
        block of ``stage`` (1..4), where :meth:`last_block_channels` enter it. The stage must be
        a sequence of blocks (timm ResNets and MobileNets are)."""
        body, i, blocks = self._last_blocks(stage)
        self.stages[stage] = Stage([*body[:i], *blocks[:-1], module, blocks[-1], *body[i + 1 :]])

    def insert_after_stage(self, stage: int, module: nn.Module) -> None:
        """Append ``module`` (a ClipModule or a frame module) to the end of ``stage`` (1..4)."""
        self.stages[stage] = Stage([*self.stages[stage].body, module])

    @torch.no_grad()
    def output_size(self, height: int, width: int, stage: int = 4) -> tuple[int, int]:
        """Spatial size (h, w) of stage ``stage``'s output for a height x width input."""
        was_training = self.training
        self.eval()
        probe = next(self.parameters())
        out = self(probe.new_zeros(1, 1, 3, height, width), 0, stage)
        self.train(was_training)
        return out.shape[-2], out.shape[-1]

    def forward(self, x: torch.Tensor, start: int = 0, stop: int = 4) -> torch.Tensor:
        """x: (B, T, C, H, W) -> features of stage ``stop``: (B, T, C', H', W')."""
        b, t = x.shape[:2]
        y = x.flatten(0, 1)
        if self.channels_last:
            y = y.contiguous(memory_format=torch.channels_last)
        for k in range(start, stop + 1):
            y = self.stages[k](y, t)
        return y.reshape(b, t, *y.shape[1:])
