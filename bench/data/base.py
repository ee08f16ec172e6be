"""The dataset contract: tracklets, splits, evaluation protocols and the dataset base class.

A dataset is registered with ``@register_dataset("name")``. It resolves its root (the suite's
``root``, else ``--data-root``/``$BENCH_DATA_ROOT`` joined with its ``folder``, else
``./data/<folder>``), checks it (``prepare``: validate a real layout and fail with a message that
lists what was expected where, or generate a synthetic one), and loads numbered splits.
Image datasets are video datasets whose tracklets have one frame.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from bench.config import Section
from bench.errors import ConfigError

DATA_ROOT_ENV = "BENCH_DATA_ROOT"


@dataclass(frozen=True)
class ExactAnnotations:
    """A generated tracklet's exact annotations, whatever ``aux`` the methods receive: part-mask
    PNGs parallel to its frames, its keypoints ``.npy`` and its nuisance records
    (:mod:`bench.data.nuisances`). Only generated data has them; the probes read them."""

    masks: tuple[str, ...]
    keypoints: str
    nuisances: str


@dataclass(frozen=True)
class Tracklet:
    """One tracklet (an image for image re-ID).

    frames: frame files ordered by frame index (never by glob order).
    masks: per-frame part label maps (PNG, 0 = background, 1..4 = head, upper body, lower body,
    shoes), parallel to ``frames``, or None.
    keypoints: a ``.npy`` file of shape (len(frames), 14, 3) holding x, y in the frame's own
    pixels and a visibility in [0, 1], joints in docs/methods.md's order, or None.
    exact: the exact annotations of a generated tracklet (None for real data).
    """

    frames: tuple[str, ...]
    pid: int
    camid: int
    masks: tuple[str, ...] | None = None
    keypoints: str | None = None
    exact: ExactAnnotations | None = None


@dataclass(frozen=True)
class Protocol:
    """How a split is scored.

    ap: 'mean' = mean of precision at each true match; 'trapezoid' = the Market-1501/MARS
    official rule (average of precision before and at each match). junk_pids: identities whose
    gallery items are ignored. report_map: False for CMC-only benchmarks (iLIDS-VID, PRID).
    """

    name: str = "standard"
    ap: Literal["mean", "trapezoid"] = "mean"
    junk_pids: tuple[int, ...] = (-1,)
    report_map: bool = True


@dataclass
class Split:
    """Train, query and gallery tracklets (pids as in the dataset; the harness relabels train)."""

    train: list[Tracklet]
    query: list[Tracklet]
    gallery: list[Tracklet]
    protocol: Protocol = field(default_factory=Protocol)
    index: int = 0


class DatasetOptions(Section):
    """Options every dataset accepts in a suite; datasets subclass this with their own."""

    root: str | None = Field(None, description="dataset folder (else $BENCH_DATA_ROOT/<folder>)")
    splits: list[int] | None = Field(None, description="which numbered splits to run (all)")
    masks: str | None = Field(None, description="folder of precomputed part masks")
    keypoints: str | None = Field(None, description="folder of precomputed 14-joint keypoints")
    aux: Literal["estimated", "exact"] = Field(
        "estimated",
        description="which part masks / keypoints the methods receive: a pose estimator's and a "
        "human parser's (real data always), or the generator's exact ones (synthetic data)",
    )


class ReIDDataset:
    """Base class of a dataset plugin."""

    name: ClassVar[str]
    folder: ClassVar[str] = ""
    video: ClassVar[bool] = True
    Options: ClassVar[type[DatasetOptions]] = DatasetOptions
    exact_aux: ClassVar[bool] = False  # has exact annotations (only generated data does)

    def __init__(self, options: DatasetOptions, data_root: str | None = None):
        if options.aux == "exact" and not self.exact_aux:
            raise ConfigError(
                f"dataset {self.name}.aux",
                "'exact' needs generated data; the annotations of a real dataset are estimated",
            )
        self.options = options
        self.root = resolve_root(options.root, data_root, self.folder or self.name)

    def prepare(self, progress: bool = True) -> None:
        """Make sure the data is there (generate it, or validate the layout)."""

    def num_splits(self) -> int:
        return 1

    def split_indices(self) -> list[int]:
        chosen = self.options.splits or list(range(self.num_splits()))
        return [i for i in chosen if 0 <= i < self.num_splits()] or [0]

    def load_split(self, index: int) -> Split:
        raise NotImplementedError

    def train_identities(self, index: int) -> int | None:
        """Training identities of split ``index``, from index files or options only (never a
        frame), for checking a suite before any work; None = not known cheaply."""
        return None

    def available_aux(self) -> frozenset[str]:
        """Which auxiliary inputs ('part_masks', 'keypoints') its tracklets carry."""
        return frozenset()


def resolve_root(explicit: str | None, data_root: str | None, folder: str) -> Path:
    """The dataset folder: explicit root, else (data_root | $BENCH_DATA_ROOT | ./data)/folder."""
    if explicit:
        return Path(explicit).expanduser()
    base = data_root or os.environ.get(DATA_ROOT_ENV) or "data"
    return Path(base).expanduser() / folder
