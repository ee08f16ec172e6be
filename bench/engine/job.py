"""Train and score one claimed cell: the training (or the weights of a run that trained the
same model), the evaluation on the test split, the sequence-length study when asked, and the
metrics and artifacts they leave in the cell's run."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.data.cell_data import CellData
from bench.data.loader import train_loader
from bench.engine import claims, distributed, killpoints, record
from bench.engine.cost import cost_metrics
from bench.engine.device import placement_of
from bench.engine.evaluator import score
from bench.engine.probes import run_probes
from bench.engine.seqlen import sequence_length_study
from bench.engine.trainer import Trainer
from bench.engine.types import EvalHook, RunOptions
from bench.method import Method
from bench.suite.schema import Cell

log = logging.getLogger("bench")


@dataclass
class Job:
    """Everything one cell's training and scoring needs."""

    mlf: Any
    exp_id: str
    run_id: str
    cell: Cell
    data: CellData
    method: Method
    aux: frozenset[str]
    opts: RunOptions
    on_epoch: EvalHook | None
    claim: claims.Claim | None  # rank 0's; None on the other ranks under DDP
    checkpoint: Path
    validation_s: float = 0.0  # time spent scoring the validation split after epochs

    def score(self) -> dict:
        """The test metrics (and per-query results, CMC) of the method as it is."""
        s = self.cell.sections
        return score(self.method, self.data.split, s.data, s.eval, self.aux)

    def validate(self) -> dict[str, float]:
        """``val.*``: mAP, R1, R5 and mINP on the held-out training identities (their first
        ``train.val_frames`` frames); empty without a validation split."""
        if self.data.validation is None:
            return {}
        start = time.perf_counter()
        s = self.cell.sections
        ev = s.eval.model_copy(update={"max_frames": s.train.val_frames, "rerank": None})
        result = score(self.method, self.data.validation, s.data, ev, self.aux)
        self.validation_s += time.perf_counter() - start
        return {f"val.{k}": float(result[k]) for k in ("mAP", "R1", "R5", "mINP") if k in result}


def _reuse_weights(job: Job) -> str | None:
    """Load the weights of a finished run that trained the same model, if any (rank 0);
    returns that run's id."""
    reuse = not job.opts.force and job.on_epoch is None
    donor = record.trained_weights(job.mlf, job.exp_id, job.cell) if reuse else None
    if donor is None:
        return None
    job.method.load_state_dict(donor[1])
    job.mlf.set_tag(job.run_id, "weights_from", donor[0])
    log.info("%s: test-time variant, weights of run %s", job.cell.label, donor[0])
    return donor[0]


def train(job: Job) -> bool:
    """Train the method (from its checkpoint if any), or load the weights of a run that
    trained the same model; True if it trained."""
    if distributed.on_rank0(lambda: _reuse_weights(job)) is not None:
        return False
    sections = job.cell.sections
    distributed.seed_rank(job.cell.seed)
    loader, _ = train_loader(
        job.data.split.train,
        sections.data,
        job.aux,
        job.cell.seed,
        device=placement_of(job.method).device,
        rank=distributed.rank(),
        world=distributed.world(),
    )

    def epoch_end(epoch: int, logs: dict[str, float]) -> None:
        if not distributed.is_rank0():
            return
        job.claim.check()
        validation = job.validate()
        record.log_metrics(job.mlf, job.run_id, {**logs, **validation}, step=epoch)
        if job.on_epoch is not None:
            job.on_epoch(epoch, validation)

    Trainer(job.method, loader, sections.train, job.checkpoint).fit(epoch_end)
    return True


def train_and_score(job: Job) -> dict[str, float]:
    """Train, then (rank 0) score and record the cell; its final metrics."""
    s, split = job.cell.sections, job.data.split
    start = time.perf_counter()
    trained = train(job)
    train_s = time.perf_counter() - start
    if not distributed.is_rank0():
        return {}  # rank 0 scores and logs
    if not job.opts.test:  # a tune trial: its validation metrics, never the test split
        metrics = {**job.validate(), "time.train_s": train_s}
        record.log_metrics(job.mlf, job.run_id, metrics)
        return metrics
    result = job.score()
    probes, note = run_probes(job.method, split, s.data, s.eval, job.aux)
    result.update(probes)
    if note is not None:
        log.info("%s: no probes: %s", job.cell.label, note)
        job.mlf.set_tag(job.run_id, "probes", note)
    killpoints.reached("evaluating")
    study = sequence_length_study(job.method, split, s.data, s.eval, job.aux, job.cell.seed)
    metrics = record.final_metrics(result, study)
    test_s = time.perf_counter() - start - train_s
    metrics.update(cost_metrics(job.method, s, job.aux))
    metrics.update(
        {
            "time.train_s": train_s,  # the epochs, their validation included
            "time.validation_s": job.validation_s,
            "time.test_s": test_s,  # the test scoring, probes and sequence lengths
            "time.total_s": time.perf_counter() - start,
        }
    )
    record.log_metrics(job.mlf, job.run_id, metrics)
    model = job.method if job.opts.log_model and trained else None
    record.log_artifacts(job.mlf, job.run_id, job.cell, split, result, model, study)
    return metrics
