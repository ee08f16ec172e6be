"""Run one cell: skip it if it ran, claim it, resolve its data, build its method, open its run,
train, score and record.

A cell whose config hash (its config and code) already has a FINISHED run is skipped (unless
forced); with ``reuse_stale``, so is one whose config has a FINISHED run by other code
(:mod:`bench.engine.stale`). Before it trains, a worker claims the cell
(:mod:`bench.engine.claims`); a cell claimed by a live worker is left to it ("busy"). Taking
over an interrupted or dead worker's claim resumes its MLflow run from its last checkpoint;
orphan RUNNING runs of the cell are closed as KILLED. Under DDP rank 0 decides and records,
and every rank trains.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.engine import claims, distributed, killpoints, record
from bench.engine.assemble import build_method, cell_data, placement
from bench.engine.device import Placement, place
from bench.engine.job import Job, train_and_score
from bench.engine.types import CellResult, CellStopped, EvalHook, RunOptions
from bench.suite.schema import Cell

__all__ = ["CellResult", "CellStopped", "RunOptions", "run_cell"]


def run_cell(
    mlf, exp_id: str, cell: Cell, opts: RunOptions, on_epoch: EvalHook | None = None
) -> CellResult:
    """Train and evaluate a cell (or skip it if finished); see the module docstring."""
    where = placement(cell)
    distributed.init_from_env(where.device)
    done = distributed.on_rank0(lambda: record.earlier_result(mlf, exp_id, cell, opts))
    if done is not None:
        return done
    claim = _claim(mlf, exp_id, cell, opts) if distributed.is_rank0() else None
    won, state, claimed_run, error, ckpt = distributed.on_rank0(lambda: _claim_view(claim))
    if not won:  # another worker holds it, or ended it during this launch
        status = {"failed": "failed", "finished": "elsewhere"}.get(state, "busy")
        return CellResult(cell, claimed_run or "", status, {}, error)
    with _holding(claim):
        return _run_claimed(mlf, exp_id, cell, opts, on_epoch, claim, where, ckpt)


def _run_claimed(mlf, exp_id, cell, opts, on_epoch, claim, where: Placement, ckpt: Path):
    """The steps of a claimed cell (the claim is None on ranks other than 0)."""
    data = distributed.rank0_first(lambda: cell_data(cell, opts.data_root))
    method, aux, notes = build_method(cell, data, opts.workdir)
    place(method, where)
    tags = record.cell_tags(cell, opts, notes, data, where)
    run_id, resumed = distributed.on_rank0(
        lambda: record.open_run(mlf, exp_id, cell, opts, tags, claim)
    )
    killpoints.reached("run_created")
    job = Job(mlf, exp_id, run_id, cell, data, method, aux, opts, on_epoch, claim, ckpt)
    with record.ending(mlf, run_id, claim):
        metrics = train_and_score(job)
    return CellResult(cell, run_id, "resumed" if resumed else "finished", metrics)


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


@contextmanager
def _holding(claim: claims.Claim | None) -> Iterator[None]:
    """Keep the claim alive (heartbeat) while the block runs, and end it with the block:
    finished, released (stopped on purpose: Ctrl-C, a pruned trial) or failed."""
    if claim is not None:
        claim.start_heartbeat()
    try:
        yield
    except BaseException as exc:
        if claim is not None:
            stopped = isinstance(exc, (KeyboardInterrupt, CellStopped))
            claim.end("released" if stopped else "failed", f"{type(exc).__name__}: {exc}")
        raise
    if claim is not None:
        claim.end("finished")
