"""``bench tune`` at scale through the real CLI, on the tiny suite: ``--workers 2`` on SQLite,
two drivers joining one study on PostgreSQL, a worker killed mid-trial, pruned trials in
MLflow, and optuna-dashboard reading the study as stored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from wsgiref.util import setup_testing_defaults

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState
from test_cli_e2e import TINY, invoke

from bench.tune.admission import ADMISSION, FINISHED

STUDY = "baseline-synthetic-video"
SUITE = {
    **TINY,
    "ablations": {},
    "seeds": [0],
    "defaults": {**TINY["defaults"], "train": {"epochs": 1, "max_steps_per_epoch": 1}},
}
FAST_HEARTBEAT = ["--heartbeat-interval", "1", "--grace-period", "6"]


def tune_args(trials: int, *extra: str) -> list[str]:
    return ["tune", "baseline", "--trials", str(trials), "--suite", "tiny.yaml", *extra]


def bench_process(*args: str) -> subprocess.Popen:
    """``bench ARGS`` in a process of its own (another machine, or one to kill)."""
    code = "from bench.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def finished(study: optuna.Study):
    return [t for t in study.trials if t.state in FINISHED]


def check_study(study: optuna.Study, trials: int) -> list[optuna.trial.FrozenTrial]:
    """Exactly ``trials`` finished trials, none running, distinct parameters."""
    done = finished(study)
    assert len(done) == trials
    assert not study.get_trials(states=(TrialState.RUNNING,))
    assert len({tuple(sorted(t.params.items())) for t in done}) == trials
    return done


def check_mlflow(uri: str, study: optuna.Study) -> dict[int, object]:
    """One run per finished trial under the FINISHED parent run, none left RUNNING; a pruned
    trial's run is KILLED with tune_state=PRUNED. The runs by trial number."""
    mlf = MlflowClient(uri)
    exp = mlf.get_experiment_by_name(f"tune-{STUDY}")
    runs = mlf.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if r.data.tags.get("tune_parent") == STUDY]
    assert parent.info.status == "FINISHED"
    trial_runs = {int(r.data.tags["tune_trial"]): r for r in runs if "tune_trial" in r.data.tags}
    assert not [r for r in runs if r.info.status == "RUNNING"]
    for trial in finished(study):
        run = trial_runs[trial.number]
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["tune_state"] == trial.state.name
        expected = "FINISHED" if trial.state == TrialState.COMPLETE else "KILLED"
        assert run.info.status == expected, (trial.number, trial.state)
    return trial_runs


def dashboard_get(storage: str, path: str) -> dict:
    """GET ``path`` from optuna-dashboard's own server code (its WSGI app) on ``storage``."""
    import optuna_dashboard

    environ = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    status = []
    body = b"".join(optuna_dashboard.wsgi(storage)(environ, lambda s, h, e=None: status.append(s)))
    assert status[0].startswith("200"), status
    return json.loads(body)


@pytest.fixture
def tiny(in_tmp):
    (in_tmp / "tiny.yaml").write_text(yaml.safe_dump(SUITE))
    return in_tmp


@pytest.mark.slow
def test_two_workers_on_sqlite_end_at_exactly_n_trials(tiny):
    out = invoke(*tune_args(5, "--workers", "2"))
    assert f"study '{STUDY}': 5 trials" in out
    study = optuna.load_study(study_name=STUDY, storage="sqlite:///optuna.db")
    done = check_study(study, 5)
    assert {t.user_attrs["bench.worker"] for t in done} == {0, 1}
    assert len({t.user_attrs["bench.seed"] for t in done}) == 2
    assert len({t.user_attrs["bench.pid"] for t in done}) == 2
    check_mlflow(f"sqlite:///{tiny / 'mlflow.db'}", study)

    (summary,) = dashboard_get("sqlite:///optuna.db", "/api/studies")["study_summaries"]
    assert summary["study_name"] == STUDY
    detail = dashboard_get("sqlite:///optuna.db", f"/api/studies/{summary['study_id']}")
    shown = [t for t in detail["trials"] if t["state"].upper() in ("COMPLETE", "PRUNED")]
    assert len(shown) == 5


@pytest.mark.slow
def test_two_machines_join_one_study_on_postgresql(tiny, postgres):
    storage, tracking = postgres.url(), postgres.url()
    common = ["--storage", storage, "--tracking-uri", tracking]
    invoke(*tune_args(1, *common))  # the first start creates the stores and the study
    machines = [bench_process(*tune_args(4, *common, "--first-worker", str(i))) for i in (0, 1)]
    for proc in machines:
        output = proc.communicate(timeout=900)[0].decode()
        assert proc.returncode == 0, output[-3000:]
    study = optuna.load_study(study_name=STUDY, storage=storage)
    check_study(study, 4)
    pids = {t.user_attrs["bench.pid"] for t in finished(study)}
    assert {proc.pid for proc in machines} <= pids, "a machine did not join the study"
    seeds = {t.user_attrs["bench.pid"]: t.user_attrs["bench.seed"] for t in study.trials}
    assert seeds[machines[0].pid] != seeds[machines[1].pid]
    check_mlflow(tracking, study)
    assert dashboard_get(storage, "/api/studies")["study_summaries"][0]["study_name"] == STUDY


def running_trial_with_run(storage: str, tracking: str):
    """An admitted RUNNING trial whose MLflow run exists (mid-training), or None."""
    try:
        study = optuna.load_study(study_name=STUDY, storage=storage)
    except KeyError:
        return None
    mlf = MlflowClient(tracking)
    exp = mlf.get_experiment_by_name(f"tune-{STUDY}")
    for trial in study.get_trials(states=(TrialState.RUNNING,)):
        if trial.user_attrs.get(ADMISSION) != "admitted" or exp is None:
            continue
        query = f"tags.tune_trial = '{trial.number}' and attributes.status = 'RUNNING'"
        if mlf.search_runs([exp.experiment_id], filter_string=query):
            return trial
    return None


@pytest.mark.slow
def test_a_killed_worker_leaves_no_running_trial_or_run(tiny):
    storage, tracking = "sqlite:///optuna.db", f"sqlite:///{tiny / 'mlflow.db'}"
    driver = bench_process(*tune_args(2, "--workers", "2", *FAST_HEARTBEAT, "-o", "train.epochs=8"))
    deadline = time.time() + 300
    while (victim := running_trial_with_run(storage, tracking)) is None:
        assert driver.poll() is None, driver.communicate()[0].decode()[-3000:]
        assert time.time() < deadline, "no trial ever reached training"
        time.sleep(0.2)
    os.kill(victim.user_attrs["bench.pid"], signal.SIGKILL)
    output = driver.communicate(timeout=600)[0].decode()
    assert "exited with code -9" in output, output[-3000:]

    time.sleep(6)  # the grace period: the killed trial's heartbeat is surely stale now
    invoke(*tune_args(2, *FAST_HEARTBEAT, "-o", "train.epochs=2"))  # the next start
    study = optuna.load_study(study_name=STUDY, storage=storage)
    assert study.trials[victim.number].state == TrialState.FAIL
    check_study(study, 2)
    killed = check_mlflow(tracking, study)[victim.number]
    assert killed.info.status == "KILLED" and killed.data.tags["tune_state"] == "FAIL"


class PruneOddTrials(optuna.pruners.BasePruner):
    """Prunes every odd-numbered trial at its first report."""

    def prune(self, study, trial) -> bool:
        return trial.number % 2 == 1


@pytest.mark.slow
def test_pruned_trials_are_pruned_in_mlflow(tiny, monkeypatch):
    import bench.tune.study

    monkeypatch.setattr(bench.tune.study, "make_pruner", PruneOddTrials)
    invoke(*tune_args(3))
    study = optuna.load_study(study_name=STUDY, storage="sqlite:///optuna.db")
    check_study(study, 3)  # pruned trials count toward the budget
    assert [t.state for t in study.trials] == [
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.COMPLETE,
    ]
    runs = check_mlflow(f"sqlite:///{tiny / 'mlflow.db'}", study)
    assert runs[1].info.status == "KILLED" and runs[1].data.tags["tune_state"] == "PRUNED"
    assert "mAP" not in runs[1].data.metrics  # stopped after its first epoch, never scored


def test_a_storage_that_is_not_a_url_is_one_clear_line(tiny):
    from click.testing import CliRunner

    from bench.cli import cli

    result = CliRunner().invoke(cli, tune_args(1, "--storage", "optuna.db"))
    assert result.exit_code == 1
    assert "--storage: expected a URI with one of the schemes sqlite," in result.output
    assert "such as sqlite:///optuna.db (got 'optuna.db')" in result.output
    assert "Traceback" not in result.output
