"""Time of STAL's sequence-length study (bench.engine.seqlen) on a small synthetic split.

    python benchmarks/seqlen_study.py                       # the STAL ablation suite's setting
    python benchmarks/seqlen_study.py --test-ids 60 --draws 3

STAL as in suites/ablations/stal.yaml (half-width ResNet-18, 64 x 32, split after stage 2,
lengths 1, 2, 4, 8, all), random weights (the time does not depend on training). Prints the
time of one normal test pass, of the study with every frame embedded once and pooled
(``frame_separable``), and of the same study embedding every drawn clip, with the largest
rank-1 difference between the two (they compute the same embeddings).
"""

from __future__ import annotations

import argparse
import time

import torch

from bench.config import DataConfig, EvalConfig, ModelConfig
from bench.data.build import build_dataset
from bench.engine.evaluator import score
from bench.engine.seqlen import sequence_length_study
from methods.stal import STAL, STALConfig


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-ids", type=int, default=30)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--lengths", type=int, nargs="+", default=[1, 2, 4, 8, 0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--root", default="/tmp/bench-seqlen-data")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    options = {"train_ids": 4, "test_ids": args.test_ids, "distractors": 0}
    ds = build_dataset("synthetic-video", options, args.root)
    ds.prepare(progress=False)
    split = ds.load_split(0)
    data = DataConfig(height=64, width=32, seq_len=4, p=8, k=4, flip=0.0, erasing=0.0)
    half_width = {"channels": [32, 64, 128, 256]}
    model = ModelConfig(backbone="resnet18", pretrained=False, last_stride=1, kwargs=half_width)
    method = STAL(STALConfig(split_stage=2), model, data, num_classes=4).eval()
    aux = method.aux_inputs(method.config)
    ev = EvalConfig(seq_lengths=args.lengths, seq_length_draws=args.draws)
    tracks = set(split.query + split.gallery)
    frames = sum(len(t.frames) for t in tracks)
    print(
        f"{len(split.query)} queries, {len(tracks)} tracklets, {frames} frames; lengths "
        f"{args.lengths}, {args.draws} draws, {args.threads} thread(s)"
    )
    _, t_score = timed(score, method, split, data, ev, aux)
    pooled, t_pooled = timed(sequence_length_study, method, split, data, ev, aux, 0)
    method.frame_separable = False  # this instance only: embed every drawn clip
    clips, t_clips = timed(sequence_length_study, method, split, data, ev, aux, 0)
    diff = max(abs(pooled.mean[k] - clips.mean[k]) for k in pooled.mean)
    print(f"one test pass (score)            {t_score:7.2f} s")
    print(f"study, frames embedded once      {t_pooled:7.2f} s")
    print(f"study, every drawn clip embedded {t_clips:7.2f} s")
    print(f"largest rank-1 difference between the two: {diff:.2f} points")
    if (0, 0) in pooled.mean:
        print(f"rank-1 all x all frames: {pooled.mean[(0, 0)]:.1f}")


if __name__ == "__main__":
    main()
