"""MSMT17 (Wei et al., CVPR 2018): 4,101 identities, 126,441 images, 15 cameras; image re-ID.

The release: ``list_train.txt``, ``list_val.txt``, ``list_query.txt``, ``list_gallery.txt``
with lines ``0000/0000_000_01_0303morning_0015_0.jpg 0`` (image path, label), and the images
under ``train/`` and ``test/`` (MSMT17_V1) or ``mask_train_v2/`` and ``mask_test_v2/``
(MSMT17_V2, faces masked). pid = the label, camera = the third field of the name (01..15).
Training set = list_train + list_val: the paper's 32,621 images of 1,041 identities
(``val_in_train: false`` trains on list_train only, torchreid's default); query 11,659 and
gallery 82,161 images of 3,060 identities. Tracklet key (aux keypoints):
``train/0000/0000_000_01_0303morning_0015_0``.
"""

from __future__ import annotations

import os
import re

from pydantic import Field

from bench.data.aux_annotations import missing_files, summarise
from bench.data.base import DatasetOptions
from bench.data.datasets._layout import (
    Expected,
    FixedRelease,
    FixedSplitDataset,
    Problems,
    Record,
)
from bench.registry import register_dataset

TRAIN_LISTS = ("list_train.txt", "list_val.txt")
TEST_LISTS = ("list_query.txt", "list_gallery.txt")
IMAGE_DIRS = {"V1": ("train", "test"), "V2": ("mask_train_v2", "mask_test_v2")}
EXAMPLE = "0000/0000_000_01_0303morning_0015_0.jpg 0"
LINE = re.compile(r"(?P<path>\d+/\d+_\d+_(?P<cam>\d+)_\S*\.jpg)\s+(?P<label>\d+)")


class MSMT17Options(DatasetOptions):
    val_in_train: bool = Field(
        True, description="train on list_train + list_val (the paper's 32,621 images)"
    )


def layout(train_dir: str, test_dir: str) -> tuple[Expected, ...]:
    return (
        *(Expected(n, f"lines '<folder>/<image> <label>' like '{EXAMPLE}'") for n in TRAIN_LISTS),
        *(Expected(n, f"lines like '{EXAMPLE}' for the test images") for n in TEST_LISTS),
        Expected(f"{train_dir}/", "the images of list_train/list_val (V2: mask_train_v2/)"),
        Expected(f"{test_dir}/", "the images of list_query/list_gallery (V2: mask_test_v2/)"),
    )


@register_dataset("msmt17")
class MSMT17(FixedSplitDataset):
    folder = "MSMT17_V1"
    video = False
    Options = MSMT17Options

    def image_dirs(self) -> tuple[str, str]:
        """V2's folders if the root has them, else V1's."""
        return IMAGE_DIRS["V2" if (self.root / "mask_train_v2").is_dir() else "V1"]

    def parse(self, problems: Problems) -> FixedRelease | None:
        train_dir, test_dir = self.image_dirs()
        problems.require(layout(train_dir, test_dir))
        lists = {
            **{n: self._list(problems, n, train_dir) for n in TRAIN_LISTS},
            **{n: self._list(problems, n, test_dir) for n in TEST_LISTS},
        }
        if problems:
            return None
        train = lists["list_train.txt"] + (
            lists["list_val.txt"] if self.options.val_in_train else []
        )
        return FixedRelease(train, lists["list_query.txt"], lists["list_gallery.txt"])

    def _list(self, problems: Problems, name: str, image_dir: str) -> list[Record]:
        """The images of one list file (checked to exist under ``image_dir``)."""
        if problems.missed(name):
            return []
        path = self.root / name
        lines = [(n, line.strip()) for n, line in enumerate(path.read_text().splitlines(), 1)]
        matches = [(n, LINE.fullmatch(line)) for n, line in lines if line]
        if bad := [str(n) for n, match in matches if match is None]:
            problems.add(path, f"lines {summarise(bad)} are not like '{EXAMPLE}'")
            return []
        if not matches:
            problems.add(path, "lists no images")
            return []
        rels = [(f"{image_dir}/{m['path']}", m) for _, m in matches]
        if not problems.missed(f"{image_dir}/"):
            root = str(self.root)
            if gone := missing_files(os.path.join(root, rel) for rel, _ in rels):
                problems.add(self.root / image_dir, f"images of {name} missing: {summarise(gone)}")
        return [Record(rel[:-4], (rel,), int(m["label"]), int(m["cam"]) - 1) for rel, m in rels]
