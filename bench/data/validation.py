"""A validation split carved out of the training identities (for tuning; never the test set)."""

from __future__ import annotations

import random
from collections import defaultdict

from bench.data.base import Protocol, Split, Tracklet


def held_out_count(ids: int, fraction: float) -> int:
    """How many of ``ids`` training identities a validation split of ``fraction`` holds out."""
    return max(2, round(fraction * ids)) if fraction > 0 else 0


def carve_validation(split: Split, fraction: float, seed: int) -> Split:
    """Hold out ``fraction`` of the training identities (those seen by >= 2 cameras).

    Returns a Split whose train part is the remaining identities and whose query / gallery are
    the held-out ones: per identity one tracklet of one camera is a query, all its tracklets are
    gallery items (same-camera matches are then removed by the metric).
    """
    by_pid: dict[int, list[Tracklet]] = defaultdict(list)
    for t in split.train:
        by_pid[t.pid].append(t)
    rng = random.Random(seed)
    eligible = sorted(p for p, ts in by_pid.items() if len({t.camid for t in ts}) >= 2)
    n_val = held_out_count(len(by_pid), fraction)
    if len(eligible) < n_val:
        raise ValueError(
            f"cannot hold out {n_val} identities: only {len(eligible)} training "
            "identities appear in two cameras"
        )
    held = set(rng.sample(eligible, n_val))
    query = [rng.choice(by_pid[p]) for p in sorted(held)]
    gallery = [t for p in sorted(held) for t in by_pid[p]]
    train = [t for t in split.train if t.pid not in held]
    return Split(train, query, gallery, Protocol(name="validation"), split.index)
