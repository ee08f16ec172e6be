"""kill -9 at any point, then a rerun: nothing lost, nothing twice, the same result.

A real `bench run` subprocess is killed with SIGKILL at a named point
(bench.engine.killpoints, ``$BENCH_KILL_AT``); the same `bench run` is then run again (in this
process, so that the epochs it trains can be counted) and the cell's MLflow runs are compared
with one uninterrupted run of the same suite.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from bench.cli import cli
from bench.engine import claims
from bench.engine.trainer import Trainer
from tests.test_parallel import bench, tiny_suite

# a lease far longer than the test: the rerun can take the dead process's claim at once only
# because claims sees that its pid is gone on this host
RUN = ["run", "tiny.yaml", "--no-report", "--lease-s", "3600"]
EPOCHS = 2
# point -> the epochs the rerun trains (those after the last checkpoint)
POINTS = {
    "run_created": [0, 1],  # no checkpoint yet: a fresh run, the orphan closed as KILLED
    "epoch1.step1": [1],  # mid-epoch, after the first checkpoint
    "checkpoint0": [1],  # right after a checkpoint
    "epoch_logged1": [1],  # epoch 1 logged, its checkpoint not written: logged once anyway
    "evaluating": [],  # mid-evaluation
    "artifact_logged": [],  # one artifact uploaded, the others not
    "before_finished": [],  # everything logged, the run not FINISHED
}


def suite(folder: Path) -> None:
    path = tiny_suite(folder, epochs=EPOCHS, ablations=False)
    spec = yaml.safe_load(path.read_text())
    spec["defaults"]["train"]["max_steps_per_epoch"] = 2  # so that step 1 is mid-epoch
    path.write_text(yaml.safe_dump(spec))


def tracking(folder: Path) -> tuple[MlflowClient, list]:
    mlf = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = mlf.get_experiment_by_name("tiny").experiment_id
    return mlf, mlf.search_runs([exp], run_view_type=3)  # active and deleted


def record(mlf: MlflowClient, run) -> dict:
    """Every metric's (step, value) history, and the artifact paths, of a run."""
    run_id = run.info.run_id
    history = {
        key: sorted((m.step, m.value) for m in mlf.get_metric_history(run_id, key))
        for key in run.data.metrics
    }
    return {"history": history, "artifacts": sorted(a.path for a in mlf.list_artifacts(run_id))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """One uninterrupted run of the suite, shared by every kill point."""
    folder = tmp_path_factory.mktemp("reference")
    suite(folder)
    proc = bench(folder, *RUN)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    mlf, (run,) = tracking(folder)
    return record(mlf, run)


@pytest.mark.slow
@pytest.mark.parametrize("point", list(POINTS))
def test_kill9_then_rerun_completes_the_cell_as_if_uninterrupted(
    point, reference, tmp_path, monkeypatch
):
    suite(tmp_path)
    with monkeypatch.context() as env:
        env.setenv("BENCH_KILL_AT", point)
        proc = bench(tmp_path, *RUN)
    killed, _ = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, killed[-3000:]  # died at the point
    mlf, (victim,) = tracking(tmp_path)
    assert victim.info.status == "RUNNING"  # what a kill -9 leaves behind
    store = claims.store(f"sqlite:///{tmp_path / 'mlflow-claims.db'}")
    (row,) = store.rows(victim.info.experiment_id).values()
    assert row["state"] == "running" and row["lease_expires"] > time.time() + 600
    assert claims.takeable(row, time.time(), launch_time=time.time())  # its pid is dead

    trained: list[int] = []
    original = Trainer.train_epoch

    def count(self, epoch):
        trained.append(epoch)
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", count)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # set by an earlier rerun
    result = CliRunner().invoke(cli, RUN, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert trained == POINTS[point]  # a cell past a checkpoint is not retrained

    mlf, runs = tracking(tmp_path)
    statuses = {r.info.run_id: r.info.status for r in runs}
    assert "RUNNING" not in statuses.values(), statuses
    (done,) = [r for r in runs if r.info.status == "FINISHED"]
    if POINTS[point] == list(range(EPOCHS)):  # nothing to resume: the orphan closed
        assert statuses == {victim.info.run_id: "KILLED", done.info.run_id: "FINISHED"}
    else:  # the killed run adopted and resumed
        assert statuses == {victim.info.run_id: "FINISHED"}
        assert "resumed" in result.output
    assert [r["state"] for r in store.rows(victim.info.experiment_id).values()] == ["finished"]

    got = record(mlf, done)
    assert got["artifacts"] == reference["artifacts"]
    assert set(got["history"]) == set(reference["history"])
    for key, ref in reference["history"].items():
        steps = [step for step, _ in got["history"][key]]
        assert steps == [step for step, _ in ref], key  # each epoch / final metric once
        if not key.startswith("time."):
            assert [v for _, v in got["history"][key]] == pytest.approx(
                [v for _, v in ref], abs=1e-4
            ), key
