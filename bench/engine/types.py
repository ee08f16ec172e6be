"""What running one cell takes and gives: the run's options, its result, and the exception
that stops a cell on purpose."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.suite.schema import Cell

#: Called after each epoch with (epoch, the validation metrics ``val.*`` of that epoch); a
#: pruned trial raises :class:`CellStopped` from it.
EvalHook = Callable[[int, dict[str, float]], None]


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
    test: bool = True  # False (a tune trial): scored on its validation identities only


@dataclass
class CellResult:
    cell: Cell
    run_id: str
    # "finished", "resumed", "skipped", "reused"; not claimed: "busy", "failed", "elsewhere"
    # (finished by another worker during this launch: with --force it is not skipped)
    status: str
    metrics: dict[str, float]
    error: str = ""
    note: str = ""  # what a reused stale run was
