"""DukeMTMC-reID (Zheng et al., ICCV 2017): 1,404 identities plus 408 distractors, 8 cameras.

The release (DukeMTMC-reID): ``bounding_box_train/`` (16,522 images of 702 identities),
``query/`` (2,228 images of 702 identities) and ``bounding_box_test/`` (17,661 images of the
702 test identities and 408 distractors), images named ``0001_c2_f0046182.jpg`` (pid, camera
c, frame f). Fixed query/gallery; gallery items of the query's identity and camera are junk.
Tracklet key (aux keypoints): ``bounding_box_train/0001_c2_f0046182``.
"""

from __future__ import annotations

import re

from bench.data.datasets._layout import ImageFolderDataset, NameFormat
from bench.registry import register_dataset


@register_dataset("dukemtmc-reid")
class DukeMTMCReID(ImageFolderDataset):
    folder = "DukeMTMC-reID"
    folders = ("bounding_box_train", "query", "bounding_box_test")
    name_format = NameFormat(
        re.compile(r"(?P<pid>\d{4})_c(?P<cam>\d)_f(?P<frame>\d{7})\.jpg"),
        "0001_c2_f0046182.jpg",
    )
