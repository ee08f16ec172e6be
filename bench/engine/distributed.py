"""DistributedDataParallel for one cell: N processes train one model on one P x K batch.

The processes come from ``torchrun --nproc-per-node N`` or from ``bench run SUITE --ddp N``
(:func:`spawn`, which sets the same environment variables as torchrun). NCCL joins them on
GPUs, gloo on the CPU.

- Batches: rank r takes slice r of every P x K batch (P / N identities x K tracklets,
  :class:`bench.data.loader.SeededPKSampler`), so the N ranks together see the batch one
  process would see, with the same number of steps per epoch.
- Loss (``train.mining``): ``local`` computes each rank's loss on its own slice (triplets
  mined among P / N identities); ``global`` gathers every rank's outputs (the local part
  keeps its gradient) and computes the loss of the whole batch, exactly what one device
  computes for it (:func:`gather_for_loss`, :func:`global_loss`).
- Only rank 0 touches MLflow, writes checkpoints and artifacts, and scores; the decisions the
  other ranks must follow (skip, resume) are rank 0's, broadcast (:func:`on_rank0`).
- Random streams: the model is initialised identically on every rank (DDP also broadcasts
  rank 0's weights); the torch generator of rank r > 0 is then seeded with
  :func:`rank_seed`, and every rank's generator state goes into the checkpoint.
"""

from __future__ import annotations

import datetime
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from bench.config import TrainConfig
from bench.errors import BenchError

T = TypeVar("T")
#: how long a rank waits for the others (rank 0 scores a cell while the others wait)
TIMEOUT = datetime.timedelta(hours=4)


def world() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (from the environment before the process group is joined)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0"))


def is_rank0() -> bool:
    return rank() == 0


def env_world() -> int:
    """WORLD_SIZE set by torchrun or :func:`spawn` (1 when neither launched this process)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: torch.device) -> None:
    """Join the process group described by torchrun's environment variables (no-op for a
    single process): NCCL for CUDA devices, gloo otherwise."""
    if env_world() <= 1 or dist.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, timeout=TIMEOUT)


def local_rank() -> int | None:
    value = os.environ.get("LOCAL_RANK")
    return int(value) if value is not None else None


def on_rank0(fn: Callable[[], T]) -> T:
    """``fn()`` evaluated on rank 0 only; every rank returns rank 0's (picklable) result."""
    if world() == 1:
        return fn()
    box = [fn() if is_rank0() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def rank0_first(fn: Callable[[], T]) -> T:
    """``fn()`` on every rank, rank 0 first (e.g. generating a dataset the others then read)."""
    if world() == 1:
        return fn()
    if not is_rank0():
        dist.barrier()
    out = fn()
    if is_rank0():
        dist.barrier()
    return out


def rank_seed(seed: int, rank_: int) -> int:
    """The torch seed of rank ``rank_`` > 0: distinct per rank, reproducible from the seed."""
    return seed * 1_000_003 + rank_


def seed_rank(seed: int) -> None:
    """Give this rank its own torch random stream (rank 0 keeps the single-process one)."""
    if rank() > 0:
        torch.manual_seed(rank_seed(seed, rank()))


def wrap(method: nn.Module, cfg: TrainConfig) -> nn.Module:
    """The module the trainer calls forward on: ``method`` itself in one process, else a
    DistributedDataParallel of it (BatchNorm turned into SyncBatchNorm with ``sync_bn``)."""
    if world() == 1:
        return method
    device = next(method.parameters()).device
    if cfg.sync_bn and device.type != "cuda":
        raise BenchError(
            f"train.sync_bn: torch's SyncBatchNorm runs on CUDA devices only, not on {device}"
        )
    if cfg.sync_bn:
        converted = nn.SyncBatchNorm.convert_sync_batchnorm(method)
        assert converted is method  # the method's own modules are replaced in place
    ids = [device] if device.type == "cuda" else None
    # a method may leave parameters out of a step (a switched-off branch): let DDP find them
    return nn.parallel.DistributedDataParallel(method, device_ids=ids, find_unused_parameters=True)


def _gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenation over ranks of x (equal shapes); the local part keeps its gradient."""
    wire = x.detach().to(torch.uint8) if x.dtype == torch.bool else x.detach().contiguous()
    parts = [torch.empty_like(wire) for _ in range(world())]
    dist.all_gather(parts, wire)
    parts = [p.to(x.dtype) for p in parts]
    parts[rank()] = x
    return torch.cat(parts)


def gather_for_loss(outputs: dict[str, Any], batch: dict[str, Any]):
    """(outputs, batch) of the whole batch of all ranks: every tensor with this rank's batch
    size as leading dimension, in rank order (clips are not needed by a loss: left out)."""
    size = len(batch["pids"])

    def gathered(tree: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
        return {
            k: _gather(v) if isinstance(v, torch.Tensor) and v.dim() and len(v) == size else v
            for k, v in tree.items()
            if k not in skip
        }

    return gathered(outputs), gathered(batch, ("clips",))


def global_loss(total: torch.Tensor) -> torch.Tensor:
    """The whole batch's loss, with the gradient scaled so that DDP's mean over ranks of the
    local gradients (each the loss's gradient through this rank's outputs only) is the
    gradient one device would get; its value stays the loss."""
    n = world()
    return total * n - total.detach() * (n - 1)


def all_ranks(flag: torch.Tensor) -> bool:
    """True if ``flag`` (a bool scalar) is true on every rank (collective): ranks that decide
    alone whether to step would leave the others waiting in the next all-reduce."""
    if world() == 1:
        return bool(flag)
    agreed = flag.to(torch.int32).reshape(1)
    dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
    return bool(agreed)


def mean_over_ranks(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each value averaged over the ranks (for logging)."""
    if world() == 1 or not values:
        return values
    names = sorted(values)
    stacked = torch.stack([values[k].detach().float() for k in names])
    dist.all_reduce(stacked)
    return dict(zip(names, stacked / world(), strict=True))


def rng_states() -> list[torch.Tensor]:
    """The torch generator state of every rank, in rank order (collective)."""
    state = torch.get_rng_state()
    if world() == 1:
        return [state]
    parts = [torch.empty_like(state) for _ in range(world())]
    dist.all_gather(parts, state)
    return parts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(n: int, args: list[str]) -> int:
    """Run ``python -m bench.cli ARGS`` in ``n`` local processes with torchrun's environment
    variables; if one fails, the others are stopped. Returns the first non-zero exit code."""
    port = str(free_port())
    procs = []
    for r in range(n):
        env = {
            **os.environ,
            "RANK": str(r),
            "LOCAL_RANK": str(r),
            "WORLD_SIZE": str(n),
            "LOCAL_WORLD_SIZE": str(n),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
        }
        procs.append(subprocess.Popen([sys.executable, "-m", "bench.cli", *args], env=env))
    try:
        return _wait(procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()


def _wait(procs: list[subprocess.Popen]) -> int:
    while True:
        codes = [p.poll() for p in procs]
        failed = [c for c in codes if c not in (None, 0)]
        if failed:
            return failed[0]
        if all(c == 0 for c in codes):
            return 0
        time.sleep(0.2)
