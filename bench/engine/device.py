"""Where a cell's tensors live and in which precision they are computed.

- :func:`resolve_device` turns ``auto | cpu | cuda | cuda:N | mps`` into a ``torch.device``;
- :class:`Placement` (device, precision, channels-last) is attached to a method by
  :func:`place`, so that the trainer and the evaluator read one record;
- :func:`to_device` moves every tensor of a batch (clips, pids, camids, part masks,
  keypoints), non-blocking from pinned memory on CUDA;
- :func:`autocast` is the autocast context of a precision (a no-op for fp32), and
  :func:`grad_scaler` the GradScaler that fp16 needs (disabled otherwise).
"""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bench.errors import BenchError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def device_problem(spec: str, ranks: int = 1) -> str | None:
    """What keeps ``spec`` (``auto | cpu | cuda | cuda:N | mps``) from running on this machine
    in ``ranks`` DDP processes (each on its own GPU), or None."""
    kind, _, index = spec.partition(":")
    if kind == "auto" and torch.cuda.is_available():
        kind = "cuda"  # auto: the first visible GPU, cuda:LOCAL_RANK under DDP
    if kind == "cuda":
        if not torch.cuda.is_available():
            return "CUDA is not available on this machine"
        count = torch.cuda.device_count()
        if index and int(index) >= count:
            return f"GPU {index} requested, {count} visible"
        if index and ranks > 1:
            return f"--ddp {ranks} puts each rank on its own GPU: give cuda or auto, not {spec}"
        if ranks > count:
            return f"--ddp {ranks} needs {ranks} GPUs, {count} visible"
    if kind == "mps" and not torch.backends.mps.is_available():
        return "MPS is not available on this machine"
    if kind == "mps" and ranks > 1:
        return "DDP runs on CUDA GPUs or on the CPU, not on MPS"
    return None


def resolve_device(spec: str, local_rank: int | None = None) -> torch.device:
    """``auto`` = the first visible GPU (``cuda:LOCAL_RANK`` under DDP), else the CPU.

    A requested accelerator that is not there is a BenchError naming the setting (the command
    line checks every cell's device before any work: :mod:`bench.preflight.devices`).
    """
    problem = device_problem(spec)
    if problem is not None:
        raise BenchError(f"runtime.device '{spec}': {problem}")
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(spec)
    if device.type == "cuda":
        index = device.index if device.index is not None else (local_rank or 0)
        if index >= torch.cuda.device_count():
            raise BenchError(
                f"runtime.device '{spec}': GPU {index} requested, "
                f"{torch.cuda.device_count()} visible"
            )
        return torch.device("cuda", index)
    return device


def device_name(device: torch.device) -> str:
    """The GPU's name (e.g. 'NVIDIA H100 80GB HBM3'), the CPU's model and core count (e.g.
    'Intel(R) Xeon(R) Processor, 2 cores'), or the device type. CPU kernels differ between
    instruction sets, so the same cell can round differently on two CPU models."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        return f"{cpu_model()}, {os.cpu_count()} cores"
    return device.type


def cpu_model() -> str:
    """/proc/cpuinfo's first 'model name' (Linux), else ``platform.processor()``."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


@dataclass(frozen=True)
class Placement:
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"
    channels_last: bool = False

    @property
    def dtype(self) -> torch.dtype:
        return DTYPES[self.precision]


def place(method: nn.Module, placement: Placement) -> nn.Module:
    """Move ``method`` to the device (channels-last weights if asked) and attach ``placement``.

    Channels-last frames: every :class:`bench.models.backbone.Backbone` turns the
    (B*T, C, H, W) frames it sees into channels-last memory. Convs whose kernel taps see only
    padding run in float32 under CPU autocast (:mod:`bench.engine.padding_taps`).
    """
    from bench.engine.padding_taps import guard_padded_convs
    from bench.models.backbone import Backbone

    guard_padded_convs(method)  # oneDNN's bf16 conv backward: see bench.engine.padding_taps
    method.to(placement.device)
    if placement.channels_last:
        method.to(memory_format=torch.channels_last)
    for module in method.modules():
        if isinstance(module, Backbone):
            module.channels_last = placement.channels_last
    method.placement = placement
    return method


def placement_of(method: nn.Module) -> Placement:
    """The placement :func:`place` attached (the CPU in fp32 for a method never placed)."""
    return getattr(method, "placement", None) or Placement()


def to_device(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    """Every tensor of a batch on ``device`` (non-blocking: the loader pins memory on CUDA)."""
    non_blocking = device.type == "cuda"
    return {
        k: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v
        for k, v in batch.items()
    }


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a timer's end; nothing to wait for on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def autocast(placement: Placement):
    """The autocast context of the placement's precision; fp32 runs without autocast."""
    if placement.precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(placement.device.type, dtype=placement.dtype)


def grad_scaler(placement: Placement) -> torch.amp.GradScaler:
    """A GradScaler for fp16 (loss scaling against underflow); disabled for fp32 and bf16."""
    enabled = placement.precision == "fp16"
    return torch.amp.GradScaler(placement.device.type, enabled=enabled)


def float32(tree: Any) -> Any:
    """Floating tensors of a (nested) dict/list/tuple cast to float32: losses, metrics and
    averaging run in full precision whatever the autocast dtype of the forward pass."""
    if isinstance(tree, torch.Tensor):
        return tree.float() if tree.is_floating_point() else tree
    if isinstance(tree, dict):
        return {k: float32(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return type(tree)(float32(v) for v in tree)
    return tree
