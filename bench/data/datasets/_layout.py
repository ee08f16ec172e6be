"""Shared parsing of the official re-ID releases (the leading '_' keeps this out of the plugins).

- :class:`Problems` collects every missing or malformed path under a dataset root and raises
  one :class:`DataError` listing each with what it should contain.
- Helpers list folders, order frames by the index parsed from their names (never by listing
  order) and read integer tables from MATLAB ``.mat`` files.
- :class:`RealDataset` validates a release once and attaches the auxiliary annotations. The two
  protocol families: :class:`FixedSplitDataset` (one train / query / gallery partition) and
  :class:`PairedCameraDataset` (one tracklet per person in each of two cameras, numbered
  identity splits, probe = camera 1, gallery = camera 2, CMC only; docs/methods.md, protocol).
  :class:`ImageFolderDataset` is a fixed split read from three folders of named images.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import ClassVar

import numpy as np

from bench.data.aux_annotations import AuxFolders, summarise
from bench.data.base import DatasetOptions, Protocol, ReIDDataset, Split, Tracklet
from bench.errors import DataError

MAX_LINES = 25


@dataclass(frozen=True)
class Expected:
    """An entry of an official layout: a root-relative path (a folder ends with '/')."""

    path: str
    what: str


class Problems:
    """What is missing or malformed under a dataset root, raised as one :class:`DataError`."""

    def __init__(self, dataset: ReIDDataset):
        self.name, self.root, self.folder = dataset.name, dataset.root, dataset.folder
        self.lines: list[str] = []
        self.missing: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.lines)

    def add(self, path: str | Path, problem: str) -> None:
        self.lines.append(f"  - {path}: {problem}")

    def require(self, layout: Iterable[Expected]) -> None:
        """Report every layout entry that does not exist (or is not a folder / a file)."""
        for entry in layout:
            path = self.root / entry.path
            is_dir = entry.path.endswith("/")
            if not (path.is_dir() if is_dir else path.is_file()):
                self.missing.add(entry.path)
                self.add(f"{path}/" if is_dir else path, f"missing; expected {entry.what}")

    def missed(self, *paths: str) -> bool:
        """Whether one of these layout entries was reported missing."""
        return any(p in self.missing for p in paths)

    def raise_if_any(self) -> None:
        if not self.lines:
            return
        state = "" if self.root.is_dir() else " (the folder does not exist)"
        shown = self.lines[:MAX_LINES]
        if len(self.lines) > MAX_LINES:
            shown.append(f"  ... and {len(self.lines) - MAX_LINES} more problems")
        raise DataError(
            "\n".join(
                [
                    f"dataset '{self.name}': the release at {self.root}{state} is missing or "
                    "malformed:",
                    *shown,
                    f"The official layout is in docs/datasets.md ({self.name}). Set the root in "
                    f"the suite (datasets: [{{name: {self.name}, root: DIR}}]) or put the "
                    f"release at $BENCH_DATA_ROOT/{self.folder}.",
                ]
            )
        )


@dataclass(frozen=True)
class NameFormat:
    """A file-name grammar: a regex with named groups ('frame' = the frame index) and an
    example name (whose suffix is the files' extension)."""

    regex: re.Pattern[str]
    example: str

    @property
    def suffix(self) -> str:
        return Path(self.example).suffix

    def match(self, name: str) -> re.Match[str] | None:
        return self.regex.fullmatch(name)


def subdirs(folder: Path) -> list[str]:
    """Names of the sub-folders, sorted (listing order is never trusted)."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir())


def files(folder: Path, suffix: str) -> list[str]:
    """Names of the files ending in ``suffix``, sorted."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_file() and e.name.lower().endswith(suffix))


def frame_matches(
    rel_dir: str, names: Iterable[str], fmt: NameFormat, problems: Problems
) -> list[re.Match[str]] | None:
    """The parsed frame names of one tracklet, ordered by their frame index (group 'frame'),
    or None (with a problem) if a name does not parse, two share an index or there are none."""
    matches, bad = [], []
    for name in names:
        match = fmt.match(name)
        if match is None:
            bad.append(name)
        else:
            matches.append(match)
    where = problems.root / rel_dir
    if bad:
        problems.add(where, f"frame names not like {fmt.example}: {summarise(bad)}")
        return None
    if not matches:
        problems.add(where, f"holds no frames like {fmt.example}")
        return None
    matches.sort(key=lambda m: int(m["frame"]))
    twins = [b.string for a, b in pairwise(matches) if int(a["frame"]) == int(b["frame"])]
    if twins:
        problems.add(where, f"frames sharing a frame index with another: {summarise(twins)}")
        return None
    return matches


def agree(matches: Sequence[re.Match[str]], *groups: str) -> bool:
    """Whether all parsed names agree on these groups (e.g. the same camera)."""
    return len({m.group(*groups) for m in matches}) == 1


def read_mat(path: Path, var: str, problems: Problems) -> np.ndarray | None:
    """An integer-valued variable of a MATLAB file as int64, or None (with a problem)."""
    import scipy.io  # imported here: it takes about 1 s, and few datasets need it

    try:
        content = scipy.io.loadmat(str(path))
    except Exception as exc:  # scipy raises several exception types for a non-.mat file
        problems.add(path, f"not a readable MATLAB .mat file ({exc})")
        return None
    if var not in content:
        found = ", ".join(k for k in content if not k.startswith("__")) or "none"
        problems.add(path, f"has no variable '{var}' (variables found: {found})")
        return None
    value = np.asarray(content[var])
    if value.dtype.kind not in "iuf" or not np.array_equal(value, np.round(value)):
        problems.add(path, f"'{var}' must hold integers (got dtype {value.dtype})")
        return None
    return value.astype(np.int64)


@dataclass(frozen=True)
class Record:
    """A tracklet as parsed from a release, with root-relative paths.

    key: root-relative name of the tracklet; its keypoint file is ``<keypoints>/<key>.npy``.
    """

    key: str
    frames: tuple[str, ...]
    pid: int
    camid: int


@dataclass(frozen=True)
class IdentitySplit:
    """One numbered split of a paired-camera dataset: training and test identities."""

    train: tuple[int, ...]
    test: tuple[int, ...]


def permutation_rows(
    path: Path, var: str, table: np.ndarray, n: int, problems: Problems, hint: str = ""
) -> np.ndarray | None:
    """A (splits, n) table of 1-based permutations of 1..n, returned 0-based."""
    if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] != n:
        problems.add(path, f"'{var}' has shape {table.shape}; expected (n_splits, {n}){hint}")
        return None
    bad = np.flatnonzero((np.sort(table, axis=1) != np.arange(1, n + 1)).any(axis=1))
    if bad.size:
        problems.add(path, f"rows {(bad + 1).tolist()} of '{var}' are not permutations of 1..{n}")
        return None
    return table - 1


def halve(perms: np.ndarray, pids: Sequence[int]) -> list[IdentitySplit]:
    """Split each 0-based permutation row: its first half is the test set, the rest training
    (Wang et al., ECCV 2014, whose split files iLIDS-VID ships)."""
    half = perms.shape[1] // 2
    return [
        IdentitySplit(
            train=tuple(sorted(pids[i] for i in row[half:])),
            test=tuple(sorted(pids[i] for i in row[:half])),
        )
        for row in perms
    ]


def person_tracklets(
    problems: Problems, rel_dir: str, person: re.Pattern[str], fmt: NameFormat, camid: int
) -> dict[int, Record]:
    """One tracklet per person folder of ``rel_dir`` (pid = group 1 of ``person``)."""
    out = {}
    for folder in subdirs(problems.root / rel_dir):
        rel = f"{rel_dir}/{folder}"
        match = person.fullmatch(folder)
        if match is None:
            problems.add(problems.root / rel, f"not a person folder (like {person.pattern})")
            continue
        frames = frame_matches(rel, files(problems.root / rel, fmt.suffix), fmt, problems)
        if frames:
            pid = int(match[1])
            out[pid] = Record(rel, tuple(f"{rel}/{m.string}" for m in frames), pid, camid)
    return out


def camera_tracklets(
    problems: Problems, cameras: Sequence[str], person: re.Pattern[str], fmt: NameFormat
) -> list[dict[int, Record]]:
    """Per camera folder (camid = its position), its person tracklets ({} if it is missing)."""
    return [
        {} if problems.missed(f"{cam}/") else person_tracklets(problems, cam, person, fmt, camid)
        for camid, cam in enumerate(cameras)
    ]


@dataclass(frozen=True)
class FixedRelease:
    """A release with one fixed partition."""

    train: list[Record]
    query: list[Record]
    gallery: list[Record]

    def records(self) -> list[Record]:
        return [*self.train, *self.query, *self.gallery]


@dataclass(frozen=True)
class PairedRelease:
    """One tracklet per person and camera (probe camera, gallery camera) and numbered splits.

    source: where the splits come from (a file name or a seed); part of the protocol name.
    """

    cameras: tuple[dict[int, Record], dict[int, Record]]
    splits: list[IdentitySplit]
    source: str

    def records(self) -> list[Record]:
        return [*self.cameras[0].values(), *self.cameras[1].values()]


class RealDataset(ReIDDataset):
    """A dataset read from its official release: validated once (``prepare``), then split."""

    def __init__(self, options: DatasetOptions, data_root: str | None = None):
        super().__init__(options, data_root)
        self.root = self.root.absolute()

    def parse(self, problems: Problems) -> FixedRelease | PairedRelease | None:
        """Read the release, reporting into ``problems``; may return None if it found any."""
        raise NotImplementedError

    def prepare(self, progress: bool = True) -> None:
        """Validate layout, annotations, listed frames and aux folders (no image is decoded)."""
        _ = self.release

    @cached_property
    def release(self) -> FixedRelease | PairedRelease:
        problems = Problems(self)
        release = self.parse(problems)
        if not problems:
            for path, problem in self.aux.check((r.key, r.frames) for r in release.records()):
                problems.add(path, problem)
        problems.raise_if_any()
        return release

    @cached_property
    def aux(self) -> AuxFolders:
        return AuxFolders.from_options(self.options, self.root)

    def available_aux(self) -> frozenset[str]:
        return self.aux.available

    def tracklets(self, records: Iterable[Record]) -> list[Tracklet]:
        root = str(self.root)
        return [
            Tracklet(
                frames=tuple(os.path.join(root, f) for f in r.frames),
                pid=r.pid,
                camid=r.camid,
                masks=self.aux.mask_files(r.frames),
                keypoints=self.aux.keypoint_file(r.key),
            )
            for r in records
        ]

    def train_identities(self, index: int) -> int | None:
        """From the parsed release (file names and split files; a missing or malformed release
        is a DataError here, before any work)."""
        rel = self.release
        if not 0 <= index < self.num_splits():
            return None
        if isinstance(rel, PairedRelease):
            return len(rel.splits[index].train)
        return len({r.pid for r in rel.train})

    def check_index(self, index: int) -> None:
        if not 0 <= index < self.num_splits():
            raise DataError(
                f"dataset '{self.name}' has splits 0..{self.num_splits() - 1}; "
                f"split {index} does not exist"
            )


class FixedSplitDataset(RealDataset):
    """A dataset with one fixed train / query / gallery partition."""

    def protocol(self) -> Protocol:
        return Protocol(name=self.name)

    def load_split(self, index: int = 0) -> Split:
        self.check_index(index)
        rel = self.release
        return Split(
            self.tracklets(rel.train),
            self.tracklets(rel.query),
            self.tracklets(rel.gallery),
            self.protocol(),
            index,
        )


class PairedCameraDataset(RealDataset):
    """Two cameras, one tracklet per person in each; split i trains on both tracklets of its
    training identities and tests camera 1 (probe) against camera 2 (gallery), CMC only."""

    def num_splits(self) -> int:
        return len(self.release.splits)

    def load_split(self, index: int) -> Split:
        self.check_index(index)
        rel = self.release
        split = rel.splits[index]
        probe, gallery = rel.cameras
        return Split(
            self.tracklets(cam[pid] for pid in split.train for cam in rel.cameras),
            self.tracklets(probe[pid] for pid in split.test),
            self.tracklets(gallery[pid] for pid in split.test),
            Protocol(name=f"{self.name}/{rel.source}", report_map=False),
            index,
        )


class ImageFolderDataset(FixedSplitDataset):
    """Image re-ID from train / query / gallery folders of images named with pid and camera
    (groups 'pid' and 'cam', cameras numbered from 1)."""

    video = False
    name_format: ClassVar[NameFormat]
    folders: ClassVar[tuple[str, str, str]]

    def parse(self, problems: Problems) -> FixedRelease | None:
        roles = ("training", "query", "gallery")
        problems.require(
            Expected(f"{folder}/", f"the {role} images, named like {self.name_format.example}")
            for folder, role in zip(self.folders, roles, strict=True)
        )
        sets = [self._images(problems, f) for f in self.folders if not problems.missed(f"{f}/")]
        return None if problems else FixedRelease(*sets)

    def _images(self, problems: Problems, folder: str) -> list[Record]:
        fmt = self.name_format
        names = files(self.root / folder, fmt.suffix)
        matches = [fmt.match(n) for n in names]
        bad = [n for n, m in zip(names, matches, strict=True) if m is None]
        if bad or not names:
            found = f"names not like {fmt.example}: {summarise(bad)}" if bad else "no images"
            problems.add(self.root / folder, found)
            return []
        return [
            Record(f"{folder}/{Path(n).stem}", (f"{folder}/{n}",), int(m["pid"]), int(m["cam"]) - 1)
            for n, m in zip(names, matches, strict=True)
        ]
