"""Parameters, FLOPs, CPU training-step time and peak memory of methods against the baseline.

    python benchmarks/method_cost.py --methods baseline iaunet stal rgsa-rgtr \
        --backbone resnet18 --size 128x64 --seq-len 4 --batch 8
    python benchmarks/method_cost.py --methods baseline rgsa-rgtr --size 64x32 128x64 256x128

Each (method, size) is measured in a fresh subprocess so that peak memory (max RSS growth
during the training steps) is its own. FLOPs are those of one forward pass over the batch
(torch.utils.flop_counter); step time is the median of the timed steps after a warm-up step.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from tabulate import tabulate
from torch.utils.flop_counter import FlopCounterMode

from bench.config import DataConfig, ModelConfig
from bench.engine.cost import dummy_batch
from bench.registry import METHODS


def measure(
    method: str, backbone: str, h: int, w: int, t: int, b: int, steps: int, kwargs: dict
) -> dict:
    torch.manual_seed(0)
    cls = METHODS.get(method)
    model = cls(
        cls.Config(),
        ModelConfig(backbone=backbone, kwargs=kwargs),
        DataConfig(height=h, width=w, seq_len=t),
        num_classes=b // 2,
    )
    batch = dummy_batch(b, t, h, w)
    with FlopCounterMode(display=False) as counter:
        model(batch)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        loss = sum(model.loss(model(batch), batch).values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before
    return {
        "method": method,
        "size": f"{h}x{w}",
        "params_M": sum(p.numel() for p in model.parameters()) / 1e6,
        "GFLOPs": counter.get_total_flops() / 1e9,
        "step_s": statistics.median(times[1:]),
        "peak_MB": peak / 1024,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--methods", nargs="+", default=["baseline", "iaunet", "stal", "rgsa-rgtr"])
    p.add_argument("--backbone", default="resnet18")
    p.add_argument("--kwargs", default="{}", help='timm kwargs as JSON, e.g. {"channels": [...]}')
    p.add_argument("--size", nargs="+", default=["128x64"], help="input sizes HxW")
    p.add_argument("--seq-len", type=int, default=4)
    p.add_argument("--batch", type=int, default=8, help="clips per step (P x 2)")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        method, size = args.one.split("@")
        h, w = map(int, size.split("x"))
        print(
            json.dumps(
                measure(
                    method,
                    args.backbone,
                    h,
                    w,
                    args.seq_len,
                    args.batch,
                    args.steps,
                    json.loads(args.kwargs),
                )
            )
        )
        return
    rows = []
    for size in args.size:
        for method in args.methods:
            cmd = [sys.executable, __file__, "--one", f"{method}@{size}", *sys.argv[1:]]
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    base = {r["size"]: r for r in rows if r["method"] == "baseline"}
    for r in rows:
        ref = base.get(r["size"])
        r["x baseline step"] = r["step_s"] / ref["step_s"] if ref else float("nan")
    print(
        f"backbone {args.backbone} {args.kwargs}, T={args.seq_len}, batch {args.batch} clips, "
        f"{torch.get_num_threads()} threads"
    )
    print(tabulate(rows, headers="keys", floatfmt=".2f", tablefmt="pipe"))


if __name__ == "__main__":
    main()
