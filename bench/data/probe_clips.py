"""Test clips with their exact annotations, for the probes (bench/engine/probes.py).

The sample is bounded and the same for every method and seed: of the test tracklets with
exact annotations (generated data), those with a nuisance (a misdetected frame or an occluded
joint) come first, up to half of the sample, then the others, each group in the split's order.
From each tracklet one clip of ``length`` consecutive frames: the one with the most nuisance
frames that keeps a clean frame (ties: the earliest), so that a probe can contrast the two
within a clip.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from bench.config import DataConfig
from bench.data.base import Tracklet
from bench.data.frames import FrameReader
from bench.data.nuisances import Nuisances, read_nuisances
from bench.data.sampling import eval_clips
from bench.data.transforms import normalize


def nuisance_frames(records: Nuisances) -> np.ndarray:
    """(n_frames,) bool: misdetected, or with an occluded joint."""
    return records.misdetected | records.occluded.any(1)


def probe_window(flags: np.ndarray, length: int) -> list[int]:
    """The frames of the clip of ``length`` consecutive frames with the most flagged frames
    that keeps an unflagged one where it can (ties: the earliest); a tracklet shorter than
    ``length`` is repeated cyclically, as the evaluation does."""
    windows = eval_clips(len(flags), length, 1)
    counts = [int(flags[w].sum()) for w in windows]
    mixed = [i for i, c in enumerate(counts) if c < length] or range(len(windows))
    return windows[max(mixed, key=lambda i: (counts[i], -i))]


def probe_sample(tracks: list[Tracklet], limit: int) -> list[tuple[Tracklet, Nuisances]]:
    """Up to ``limit`` tracklets with exact annotations and their records (module docstring)."""
    known = [t for t in tracks if t.exact is not None]
    records = [read_nuisances(t.exact.nuisances, len(t.frames)) for t in known]
    flagged = [i for i, r in enumerate(records) if nuisance_frames(r).any()]
    clean = [i for i, r in enumerate(records) if not nuisance_frames(r).any()]
    half = limit // 2
    order = flagged[:half] + clean + flagged[half:]
    return [(known[i], records[i]) for i in order[:limit]]


class ProbeClips(Dataset):
    """item i -> ``clips`` (T, 3, H, W) normalised, the ``aux`` inputs the method receives, and
    the truth: ``exact_masks`` (T, H, W), ``exact_keypoints`` (T, 14, 3), ``misdetected`` (T,)
    and ``occluded`` (T, 14)."""

    def __init__(
        self,
        sample: list[tuple[Tracklet, Nuisances]],
        data: DataConfig,
        length: int,
        aux: frozenset[str],
    ):
        self.sample, self.length, self.aux = sample, length, aux
        self.reader = FrameReader(data.height, data.width, cache=False)

    def __len__(self) -> int:
        return len(self.sample)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        track, records = self.sample[i]
        picks = probe_window(nuisance_frames(records), self.length)
        out = self.reader.clip(track, picks, self.aux)
        out["clips"] = normalize(out["clips"])
        exact = track.exact
        out["exact_masks"] = torch.stack([self.reader.mask(exact.masks[p]) for p in picks])
        joints = replace(track, keypoints=exact.keypoints)
        out["exact_keypoints"] = self.reader.keypoints(joints, picks)
        out["misdetected"] = torch.from_numpy(records.misdetected[picks])
        out["occluded"] = torch.from_numpy(records.occluded[picks])
        return out


def probe_loader(
    tracks: list[Tracklet],
    data: DataConfig,
    length: int,
    aux: frozenset[str],
    limit: int,
    batch_size: int,
) -> DataLoader:
    """The probe clips of ``tracks`` (module docstring), ``batch_size`` at a time, in order."""
    clips = ProbeClips(probe_sample(tracks, limit), data, length, aux)
    return DataLoader(clips, batch_size=batch_size)
