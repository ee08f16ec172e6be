"""Market-1501 (Zheng et al., ICCV 2015): 1,501 identities, 6 cameras; image re-ID.

The release (Market-1501-v15.09.15): ``bounding_box_train/`` (12,936 images of 751
identities), ``query/`` (3,368 images of 750 identities) and ``bounding_box_test/`` (19,732
images: the 750 test identities, distractors ``0000`` and junk ``-1``), images named
``0002_c1s1_000451_03.jpg`` (pid, camera c, sequence s, frame, box). Fixed query/gallery;
gallery items of identity -1 and of the query's identity and camera are junk (the official
evaluation). Tracklet key (aux keypoints): ``bounding_box_train/0002_c1s1_000451_03``.
"""

from __future__ import annotations

import re

from bench.data.datasets._layout import ImageFolderDataset, NameFormat
from bench.registry import register_dataset


@register_dataset("market1501")
class Market1501(ImageFolderDataset):
    folder = "Market-1501-v15.09.15"
    folders = ("bounding_box_train", "query", "bounding_box_test")
    name_format = NameFormat(
        re.compile(
            r"(?P<pid>-1|\d{4})_c(?P<cam>\d)s(?P<seq>\d)_(?P<frame>\d{6})_(?P<box>\d{2})\.jpg"
        ),
        "0002_c1s1_000451_03.jpg",
    )
