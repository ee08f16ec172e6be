"""``bench tune``: an Optuna study over a method's own search space, on one or many workers.

Trials train on the training identities minus a held-out validation part and are scored by
mAP on that part — never on the test split. Per-epoch validation mAP feeds a MedianPruner.
A suite with a ``pretrain:`` stage tunes warm-started trials, as ``bench run`` would train
them; the tune's stage leaves the validation identities out too and is trained with the
tune's seed, the trials' (its own hash, trained once before the trials:
:func:`bench.suite.warmstart.pretrain_spec`).
Each trial is a nested MLflow run under one parent run per study (``bench.tune.runs``); the
best parameters are written as a suite override file that ``bench run -O FILE`` accepts.

The driver (:func:`tune`) opens the MLflow store, the experiment, the parent run and the study
once, then runs the workers (:func:`work`: ``study.optimize`` with the worker's own sampler
seed), in this process for one worker and in spawned processes for several. Admission
(``bench.tune.admission``) holds the study at exactly ``trials`` finished trials with distinct
parameters; heartbeats (``bench.tune.workers``) fail the trials of killed workers. A ``bench
tune`` on another machine with the same storage URL and study name joins the study.
"""

from __future__ import annotations

import logging
import os
import socket
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import yaml

from bench.data.build import build_dataset
from bench.engine.cell import CellStopped, RunOptions, run_cell
from bench.engine.pretrain import ensure_weights
from bench.engine.tracking import client, experiment_id
from bench.errors import BenchError
from bench.files.atomic import write_text
from bench.registry import METHODS
from bench.suite.grid import cell_config
from bench.suite.schema import Cell, Suite, dataset_spec
from bench.suite.warmstart import PretrainSpec, pretrain_spec
from bench.suite.yaml import deep_merge
from bench.tune.admission import Admission, fail_stale_trials, finished_trials, optimize
from bench.tune.runs import close_trial_runs, parent_run
from bench.tune.workers import Heartbeat, open_storage, run_processes, worker_sampler, worker_seed

DEFAULT_STORAGE = "sqlite:///optuna.db"
#: what a trial's value is: mAP (%) on the held-out training identities
OBJECTIVE = "val_mAP"
log = logging.getLogger("bench")


@dataclass
class TuneOptions:
    method: str
    trials: int
    storage: str = DEFAULT_STORAGE
    study_name: str | None = None
    val_fraction: float = 0.25
    seed: int = 0
    out_dir: Path = Path("reports/tune")
    workers: int = 1
    first_worker: int = 0  # worker indices first_worker.. (give each machine its own range)
    heartbeat: Heartbeat = field(default_factory=Heartbeat)


@dataclass
class Worker:
    """What a worker needs, picklable for a spawned process."""

    suite: Suite
    opts: TuneOptions
    run: RunOptions  # with the study's parent run
    tracking_uri: str
    exp_id: str
    warm: PretrainSpec | None = None  # the trials' warm start


class TrialPruned(CellStopped, optuna.TrialPruned):
    """A pruned trial: PRUNED in the study, its MLflow run KILLED with tune_state=PRUNED."""


def make_pruner() -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)


def trial_cell(
    suite: Suite, opts: TuneOptions, override: dict, number: int, warm: PretrainSpec | None = None
) -> Cell:
    """The cell of a trial: the suite's first dataset, the method with the trial's override,
    warm started from ``warm`` when its model is the stage's backbone."""
    name, options = dataset_spec(suite.spec.datasets[0])
    override = deep_merge(override, {"train": {"val_fraction": opts.val_fraction}})
    config, sections = cell_config(suite, opts.method, override, f"trial {number}")
    sections = warm.warm_started(sections) if warm else sections
    return Cell(
        suite.name, name, options, 0, opts.method, f"trial{number}", opts.seed, config, sections
    )


def objective(mlf, job: Worker, admission: Admission):
    opts = job.opts
    search_space = METHODS.get(opts.method).search_space

    def score(trial: optuna.Trial) -> float:
        override = search_space(trial)
        admission.admit(trial)
        cell = trial_cell(job.suite, opts, override, trial.number, job.warm)

        def report(epoch: int, validation: dict[str, float]) -> None:
            trial.report(validation["val.mAP"], epoch)
            if trial.should_prune():
                raise TrialPruned(f"pruned after epoch {epoch + 1}")

        tags = {"tune_study": opts.study_name, "tune_trial": str(trial.number)}
        trial_run = replace(job.run, log_model=False, extra_tags=tags, test=False)
        result = run_cell(mlf, job.exp_id, cell, trial_run, on_epoch=report)
        return float(result.metrics["val.mAP"])

    return score


def best_override(method: str, params: dict[str, Any]) -> dict:
    """The override a trial's parameters stand for, as a suite patch."""
    override = METHODS.get(method).search_space(optuna.trial.FixedTrial(params))
    return {"method_config": {method: override}}


def work(job: Worker, index: int) -> None:
    """Worker ``index``: ``study.optimize`` with its own sampler seed until the study has its
    trials; closes the MLflow runs of trials that end, or whose worker died."""
    mlf = client(job.tracking_uri)

    def close_run(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        close_trial_runs(mlf, job.exp_id, study, trial.number)

    study = optuna.load_study(
        study_name=job.opts.study_name,
        storage=open_storage(job.opts.storage, job.opts.heartbeat, close_run),
        pruner=make_pruner(),
    )
    seed = worker_seed(job.opts.seed, index, len(study.trials))
    study.sampler = worker_sampler(seed)
    attrs = {
        "bench.worker": index,
        "bench.seed": seed,
        "bench.host": socket.gethostname(),
        "bench.pid": os.getpid(),
    }
    admission = Admission(job.opts.trials, attrs)
    optimize(study, objective(mlf, job, admission), admission, callbacks=[close_run])


def open_study(mlf, exp_id: str, opts: TuneOptions) -> optuna.Study:
    """Create (or load) the study; fail the stale trials of killed workers, close their runs."""
    storage = open_storage(
        opts.storage, opts.heartbeat, lambda s, t: close_trial_runs(mlf, exp_id, s, t.number)
    )
    study = optuna.create_study(
        study_name=opts.study_name, storage=storage, direction="maximize", load_if_exists=True
    )
    with warnings.catch_warnings():  # experimental since optuna 3.2, still so
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names([OBJECTIVE])  # the dashboard's name of the objective
    fail_stale_trials(study)
    close_trial_runs(mlf, exp_id, study)
    return study


def tune(mlf, suite: Suite, opts: TuneOptions, run: RunOptions) -> tuple[optuna.Study, Path]:
    """Run (or continue, or join) the study until it has ``opts.trials`` finished or pruned
    trials, with ``opts.workers`` workers; the study and the best-parameters file."""
    opts.study_name = opts.study_name or f"{opts.method}-{dataset_spec(suite.spec.datasets[0])[0]}"
    exp_id = experiment_id(mlf, f"tune-{opts.study_name}")
    study = open_study(mlf, exp_id, opts)
    parent = parent_run(mlf, exp_id, opts.study_name)
    warm = pretrain_spec(suite, run.data_root, (opts.val_fraction, opts.seed), opts.seed)
    job = Worker(suite, opts, replace(run, parent_run_id=parent), mlf.tracking_uri, exp_id, warm)
    build_dataset(*dataset_spec(suite.spec.datasets[0]), run.data_root).prepare()  # once, here
    if warm is not None:
        ensure_weights(warm, mlf, exp_id, run.workdir, run.data_root)
    indices = list(range(opts.first_worker, opts.first_worker + opts.workers))
    failed: dict[int, int] = {}
    if not Admission(opts.trials).full(study):
        if opts.workers == 1:
            work(job, indices[0])
        else:
            failed = run_processes(work, (job,), indices, study, opts.trials)
    end_study(mlf, study, parent, opts, failed)
    return study, write_best(study, opts)


def end_study(mlf, study: optuna.Study, parent: str, opts: TuneOptions, failed: dict) -> None:
    """End the parent run if the study has its trials; say why not otherwise."""
    done = len(finished_trials(study))
    died = ", ".join(f"worker {i} exited with code {code}" for i, code in failed.items())
    if done >= opts.trials:
        mlf.set_terminated(parent, status="FINISHED")
        if died:
            log.warning("%s; the others finished the study", died)
        return
    running = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))
    where = f"{died}; " if died else ""
    message = (
        f"study '{opts.study_name}': {where}{done} of {opts.trials} trials finished, {running} "
        f"running; run the same command again to continue (a killed worker's trial is failed "
        f"once its heartbeat is {opts.heartbeat.grace_s} s old)"
    )
    if died:
        raise BenchError(message)
    log.warning(message)


def write_best(study: optuna.Study, opts: TuneOptions) -> Path:
    path = opts.out_dir / f"{opts.study_name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        raise BenchError(f"study '{opts.study_name}': no trial completed (all pruned or failed)")
    best = study.best_trial
    header = (
        f"# bench tune {opts.method}: study '{opts.study_name}', best of "
        f"{len(finished_trials(study))} trials: trial {best.number}, validation mAP "
        f"{best.value:.2f}\n# use with: bench run SUITE -O {path}\n"
    )
    best_yaml = yaml.safe_dump(best_override(opts.method, best.params), sort_keys=False)
    write_text(path, header + best_yaml)
    return path
