"""STAL's sequence-length study (Chen et al., TIP 2019, sec. IV-D.4, Fig. 11).

Rank-1 for every (probe length, gallery length) pair of ``eval.seq_lengths``. At length L each
test tracklet is reduced to L random frames; a tracklet with fewer than L frames keeps all of
them and is padded with frames drawn at random from itself (the paper: "we used the whole
sequence and randomly sampled other frames to complement the L length"). L = 0 keeps all
frames (up to ``eval.max_frames``). The grid is averaged over ``eval.seq_length_draws`` draws.

Draws are seeded by (cell seed, draw, L, tracklet index) alone, so they do not depend on the
batch order, the device or the other tracklets. The drawn frames are sorted into temporal
order: the paper treats frames as independent (order does not matter to STAL), and the sort
keeps a clip coherent for methods that relate neighbouring frames.

A method that is ``frame_separable`` embeds every frame once; each draw then pools its frames
from those embeddings with ``method.aggregate`` (exactly its embedding of the drawn clip).
Other methods embed every drawn clip (in clips of ``fixed_clip_len`` when they need one).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from bench.config import DataConfig, EvalConfig
from bench.data.base import Split, Tracklet
from bench.data.loader import picked_loader
from bench.data.sampling import eval_clips
from bench.engine.device import placement_of
from bench.engine.evaluator import _rows, _unique, embed_clips, score_embeddings
from bench.method import Embedding, Method

#: picks (one list of frame indices per tracklet) -> one embedding per tracklet
Embedder = Callable[[list[list[int]], str], Embedding]


def draw_frames(n: int, length: int, rng: random.Random) -> list[int]:
    """``length`` frame indices of a tracklet of ``n`` frames, in temporal order: distinct
    random frames when n >= length, else all n frames plus length - n drawn with replacement;
    length 0 = all frames."""
    if length == 0:
        return list(range(n))
    if n >= length:
        return sorted(rng.sample(range(n), length))
    return sorted([*range(n), *rng.choices(range(n), k=length - n)])


def draw_rng(seed: int, draw: int, length: int, track: int) -> random.Random:
    """The generator of one tracklet's frames in one draw (string seeds hash with SHA-512:
    the same on every machine and Python process)."""
    return random.Random(f"seqlen/{seed}/{draw}/{length}/{track}")


def drawn(counts: list[int], length: int, seed: int, draw: int) -> list[list[int]]:
    """Frame indices of every tracklet (``counts[t]`` frames) at ``length`` in one draw."""
    return [draw_frames(n, length, draw_rng(seed, draw, length, t)) for t, n in enumerate(counts)]


@dataclass
class SeqLenStudy:
    """Rank-1 (%) of each draw by (probe length, gallery length); 0 = all frames."""

    per_draw: list[dict[tuple[int, int], float]]

    @property
    def draws(self) -> int:
        return len(self.per_draw)

    def _values(self, pair: tuple[int, int]) -> np.ndarray:
        return np.array([grid[pair] for grid in self.per_draw])

    @property
    def mean(self) -> dict[tuple[int, int], float]:
        return {pair: float(self._values(pair).mean()) for pair in self.per_draw[0]}

    @property
    def std(self) -> dict[tuple[int, int], float]:
        """Sample standard deviation over draws (0 for one draw)."""
        ddof = 1 if self.draws > 1 else 0
        return {pair: float(self._values(pair).std(ddof=ddof)) for pair in self.per_draw[0]}

    def metrics(self) -> dict[str, float]:
        """``seqlen.R1.qL.gL`` the mean over draws, ``seqlen.R1_std.qL.gL`` the spread,
        ``seqlen.draws`` their number (L = 'all' for 0)."""
        out = {"seqlen.draws": float(self.draws)}
        for (q, g), v in self.mean.items():
            out[f"seqlen.R1.{_name(q, g)}"] = v
        for (q, g), v in self.std.items():
            out[f"seqlen.R1_std.{_name(q, g)}"] = v
        return out

    def rows(self) -> list[dict]:
        """One row per (probe, gallery) pair: mean, std and every draw's rank-1."""
        mean, std = self.mean, self.std
        return [
            {
                "probe": q,
                "gallery": g,
                "R1": mean[q, g],
                "R1_std": std[q, g],
                "R1_draws": self._values((q, g)).tolist(),
            }
            for q, g in mean
        ]


def _name(q: int, g: int) -> str:
    return f"q{q or 'all'}.g{g or 'all'}"


def sequence_length_study(
    method: Method,
    split: Split,
    data: DataConfig,
    ev: EvalConfig,
    aux: frozenset[str],
    seed: int,
) -> SeqLenStudy | None:
    """The study of ``ev.seq_lengths`` over ``ev.seq_length_draws`` draws (None when no
    lengths are asked for); see the module docstring."""
    if not ev.seq_lengths:
        return None
    tracks = _unique(split)
    counts = [min(len(t.frames), ev.max_frames or len(t.frames)) for t in tracks]
    if method.frame_separable:
        embed = frame_pooler(method, tracks, counts, data, ev, aux)
    else:
        embed = clip_embedder(method, tracks, data, ev, aux)
    whole = embed(drawn(counts, 0, seed, 0), "length all") if 0 in ev.seq_lengths else None
    per_draw = []
    for d in tqdm(range(ev.seq_length_draws), desc="sequence lengths", unit="draw", leave=False):
        embs = {
            n: whole if n == 0 else embed(drawn(counts, n, seed, d), f"draw {d} length {n}")
            for n in ev.seq_lengths
        }
        per_draw.append(
            {
                (lq, lg): float(score_embeddings(method, split, embs[lq], embs[lg], ev)["R1"])
                for lq in ev.seq_lengths
                for lg in ev.seq_lengths
            }
        )
    return SeqLenStudy(per_draw)


def frame_pooler(
    method: Method,
    tracks: list[Tracklet],
    counts: list[int],
    data: DataConfig,
    ev: EvalConfig,
    aux: frozenset[str],
) -> Embedder:
    """Embeds every frame once (as one-frame clips, as many frames per batch as a normal test
    batch holds) and returns picks -> ``method.aggregate`` of the picked frames' embeddings."""
    device = placement_of(method).device
    items = [(t, [i]) for t, n in enumerate(counts) for i in range(n)]
    batch = ev.batch_size * (ev.clip_len or data.seq_len)
    loader = picked_loader(tracks, data, items, aux, batch, device)
    frames, _ = embed_clips(method, loader, aux, "frame features")
    start = torch.tensor([0, *counts], device=device).cumsum(0)[:-1]

    def embed(picks: list[list[int]], desc: str) -> Embedding:
        sizes = torch.tensor([len(p) for p in picks], device=device)
        flat = torch.tensor([i for p in picks for i in p], device=device)
        owner = torch.arange(len(picks), device=device).repeat_interleave(sizes)
        return method.aggregate(_rows(frames, start[owner] + flat), owner, len(picks), False)

    return embed


def clip_embedder(
    method: Method, tracks: list[Tracklet], data: DataConfig, ev: EvalConfig, aux: frozenset[str]
) -> Embedder:
    """picks -> the method's embedding of each tracklet's picked frames: one clip, or clips of
    ``method.fixed_clip_len`` (stride ``ev.clip_stride``) averaged as ``ev.clip_norm`` says."""
    device = placement_of(method).device
    fixed = method.fixed_clip_len

    def embed(picks: list[list[int]], desc: str) -> Embedding:
        items = []
        for t, p in enumerate(picks):
            clips = eval_clips(len(p), fixed, ev.clip_stride or fixed) if fixed else [range(len(p))]
            items += [(t, [p[i] for i in clip]) for clip in clips]
        batch = ev.batch_size if fixed or len({len(p) for p in picks}) == 1 else 1
        loader = picked_loader(tracks, data, items, aux, batch, device)
        clips, owners = embed_clips(method, loader, aux, desc)
        return method.aggregate(clips, owners, len(picks), ev.clip_norm)

    return embed
