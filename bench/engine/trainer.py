"""The training loop: P x K batches, the method's named loss terms, a checkpoint per epoch."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from bench.config import TrainConfig
from bench.engine import checkpoint
from bench.engine.finite import FiniteGuard
from bench.engine.optim import build_optimizer, build_scheduler
from bench.method import Method

EpochHook = Callable[[int, dict[str, float]], None]


class Trainer:
    """Trains a method; ``fit`` resumes from ``ckpt_path`` if a checkpoint is there."""

    def __init__(self, method: Method, loader: DataLoader, cfg: TrainConfig, ckpt_path: Path):
        self.method, self.loader, self.cfg, self.ckpt_path = method, loader, cfg, ckpt_path
        self.optimizer = build_optimizer(method, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.guard = FiniteGuard(cfg)

    def resume(self) -> int:
        """Load the checkpoint if any; return the first epoch still to run."""
        state = checkpoint.load(self.ckpt_path)
        if state is None:
            return 0
        self.method.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        self.guard.skipped = state.get("skipped", 0)
        return state["epoch"]

    def _save(self, next_epoch: int) -> None:
        checkpoint.save(
            self.ckpt_path,
            {
                "epoch": next_epoch,
                "model": self.method.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "rng": torch.get_rng_state(),
                "skipped": self.guard.skipped,
            },
        )

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the identities; returns the mean of each loss term and the lr."""
        self.method.train()
        self.loader.sampler.set_epoch(epoch)
        sums: dict[str, float] = defaultdict(float)
        skipped = self.guard.skipped
        steps = len(self.loader)
        if self.cfg.max_steps_per_epoch:
            steps = min(steps, self.cfg.max_steps_per_epoch)
        bar = tqdm(
            total=steps,
            desc=f"epoch {epoch + 1}/{self.cfg.epochs}",
            unit="step",
            leave=False,
            dynamic_ncols=True,
        )
        for step, batch in enumerate(self.loader):
            if step >= steps:
                break
            terms = self.method.loss(self.method(batch), batch)
            total = sum(terms.values())
            self.optimizer.zero_grad(set_to_none=True)
            if not self.guard.loss_ok(terms, epoch, step):
                continue
            total.backward()
            if not self.guard.grads_ok(self.method, terms, epoch, step):
                continue
            self.optimizer.step()
            for name, value in terms.items():
                sums[name] += float(value.detach())
            sums["total"] += float(total.detach())
            bar.set_postfix(loss=f"{float(total.detach()):.3f}")
            bar.update()
        bar.close()
        done = steps - (self.guard.skipped - skipped)  # steps that updated the weights
        out = {f"loss/{k}": v / max(done, 1) for k, v in sums.items()}
        out["lr"] = self.optimizer.param_groups[0]["lr"]
        out["train.skipped_steps"] = self.guard.skipped
        return out

    def fit(self, on_epoch: EpochHook | None = None) -> None:
        """Train from the checkpoint's epoch (or 0) to ``cfg.epochs``, checkpointing each."""
        start = self.resume()
        for epoch in range(start, self.cfg.epochs):
            logs = self.train_epoch(epoch)
            self.scheduler.step()
            self._save(epoch + 1)
            if on_epoch is not None:
                on_epoch(epoch, logs)
