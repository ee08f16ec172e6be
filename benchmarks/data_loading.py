"""Frames per second of the training loader on the synthetic dataset (cold and cached),
against the frames per second a GPU training step consumes.

    python benchmarks/data_loading.py [--workers 0 2] [--batches 20] [--gpu-tflops 396]

A step of P x K x T frames must not wait on data. Without a GPU to measure, consumption is
estimated from FLOPs: one training step of a frame costs 3 x the forward FLOPs of ResNet-50
(last stride 1) at 256 x 128 (counted with torch.utils.flop_counter: forward + backward for
activations and weights), at an assumed sustained GPU throughput (default 396 TFLOP/s =
40 % of the H100 SXM's dense bf16 peak of 989 TFLOP/s; an A100's peak is 312). The goal is
delivered / consumed >= 1.5 on the GPU machine's CPUs.
"""

from __future__ import annotations

import argparse
import time

import torch
from tabulate import tabulate
from torch.utils.flop_counter import FlopCounterMode

from bench.config import DataConfig, ModelConfig
from bench.data.build import build_dataset
from bench.data.loader import train_loader
from bench.models.backbone import Backbone


def consumed_fps(tflops: float, h: int, w: int) -> tuple[float, float]:
    """(forward GFLOPs of an h x w frame on ResNet-50, frames/s a training step consumes at
    ``tflops`` TFLOP/s)."""
    net = Backbone(ModelConfig(backbone="resnet50", pretrained=False, last_stride=1))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 1, 3, h, w))
    forward = counter.get_total_flops()
    return forward / 1e9, tflops * 1e12 / (3 * forward)


def frames_per_second(split, cfg: DataConfig, aux: frozenset[str], batches: int) -> list[float]:
    """FPS over the first ``batches`` of two epochs (frames decoded in epoch 1 are cached)."""
    loader, sampler = train_loader(split.train, cfg, aux, seed=0)
    out = []
    for epoch in range(2):
        sampler.set_epoch(epoch)
        start, frames = time.perf_counter(), 0
        for i, batch in enumerate(loader):
            frames += batch["clips"].shape[0] * batch["clips"].shape[1]
            if i + 1 >= batches:
                break
        out.append(frames / (time.perf_counter() - start))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", nargs="+", type=int, default=[0, 2])
    p.add_argument("--batches", type=int, default=8)
    p.add_argument("--size", default="256x128", help="frame size HxW (the papers': 256x128)")
    p.add_argument("--gpu-tflops", type=float, default=396.0, help="assumed sustained TFLOP/s")
    args = p.parse_args()
    h, w = map(int, args.size.split("x"))
    dataset = build_dataset("synthetic-video", {}, None)
    dataset.prepare()
    split = dataset.load_split(0)
    rows = []
    for workers in args.workers:
        for aux in (frozenset(), dataset.available_aux()):
            cfg = DataConfig(height=h, width=w, seq_len=4, p=8, k=4, workers=workers)
            cold, warm = frames_per_second(split, cfg, aux, args.batches)
            rows.append(
                {
                    "workers": workers,
                    "aux": ",".join(sorted(aux)) or "-",
                    "first pass fps": cold,
                    "second pass fps": warm,
                }
            )
    gflops, need = consumed_fps(args.gpu_tflops, h, w)
    for row in rows:
        row["second pass / consumed"] = row["second pass fps"] / need
    print(f"synthetic-video, {args.size}, batches of 8 x 4 clips x 4 frames")
    formats = ("", "", ".0f", ".0f", ".4f")  # the ratio would print as 0 with ".0f"
    print(tabulate(rows, headers="keys", floatfmt=formats, tablefmt="pipe"))
    print(
        f"consumed: ResNet-50 (last stride 1) forward {gflops:.2f} GFLOPs per {args.size} frame, "
        f"step = 3x forward, at an assumed {args.gpu_tflops:.0f} TFLOP/s: {need:,.0f} frames/s "
        "(an estimate, not a GPU measurement)"
    )


if __name__ == "__main__":
    main()
