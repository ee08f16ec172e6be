"""The embedded synthetic datasets: ``synthetic-video`` and ``synthetic-image``.

Both are generated on first ``prepare()`` into ``<root>/<key>`` (``<key>`` hashes the generator
options, so changing one regenerates) and reused afterwards. ``synthetic-image`` uses the same
generated tracklets (same options, same cache folder) and turns sampled frames into images.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from pydantic import Field

from bench.data.base import DatasetOptions, Protocol, ReIDDataset, Split, Tracklet
from bench.data.npy import load_array
from bench.data.synthetic import GeneratorConfig, ensure_generated, load_tracklets
from bench.data.synthetic.load import Queries
from bench.data.synthetic.store import ESTIMATED
from bench.errors import ConfigError, DataError
from bench.registry import register_dataset

PROTOCOLS = {
    "per_camera": Protocol(name="synthetic-per-camera", ap="mean"),
    "one": Protocol(name="standard", ap="mean"),
}
AUX = frozenset({"part_masks", "keypoints"})


class SyntheticVideoOptions(DatasetOptions, GeneratorConfig):
    """Dataset options of a suite plus every generator option (docs/synthetic.md)."""

    queries: Queries = Field(
        "per_camera",
        description="test protocol: a query per identity and camera (MARS-like), or one per "
        "identity",
    )


class SyntheticImageOptions(SyntheticVideoOptions):
    image_frames: int = Field(
        4, ge=1, description="frames taken (evenly spaced) from each train/gallery tracklet"
    )


@register_dataset("synthetic-video")
class SyntheticVideo(ReIDDataset):
    """Pedestrian tracklets rendered from 14 joints; see bench/data/synthetic."""

    folder = "synthetic-video"
    video = True
    Options = SyntheticVideoOptions
    exact_aux = True

    def __init__(self, options: DatasetOptions, data_root: str | None = None):
        super().__init__(options, data_root)
        for key in ("masks", "keypoints"):
            if getattr(options, key):
                raise ConfigError(
                    f"datasets: {self.name}.{key}", "synthetic data carries its own annotations"
                )
        self.generator = GeneratorConfig.from_options(options)
        self.path = Path(self.root) / self.generator.cache_key()

    def prepare(self, progress: bool = True) -> None:
        workers = min(2, os.cpu_count() or 1)
        self.path = ensure_generated(self.generator, Path(self.root), workers, progress)

    def load_split(self, index: int) -> Split:
        if index != 0:
            raise DataError(f"{self.name} has a single split (0), not {index}")
        roles = load_tracklets(self.path, self.options.aux, self.options.queries)
        protocol = PROTOCOLS[self.options.queries]
        return Split(roles["train"], roles["query"], roles["gallery"], protocol, index)

    def available_aux(self) -> frozenset[str]:
        return AUX

    def train_identities(self, index: int) -> int | None:
        return self.generator.train_ids


@register_dataset("synthetic-image")
class SyntheticImage(SyntheticVideo):
    """Single frames of the synthetic tracklets: an image re-ID set.

    Train and gallery tracklets give ``image_frames`` evenly spaced frames each, a query
    tracklet its middle frame. Each image's keypoints are a (1, 14, 3) ``.npy`` written once
    under ``<key>/images-<image_frames>/`` (exact) and ``.../estimated/`` (estimated).
    """

    video = False
    Options = SyntheticImageOptions

    def prepare(self, progress: bool = True) -> None:
        super().prepare(progress)
        folder = self._image_folder()
        if folder.is_dir():
            return
        partial = folder.with_name(f".{folder.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        for aux in ("exact", "estimated"):  # per_camera's roles cover both protocols' picks
            for role, tracks in load_tracklets(self.path, aux, "per_camera").items():
                for t in tracks:
                    keypoints = load_array(t.keypoints)
                    for i in self._picks(t, role):
                        out = partial / self._image_name(t, i, aux)
                        out.parent.mkdir(parents=True, exist_ok=True)
                        np.save(out, keypoints[i : i + 1])
        os.replace(partial, folder)

    def load_split(self, index: int) -> Split:
        split = super().load_split(index)
        split.train = [im for t in split.train for im in self._images(t, "train")]
        split.query = [im for t in split.query for im in self._images(t, "query")]
        split.gallery = [im for t in split.gallery for im in self._images(t, "gallery")]
        return split

    def _image_folder(self) -> Path:
        return self.path / f"images-{self.options.image_frames}"

    def _image_name(self, t: Tracklet, i: int, aux: str) -> str:
        track = Path(t.frames[i]).parent.parent
        name = f"{track.parent.name}/{track.name}/{i:06d}.npy"
        return f"{ESTIMATED}/{name}" if aux == "estimated" else name

    def _picks(self, t: Tracklet, role: str) -> list[int]:
        """Evenly spaced frame indices (centres of k equal chunks): ``image_frames`` of them
        (all frames of a shorter tracklet), the middle one for a query."""
        n, k = len(t.frames), 1 if role == "query" else self.options.image_frames
        return list(range(n)) if n <= k else [int((i + 0.5) * n / k) for i in range(k)]

    def _images(self, t: Tracklet, role: str) -> list[Tracklet]:
        """The picked frames of a tracklet as one-frame tracklets."""
        return [
            Tracklet(
                frames=(t.frames[i],),
                pid=t.pid,
                camid=t.camid,
                masks=(t.masks[i],) if t.masks else None,
                keypoints=str(self._image_folder() / self._image_name(t, i, self.options.aux)),
            )
            for i in self._picks(t, role)
        ]
