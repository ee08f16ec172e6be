"""Who appears where: identities, their cameras and tracklets, and the query/gallery roles.

Train and test identities are disjoint and drawn separately (each set shares every part
value). Every identity appears in ``min_cameras..max_cameras`` cameras with 1 to
``max_tracklets_per_camera`` tracklets per camera. For a test identity one of its cameras is
the query camera: its first tracklet there is the query, everything else of it is gallery.
Distractors are extra people with a single gallery tracklet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.data.synthetic.attributes import Identity, random_identity, sample_identities
from bench.data.synthetic.config import GeneratorConfig
from bench.data.synthetic.tracklet import TrackletSpec


@dataclass(frozen=True)
class Plan:
    train: list[Identity]
    test: list[Identity]
    distractors: list[Identity]
    tracklets: list[TrackletSpec]


def make_plan(cfg: GeneratorConfig) -> Plan:
    rng = np.random.default_rng([cfg.seed, 1])
    n_train, n_test = cfg.train_ids, cfg.test_ids
    train = sample_identities(rng, list(range(n_train)))
    test = sample_identities(rng, list(range(n_train, n_train + n_test)))
    first = n_train + n_test
    distractors = [random_identity(rng, pid) for pid in range(first, first + cfg.distractors)]
    rows: list[tuple[str, Identity, int]] = []  # (role, identity, camid)
    for ident in train:
        rows += [("train", ident, c) for c in _appearances(rng, cfg)]
    for ident in test:
        cams = _appearances(rng, cfg)
        query_cam = cams[int(rng.integers(len(cams)))]
        rows.append(("query", ident, query_cam))
        cams.remove(query_cam)
        rows += [("gallery", ident, c) for c in cams]
    for ident in distractors:
        rows.append(("gallery", ident, int(rng.integers(cfg.cameras))))
    specs = []
    seen: dict[tuple[int, int], int] = {}
    for index, (role, ident, camid) in enumerate(rows):
        k = seen[(ident.pid, camid)] = seen.get((ident.pid, camid), -1) + 1
        folder = "train" if role == "train" else "test"
        n = int(rng.integers(cfg.min_len, cfg.max_len + 1))
        path = f"{folder}/p{ident.pid:04d}_c{camid}_t{k}"
        specs.append(TrackletSpec(index, path, role, ident, camid, n))
    return Plan(train, test, distractors, specs)


def _appearances(rng: np.random.Generator, cfg: GeneratorConfig) -> list[int]:
    """Camera ids of an identity's tracklets: distinct cameras, each repeated 1..max times."""
    count = int(rng.integers(cfg.min_cameras, cfg.most_cameras + 1))
    cams = sorted(int(c) for c in rng.choice(cfg.cameras, count, replace=False))
    reps = rng.integers(1, cfg.max_tracklets_per_camera + 1, count)
    return [c for c, r in zip(cams, reps, strict=True) for _ in range(int(r))]
