"""The training loop: P x K batches, the method's named loss terms, a checkpoint per epoch."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from bench.config import TrainConfig
from bench.engine import checkpoint, distributed, killpoints
from bench.engine.device import (
    autocast,
    float32,
    grad_scaler,
    placement_of,
    synchronize,
    to_device,
)
from bench.engine.finite import FiniteGuard
from bench.engine.optim import build_optimizer, build_scheduler, frozen
from bench.errors import BenchError
from bench.method import Method

EpochHook = Callable[[int, dict[str, float]], None]


class Trainer:
    """Trains a method on the device :func:`bench.engine.device.place` put it on; ``fit``
    resumes from ``ckpt_path`` if a checkpoint is there. Under DDP every rank trains and
    rank 0 alone writes the checkpoint."""

    def __init__(self, method: Method, loader: DataLoader, cfg: TrainConfig, ckpt_path: Path):
        self.method, self.loader, self.cfg, self.ckpt_path = method, loader, cfg, ckpt_path
        self.placement = placement_of(method)
        self.optimizer = build_optimizer(method, cfg)
        self.scheduler = build_scheduler(self.optimizer, cfg)
        self.scaler = grad_scaler(self.placement)
        self.model = distributed.wrap(method, cfg)
        if cfg.compile:
            self.model = torch.compile(self.model)
        self.guard = FiniteGuard(cfg)

    def resume(self) -> int:
        """Load the checkpoint if any; return the first epoch still to run."""
        state = checkpoint.load(self.ckpt_path)
        if state is None:
            return 0
        self.method.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        states = state.get("rng_ranks", [state["rng"]])
        if len(states) == distributed.world():
            torch.set_rng_state(states[distributed.rank()])
        self.guard.skipped = state.get("skipped", 0)
        return state["epoch"]

    def _save(self, next_epoch: int) -> None:
        states = distributed.rng_states()  # collective: every rank takes part
        if not distributed.is_rank0():
            return
        checkpoint.save(
            self.ckpt_path,
            {
                "epoch": next_epoch,
                "model": self.method.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": states[0],
                "rng_ranks": states,
                "skipped": self.guard.skipped,
            },
        )

    def step(self, batch: dict, epoch: int, step: int) -> dict[str, torch.Tensor] | None:
        """One optimisation step on a batch: forward under autocast, the method's loss in
        float32 (over all ranks' outputs with ``mining: global``), scaled backward; returns
        the detached loss terms and their ``total``, or None for a step skipped as not
        finite (:class:`bench.engine.finite.FiniteGuard` fails the cell otherwise)."""
        batch = to_device(batch, self.placement.device)
        with autocast(self.placement):
            outputs = self.model(batch)
        outputs = float32(outputs)
        pooled = self.cfg.mining == "global" and distributed.world() > 1
        if pooled:
            outputs, batch = distributed.gather_for_loss(outputs, batch)
        terms = self.method.loss(outputs, batch)
        total = sum(terms.values())
        self.optimizer.zero_grad(set_to_none=True)
        if not self.guard.loss_ok(terms, epoch, step):
            return None
        self.scaler.scale(distributed.global_loss(total) if pooled else total).backward()
        self.scaler.unscale_(self.optimizer)
        if not self.guard.grads_ok(self.method, terms, epoch, step, self.scaler.is_enabled()):
            return None
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return {**{k: v.detach() for k, v in terms.items()}, "total": total.detach()}

    def _freeze(self, epoch: int) -> None:
        """In a frozen epoch the backbone's parameters take no gradient (one process: its
        backward work is saved; under DDP, whose hooks need every parameter, its lr is 0)."""
        if distributed.world() == 1:
            for p in self.optimizer.param_groups[0]["params"]:
                p.requires_grad_(not frozen(epoch, self.cfg))

    def diagnostics(self) -> dict[str, float]:
        """The lr of each group and the mean |value| of each of the method's gates."""
        out = {"lr": self.optimizer.param_groups[0]["lr"]}
        out["lr.new"] = self.optimizer.param_groups[1]["lr"]
        gates = self.method.gates() if isinstance(self.method, Method) else {}
        for name, gate in gates.items():
            out[f"diag.gate.{name}"] = float(gate.detach().abs().mean())
        return out

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over the identities; returns the mean of each loss term, the lr of each
        group and the gates (:meth:`diagnostics`)."""
        self._freeze(epoch)
        self.method.train()
        self.loader.sampler.set_epoch(epoch)
        sums: dict[str, torch.Tensor] = defaultdict(float)
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
            disable=not distributed.is_rank0(),
        )
        start = time.perf_counter()
        for step, batch in enumerate(self.loader):
            if step >= steps:
                break
            killpoints.reached(f"epoch{epoch}.step{step}")
            terms = self.step(batch, epoch, step)
            if terms is None:  # skipped: not finite (train.on_nonfinite: skip_step)
                bar.update()
                continue
            for name, value in terms.items():
                sums[name] = sums[name] + value
            if step % 10 == 0:  # reading the loss waits for the device: not every step
                bar.set_postfix(loss=f"{float(terms['total']):.3f}")
            bar.update()
        bar.close()
        synchronize(self.placement.device)
        elapsed = time.perf_counter() - start
        done = steps - (self.guard.skipped - skipped)  # steps that updated the weights
        means = distributed.mean_over_ranks({k: v / max(done, 1) for k, v in sums.items()})
        out = {f"loss/{k}": float(v) for k, v in means.items()}
        out["train.skipped_steps"] = self.guard.skipped
        out["time.step_s"] = elapsed / max(steps, 1)  # wall time per step, loading included
        return {**out, **self.diagnostics()}

    def fit(self, on_epoch: EpochHook | None = None) -> None:
        """Train from the checkpoint's epoch (or 0) to ``cfg.epochs``, checkpointing each.
        ``on_epoch`` (logging) runs before the checkpoint is written, so that a kill between
        the two repeats an epoch's log rather than losing it."""
        start = self.resume()
        if distributed.on_rank0(lambda: start) != start:
            raise BenchError(
                f"rank {distributed.rank()} resumes at epoch {start} from {self.ckpt_path}, "
                "rank 0 at another: every rank must see the same --workdir"
            )
        for epoch in range(start, self.cfg.epochs):
            logs = self.train_epoch(epoch)
            self.scheduler.step()
            if on_epoch is not None:
                on_epoch(epoch, logs)
            killpoints.reached(f"epoch_logged{epoch}")
            self._save(epoch + 1)
            killpoints.reached(f"checkpoint{epoch}")
