"""torch Datasets and DataLoaders for training clips and test clips."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bench.config import DataConfig, EvalConfig
from bench.data.base import Tracklet
from bench.data.frames import FrameReader
from bench.data.sampling import PKSampler, clip_indices, eval_clips
from bench.data.transforms import augment_clip, normalize
from bench.errors import BenchError


def relabel(tracks: Sequence[Tracklet]) -> list[int]:
    """Training identities mapped to 0..n-1 in sorted order, one label per tracklet."""
    index = {pid: i for i, pid in enumerate(sorted({t.pid for t in tracks}))}
    return [index[t.pid] for t in tracks]


class SeededPKSampler(Sampler[tuple[int, int]]):
    """A PK sampler that pairs every tracklet index with the seed of its clip's randomness,
    so that sampling and augmentation are the same with any number of workers and on resume.

    Distributed (``world`` > 1): every P x K batch of the single-process stream is cut into
    ``world`` slices of P / world identities x K, and rank ``rank`` takes its slice, with the
    same clip seeds. The ranks see different identities, the same number of steps per epoch,
    and together exactly the batches (and augmentations) of one process.
    """

    def __init__(self, pk: PKSampler, rank: int = 0, world: int = 1):
        if pk.p % world:
            raise BenchError(
                f"data.p={pk.p} identities per batch cannot be split evenly over {world} "
                "processes; make data.p a multiple of the number of processes"
            )
        self.pk, self.rank, self.world = pk, rank, world
        self.per_rank = pk.p * pk.k // world

    def set_epoch(self, epoch: int) -> None:
        self.pk.set_epoch(epoch)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = random.Random(self.pk.seed * 7_919 + self.pk.epoch)
        batch = self.pk.p * self.pk.k
        for j, i in enumerate(self.pk):
            seed = rng.randrange(2**31)
            if (j % batch) // self.per_rank == self.rank:
                yield i, seed

    def __len__(self) -> int:
        return len(self.pk) // self.world


def loader_workers(configured: int | None, device: torch.device | None) -> int:
    """DataLoader workers: the configured number, else min(8, CPUs) when a GPU trains (the
    CPUs decode while it computes) and 0 on the CPU (the CPU that decodes is the one that
    trains)."""
    if configured is not None:
        return configured
    if device is not None and device.type in ("cuda", "mps"):
        return min(8, len(os.sched_getaffinity(0)))
    return 0


def _transfer_options(workers: int, device: torch.device | None) -> dict:
    """Worker count, pinned memory (for non-blocking copies to CUDA), persistent workers."""
    return {
        "num_workers": workers,
        "pin_memory": device is not None and device.type == "cuda",
        "persistent_workers": workers > 0,
    }


class TrainClips(Dataset):
    """Training clips: item (tracklet index, seed) -> dict with ``clips`` (T, 3, H, W) float,
    ``pids``, ``camids`` and the aux inputs requested."""

    def __init__(self, tracks: list[Tracklet], cfg: DataConfig, aux: frozenset[str]):
        self.tracks, self.cfg, self.aux = tracks, cfg, aux
        self.labels = relabel(tracks)
        self.reader = FrameReader(cfg.height, cfg.width, cfg.cache_frames)

    def __len__(self) -> int:
        return len(self.tracks)

    def __getitem__(self, item: tuple[int, int]) -> dict[str, torch.Tensor]:
        index, seed = item
        rng = random.Random(seed)
        track, cfg = self.tracks[index], self.cfg
        picks = clip_indices(len(track.frames), cfg.seq_len, cfg.sampling, cfg.stride, rng)
        sample = self.reader.clip(track, picks, self.aux)
        sample["clips"] = normalize(sample["clips"])
        sample = augment_clip(sample, cfg.flip, cfg.erasing, rng, cfg.crop, cfg.crop_pad)
        sample["pids"] = torch.tensor(self.labels[index])
        sample["camids"] = torch.tensor(track.camid)
        return sample


class EvalClips(Dataset):
    """Every frame of every tracklet, as clips: item i -> clip dict with its tracklet ``owner``.

    ``length=0`` makes one clip of each whole tracklet (up to ``max_frames``).
    """

    def __init__(
        self,
        tracks: list[Tracklet],
        data: DataConfig,
        length: int,
        stride: int,
        aux: frozenset[str],
        max_frames: int | None = None,
    ):
        self.tracks, self.aux = tracks, aux
        self.reader = FrameReader(data.height, data.width, data.cache_frames)
        self.items: list[tuple[int, list[int]]] = []
        for t, track in enumerate(tracks):
            n = min(len(track.frames), max_frames or len(track.frames))
            clips = [list(range(n))] if length == 0 else eval_clips(n, length, stride)
            self.items += [(t, picks) for picks in clips]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        owner, picks = self.items[i]
        sample = self.reader.clip(self.tracks[owner], picks, self.aux)
        sample["clips"] = normalize(sample["clips"])
        sample["owner"] = torch.tensor(owner)
        return sample


def train_loader(
    tracks: list[Tracklet],
    cfg: DataConfig,
    aux: frozenset[str],
    seed: int,
    device: torch.device | None = None,
    rank: int = 0,
    world: int = 1,
):
    """(DataLoader of P x K batches — this rank's slice of them —, its sampler: call
    ``set_epoch`` before each epoch). ``device`` sets the worker count and pinned memory."""
    data = TrainClips(tracks, cfg, aux)
    sampler = SeededPKSampler(PKSampler(data.labels, cfg.p, cfg.k, seed), rank, world)
    workers = loader_workers(cfg.workers, device)
    loader = DataLoader(
        data, batch_size=sampler.per_rank, sampler=sampler, **_transfer_options(workers, device)
    )
    return loader, sampler


def eval_loader(
    tracks: list[Tracklet],
    data: DataConfig,
    ev: EvalConfig,
    aux: frozenset[str],
    length: int | None = None,
    device: torch.device | None = None,
) -> DataLoader:
    """Clips of all test tracklets, batched ``ev.batch_size`` at a time, in order.

    ``length`` overrides ``ev.clip_len``; 0 = whole tracklets, one per batch. ``device`` sets
    the worker count and pinned memory.
    """
    length = (ev.clip_len or data.seq_len) if length is None else length
    stride = ev.clip_stride or max(length, 1)
    clips = EvalClips(tracks, data, length, stride, aux, ev.max_frames)
    batch = ev.batch_size if length else 1
    workers = loader_workers(data.workers, device)
    options = {**_transfer_options(workers, device), "persistent_workers": False}
    return DataLoader(clips, batch_size=batch, **options)


class PickedClips(EvalClips):
    """Given clips: item i -> the frames ``items[i] = (tracklet index, frame indices)`` of that
    tracklet, as :class:`EvalClips` gives them (the sequence-length study's random draws)."""

    def __init__(
        self,
        tracks: list[Tracklet],
        data: DataConfig,
        items: list[tuple[int, list[int]]],
        aux: frozenset[str],
    ):
        super().__init__([], data, 0, 1, aux)
        self.tracks, self.items = tracks, items


def picked_loader(
    tracks: list[Tracklet],
    data: DataConfig,
    items: list[tuple[int, list[int]]],
    aux: frozenset[str],
    batch_size: int,
    device: torch.device | None = None,
) -> DataLoader:
    """The clips ``items`` (see :class:`PickedClips`), ``batch_size`` at a time, in order;
    clips batched together must have the same length."""
    workers = loader_workers(data.workers, device)
    options = {**_transfer_options(workers, device), "persistent_workers": False}
    return DataLoader(PickedClips(tracks, data, items, aux), batch_size=batch_size, **options)
