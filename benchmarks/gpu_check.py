"""A quick check of every method on a CUDA GPU at the papers' settings (under 5 minutes).

    python benchmarks/gpu_check.py [--steps 5] [--batch 32] [--seq-len 8]

Without CUDA it says so and exits 0. With CUDA, for each method: ResNet-50 (random weights,
no download), 256 x 128, T = 8, P x K = 8 x 4 clips, a few ``Trainer.step`` calls in fp32 and in
bf16 + channels-last; it prints step time, clips/s, peak GPU memory and the bf16 speed-up. With
two GPUs or more it also times a 2-GPU DDP step of the baseline (NCCL, bf16, the same batch split
over the two ranks). A method that runs out of memory is reported and skipped.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import torch
from precision import build, step_times
from tabulate import tabulate

from bench.config import DataConfig, ModelConfig, TrainConfig
from bench.engine import distributed
from bench.engine.cost import dummy_batch
from bench.engine.device import Placement, device_name
from bench.engine.trainer import Trainer

METHODS = ("baseline", "iaunet", "stal", "rgsa-rgtr")
MODEL = ModelConfig(backbone="resnet50", pretrained=False, last_stride=1)


def data_config(args) -> DataConfig:
    return DataConfig(height=256, width=128, seq_len=args.seq_len, p=args.batch // 4, k=4)


def run_steps(method: str, args, where: Placement, batch_size: int) -> dict:
    """Median step time, clips/s and peak memory of ``args.steps`` steps (after 2 warm-ups)."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(where.device)
    net = build(method, MODEL, data_config(args), args.batch // 4, where)
    trainer = Trainer(net, None, TrainConfig(precision=where.precision), None)
    batch = dummy_batch(batch_size, args.seq_len, 256, 128)
    batch["pids"] = torch.arange(batch_size // 4).repeat_interleave(4)  # P x K = (B/4) x 4
    step = statistics.median(step_times(trainer, batch, 2, args.steps))
    peak = torch.cuda.max_memory_allocated(where.device) / 2**30
    return {"step_s": step, "clips/s": batch_size / step, "peak_GiB": peak}


def single_gpu(args) -> list[dict]:
    device = torch.device("cuda", 0)
    rows = []
    for method in args.methods:
        row = {"method": method}
        for name, where in (
            ("fp32", Placement(device, "fp32", False)),
            ("bf16+cl", Placement(device, "bf16", True)),
        ):
            try:
                result = run_steps(method, args, where, args.batch)
            except torch.cuda.OutOfMemoryError:
                row[f"{name} step_s"] = "out of memory"
                continue
            row.update({f"{name} {k}": v for k, v in result.items()})
        if isinstance(row.get("fp32 step_s"), float) and isinstance(
            row.get("bf16+cl step_s"), float
        ):
            row["bf16 speed-up"] = row["fp32 step_s"] / row["bf16+cl step_s"]
        rows.append(row)
        print(f"  {method} done", flush=True)
    return rows


def _ddp_rank(rank: int, port: int, args, out) -> None:
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )  # fmt: skip
    device = torch.device("cuda", rank)
    distributed.init_from_env(device)
    result = run_steps("baseline", args, Placement(device, "bf16", True), args.batch // 2)
    if rank == 0:
        out.update(result)
    torch.distributed.destroy_process_group()


def ddp_step(args) -> dict:
    """The baseline's bf16 step with the batch split over 2 GPUs (each rank half of it)."""
    import torch.multiprocessing as mp

    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_ddp_rank, args=(distributed.free_port(), args, out), nprocs=2)
        result = dict(out)
    result["clips/s"] = args.batch / result["step_s"]  # the whole batch per step
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", nargs="+", default=list(METHODS))
    p.add_argument("--steps", type=int, default=5, help="timed steps per method and precision")
    p.add_argument("--batch", type=int, default=32, help="clips per step (P x K, K = 4)")
    p.add_argument("--seq-len", type=int, default=8)
    args = p.parse_args()
    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible; nothing to check.")
        return
    torch.backends.cudnn.benchmark = True
    gpus = torch.cuda.device_count()
    print(
        f"{device_name(torch.device('cuda', 0))} x {gpus}, torch {torch.__version__}, "
        f"ResNet-50 (random weights), 256x128, T={args.seq_len}, {args.batch} clips per step"
    )
    rows = single_gpu(args)
    print(tabulate(rows, headers="keys", floatfmt=".3f", tablefmt="pipe"))
    if gpus >= 2:
        result = ddp_step(args)
        print("2-GPU DDP, baseline, bf16 + channels-last, half the batch per rank:")
        print(tabulate([result], headers="keys", floatfmt=".3f", tablefmt="pipe"))
    else:
        print("one GPU: no DDP step")


if __name__ == "__main__":
    sys.exit(main())
