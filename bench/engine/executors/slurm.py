"""The Slurm executor: the grid as a submitit job array, one task per cell.

Each task runs the worker loop on its one cell, so a preempted or requeued task, or a second
launch of the same grid, ends in the claims like any other worker. The tracking store must be
one every node reaches (an MLflow tracking server on PostgreSQL, or PostgreSQL itself);
``cluster: local`` runs the same submitit code path in local processes (the tests use it).
"""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from bench.config import LauncherConfig
from bench.engine.executors.worker import Context, Outcome, Progress, drain, running_cells
from bench.errors import BenchError

CLUSTER_STORE = (
    "use an MLflow tracking server on PostgreSQL that every node reaches, e.g. "
    "--tracking-uri http://HOST:5000 --claims-uri postgresql://USER@HOST/DB "
    "(see README: Running on many GPUs and on Slurm)"
)


def check_store(tracking_uri: str) -> None:
    """Fail at once where the tasks could not share the tracking store."""
    if tracking_uri.startswith("sqlite:") or "://" not in tracking_uri:
        raise BenchError(
            f"--launcher slurm: the tracking store '{tracking_uri}' is a local SQLite file "
            f"or path, which the nodes of a cluster cannot share; {CLUSTER_STORE}"
        )


def _task(cell, context: Context) -> list[Outcome]:
    """One array task: the worker loop on one cell."""
    import submitit
    import torch

    torch.set_num_threads(max(1, len(os.sched_getaffinity(0))))
    worker = f"slurm-{submitit.JobEnvironment().job_id}"
    return drain([cell], replace(context, opts=replace(context.opts, worker=worker)))


def executor(settings: LauncherConfig, folder: Path, name: str):
    """A submitit executor with the launcher's settings."""
    import submitit

    try:
        ex = submitit.AutoExecutor(folder=folder, cluster=settings.cluster)
    except RuntimeError as exc:  # no srun: not on a Slurm cluster
        raise BenchError(
            f"--launcher slurm: {exc} Run from a login node of the cluster, or set "
            "`launcher: {cluster: local}` to run the same path in local processes."
        ) from exc
    params = {
        "name": name,
        "timeout_min": settings.time_min,
        "cpus_per_task": settings.cpus_per_task,
        "tasks_per_node": 1,
        "slurm_array_parallelism": settings.array_parallelism,
        "slurm_additional_parameters": dict(settings.sbatch),
    }
    if settings.gpus_per_task:
        params["gpus_per_node"] = settings.gpus_per_task  # each array task: one job, one node
    if settings.partition:
        params["slurm_partition"] = settings.partition
    if settings.mem_gb:
        params["mem_gb"] = settings.mem_gb
    ex.update_parameters(**params)
    return ex


def run(cells, context: Context, settings) -> list[Outcome]:
    launcher: LauncherConfig = settings.launcher
    folder = context.opts.workdir / "submitit"
    jobs = executor(launcher, folder, f"bench-{cells[0].suite}").map_array(
        _task, cells, [context] * len(cells)
    )
    progress = Progress(cells, f"{len(jobs)} {launcher.cluster} tasks (job {jobs[0].job_id})")
    waiting = list(zip(cells, jobs, strict=True))
    while waiting:
        for cell, job in [w for w in waiting if w[1].done()]:
            waiting.remove((cell, job))
            progress.end(_outcome(cell, job))
        progress.running(running_cells(context, cells))
        time.sleep(1.0)
    return progress.close()


def _outcome(cell, job) -> Outcome:
    """The task's own outcome, or a failure naming the task's error and its log."""
    try:
        (outcome,) = job.result()
    except Exception as exc:  # the task died: submitit re-raises its error here
        first = str(exc).strip().splitlines()[-1:] or [type(exc).__name__]
        error = f"task {job.job_id} failed: {first[0]} (log: {job.paths.stderr})"
        return Outcome(cell.label, cell.config_hash, "failed", error=error)
    return outcome
