"""What a method costs: its parameters and the FLOPs of embedding one clip at its input size,
counted by torch's own counter (:class:`torch.utils.flop_counter.FlopCounterMode`), logged
with every run beside its accuracy (``cost.*``)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench.config import Defaults
from bench.method import Method

#: where the joints of :func:`dummy_batch` sit, as fractions of the frame's width and height
JOINT_X = (0.5, 0.5, 0.3, 0.25, 0.2, 0.7, 0.75, 0.8, 0.6, 0.6, 0.6, 0.4, 0.4, 0.4)
PART_ROWS = ((0, 0.15), (0.15, 0.5), (0.5, 0.9), (0.9, 1.0))


def dummy_batch(b: int, t: int, h: int, w: int) -> dict[str, torch.Tensor]:
    """A batch of ``b`` random clips (P x K with K = 2) of T frames of h x w, with plausible
    part masks and keypoints (a standing person in the middle of the frame)."""
    masks = torch.zeros(b, t, h, w, dtype=torch.long)
    for part, (lo, hi) in enumerate(PART_ROWS, start=1):
        masks[:, :, int(lo * h) : int(hi * h), w // 4 : 3 * w // 4] = part
    ys = torch.linspace(0.05, 0.95, len(JOINT_X)) * h
    xs = torch.tensor(JOINT_X) * w
    kp = torch.stack([xs, ys, torch.ones(len(JOINT_X))], -1).expand(b, t, -1, 3).clone()
    return {
        "clips": torch.randn(b, t, 3, h, w),
        "pids": torch.arange(b // 2).repeat_interleave(2)[:b],
        "camids": torch.zeros(b, dtype=torch.long),
        "part_masks": masks,
        "keypoints": kp,
    }


def clip_length(sections: Defaults, fixed: int | None = None) -> int:
    """T of a test clip: the method's fixed length, else ``eval.clip_len``, else ``seq_len``."""
    return fixed or sections.eval.clip_len or sections.data.seq_len


@torch.no_grad()
def embed_flops(method: Method, t: int, h: int, w: int, aux: frozenset[str]) -> int:
    """FLOPs of ``method.embed`` on one clip of T frames of h x w (on the method's device;
    a multiply-add counts as two)."""
    device = next(method.parameters()).device
    batch = {k: v.to(device) for k, v in dummy_batch(1, t, h, w).items()}
    extra = {k: batch[k] for k in aux}
    training = method.training
    method.eval()
    try:
        with FlopCounterMode(display=False) as counter:
            method.embed(batch["clips"], extra)
    finally:
        method.train(training)
    return counter.get_total_flops()


def cost_metrics(method: Method, sections: Defaults, aux: frozenset[str]) -> dict[str, float]:
    """``cost.params_M`` (all parameters, classifiers included, in millions) and
    ``cost.gflops_per_clip`` (one test clip at the input size), ``cost.clip_len``."""
    t = clip_length(sections, method.fixed_clip_len)
    data = sections.data
    flops = embed_flops(method, t, data.height, data.width, aux)
    return {
        "cost.params_M": sum(p.numel() for p in method.parameters()) / 1e6,
        "cost.gflops_per_clip": flops / 1e9,
        "cost.clip_len": float(t),
    }
