"""Agreement of the synthetic data's estimated annotations with the exact ones.

    python benchmarks/estimation_quality.py [--root DIR] [-o KEY=VALUE ...]

Generates (or finds) a small synthetic-video set and prints PCKh@0.5 per joint type and IoU
per part of the estimated keypoints and masks against the exact ones, next to the published
figures the defaults are calibrated to (docs/synthetic.md, "Estimated annotations").
"""

from __future__ import annotations

import argparse
import tempfile

import numpy as np
from PIL import Image
from tabulate import tabulate

from bench.data.build import build_dataset
from bench.data.synthetic.agreement import part_iou, pckh
from bench.data.synthetic.estimate import PCKH, PCKH_MEAN
from bench.suite.load import parse_override

SMALL = {"train_ids": 20, "test_ids": 4, "distractors": 0}


def stacks(dataset, aux: str) -> tuple[np.ndarray, np.ndarray]:
    """All frames' keypoints (N, 14, 3) and masks (N, H, W) of the training tracklets."""
    dataset.options = dataset.options.model_copy(update={"aux": aux})
    train = dataset.load_split(0).train
    keypoints = np.concatenate([np.load(t.keypoints) for t in train])
    masks = np.stack([np.asarray(Image.open(m)) for t in train for m in t.masks])
    return keypoints, masks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=None)
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args()
    options = {**SMALL, **dict(parse_override(o) for o in args.option)}
    options["root"] = args.root or tempfile.mkdtemp(prefix="bench-estimation-")
    dataset = build_dataset("synthetic-video", options, None, "estimation_quality")
    dataset.prepare(progress=True)
    kp_exact, mask_exact = stacks(dataset, "exact")
    kp_est, mask_est = stacks(dataset, "estimated")
    joints = pckh(kp_exact, kp_est)
    rows = [[k, f"{joints[k]:.1f}", PCKH.get(k, PCKH_MEAN)] for k in joints]
    print(f"{len(kp_exact)} frames\n")
    print(tabulate(rows, ["joint", "PCKh@0.5 (ours)", "HRNet-W32, MPII val"], floatfmt=".1f"))
    parts = part_iou(mask_exact, mask_est)
    print()
    print(tabulate([[k, f"{v:.1f}"] for k, v in parts.items()], ["part", "IoU (ours)"]))


if __name__ == "__main__":
    main()
