"""PRID-2011 (Hirzer et al., SCIA 2011), multi-shot: camera A shows 385 persons, camera B 749;
persons 0001..0200 are the same people in both cameras (the rest are different people).

The release (prid_2011.zip): ``multi_shot/cam_a|cam_b/person_NNNN/NNNN.png`` (frames ordered by
NNNN). The common protocol (Wang et al., ECCV 2014; STAL) keeps the persons 1..200 whose
sequences have at least ``min_frames`` frames in both cameras (178 persons at the default 27;
see docs/datasets.md for the 21-frame count), probe = cam_a, gallery = cam_b, CMC only, 10
splits into equal halves. Tracklet key (aux keypoints): ``multi_shot/cam_a/person_0001``.

The dataset ships no split file; the splits come from, in this order:
1. ``split_file`` (relative to the root, or absolute): a ``.mat`` with ``ls_set`` (n_splits,
   n_persons) of 1-based indices into the eligible persons sorted by number, first half = test
   (``train_test_splits_prid.mat`` of Wang et al., shipped in iLIDS-VID's "train-test people
   splits" folder), or a ``.json`` list of ``{"train": [...], "test": [...]}`` person folder
   names (torchreid's ``splits_prid2011.json``);
2. either of those files, under those names, in the root;
3. generated: ``num_splits`` successive permutations of the eligible persons drawn from
   ``numpy.random.RandomState(split_seed)`` (a stream NumPy keeps frozen across versions),
   first half (n // 2) = test. The protocol name records the source, e.g. ``prid2011/seed-0``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from pydantic import Field

from bench.data.base import DatasetOptions
from bench.data.datasets._layout import (
    Expected,
    IdentitySplit,
    NameFormat,
    PairedCameraDataset,
    PairedRelease,
    Problems,
    Record,
    camera_tracklets,
    halve,
    permutation_rows,
    read_mat,
)
from bench.registry import register_dataset

SHARED_PERSONS = 200
CAMERAS = ("multi_shot/cam_a", "multi_shot/cam_b")
SPLIT_FILES = ("train_test_splits_prid.mat", "splits_prid2011.json")
PERSON = re.compile(r"person_(\d{4})")
FRAME = NameFormat(re.compile(r"(?P<frame>\d{4})\.png"), "0001.png")
LAYOUT = tuple(
    Expected(f"{cam}/", "one folder per person (person_0001/) with frames 0001.png, 0002.png, ...")
    for cam in CAMERAS
)
JSON_FORMAT = 'a list of {"train": [...], "test": [...]} of person folder names (person_0001)'


class PRIDOptions(DatasetOptions):
    min_frames: int = Field(
        27, ge=1, description="use persons 1..200 with at least this many frames in both cameras"
    )
    split_file: str | None = Field(
        None, description="ls_set .mat (Wang et al.) or torchreid .json splits (else generated)"
    )
    split_seed: int = Field(0, ge=0, description="seed of generated splits")
    num_splits: int = Field(10, ge=1, description="number of generated splits")


def json_split(entry: object, shared: set[int]) -> IdentitySplit | str:
    """One split of a torchreid-style JSON file, or what is wrong with it."""
    if not isinstance(entry, dict) or not {"train", "test"} <= entry.keys():
        return "is not a {train, test} mapping"
    sets = []
    for role in ("train", "test"):
        names = entry[role] if isinstance(entry[role], list) else [None]
        matches = [PERSON.fullmatch(str(n)) for n in names]
        if None in matches:
            return f"'{role}' must list person folders like person_0001"
        pids = {int(m[1]) for m in matches}
        if pids - shared:
            return f"'{role}' names persons not used in both cameras: {sorted(pids - shared)[:5]}"
        sets.append(tuple(sorted(pids)))
    return "train and test share persons" if set(sets[0]) & set(sets[1]) else IdentitySplit(*sets)


@register_dataset("prid2011")
class PRID2011(PairedCameraDataset):
    folder = "prid_2011"
    video = True
    Options = PRIDOptions

    def parse(self, problems: Problems) -> PairedRelease | None:
        problems.require(LAYOUT)
        cams = camera_tracklets(problems, CAMERAS, PERSON, FRAME)
        if problems:
            return None
        shared = sorted(p for p in set(cams[0]) & set(cams[1]) if p <= SHARED_PERSONS)
        found = self._splits(problems, self._eligible(problems, cams, shared), set(shared))
        if found is None:
            return None
        splits, source = found
        used = {p for s in splits for p in s.train + s.test}
        pair = tuple({p: r for p, r in cam.items() if p in used} for cam in cams)
        return PairedRelease(pair, splits, source)

    def _eligible(
        self, problems: Problems, cams: list[dict[int, Record]], shared: list[int]
    ) -> list[int]:
        """Shared persons with at least ``min_frames`` frames in both cameras."""
        n = self.options.min_frames
        eligible = [p for p in shared if min(len(c[p].frames) for c in cams) >= n]
        if len(eligible) < 2:
            problems.add(
                self.root / "multi_shot",
                f"fewer than 2 persons 1..200 have >= {n} frames in both cameras",
            )
        return eligible

    def split_path(self) -> Path | None:
        """The split file: option split_file, else a known file in the root, else None."""
        if self.options.split_file:
            return self.root / Path(self.options.split_file).expanduser()
        return next((self.root / n for n in SPLIT_FILES if (self.root / n).is_file()), None)

    def _splits(
        self, problems: Problems, eligible: list[int], shared: set[int]
    ) -> tuple[list[IdentitySplit], str] | None:
        """(splits, source) from the split file or the seed; None (with a problem) if bad."""
        if problems:
            return None
        path = self.split_path()
        if path is None:
            rng = np.random.RandomState(self.options.split_seed)
            perms = np.stack(
                [rng.permutation(len(eligible)) for _ in range(self.options.num_splits)]
            )
            return halve(perms, eligible), f"seed-{self.options.split_seed}"
        if not path.is_file():
            problems.add(path, "split file not found (option split_file)")
            return None
        if path.suffix == ".json":
            splits = self._json_splits(problems, path, shared)
        else:
            splits = self._mat_splits(problems, path, eligible)
        return None if splits is None else (splits, path.name)

    def _mat_splits(
        self, problems: Problems, path: Path, eligible: list[int]
    ) -> list[IdentitySplit] | None:
        """Wang et al.'s ls_set: rows of 1-based indices into the eligible persons."""
        table = read_mat(path, "ls_set", problems)
        if table is None:
            return None
        hint = (
            f" ({len(eligible)} persons 1..200 have >= {self.options.min_frames} frames in both "
            "cameras; set min_frames to the file's protocol)"
        )
        perms = permutation_rows(path, "ls_set", table, len(eligible), problems, hint)
        return None if perms is None else halve(perms, eligible)

    def _json_splits(
        self, problems: Problems, path: Path, shared: set[int]
    ) -> list[IdentitySplit] | None:
        """torchreid's splits_prid2011.json."""
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            problems.add(path, f"not readable JSON ({exc}); expected {JSON_FORMAT}")
            return None
        if not isinstance(entries, list) or not entries:
            problems.add(path, f"expected {JSON_FORMAT}")
            return None
        splits = [json_split(e, shared) for e in entries]
        for i, split in enumerate(splits):
            if isinstance(split, str):
                problems.add(path, f"split {i} {split}")
        return None if problems else splits
