"""DukeMTMC-VideoReID (Wu et al., CVPR 2018): 702 training identities (2,196 tracklets); 702
test identities plus 408 distractors (702 query and 2,636 gallery tracklets); 8 cameras.

The release: ``train|query|gallery/<pid>/<tracklet>/`` (e.g. ``train/0001/0001/``) with frames
``0001_C6_F0099_X30823.jpg`` (pid, camera C, frame index F, ordering by F; the first release's
``0001C6F0099X30823.jpg`` is accepted too). Fixed query/gallery; gallery items of the query's
identity and camera are junk (docs/methods.md, protocol). Tracklet key (aux keypoints):
``train/0001/0001``.
"""

from __future__ import annotations

import re

from bench.data.datasets._layout import (
    Expected,
    FixedRelease,
    FixedSplitDataset,
    NameFormat,
    Problems,
    Record,
    agree,
    files,
    frame_matches,
    subdirs,
)
from bench.registry import register_dataset

PARTS = ("train", "query", "gallery")
PID = re.compile(r"\d{4}")
FRAME = NameFormat(
    re.compile(r"(?P<pid>\d{4})_?C(?P<cam>\d)_?F(?P<frame>\d+)_?X(?P<x>\d+)\.jpg"),
    "0001_C6_F0099_X30823.jpg",
)
LAYOUT = tuple(
    Expected(
        f"{part}/",
        f"one folder per identity (0001/), one sub-folder per tracklet (0001/0001/) with frames "
        f"like {FRAME.example}",
    )
    for part in PARTS
)


@register_dataset("dukemtmc-videoreid")
class DukeMTMCVideoReID(FixedSplitDataset):
    folder = "DukeMTMC-VideoReID"
    video = True

    def parse(self, problems: Problems) -> FixedRelease | None:
        problems.require(LAYOUT)
        sets = [self._part(problems, p) for p in PARTS if not problems.missed(f"{p}/")]
        return None if problems else FixedRelease(*sets)

    def _part(self, problems: Problems, part: str) -> list[Record]:
        records = []
        for pid in subdirs(self.root / part):
            if not PID.fullmatch(pid):
                problems.add(self.root / part / pid, "not an identity folder (4 digits, 0001)")
                continue
            for track in subdirs(self.root / part / pid):
                record = self._tracklet(problems, f"{part}/{pid}/{track}", pid)
                if record is not None:
                    records.append(record)
        if not records:
            problems.add(self.root / part, "holds no tracklets")
        return records

    def _tracklet(self, problems: Problems, rel: str, pid: str) -> Record | None:
        frames = frame_matches(rel, files(self.root / rel, FRAME.suffix), FRAME, problems)
        if frames is None:
            return None
        if not agree(frames, "pid", "cam") or frames[0]["pid"] != pid:
            problems.add(self.root / rel, f"all frames must show identity {pid} in one camera")
            return None
        paths = tuple(f"{rel}/{m.string}" for m in frames)
        return Record(rel, paths, int(pid), int(frames[0]["cam"]) - 1)
