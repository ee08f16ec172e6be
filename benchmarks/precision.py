"""Training-step time of every method in fp32 and bf16 (autocast), side by side, in one run.

    python benchmarks/precision.py [--device cpu] [--backbone resnet18] [--size 128x64] \
        [--seq-len 4] [--batch 8] [--steps 3] [--channels-last]

Steps go through the real ``Trainer.step`` (batch to the device, autocast forward, float32
loss, GradScaler, optimiser) on a synthetic P x 2 batch; the figure is the median of the timed
steps after ``--warmup`` untimed ones. On CUDA the clock waits for the device.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from tabulate import tabulate

from bench.config import DataConfig, ModelConfig, TrainConfig
from bench.engine.cost import dummy_batch
from bench.engine.device import Placement, place, resolve_device
from bench.engine.trainer import Trainer
from bench.registry import METHODS


def build(method: str, model: ModelConfig, data: DataConfig, classes: int, where: Placement):
    torch.manual_seed(0)
    cls = METHODS.get(method)
    return place(cls(cls.Config(), model, data, classes), where)


def step_times(trainer: Trainer, batch: dict, warmup: int, steps: int) -> list[float]:
    """Seconds of each timed ``trainer.step`` (after ``warmup`` untimed steps)."""
    cuda = trainer.placement.device.type == "cuda"
    times = []
    for i in range(warmup + steps):
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        trainer.step(batch, 0, i)
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def measure(method: str, args, precision: str, channels_last: bool) -> float:
    """Median step time of ``method`` at ``precision``."""
    h, w = map(int, args.size.split("x"))
    where = Placement(resolve_device(args.device), precision, channels_last)
    model = ModelConfig(backbone=args.backbone, pretrained=False)
    data = DataConfig(height=h, width=w, seq_len=args.seq_len, p=args.batch // 2, k=2)
    net = build(method, model, data, args.batch // 2, where)
    trainer = Trainer(net, None, TrainConfig(precision=precision), None)
    batch = dummy_batch(args.batch, args.seq_len, h, w)
    return statistics.median(step_times(trainer, batch, args.warmup, args.steps))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", nargs="+", default=["baseline", "iaunet", "stal", "rgsa-rgtr"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--size", default="128x64", help="input size HxW")
    p.add_argument("--seq-len", type=int, default=4)
    p.add_argument("--batch", type=int, default=8, help="clips per step (P x 2)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--channels-last", action="store_true", help="bf16 column in channels-last")
    args = p.parse_args()
    rows = []
    for method in args.methods:
        fp32 = measure(method, args, "fp32", False)
        bf16 = measure(method, args, "bf16", args.channels_last)
        rows.append({"method": method, "fp32 step s": fp32, "bf16 step s": bf16,
                     "bf16 speed-up": fp32 / bf16})  # fmt: skip
    print(
        f"{args.device}, {args.backbone} (random weights), {args.size}, T={args.seq_len}, "
        f"batch {args.batch} clips, {torch.get_num_threads()} threads, median of {args.steps} "
        f"steps after {args.warmup} warm-up"
    )
    print(tabulate(rows, headers="keys", floatfmt=".3f", tablefmt="pipe"))


if __name__ == "__main__":
    main()
