"""The MLflow side of a study: one parent run per study, one nested run per trial.

A trial's run carries the tags ``tune_study`` and ``tune_trial`` (its number) and, once the
trial is over, ``tune_state`` (``COMPLETE``, ``PRUNED`` or ``FAIL``). Its status: FINISHED when
the trial completed; KILLED when it was pruned (it stopped before its last epoch on purpose,
see ``CellStopped`` in ``bench.engine.cell``) or its worker was killed (the next worker or
start closes it); FAILED when training raised. The parent run is RUNNING while the study runs
and FINISHED once the study has its trials.
"""

from __future__ import annotations

import optuna
from optuna.trial import TrialState


def parent_run(mlf, exp_id: str, study_name: str) -> str:
    """The run that holds a study's trials, RUNNING (reopened when the study continues)."""
    runs = mlf.search_runs([exp_id], filter_string=f"tags.tune_parent = '{study_name}'")
    if runs:
        run = runs[0].info
        if run.status != "RUNNING":
            mlf.update_run(run.run_id, status="RUNNING")
        return run.run_id
    run = mlf.create_run(exp_id, run_name=f"tune {study_name}", tags={"tune_parent": study_name})
    return run.info.run_id


def close_trial_runs(mlf, exp_id: str, study: optuna.Study, number: int | None = None) -> None:
    """Tag the run of trial ``number`` (default: of every trial whose run is still RUNNING)
    with its trial's state once the trial is over, and end it KILLED if still RUNNING."""
    which = (
        f"tags.tune_trial = '{number}'" if number is not None else "attributes.status = 'RUNNING'"
    )
    query = f"tags.tune_study = '{study.study_name}' and {which}"
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    for run in mlf.search_runs([exp_id], filter_string=query):
        state = states.get(int(run.data.tags["tune_trial"]), TrialState.FAIL)
        if state == TrialState.RUNNING:
            continue
        mlf.set_tag(run.info.run_id, "tune_state", state.name)
        if run.info.status == "RUNNING":
            mlf.set_terminated(run.info.run_id, status="KILLED")
