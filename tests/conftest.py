"""Shared fixtures: a tiny on-disk video dataset in the Tracklet contract, and a tmp cwd."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data.base import DatasetOptions, Protocol, ReIDDataset, Split, Tracklet
from bench.registry import register_dataset

pytest_plugins = ["tests.postgres"]


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``-n``) each worker process computes on one thread: the workers
    share the cores instead of each taking all of them."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        torch.set_num_threads(1)


class FixtureOptions(DatasetOptions):
    identities: int = 8
    frames: int = 5


@register_dataset("fixture-video")
class FixtureVideo(ReIDDataset):
    """Identities = (top colour, bottom colour) blocks; two cameras differ in brightness.

    Written as real PNG frames (named so that glob order differs from frame order), part masks
    and keypoints, so that every code path of the loaders is exercised.
    """

    folder = "fixture-video"
    Options = FixtureOptions

    def prepare(self, progress: bool = True) -> None:
        if (self.root / "done").exists():
            return
        rng = np.random.default_rng(0)
        for pid in range(self.options.identities):
            top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            for cam in range(2):
                self._write(pid, cam, top, bottom, rng)
        (self.root / "done").write_text("ok")

    def _write(self, pid, cam, top, bottom, rng) -> None:
        folder = self.root / f"p{pid}" / f"c{cam}"
        folder.mkdir(parents=True, exist_ok=True)
        for f in range(self.options.frames):
            img = np.zeros((32, 16, 3), np.uint8)
            img[:16] = np.clip(top * (0.7 + 0.5 * cam) + rng.normal(0, 20, 3), 0, 255)
            img[16:] = np.clip(bottom * (0.7 + 0.5 * cam) + rng.normal(0, 20, 3), 0, 255)
            Image.fromarray(img).save(folder / f"f{f:03d}.png")
            mask = np.zeros((32, 16), np.uint8)
            mask[:4], mask[4:16], mask[16:28], mask[28:] = 1, 2, 3, 4
            Image.fromarray(mask).save(folder / f"m{f:03d}.png")
        kp = np.tile(np.linspace([8, 1, 1], [8, 31, 1], 14), (self.options.frames, 1, 1))
        np.save(folder / "kp.npy", kp.astype(np.float32))

    def _track(self, pid: int, cam: int) -> Tracklet:
        folder = self.root / f"p{pid}" / f"c{cam}"
        n = range(self.options.frames)
        return Tracklet(
            tuple(str(folder / f"f{f:03d}.png") for f in n),
            pid,
            cam,
            tuple(str(folder / f"m{f:03d}.png") for f in n),
            str(folder / "kp.npy"),
        )

    def load_split(self, index: int) -> Split:
        ids = range(self.options.identities)
        half = self.options.identities // 2
        train = [self._track(p, c) for p in ids[:half] for c in range(2)]
        query = [self._track(p, 0) for p in ids[half:]]
        gallery = [self._track(p, 1) for p in ids[half:]]
        return Split(train, query, gallery, Protocol(name="fixture"), index)

    def available_aux(self) -> frozenset[str]:
        return frozenset({"part_masks", "keypoints"})


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run a test in an empty working directory (its own mlflow.db, data/, reports/)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)
    return tmp_path
