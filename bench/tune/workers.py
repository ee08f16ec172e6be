"""The processes of a ``bench tune`` study: storage with heartbeats, worker seeds, fan-out.

Every worker opens the study's RDB storage (SQLite on one machine, PostgreSQL across machines)
with Optuna's heartbeats: a trial whose heartbeat is older than the grace period is marked
FAIL by the next ``study.optimize`` of any worker (or the next ``bench tune``), and the stale
callback closes its MLflow run. Worker ``i`` seeds its sampler from (base seed, ``i``, trials
in the study at its start), so no two workers, and no continuation, draw the same sequence.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import optuna
from tqdm.auto import tqdm

from bench.engine.executors.processes import (
    interruptible,
    stop_processes,
    terminated_as_interrupted,
)
from bench.errors import BenchError
from bench.tune.admission import finished_trials

StaleCallback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


@dataclass(frozen=True)
class Heartbeat:
    interval_s: int = 10
    grace_s: int = 30


def open_storage(
    url: str, heartbeat: Heartbeat, on_stale: StaleCallback | None = None
) -> optuna.storages.RDBStorage:
    """The study's RDB storage with heartbeats (any SQLAlchemy URL: sqlite, postgresql)."""
    if "://" not in url:
        raise BenchError(f"--storage: expected an RDB URL such as sqlite:///optuna.db (got {url})")
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            engine_kwargs=engine,
            heartbeat_interval=heartbeat.interval_s,
            grace_period=heartbeat.grace_s,
            heartbeat_stale_trial_callback=on_stale,
        )


def worker_seed(base: int, index: int, start: int = 0) -> int:
    """A sampler seed per worker, derived from the base seed, the worker's index and the number
    of trials the study held when it started (so that a continued study samples anew)."""
    return int(np.random.SeedSequence([base, index, start]).generate_state(1)[0])


def worker_sampler(seed: int) -> optuna.samplers.BaseSampler:
    """TPE with this worker's seed; the constant liar steers it away from running trials."""
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def run_processes(
    target: Callable, args: tuple, indices: list[int], study: optuna.Study, budget: int
) -> dict[int, int]:
    """Run ``target(*args, i)`` for each worker index in its own (spawned) process, with a bar
    of the study's finished trials; the exit codes of the workers that did not exit 0.

    The workers share the cores (``OMP_NUM_THREADS``, unless set) and keep their own progress
    bars quiet (they would interleave)."""
    ctx = mp.get_context("spawn")
    procs = {
        i: ctx.Process(target=_worker, args=(target, (*args, i)), name=f"tune-{i}") for i in indices
    }
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // len(procs)))
    with _environment(TQDM_DISABLE="1", OMP_NUM_THREADS=threads):
        for proc in procs.values():
            proc.start()
    bar = tqdm(total=budget, desc=f"study {study.study_name}", unit="trial", dynamic_ncols=True)
    try:
        with terminated_as_interrupted():
            while any(p.is_alive() for p in procs.values()):
                bar.update(min(len(finished_trials(study)), budget) - bar.n)
                time.sleep(1.0)
    except BaseException:  # Ctrl-C, SIGTERM or an error here: the workers stop too
        bar.close()
        stop_processes(procs.values())
        raise
    bar.update(min(len(finished_trials(study)), budget) - bar.n)
    bar.close()
    for proc in procs.values():
        proc.join()
    return {i: p.exitcode for i, p in procs.items() if p.exitcode != 0}


def _worker(target: Callable, args: tuple) -> None:
    """A worker process: ``target(*args)``; interrupted, it exits quietly with code 130."""
    interruptible()
    try:
        target(*args)
    except KeyboardInterrupt:
        sys.exit(130)


@contextmanager
def _environment(**values: str) -> Iterator[None]:
    """These environment variables (inherited by processes started meanwhile), then the old."""
    old = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
