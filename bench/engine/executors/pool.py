"""The pool executor: N worker processes on one machine, each running the worker loop.

``--jobs auto`` starts one worker per visible GPU, each pinned to its own device through
CUDA_VISIBLE_DEVICES; on the CPU the cores are split between the workers
(``torch.set_num_threads``). The driver only shows progress.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import sys
from dataclasses import replace

from bench.engine.executors.processes import (
    interruptible,
    stop_processes,
    terminated_as_interrupted,
)
from bench.engine.executors.worker import Context, Outcome, Progress, drain, running_cells
from bench.errors import BenchError


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries."""
    import torch

    if not torch.cuda.is_available():
        return []
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed:
        return [d.strip() for d in listed.split(",") if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def plan(jobs: int | str) -> list[tuple[str | None, int]]:
    """(CUDA_VISIBLE_DEVICES or None, CPU threads) of each worker."""
    gpus, cores = visible_gpus(), len(os.sched_getaffinity(0))
    if jobs == "auto":
        jobs = len(gpus) or max(1, cores // 2)
    if not isinstance(jobs, int) or jobs < 1:
        raise BenchError(f"--jobs: expected a positive number or 'auto' (got {jobs!r})")
    threads = max(1, cores // jobs)
    return [(gpus[i % len(gpus)] if gpus else None, threads) for i in range(jobs)]


def _work(index: int, device: str | None, threads: int, cells, context: Context, events) -> None:
    """A worker process: pin it, then drain the grid, reporting each cell's end; interrupted,
    it exits quietly with code 130 (its cell released)."""
    interruptible()
    if device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = device
    import torch

    torch.set_num_threads(threads)
    context = replace(context, opts=replace(context.opts, worker=f"pool-{index}"))
    try:
        drain(cells, context, events.put)
    except KeyboardInterrupt:
        sys.exit(130)


def run(cells, context: Context, settings) -> list[Outcome]:
    workers = plan(settings.jobs)
    spawn = multiprocessing.get_context("spawn")
    events = spawn.Queue()
    procs = [
        spawn.Process(target=_work, args=(i, dev, threads, cells, context, events))
        for i, (dev, threads) in enumerate(workers)
    ]
    for p in procs:
        p.start()
    where = ", ".join(f"cuda:{d}" if d else f"{t} threads" for d, t in workers)
    progress = Progress(cells, f"{len(procs)} workers ({where})")
    try:
        with terminated_as_interrupted():
            while any(p.is_alive() for p in procs) or not events.empty():
                try:
                    progress.end(events.get(timeout=1.0))
                except queue.Empty:
                    progress.running(running_cells(context, cells))
    except BaseException:  # Ctrl-C, SIGTERM or an error here: the workers stop too
        progress.close()
        stop_processes(procs)
        raise
    for p in procs:
        p.join()
    outcomes = progress.close()
    ended = {o.config_hash for o in outcomes}
    codes = ", ".join(str(p.exitcode) for p in procs)
    for cell in cells:
        if cell.config_hash not in ended:
            error = f"no worker ended this cell (worker exit codes: {codes})"
            outcomes.append(Outcome(cell.label, cell.config_hash, "failed", error=error))
    return outcomes
