"""Frames per second of the training loader on the synthetic dataset (cold and cached).

    python benchmarks/data_loading.py [--workers 0 2] [--batches 20]

Compare with the training step: a step of P x K x T frames must not wait on data.
"""

from __future__ import annotations

import argparse
import time

from tabulate import tabulate

from bench.config import DataConfig
from bench.data.loader import train_loader
from bench.suite import build_dataset


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
    p.add_argument("--size", default="64x32")
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
    print(f"synthetic-video, {args.size}, batches of 8 x 4 clips x 4 frames")
    print(tabulate(rows, headers="keys", floatfmt=".0f", tablefmt="pipe"))


if __name__ == "__main__":
    main()
