"""``bench tune``: an Optuna study over a method's own search space.

Trials train on the training identities minus a held-out validation part and are scored by
mAP on that part — never on the test split. Per-epoch validation mAP feeds a MedianPruner.
Each trial is a nested MLflow run under one parent run per study; the best parameters are
written as a suite override file that ``bench run -O FILE`` accepts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import yaml

from bench.atomic import write_text
from bench.engine.cell import RunOptions, run_cell
from bench.registry import METHODS
from bench.suite import Cell, Suite, dataset_spec, deep_merge
from bench.tracking import experiment_id

DEFAULT_STORAGE = "sqlite:///optuna.db"


@dataclass
class TuneOptions:
    method: str
    trials: int
    storage: str = DEFAULT_STORAGE
    study_name: str | None = None
    val_fraction: float = 0.25
    seed: int = 0
    out_dir: Path = Path("reports/tune")


def trial_cell(suite: Suite, opts: TuneOptions, override: dict, number: int) -> Cell:
    """The cell of a trial: the suite's first dataset, the method with the trial's override."""
    name, options = dataset_spec(suite.spec.datasets[0])
    override = deep_merge(override, {"train": {"val_fraction": opts.val_fraction}})
    config, sections = suite.cell_config(opts.method, override, f"trial {number}")
    return Cell(
        suite.name, name, options, 0, opts.method, f"trial{number}", opts.seed, config, sections
    )


def objective(mlf, exp_id: str, suite: Suite, opts: TuneOptions, run: RunOptions):
    search_space = METHODS.get(opts.method).search_space

    def score(trial: optuna.Trial) -> float:
        cell = trial_cell(suite, opts, search_space(trial), trial.number)

        def report(epoch: int, evaluate) -> None:
            trial.report(float(evaluate()["mAP"]), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}")

        tags = {"tune_study": opts.study_name, "tune_trial": str(trial.number)}
        trial_run = replace(run, log_model=False, extra_tags=tags)
        return float(run_cell(mlf, exp_id, cell, trial_run, on_epoch=report).metrics["mAP"])

    return score


def parent_run(mlf, exp_id: str, study_name: str) -> str:
    """The MLflow run that holds a study's trials (reused when the study continues)."""
    runs = mlf.search_runs([exp_id], filter_string=f"tags.tune_parent = '{study_name}'")
    if runs:
        return runs[0].info.run_id
    run = mlf.create_run(exp_id, run_name=f"tune {study_name}", tags={"tune_parent": study_name})
    return run.info.run_id


def best_override(method: str, params: dict[str, Any]) -> dict:
    """The override a trial's parameters stand for, as a suite patch."""
    override = METHODS.get(method).search_space(optuna.trial.FixedTrial(params))
    return {"method_config": {method: override}}


def tune(mlf, suite: Suite, opts: TuneOptions, run: RunOptions) -> tuple[optuna.Study, Path]:
    """Run (or continue) the study until it has ``opts.trials`` finished or pruned trials."""
    opts.study_name = opts.study_name or f"{opts.method}-{dataset_spec(suite.spec.datasets[0])[0]}"
    study = optuna.create_study(
        study_name=opts.study_name,
        storage=opts.storage,
        direction="maximize",
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=opts.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1),
    )
    exp_id = experiment_id(mlf, f"tune-{opts.study_name}")
    run = replace(run, parent_run_id=parent_run(mlf, exp_id, opts.study_name))
    done = len([t for t in study.trials if t.state.is_finished()])
    if opts.trials > done:
        study.optimize(objective(mlf, exp_id, suite, opts, run), n_trials=opts.trials - done)
    return study, write_best(study, opts)


def write_best(study: optuna.Study, opts: TuneOptions) -> Path:
    path = opts.out_dir / f"{opts.study_name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    best = study.best_trial
    header = (
        f"# bench tune {opts.method}: study '{opts.study_name}', best of "
        f"{len(study.trials)} trials: trial {best.number}, validation mAP "
        f"{best.value:.2f}\n# use with: bench run SUITE -O {path}\n"
    )
    best_yaml = yaml.safe_dump(best_override(opts.method, best.params), sort_keys=False)
    write_text(path, header + best_yaml)
    return path
