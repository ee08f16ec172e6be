"""MARS (Zheng et al., ECCV 2016): 1,261 identities, 20,478 tracklets, 6 cameras.

The release: ``bbox_train/`` and ``bbox_test/`` hold one folder per identity with frames named
``0001C1T0001F001.jpg`` (pid 0001, camera 1, tracklet 0001, frame 001; junk identity -1 is
``00-1``, distractors are ``0000``), and ``info/`` (from the MARS-evaluation code) lists them:
``{train,test}_name.txt`` (frame names), ``tracks_{train,test}_info.mat`` (one row per tracklet:
start, end (1-based, inclusive, into the name list), pid, camera) and ``query_IDX.mat``
(1-based rows of the test tracks that are queries). Frames are ordered by their F index.

Protocols (docs/methods.md, protocol; recorded as the split's protocol name):
- ``official`` (default): gallery = all test tracks, queries included; junk = identity -1 and
  same identity + same camera; AP by the trapezoid rule (the MARS-evaluation MATLAB code).
- ``torchreid``: gallery = test tracks minus the queries; identity -1 dropped at load; AP =
  mean of the precision at each hit.
Identity -1 is never a training class.
Tracklet key (aux keypoints): ``bbox_train/0001/0001C1T0001``.
"""

from __future__ import annotations

import os
import re
from typing import Literal

import numpy as np
from pydantic import Field

from bench.data.aux_annotations import missing_files, summarise
from bench.data.base import DatasetOptions, Protocol
from bench.data.datasets._layout import (
    Expected,
    FixedRelease,
    FixedSplitDataset,
    NameFormat,
    Problems,
    Record,
    agree,
    read_mat,
)
from bench.registry import register_dataset

JUNK = -1
FRAME = NameFormat(
    re.compile(r"(?P<pid>\d{4}|00-1)C(?P<cam>\d)T(?P<track>\d{4})F(?P<frame>\d{3,})\.jpg"),
    "0001C1T0001F001.jpg",
)
COLUMNS = "[start, end, pid, camera], start/end 1-based lines of"
LAYOUT = (
    Expected("info/train_name.txt", "the training frame names, one per line (509,914)"),
    Expected("info/test_name.txt", "the test frame names, one per line (681,089)"),
    Expected(
        "info/tracks_train_info.mat",
        f"variable track_train_info, (8298, 4) rows {COLUMNS} train_name.txt",
    ),
    Expected(
        "info/tracks_test_info.mat",
        f"variable track_test_info, (12180, 4) rows {COLUMNS} test_name.txt",
    ),
    Expected("info/query_IDX.mat", "variable query_IDX, (1, 1980) 1-based rows of track_test_info"),
    Expected("bbox_train/", "one folder per identity (0001/) with the frames of train_name.txt"),
    Expected(
        "bbox_test/",
        "one folder per identity (0000 = distractors, 00-1 = junk) with the frames of "
        "test_name.txt",
    ),
)
PROTOCOLS = {
    "official": Protocol(name="mars-official", ap="trapezoid"),
    "torchreid": Protocol(name="mars-torchreid", ap="mean"),
}


class MARSOptions(DatasetOptions):
    protocol: Literal["official", "torchreid"] = Field(
        "official",
        description="official: gallery = all 12,180 test tracks, trapezoid AP; torchreid: "
        "gallery = test minus queries, identity -1 dropped, mean AP",
    )


def mars_pid(text: str) -> int:
    """'0001' -> 1, '0000' -> 0 (distractors), '00-1' -> -1 (junk)."""
    return JUNK if text == "00-1" else int(text)


def track_record(part: str, names: list[str], pid: int, cam: int) -> Record | None:
    """The tracklet of rows' frame names, or None if they disagree with the row or each other."""
    matches = [FRAME.match(n) for n in names]
    if None in matches or not agree(matches, "pid", "cam", "track"):
        return None
    first = matches[0]
    if mars_pid(first["pid"]) != pid or int(first["cam"]) != cam:
        return None
    matches.sort(key=lambda m: int(m["frame"]))
    if len({m["frame"] for m in matches}) != len(matches):
        return None
    folder = f"bbox_{part}/{first['pid']}"
    key = f"{folder}/{first['pid']}C{first['cam']}T{first['track']}"
    return Record(key, tuple(f"{folder}/{m.string}" for m in matches), pid, cam - 1)


@register_dataset("mars")
class MARS(FixedSplitDataset):
    folder = "MARS"
    video = True
    Options = MARSOptions

    def protocol(self) -> Protocol:
        return PROTOCOLS[self.options.protocol]

    def parse(self, problems: Problems) -> FixedRelease | None:
        problems.require(LAYOUT)
        train = self._tracks(problems, "train")
        test = self._tracks(problems, "test")
        query = self._queries(problems, test)
        return None if problems else self._partition(train, test, query)

    def _partition(self, train: list[Record], test: list[Record], query: list[int]) -> FixedRelease:
        """The query/gallery construction of the chosen protocol (module docstring)."""
        train = [r for r in train if r.pid != JUNK]
        queries = [test[i] for i in query]
        if self.options.protocol == "official":
            return FixedRelease(train, queries, test)
        chosen = set(query)
        gallery = [r for i, r in enumerate(test) if i not in chosen and r.pid != JUNK]
        return FixedRelease(train, [r for r in queries if r.pid != JUNK], gallery)

    def _tracks(self, problems: Problems, part: str) -> list[Record] | None:
        names_rel, mat_rel = f"info/{part}_name.txt", f"info/tracks_{part}_info.mat"
        if problems.missed(names_rel, mat_rel):
            return None
        names = (self.root / names_rel).read_text().split()
        rows = self._rows(problems, part, len(names))
        if rows is None:
            return None
        records, bad = [], []
        for i, (start, end, pid, cam) in enumerate(rows):
            record = track_record(part, names[start - 1 : end], pid, cam)
            if record is None:
                bad.append(str(i + 1))
            else:
                records.append(record)
        if bad:
            problems.add(
                self.root / mat_rel,
                f"rows {summarise(bad)} of track_{part}_info disagree with the frame names they "
                f"point at (each name like {FRAME.example}, with the row's pid and camera, one "
                "tracklet per row)",
            )
        if not problems.missed(f"bbox_{part}/"):
            self._check_frames(problems, part, records)
        return records

    def _rows(self, problems: Problems, part: str, num_names: int) -> list[list[int]] | None:
        path, var = self.root / f"info/tracks_{part}_info.mat", f"track_{part}_info"
        table = read_mat(path, var, problems)
        if table is None:
            return None
        if table.ndim != 2 or table.shape[1] != 4 or not len(table):
            problems.add(path, f"'{var}' has shape {table.shape}; expected (n_tracks, 4)")
            return None
        start, end = table[:, 0], table[:, 1]
        bad = np.flatnonzero((start < 1) | (end < start) | (end > num_names)) + 1
        if bad.size:
            problems.add(
                path,
                f"rows {summarise([str(b) for b in bad])} of '{var}' do not span lines "
                f"1..{num_names} of {part}_name.txt (start <= end)",
            )
            return None
        return table.tolist()

    def _check_frames(self, problems: Problems, part: str, records: list[Record]) -> None:
        root = str(self.root)
        gone = missing_files(os.path.join(root, f) for r in records for f in r.frames)
        if gone:
            problems.add(
                self.root / f"bbox_{part}",
                f"frames listed in {part}_name.txt are missing: {summarise(gone)}",
            )

    def _queries(self, problems: Problems, test: list[Record] | None) -> list[int] | None:
        path = self.root / "info/query_IDX.mat"
        if problems.missed("info/query_IDX.mat"):
            return None
        idx = read_mat(path, "query_IDX", problems)
        if idx is None or test is None:
            return None
        if idx.ndim != 2 or min(idx.shape) != 1:
            problems.add(path, f"'query_IDX' has shape {idx.shape}; expected (1, n_queries)")
            return None
        idx = idx.ravel()
        if ((idx < 1) | (idx > len(test))).any() or len(set(idx.tolist())) != idx.size:
            problems.add(
                path, f"'query_IDX' must hold distinct rows 1..{len(test)} of track_test_info"
            )
            return None
        return (idx - 1).tolist()
