"""Optional precomputed annotations of a real dataset: part masks and 14-joint keypoints.

A suite points at them with the dataset options ``masks: DIR`` and ``keypoints: DIR`` (a
relative DIR is taken relative to the dataset root). Both folders mirror the release
(docs/datasets.md, "Auxiliary annotations"):

- ``masks/<frame path relative to the root, extension replaced by .png>``: an 8-bit,
  single-channel PNG of the frame's size; 0 = background, 1 = head, 2 = upper body,
  3 = lower body, 4 = shoes (IAUnet's four parts, docs/methods.md).
- ``keypoints/<tracklet key>.npy``: a float array (n_frames, 14, 3) of x, y in the frame's own
  pixels and a visibility in [0, 1], joints in docs/methods.md's STAL order, one row per frame in
  the tracklet's frame-index order. Each dataset documents its tracklet keys (for an image
  dataset: the image path without its extension, an array of shape (1, 14, 3)).

A given folder must cover every tracklet of the dataset; ``check`` finds the gaps with one
directory listing per folder and reads only the ``.npy`` headers.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.data.base import DatasetOptions
from bench.data.npy import load_array
from bench.errors import DataError

PART_MASKS = "part_masks"
KEYPOINTS = "keypoints"
NUM_JOINTS = 14


def missing_files(paths: Iterable[str]) -> list[str]:
    """The paths that do not exist, found with one listing per directory (not one stat each)."""
    by_dir: dict[str, list[str]] = defaultdict(list)
    for path in paths:
        by_dir[os.path.dirname(path)].append(path)
    missing = []
    for folder, files in by_dir.items():
        try:
            present = set(os.listdir(folder))
        except OSError:
            present = set()
        missing += [f for f in files if os.path.basename(f) not in present]
    return missing


def npy_shape(path: str) -> tuple[int, ...] | str:
    """The array shape stored in a ``.npy`` file (header only), or why it cannot be read."""
    try:
        return tuple(load_array(path, mmap=True).shape)
    except DataError as exc:
        return str(exc).split(": ", 1)[1]


def summarise(items: Sequence[str], limit: int = 3) -> str:
    """'N, e.g. a, b, c' for a list of offending paths or names."""
    shown = ", ".join(items[:limit])
    return f"{len(items):,} (e.g. {shown})" if len(items) > limit else shown


@dataclass(frozen=True)
class AuxFolders:
    """The part-mask and keypoint folders of a dataset (either may be absent)."""

    masks: str | None = None
    keypoints: str | None = None

    @classmethod
    def from_options(cls, options: DatasetOptions, root: Path) -> AuxFolders:
        def resolve(value: str | None) -> str | None:
            return None if value is None else str((root / Path(value).expanduser()).absolute())

        return cls(resolve(options.masks), resolve(options.keypoints))

    @property
    def available(self) -> frozenset[str]:
        given = {PART_MASKS: self.masks, KEYPOINTS: self.keypoints}
        return frozenset(name for name, folder in given.items() if folder is not None)

    def mask_files(self, frames: Sequence[str]) -> tuple[str, ...] | None:
        """Mask PNGs of root-relative frame paths (None without a mask folder)."""
        if self.masks is None:
            return None
        return tuple(os.path.join(self.masks, os.path.splitext(f)[0] + ".png") for f in frames)

    def keypoint_file(self, key: str) -> str | None:
        """The ``.npy`` of a tracklet key (None without a keypoint folder)."""
        return None if self.keypoints is None else os.path.join(self.keypoints, f"{key}.npy")

    def check(self, tracklets: Iterable[tuple[str, Sequence[str]]]) -> list[tuple[str, str]]:
        """(path, problem) for every missing or malformed annotation of (key, frames) pairs."""
        tracklets = list(tracklets)
        problems = []
        for folder, what in ((self.masks, "part-mask folder"), (self.keypoints, "keypoint folder")):
            if folder is not None and not os.path.isdir(folder):
                problems.append((folder, f"{what} does not exist"))
        if problems:
            return problems
        if self.masks is not None:
            masks = [m for _, frames in tracklets for m in self.mask_files(frames)]
            if gone := missing_files(masks):
                problems.append((self.masks, f"missing mask PNGs: {summarise(gone)}"))
        if self.keypoints is not None:
            problems += self._check_keypoints(tracklets)
        return problems

    def _check_keypoints(self, tracklets: list[tuple[str, Sequence[str]]]) -> list[tuple[str, str]]:
        files = {self.keypoint_file(key): len(frames) for key, frames in tracklets}
        gone = missing_files(files)
        if gone:
            return [(self.keypoints, f"missing keypoint files: {summarise(gone)}")]
        problems = []
        for path, n in files.items():
            shape = npy_shape(path)
            if shape != (n, NUM_JOINTS, 3):
                got = shape if isinstance(shape, str) else f"has shape {shape}"
                problems.append((path, f"{got}; expected ({n}, {NUM_JOINTS}, 3) for {n} frames"))
        return problems
