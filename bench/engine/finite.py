"""Stop (or skip) a training step whose loss or gradient is not finite.

A NaN or inf loss term, or a non-finite gradient norm, fails the cell at that step with a
message naming the epoch, the step, every loss term and what to try. With
``train.on_nonfinite: skip_step`` the step is skipped instead (no optimiser update), up to
``train.max_skipped_steps`` skipped steps per cell; the count is logged each epoch. Under DDP
the ranks decide together (a NaN on one rank is a NaN on all), and gradients are checked after
their all-reduce, where every rank holds the same values.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bench.config import TrainConfig
from bench.engine import distributed
from bench.errors import BenchError


class NonFiniteError(BenchError):
    """Training diverged: a loss term or a gradient is NaN or infinite."""


class FiniteGuard:
    """Checks each step's loss terms and gradients; counts the steps it skips."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.skipped = 0

    def _advice(self) -> str:
        return (
            f"try a lower train.lr (now {self.cfg.lr:g}), fp32 precision, gradient clipping "
            "(train.grad_clip), or train.on_nonfinite: skip_step"
        )

    def _bad(self, what: str, terms: dict[str, torch.Tensor], epoch: int, step: int) -> bool:
        """Fail, or count a skipped step (False = skip this step)."""
        values = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
        where = f"epoch {epoch + 1}, step {step + 1}: {what} (loss terms: {values})"
        if self.cfg.on_nonfinite == "skip_step" and self.skipped < self.cfg.max_skipped_steps:
            self.skipped += 1
            return False
        if self.cfg.on_nonfinite == "skip_step":
            limit = f"the limit of {self.cfg.max_skipped_steps} skipped steps is reached"
            where += f"; {limit} (train.max_skipped_steps)"
        raise NonFiniteError(f"training diverged at {where}; {self._advice()}")

    def loss_ok(self, terms: dict[str, torch.Tensor], epoch: int, step: int) -> bool:
        """True if every loss term is finite on every rank (call before ``backward``): one
        rank's NaN fails or skips the step on all of them, so that none waits alone in the
        gradient all-reduce."""
        values = torch.stack([v.detach().float() for v in terms.values()])
        local = torch.isfinite(values).all()
        if distributed.all_ranks(local):  # one device sync a step
            return True
        what = "non-finite loss" if not bool(local) else "non-finite loss on another rank"
        return self._bad(what, terms, epoch, step)

    def grads_ok(
        self,
        model: nn.Module,
        terms: dict[str, torch.Tensor],
        epoch: int,
        step: int,
        scaled: bool = False,
    ) -> bool:
        """True if the gradient norm is finite (call after ``backward`` and unscaling, before
        the update); clips the gradients to ``train.grad_clip`` when it is set. With fp16 loss
        scaling (``scaled``) an overflow is the GradScaler's to handle: it skips that update
        and lowers the scale, so it is not a divergence."""
        params = [p for p in model.parameters() if p.grad is not None]
        norm = nn.utils.clip_grad_norm_(params, self.cfg.grad_clip or math.inf)
        if scaled or math.isfinite(float(norm)):
            return True
        return self._bad(f"non-finite gradient (norm {float(norm)})", terms, epoch, step)
