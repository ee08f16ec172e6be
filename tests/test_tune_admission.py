"""Workers sharing one study: exactly N finished trials, distinct parameters, dead trials failed.

Real spawned processes on SQLite and on PostgreSQL run the machinery of ``bench tune
--workers`` (storage with heartbeats, per-worker samplers, admission) around a toy objective
over a 6-point space, small enough that workers collide. test_tune_parallel.py runs the CLI.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time

import optuna
import pytest
from optuna.trial import TrialState

from bench.tune.admission import ADMISSION, FINISHED, Admission, optimize
from bench.tune.workers import Heartbeat, open_storage, worker_sampler, worker_seed

HEARTBEAT = Heartbeat(interval_s=1, grace_s=4)
STUDY = "toy"


def toy_worker(url: str, budget: int, index: int, seed_index: int, sleep_s: float, barrier):
    """One worker: x in {0, 1, 2}, y in {0, 1}; ``seed_index`` picks the sampler's seed."""
    study = optuna.load_study(
        study_name=STUDY,
        storage=open_storage(url, HEARTBEAT),
        sampler=worker_sampler(worker_seed(0, seed_index)),
    )
    admission = Admission(budget, {"bench.worker": index, "bench.pid": os.getpid()})

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_categorical("x", [0, 1, 2])
        y = trial.suggest_categorical("y", [0, 1])
        admission.admit(trial)
        time.sleep(sleep_s)
        return x + y

    if barrier is not None:
        barrier.wait(timeout=60)  # start together, so that the workers overlap
    optimize(study, objective, admission)


def start(url: str, budget: int, seed_indices: list[int], sleep_s: float = 0.2):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(seed_indices))
    procs = [
        ctx.Process(target=toy_worker, args=(url, budget, i, seed, sleep_s, barrier))
        for i, seed in enumerate(seed_indices)
    ]
    for proc in procs:
        proc.start()
    return procs, barrier  # the barrier must outlive the workers' start


def run_workers(url: str, budget: int, seed_indices: list[int]) -> optuna.Study:
    procs, _barrier = start(url, budget, seed_indices)
    for proc in procs:
        proc.join(timeout=180)
        assert proc.exitcode == 0, f"worker exited with {proc.exitcode}"
    return optuna.load_study(study_name=STUDY, storage=url)


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    """A fresh storage with the study created (by the driver, before any worker starts)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'optuna.db'}"
    else:
        url = request.getfixturevalue("postgres").url()
    optuna.create_study(study_name=STUDY, storage=open_storage(url, HEARTBEAT))
    return url


def finished(study: optuna.Study):
    return [t for t in study.trials if t.state in FINISHED]


@pytest.mark.slow
def test_two_workers_end_at_exactly_the_budget(storage_url):
    study = run_workers(storage_url, 5, [0, 1])
    done = finished(study)
    assert len(done) == 5
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert {t.user_attrs["bench.worker"] for t in done} == {0, 1}
    assert len({t.user_attrs["bench.pid"] for t in done}) == 2
    assert len({tuple(sorted(t.params.items())) for t in done}) == 5


@pytest.mark.slow
def test_workers_never_evaluate_the_same_parameters(storage_url):
    # both samplers seeded alike propose the same points: the guard must reject the repeats
    study = run_workers(storage_url, 6, [0, 0])
    points = [tuple(sorted(t.params.items())) for t in finished(study)]
    assert len(points) == 6 and len(set(points)) == 6  # the whole space, each point once
    rejected = [t for t in study.trials if t.user_attrs.get(ADMISSION) == "duplicate"]
    assert rejected, "identically seeded workers never collided: the test proves nothing"
    assert all(t.state == TrialState.FAIL for t in rejected)


def test_worker_seeds_differ_by_base_seed_worker_and_start():
    seeds = {worker_seed(base, i, start) for base in (0, 1) for i in range(8) for start in (0, 5)}
    assert len(seeds) == 32
    assert worker_seed(3, 2, 7) == worker_seed(3, 2, 7)


@pytest.mark.slow
def test_a_killed_workers_trial_is_failed_by_the_next_start(storage_url):
    (proc,), _barrier = start(storage_url, 2, [0], sleep_s=120)
    study = optuna.load_study(study_name=STUDY, storage=storage_url)
    deadline = time.time() + 60
    while not [t for t in study.trials if t.user_attrs.get(ADMISSION) == "admitted"]:
        assert time.time() < deadline, "the worker never started a trial"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    (killed,) = study.get_trials(states=(TrialState.RUNNING,))
    time.sleep(HEARTBEAT.grace_s + 1)
    study = run_workers(storage_url, 2, [1])
    assert study.trials[killed.number].state == TrialState.FAIL
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert len(finished(study)) == 2
