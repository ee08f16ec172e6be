"""iLIDS-VID (Wang et al., ECCV 2014): 300 persons, one sequence in each of two cameras.

The release (iLIDS-VID.tar): ``i-LIDS-VID/sequences/cam1|cam2/personNNN/`` with frames
``camC_personNNN_FFFFF.png`` (ordered by FFFFF), and ``train-test people splits/
train_test_splits_ilidsvid.mat`` whose variable ``ls_set`` (10, 300) holds, per split, a
permutation of 1..300 indexing the person folders in sorted order: the first half are the test
persons, the rest the training persons (Wang et al.; docs/methods.md, protocol). Probe = cam1,
gallery = cam2, CMC only. Tracklet key (aux keypoints): ``i-LIDS-VID/sequences/cam1/person001``.
"""

from __future__ import annotations

import re

from bench.data.aux_annotations import summarise
from bench.data.datasets._layout import (
    Expected,
    NameFormat,
    PairedCameraDataset,
    PairedRelease,
    Problems,
    camera_tracklets,
    halve,
    permutation_rows,
    read_mat,
)
from bench.registry import register_dataset

SEQUENCES = "i-LIDS-VID/sequences"
CAMERAS = (f"{SEQUENCES}/cam1", f"{SEQUENCES}/cam2")
SPLIT_FILE = "train-test people splits/train_test_splits_ilidsvid.mat"
PERSON = re.compile(r"person(\d{3})")
FRAME = NameFormat(
    re.compile(r"cam(?P<cam>\d)_person(?P<person>\d{3})_(?P<frame>\d+)\.png"),
    "cam1_person001_00317.png",
)
LAYOUT = (
    *(
        Expected(
            f"{cam}/",
            f"one folder per person (person001/) with frames like cam{c}_person001_00317.png",
        )
        for c, cam in enumerate(CAMERAS, 1)
    ),
    Expected(
        SPLIT_FILE,
        "variable ls_set, (10, 300): per split a permutation of 1..300 (the person folders "
        "in sorted order), first half = test persons",
    ),
)


@register_dataset("ilids-vid")
class ILIDSVID(PairedCameraDataset):
    folder = "iLIDS-VID"
    video = True

    def parse(self, problems: Problems) -> PairedRelease | None:
        problems.require(LAYOUT)
        cams = camera_tracklets(problems, CAMERAS, PERSON, FRAME)
        path = self.root / SPLIT_FILE
        table = None if problems.missed(SPLIT_FILE) else read_mat(path, "ls_set", problems)
        if problems:
            return None
        if lonely := [str(p) for p in sorted(set(cams[0]) ^ set(cams[1]))]:
            problems.add(self.root / SEQUENCES, f"persons in one camera only: {summarise(lonely)}")
            return None
        pids = sorted(cams[0])
        hint = f" for the {len(pids)} person folders"
        perms = permutation_rows(path, "ls_set", table, len(pids), problems, hint)
        return None if perms is None else PairedRelease(tuple(cams), halve(perms, pids), path.name)
