"""Which frames a clip takes, and which tracklets a P x K batch takes."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator, Sequence
from itertools import pairwise

from torch.utils.data import Sampler


def clip_indices(n: int, t: int, mode: str, stride: int, rng: random.Random) -> list[int]:
    """T frame indices (ascending) of a training clip from a tracklet of n frames.

    random: T distinct random frames (with repetition only if n < T), sorted.
    stride: T frames ``stride`` apart from a random start (stride shrinks for short tracklets).
    chunks: the tracklet cut into T equal chunks, one random frame from each.
    """
    if mode == "random":
        picks = rng.sample(range(n), t) if n >= t else [rng.randrange(n) for _ in range(t)]
        return sorted(picks)
    if mode == "stride":
        s = max(1, min(stride, (n - 1) // max(t - 1, 1)))
        start = rng.randrange(max(1, n - s * (t - 1)))
        return [min(start + i * s, n - 1) for i in range(t)]
    if mode == "chunks":
        edges = [round(i * n / t) for i in range(t + 1)]
        return [rng.randrange(min(a, n - 1), max(a + 1, b)) for a, b in pairwise(edges)]
    raise ValueError(f"unknown sampling mode '{mode}'")


def eval_clips(n: int, length: int, stride: int) -> list[list[int]]:
    """All frames of a tracklet of n frames as clips of ``length`` with ``stride``.

    Every frame is covered; the last clip is aligned to the end; a tracklet shorter than
    ``length`` gives one clip padded by repeating its frames cyclically.
    """
    if n <= length:
        return [[i % n for i in range(length)]]
    starts = list(range(0, n - length + 1, stride))
    if starts[-1] + length < n:
        starts.append(n - length)
    return [list(range(s, s + length)) for s in starts]


class PKSampler(Sampler[int]):
    """Batches of P identities x K tracklets each (Hermans et al. 2017).

    An epoch visits every identity once (in random order, P at a time); an identity with fewer
    than K tracklets is sampled with replacement. Yields tracklet indices, batch after batch.
    """

    def __init__(self, pids: Sequence[int], p: int, k: int, seed: int = 0):
        self.by_pid: dict[int, list[int]] = defaultdict(list)
        for i, pid in enumerate(pids):
            self.by_pid[pid].append(i)
        if len(self.by_pid) < p:
            raise ValueError(
                f"P={p} identities per batch, but the training set has only {len(self.by_pid)}"
            )
        self.p, self.k, self.seed, self.epoch = p, k, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        rng = random.Random(self.seed * 100_003 + self.epoch)
        pids = sorted(self.by_pid)
        rng.shuffle(pids)
        out = []
        for b in range(len(pids) // self.p):
            batch = []
            for pid in pids[b * self.p : (b + 1) * self.p]:
                pool = self.by_pid[pid]
                picks = (
                    rng.sample(pool, self.k) if len(pool) >= self.k else rng.choices(pool, k=self.k)
                )
                batch.extend(picks)
            out.append(batch)
        return out

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch

    def __len__(self) -> int:
        return (len(self.by_pid) // self.p) * self.p * self.k
