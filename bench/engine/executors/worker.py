"""The worker loop every executor runs, and the grid's progress display.

A worker goes through the grid calling ``run_cell`` on each cell: a cell it claims, it runs; a
cell another worker holds ("busy") it comes back to, so that it takes the cell over if that
worker dies; a cell whose training another worker is running (a test-time variant) it comes
back to once those weights exist; it stops when every cell has ended (finished, skipped or
failed). A failing cell is recorded and the loop goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from tqdm.auto import tqdm

from bench.engine import claims, distributed
from bench.engine.cell import CellResult, RunOptions, run_cell
from bench.engine.tracking import client
from bench.errors import debugging
from bench.suite.schema import Cell

log = logging.getLogger("bench")


@dataclass(frozen=True)
class Context:
    """What a worker needs to run cells of one launch (picklable: sent to worker processes)."""

    tracking_uri: str
    exp_id: str
    opts: RunOptions


@dataclass(frozen=True)
class Outcome:
    label: str
    config_hash: str
    status: str  # finished, resumed, skipped, reused, failed, elsewhere
    run_id: str = ""
    summary: str = ""
    error: str = ""

    @classmethod
    def of(cls, result: CellResult) -> Outcome:
        m, cell = result.metrics, result.cell
        summary = f"R1 {m['R1']:.1f}" if "R1" in m else ""
        if "mAP" in m:
            summary += f"  mAP {m['mAP']:.1f}"
        if result.note:
            summary += f"  {result.note}"
        status, run_id = result.status, result.run_id
        return cls(cell.label, cell.config_hash, status, run_id, summary, result.error)


def attempt(mlf, context: Context, cell: Cell) -> Outcome | None:
    """Run the cell if this worker can claim it; None while another worker holds it."""
    try:
        result = run_cell(mlf, context.exp_id, cell, context.opts)
    except claims.ClaimLost:
        return None
    except Exception as exc:  # the cell failed (its run and claim say so); the grid goes on
        error = f"{type(exc).__name__}: {exc}"
        log.error("%s failed: %s", cell.label, error.splitlines()[0], exc_info=debugging())
        return Outcome(cell.label, cell.config_hash, "failed", error=error)
    return None if result.status == "busy" else Outcome.of(result)


def drain(
    cells: list[Cell], context: Context, on_outcome: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    """Run or wait for every cell until each has ended; one Outcome per cell."""
    mlf = client(context.tracking_uri) if distributed.is_rank0() else None  # DDP: rank 0's
    poll_s = min(context.opts.lease_s / 4, 5.0)
    pending, outcomes, siblings = list(cells), [], shared_trainings(cells)
    while pending:
        waiting = []
        for cell in pending:
            if training_elsewhere(context, siblings.get(cell.config_hash)):
                waiting.append(cell)
                continue
            outcome = attempt(mlf, context, cell)
            if outcome is None:
                waiting.append(cell)
                continue
            outcomes.append(outcome)
            if on_outcome is not None:
                on_outcome(outcome)
        pending = waiting
        if pending:
            time.sleep(poll_s)
    return outcomes


def live_claims(context: Context) -> set[str] | None:
    """The config hashes of the experiment's cells a live worker holds now (from the claims
    table); None while the database does not answer."""
    uri = claims.claims_uri(context.tracking_uri, context.opts.claims_uri)
    try:
        rows = claims.store(uri).rows(context.exp_id)
    except sa.exc.SQLAlchemyError as exc:
        log.debug("the claims do not answer: %s", exc)
        return None
    now = time.time()
    return {h for h, r in rows.items() if r["state"] == "running" and r["lease_expires"] >= now}


def running_cells(context: Context, cells: list[Cell]) -> int | None:
    """How many of the cells a live worker holds now; None while the database does not answer
    (the display keeps its last count; the workers retry)."""
    held = live_claims(context)
    return None if held is None else len(held & {c.config_hash for c in cells})


def shared_trainings(cells: list[Cell]) -> dict[str, set[str]]:
    """Config hash -> the config hashes of the other cells of its training (same train hash),
    for the cells that share theirs."""
    by_training: dict[str, set[str]] = {}
    for cell in cells:
        by_training.setdefault(cell.train_hash, set()).add(cell.config_hash)
    return {h: group - {h} for group in by_training.values() if len(group) > 1 for h in group}


def training_elsewhere(context: Context, siblings: set[str] | None) -> bool:
    """Whether a live worker holds one of a cell's ``siblings`` (cells of its training): then
    the cell waits for those weights (it evaluates them once they are logged) instead of
    training the same model again. Not under --force (nothing is reused) or DDP (the ranks
    must agree on each cell)."""
    if not siblings or context.opts.force or distributed.world() > 1:
        return False
    return bool(siblings & (live_claims(context) or set()))


class Progress:
    """A tqdm bar over the grid: cells done, running, failed and left, with rate and ETA."""

    def __init__(self, cells: list[Cell], desc: str):
        self.total = len(cells)
        self.ended: dict[str, Outcome] = {}
        self.now_running = 0
        self.bar = tqdm(total=self.total, desc=desc, unit="cell", dynamic_ncols=True)

    def end(self, outcome: Outcome) -> None:
        """Count a cell's end once (several workers may report the same cell)."""
        if outcome.config_hash in self.ended:
            return
        self.ended[outcome.config_hash] = outcome
        detail = outcome.error if outcome.status == "failed" else outcome.summary
        tqdm.write(f"{outcome.status:>8}  {outcome.label}  {detail}")
        self.bar.update(1)
        self._postfix()

    def running(self, n: int | None) -> None:
        if n is not None:
            self.now_running = n
            self._postfix()

    def _postfix(self) -> None:
        failed = sum(o.status == "failed" for o in self.ended.values())
        done = len(self.ended) - failed
        running = min(self.now_running, self.total - len(self.ended))
        left = self.total - len(self.ended) - running
        self.bar.set_postfix_str(f"done {done} running {running} failed {failed} left {left}")

    def close(self) -> list[Outcome]:
        self.bar.close()
        return list(self.ended.values())
