"""Run one cell: data -> method -> training -> evaluation -> an MLflow run.

A cell whose config hash (its config and code) already has a FINISHED run is skipped (unless
forced); with ``reuse_stale``, so is one whose config has a FINISHED run by other code
(bench.engine.stale). Before it
trains, a worker claims the cell (bench.engine.claims); a cell claimed by a live worker is left
to it ("busy"). Taking over an interrupted or dead worker's claim resumes its MLflow run from its
last checkpoint; orphan RUNNING runs of the cell are closed as KILLED.
"""

from __future__ import annotations

import logging
import numbers
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from bench.data.base import Split
from bench.data.loader import train_loader
from bench.data.validation import carve_validation
from bench.engine import claims, distributed, killpoints, once, stale
from bench.engine.device import Placement, device_name, place, placement_of, resolve_device
from bench.engine.evaluator import score
from bench.engine.seqlen import SeqLenStudy, sequence_length_study
from bench.engine.tracking import environment_tags, flatten, runs_with_hash
from bench.engine.trainer import Trainer
from bench.errors import BenchError
from bench.eval.per_query import PER_QUERY, write_per_query
from bench.method import Method
from bench.registry import METHODS
from bench.report.figures import cmc_figure, heatmap_figure
from bench.suite.cross import cross_tags, load_cell_data
from bench.suite.schema import Cell
from bench.suite.warmstart import resolve_weights

log = logging.getLogger("bench")
EvalHook = Callable[[int, Callable[[], dict]], None]


class CellStopped(Exception):
    """Raised by an ``on_epoch`` hook to stop a cell early on purpose (a pruned trial): its
    run ends KILLED, not FAILED."""


@dataclass
class RunOptions:
    workdir: Path = Path(".bench")
    data_root: str | None = None
    force: bool = False
    reuse_stale: bool = False  # reuse a finished run of the config made by other code
    log_model: bool = True
    parent_run_id: str | None = None
    extra_tags: dict[str, str] = field(default_factory=dict)
    claims_uri: str | None = None  # default: beside the tracking store (claims.claims_uri)
    lease_s: float = 60.0  # a claim not renewed for this long is free to take over
    launch_time: float = field(default_factory=time.time)  # cells ended before it may rerun
    worker: str = ""  # shown by `bench status`


@dataclass
class CellResult:
    cell: Cell
    run_id: str
    status: str  # "finished", "resumed", "skipped", "reused"; not claimed: "busy", "failed"
    metrics: dict[str, float]
    error: str = ""
    note: str = ""  # what a reused stale run was


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _tags(cell: Cell, opts: RunOptions, notes: list[str]) -> dict[str, str]:
    tags = {
        "suite": cell.suite,
        "dataset": cell.shown_dataset,
        "dataset_name": cell.dataset_name,
        "split": str(cell.split),
        "method": cell.method,
        "variant": cell.variant,
        "seed": str(cell.seed),
        "config_hash": cell.config_hash,
        "config_key": cell.config_key,
        "code_fingerprint": cell.code["fingerprint"],
        "train_hash": cell.train_hash,
        "aux": str(cell.dataset_options.get("aux", "estimated")),
        "mlflow.runName": cell.label,
        **cross_tags(cell),
        **environment_tags(),
        **opts.extra_tags,
    }
    if opts.parent_run_id:
        tags["mlflow.parentRunId"] = opts.parent_run_id
    if notes:
        tags["aux_fallback"] = " | ".join(notes)
    return tags


def _start_run(mlf, exp_id: str, cell: Cell, opts: RunOptions, claim) -> tuple[str, bool]:
    """(run id, resumed?): adopt the previous owner's run if it left a checkpoint, else a new
    run; other RUNNING runs of this hash are orphans of dead workers and closed as KILLED."""
    resumed = not opts.force and claim.run_id is not None and claim.inherit_checkpoint()
    for run in runs_with_hash(mlf, exp_id, cell.config_hash, ("RUNNING",)):
        if not resumed or run.info.run_id != claim.run_id:
            mlf.set_terminated(run.info.run_id, status="KILLED")
    if resumed:
        mlf.update_run(claim.run_id, status="RUNNING")
        return claim.run_id, True
    run = mlf.create_run(exp_id, run_name=cell.label)
    params = flatten(cell.resolved())
    mlf.log_batch(run.info.run_id, params=[_param(k, v) for k, v in params.items()])
    return run.info.run_id, False


def _param(key: str, value: object):
    from mlflow.entities import Param

    return Param(key, str(value)[:6000])


def finished_run(mlf, exp_id: str, cell: Cell):
    runs = runs_with_hash(mlf, exp_id, cell.config_hash, ("FINISHED",))
    return runs[0] if runs else None


def placement(cell: Cell) -> Placement:
    """Device (``runtime.device``; this rank's GPU under DDP), precision and memory format."""
    train = cell.sections.train
    device = resolve_device(cell.sections.runtime.device, distributed.local_rank())
    return Placement(device, train.precision, train.channels_last)


def placement_tags(where: Placement) -> dict[str, str]:
    return {
        "device": str(where.device),
        "device_name": device_name(where.device),
        "world_size": str(distributed.world()),
    }


def _skip_decision(mlf, exp_id: str, cell: Cell, opts: RunOptions) -> CellResult | None:
    """This cell's finished run if any and not forced, else with ``reuse_stale`` a finished run
    of its config made by other code (bench.engine.stale); rank 0 asks."""
    done = None if opts.force else finished_run(mlf, exp_id, cell)
    if done is not None:
        return CellResult(cell, done.info.run_id, "skipped", dict(done.data.metrics))
    reused = stale.reuse(mlf, exp_id, cell) if opts.reuse_stale and not opts.force else None
    if reused is None:
        return None
    run_id, metrics, note = reused
    return CellResult(cell, run_id, "reused", metrics, note=note)


def _open_run(
    mlf, exp_id: str, cell: Cell, opts: RunOptions, tags: dict, claim: claims.Claim
) -> tuple[str, bool]:
    """Start or adopt the cell's MLflow run, record it in the claim and tag it (rank 0)."""
    run_id, resumed = _start_run(mlf, exp_id, cell, opts, claim)
    claim.set_run(run_id)
    for key, value in tags.items():
        mlf.set_tag(run_id, key, value)
    return run_id, resumed


def prepare_split(cell: Cell, opts: RunOptions) -> tuple[Split, frozenset[str]]:
    """Load (or generate) the data of a cell; carve a validation split when asked to."""
    split, available = load_cell_data(cell, opts.data_root)
    if cell.sections.train.val_fraction > 0:
        split = carve_validation(split, cell.sections.train.val_fraction, cell.seed)
    if not split.train or not split.query or not split.gallery:
        raise BenchError(f"{cell.label}: the split has an empty train, query or gallery set")
    return split, available


def build_method(cell: Cell, split: Split, available: frozenset[str], workdir: Path = Path(".")):
    """The method of a cell, with its config adapted to the data; (method, aux, notes). A
    ``pretrain:`` warm start in ``model.weights`` is looked up under ``workdir``."""
    cls = METHODS.get(cell.method)
    config, notes = cls.adapt_config(cell.method_config, available)
    for note in notes:
        log.warning("%s: %s", cell.label, note)
    aux = cls.aux_inputs(config) & available
    seed_everything(cell.seed)
    num_classes = len({t.pid for t in split.train})
    model = resolve_weights(cell.sections.model, workdir)
    method = cls(config, model, cell.sections.data, num_classes)
    return method, aux, notes


def log_metrics(mlf, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = once.unlogged(mlf, run_id, metrics, step or 0)  # a resumed run logs once
    items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
    mlf.log_batch(run_id, metrics=items)


def log_artifacts(mlf, run_id: str, cell: Cell, split: Split, result: dict, method, study) -> None:
    """config.yaml, the CMC curve, the per-query results, the sequence-length heat map and the
    model weights."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "config.yaml").write_text(yaml.safe_dump(cell.resolved(), sort_keys=False))
        (out / "cmc.yaml").write_text(yaml.safe_dump({"cmc": result["cmc"]}))
        write_per_query(out / PER_QUERY, result, split.query)
        cmc_figure({cell.label: result["cmc"]}, cell.label, out / "cmc.png")
        if study is not None:
            title = f"rank-1 by sequence length, mean of {study.draws} draws\n{cell.label}"
            heatmap_figure(study.mean, title, out / "seqlen.png")
            (out / "seqlen.yaml").write_text(yaml.safe_dump(study.rows(), sort_keys=False))
        if method is not None:
            torch.save(method.state_dict(), out / "model.pt")
        for path in sorted(out.iterdir()):  # one by one: a kill in between is tested
            mlf.log_artifact(run_id, str(path))
            killpoints.reached("artifact_logged")


def final_metrics(result: dict, study: SeqLenStudy | None) -> dict[str, float]:
    metrics = {k: float(v) for k, v in result.items() if isinstance(v, numbers.Real)}
    return metrics if study is None else {**metrics, **study.metrics()}


@dataclass
class Job:
    """Everything one cell's training and scoring needs."""

    mlf: Any
    exp_id: str
    run_id: str
    cell: Cell
    split: Split
    method: Method
    aux: frozenset[str]
    opts: RunOptions
    on_epoch: EvalHook | None
    claim: claims.Claim | None  # rank 0's; None on the other ranks under DDP
    checkpoint: Path

    def score(self) -> dict:
        s = self.cell.sections
        return score(self.method, self.split, s.data, s.eval, self.aux)


def run_cell(
    mlf, exp_id: str, cell: Cell, opts: RunOptions, on_epoch: EvalHook | None = None
) -> CellResult:
    """Train and evaluate a cell (or skip it if finished); see the module docstring."""
    where = placement(cell)
    distributed.init_from_env(where.device)
    done = distributed.on_rank0(lambda: _skip_decision(mlf, exp_id, cell, opts))
    if done is not None:
        return done
    claim = _claim(mlf, exp_id, cell, opts) if distributed.is_rank0() else None
    won, state, claimed_run, error, ckpt = distributed.on_rank0(lambda: _claim_view(claim))
    if not won:
        status = "failed" if state == "failed" else "busy"
        return CellResult(cell, claimed_run or "", status, {}, error)
    if claim is not None:
        claim.start_heartbeat()
    try:
        result = _run_claimed(mlf, exp_id, cell, opts, on_epoch, claim, where, ckpt)
    except BaseException as exc:
        if claim is not None:
            stopped = isinstance(exc, (KeyboardInterrupt, CellStopped))
            claim.end("released" if stopped else "failed", f"{type(exc).__name__}: {exc}")
        raise
    if claim is not None:
        claim.end("finished")
    return result


def _claim(mlf, exp_id: str, cell: Cell, opts: RunOptions) -> claims.Claim:
    """Try to claim the cell for this worker (rank 0 under DDP): see :mod:`bench.engine.claims`."""
    return claims.acquire(
        claims.claims_uri(mlf.tracking_uri, opts.claims_uri),
        exp_id,
        cell.config_hash,
        cell.label,
        lease_s=opts.lease_s,
        launch_time=opts.launch_time,
        workdir=opts.workdir,
        worker=opts.worker,
    )


def _claim_view(claim: claims.Claim) -> tuple[bool, str, str | None, str, Path]:
    """What every rank needs of rank 0's claim: (won, state, run id, error, checkpoint path)."""
    error = "" if claim.won else claim.row["error"] or ""
    return claim.won, claim.state, claim.run_id, error, claim.checkpoint


def _run_claimed(mlf, exp_id, cell, opts, on_epoch, claim, where, ckpt: Path) -> CellResult:
    """Train, score and log a claimed cell (the claim is None on ranks other than 0)."""
    split, available = distributed.rank0_first(lambda: prepare_split(cell, opts))
    method, aux, notes = build_method(cell, split, available, opts.workdir)
    place(method, where)
    tags = {**_tags(cell, opts, notes), "protocol": split.protocol.name, **placement_tags(where)}
    run_id, resumed = distributed.on_rank0(lambda: _open_run(mlf, exp_id, cell, opts, tags, claim))
    killpoints.reached("run_created")
    job = Job(mlf, exp_id, run_id, cell, split, method, aux, opts, on_epoch, claim, ckpt)
    try:
        metrics = train_and_score(job)
        if claim is not None:
            claim.check()
    except claims.ClaimLost:
        raise  # the run is the new owner's now
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, (KeyboardInterrupt, CellStopped)) else "FAILED"
        if distributed.is_rank0():
            if status == "FAILED":
                mlf.set_tag(run_id, "error", error_message(exc))
            mlf.set_terminated(run_id, status=status)
        raise
    if distributed.is_rank0():
        killpoints.reached("before_finished")
        mlf.set_terminated(run_id, status="FINISHED")
    return CellResult(cell, run_id, "resumed" if resumed else "finished", metrics)


def error_message(exc: BaseException) -> str:
    """The ``error`` tag of a failed run: the exception's message (its type if it has none)."""
    text = str(exc).strip() or type(exc).__name__
    return (text if isinstance(exc, BenchError) else f"{type(exc).__name__}: {text}")[:5000]


def trained_weights(mlf, exp_id: str, cell: Cell) -> tuple[str, dict] | None:
    """(run id, state dict) of a finished run that trained this cell's model already: same
    train hash, its own trained weights logged (a cell differing only at test time)."""
    runs = mlf.search_runs(
        [exp_id],
        filter_string=f"tags.train_hash = '{cell.train_hash}' and attributes.status = 'FINISHED'",
    )
    for run in runs:
        if "weights_from" in run.data.tags:
            continue
        if any(a.path == "model.pt" for a in mlf.list_artifacts(run.info.run_id)):
            path = mlf.download_artifacts(run.info.run_id, "model.pt")
            return run.info.run_id, torch.load(path, map_location="cpu", weights_only=True)
    return None


def _reuse_weights(job: Job) -> str | None:
    """Load the weights of a finished run that trained the same model, if any (rank 0);
    returns that run's id."""
    reuse = not job.opts.force and job.on_epoch is None
    donor = trained_weights(job.mlf, job.exp_id, job.cell) if reuse else None
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
        job.split.train,
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
        log_metrics(job.mlf, job.run_id, logs, step=epoch)
        if job.on_epoch is not None:
            job.on_epoch(epoch, job.score)

    Trainer(job.method, loader, sections.train, job.checkpoint).fit(epoch_end)
    return True


def train_and_score(job: Job) -> dict[str, float]:
    s = job.cell.sections
    start = time.perf_counter()
    trained = train(job)
    train_s = time.perf_counter() - start
    if not distributed.is_rank0():
        return {}  # rank 0 scores and logs
    result = job.score()
    killpoints.reached("evaluating")
    study = sequence_length_study(job.method, job.split, s.data, s.eval, job.aux, job.cell.seed)
    metrics = final_metrics(result, study)
    metrics.update({"time.train_s": train_s, "time.total_s": time.perf_counter() - start})
    log_metrics(job.mlf, job.run_id, metrics)
    keep = job.method if job.opts.log_model and trained else None
    log_artifacts(job.mlf, job.run_id, job.cell, job.split, result, keep, study)
    return metrics
