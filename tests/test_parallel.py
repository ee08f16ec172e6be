"""A grid fanned out to several processes runs each cell exactly once (real processes and
stores): concurrent `bench run`s, `--jobs`, an MLflow server on PostgreSQL, a worker killed
mid-cell, and submitit's local executor."""

from __future__ import annotations

import copy
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from bench.cli import cli
from tests.test_cli_e2e import TINY

ROOT = Path(__file__).resolve().parents[1]


def tiny_suite(folder: Path, epochs: int = 1, ablations: bool = True, **extra) -> Path:
    """TINY with one seed: 2 cells (default and ce-only), or 1 without the ablation."""
    spec = copy.deepcopy(TINY)
    spec.update({"seeds": [0], **extra})
    if not ablations:
        spec["ablations"] = {}
    spec["defaults"]["train"].update(epochs=epochs, max_steps_per_epoch=1)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def bench(folder: Path, *args: str) -> subprocess.Popen:
    """A real `bench` process in ``folder``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": ""}
    env.pop("BENCH_CLAIMS_URI", None)
    code = "from bench.cli import main; main()"
    cmd = [sys.executable, "-c", code, *args]
    return subprocess.Popen(
        cmd, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(procs: list[subprocess.Popen], timeout: float = 540) -> list[str]:
    outs = []
    for p in procs:
        out, _ = p.communicate(timeout=timeout)
        assert p.returncode == 0, out[-3000:]
        assert "Traceback" not in out, out[max(0, out.find("Traceback") - 200) :][:4000]
        outs.append(out)
    return outs


def assert_each_cell_finished_once(tracking_uri: str, cells: int) -> list:
    mlf = MlflowClient(tracking_uri)
    runs = mlf.search_runs([mlf.get_experiment_by_name("tiny").experiment_id])
    by_hash: dict[str, list[str]] = {}
    for r in runs:
        by_hash.setdefault(r.data.tags["config_hash"], []).append(r.info.status)
    assert len(by_hash) == cells
    assert all(statuses == ["FINISHED"] for statuses in by_hash.values()), by_hash
    return runs


@pytest.mark.slow
def test_four_concurrent_bench_runs_on_a_fresh_directory(tmp_path):
    tiny_suite(tmp_path)
    finish([bench(tmp_path, "run", "tiny.yaml", "--no-report") for _ in range(4)])
    assert_each_cell_finished_once(f"sqlite:///{tmp_path / 'mlflow.db'}", cells=2)


@pytest.mark.slow
def test_jobs_4_runs_each_cell_once_and_status_shows_them(tmp_path):
    tiny_suite(tmp_path)
    (out,) = finish([bench(tmp_path, "run", "tiny.yaml", "--no-report", "--jobs", "4")])
    assert "4 workers" in out and "done 2 running 0 failed 0 left 0" in out
    assert_each_cell_finished_once(f"sqlite:///{tmp_path / 'mlflow.db'}", cells=2)
    status = CliRunner().invoke(
        cli,
        [
            "status",
            str(tmp_path / "tiny.yaml"),
            "--tracking-uri",
            f"sqlite:///{tmp_path}/mlflow.db",
        ],
    )
    assert status.exit_code == 0 and status.output.count("finished") == 3, status.output


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(postgres, tmp_path):
    """`mlflow server` on a fresh PostgreSQL database, as the README sets up a cluster."""
    db, port = postgres.url(), _free_port()
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", db,
        "--artifacts-destination", str(tmp_path / "artifacts"),
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                pytest.fail("mlflow server did not start: " + (tmp_path / "server.log").read_text())
            time.sleep(1)
    yield url, db
    server.terminate()
    server.wait(30)
    log.close()


@pytest.mark.slow
def test_two_pools_on_an_mlflow_server_on_postgresql(mlflow_server, tmp_path):
    url, db = mlflow_server
    tiny_suite(tmp_path)
    args = ["run", "tiny.yaml", "--no-report", "--jobs", "2", "--tracking-uri", url]
    finish([bench(tmp_path, *args, "--claims-uri", db) for _ in range(2)])
    runs = assert_each_cell_finished_once(url, cells=2)
    assert all(r.data.metrics.get("mAP", 0) > 0 for r in runs)
    mlf = MlflowClient(url)
    assert {"config.yaml", "cmc.png"} <= {a.path for a in mlf.list_artifacts(runs[0].info.run_id)}


def claim_row(claims_db: Path) -> dict | None:
    engine = sa.create_engine(f"sqlite:///{claims_db}", poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.text("SELECT * FROM bench_claims")).mappings().first()
    except sa.exc.OperationalError:  # not created yet
        return None
    return dict(row) if row else None


def wait_for(predicate, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_a_worker_killed_mid_cell_is_taken_over_from_its_checkpoint(tmp_path):
    import torch

    from bench.engine.cell import RunOptions, run_cell
    from bench.engine.tracking import client, experiment_id
    from bench.suite.load import load_suite

    tiny_suite(tmp_path, epochs=3, ablations=False)
    lease_s = 8.0
    driver = bench(tmp_path, "run", "tiny.yaml", "--no-report", "--jobs", "2", "--lease-s", "8")
    claims_db = tmp_path / "mlflow-claims.db"

    def first_checkpoint():
        row = claim_row(claims_db)
        ckpt = tmp_path / ".bench" / "cells" / row["cell_hash"] / row["token"] if row else None
        return row if ckpt is not None and (ckpt / "checkpoint.pt").is_file() else None

    victim = wait_for(first_checkpoint, 400, "the first checkpoint")
    os.kill(victim["pid"], signal.SIGKILL)
    killed_at = time.time()
    taker = wait_for(
        lambda: (r := claim_row(claims_db)) and r["token"] != victim["token"] and r, 60, "takeover"
    )
    # taken within the lease, give or take a polling interval and a loaded machine's delays
    assert time.time() - killed_at < 2 * lease_s
    assert taker["pid"] != victim["pid"] and taker["previous_token"] == victim["token"]
    (out,) = finish([driver])
    assert "resumed" in out

    (run,) = assert_each_cell_finished_once(f"sqlite:///{tmp_path / 'mlflow.db'}", cells=1)
    assert run.info.run_id == victim["run_id"]  # the killed worker's run, adopted
    mlf = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    steps = [m.step for m in mlf.get_metric_history(run.info.run_id, "loss/total")]
    assert len(steps) == len(set(steps)) and 2 in steps  # no epoch trained twice

    # the same cell uninterrupted (one thread, as each of the two workers on 2 cores)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // 2))
    try:
        (cell,) = load_suite(tmp_path / "tiny.yaml").cells
        ref_mlf = client(f"sqlite:///{tmp_path / 'ref.db'}")
        opts = RunOptions(workdir=tmp_path / "ref", data_root=str(tmp_path / "data"))
        reference = run_cell(ref_mlf, experiment_id(ref_mlf, "ref"), cell, opts)
    finally:
        torch.set_num_threads(threads)
    for key in ("R1", "mAP"):
        assert run.data.metrics[key] == pytest.approx(reference.metrics[key], abs=1e-4)


@pytest.mark.slow
def test_submitit_local_executor_runs_the_array_on_postgresql(postgres, tmp_path):
    db = postgres.url()
    tiny_suite(tmp_path, launcher={"cluster": "local", "time_min": 20, "cpus_per_task": 1})
    args = ["run", "tiny.yaml", "--no-report", "--launcher", "slurm", "--tracking-uri", db]
    (out,) = finish([bench(tmp_path, *args)])
    assert "2 local tasks" in out
    runs = assert_each_cell_finished_once(db, cells=2)
    assert all(r.data.tags["mlflow.runName"].endswith("(synthetic-video)") for r in runs)
    assert len(list((tmp_path / ".bench" / "submitit").glob("*_0_log.out"))) == 2  # 2 tasks


def test_slurm_refuses_a_local_sqlite_store(in_tmp):
    tiny_suite(in_tmp)
    result = CliRunner().invoke(cli, ["run", "tiny.yaml", "--launcher", "slurm"])
    assert result.exit_code == 1
    assert "local SQLite file" in result.output and "tracking server on PostgreSQL" in result.output
    assert not (in_tmp / "mlflow.db").exists()  # refused before anything was created


def test_a_failing_cell_does_not_stop_the_grid_and_reruns_next_launch(in_tmp, monkeypatch):
    from bench.engine import job as job_module

    tiny_suite(in_tmp)
    original = job_module.train

    def fail_ce_only(job):
        if job.cell.variant == "ce-only":
            raise RuntimeError("boom in ce-only")
        return original(job)

    monkeypatch.setattr(job_module, "train", fail_ce_only)
    result = CliRunner().invoke(cli, ["run", "tiny.yaml", "--no-report"])
    assert result.exit_code == 1
    assert "1 of 2 cells failed" in result.output
    assert "ce-only/seed0: RuntimeError: boom in ce-only" in result.output
    assert "finished  synthetic-video/baseline/default/seed0" in result.output
    status = CliRunner().invoke(cli, ["status", "tiny.yaml"])
    assert "failed" in status.output and "RuntimeError: boom in ce-only" in status.output
    assert "1 failed, 1 finished" in status.output

    monkeypatch.setattr(job_module, "train", original)
    result = CliRunner().invoke(cli, ["run", "tiny.yaml", "--no-report"])
    assert result.exit_code == 0, result.output
    assert (
        "skipped" in result.output and "finished  synthetic-video/baseline/ce-only" in result.output
    )


def test_slurm_settings_from_suite_file_and_flags_reach_sbatch(tmp_path, monkeypatch):
    from bench.config import LauncherConfig
    from bench.engine.executors import launcher_settings
    from bench.engine.executors.slurm import executor

    suite = LauncherConfig(partition="cpu", cpus_per_task=2, sbatch={"account": "lab"})
    file = tmp_path / "launcher.yaml"
    file.write_text(yaml.safe_dump({"partition": "gpu", "gpus_per_task": 2, "time_min": 90}))
    flags = {"cpus_per_task": 8, "array_parallelism": 3, "sbatch": ("qos=high",)}
    settings = launcher_settings(suite, str(file), flags)
    assert (settings.partition, settings.gpus_per_task, settings.cpus_per_task) == ("gpu", 2, 8)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "srun").write_text("#!/bin/sh\n")  # submitit only looks for it; nothing is submitted
    (fake / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    ex = executor(settings, tmp_path / "logs", "bench-tiny")
    text = ex._executor._make_submission_file_text("cmd", "uid")
    for line in ("partition=gpu", "gpus-per-node=2", "cpus-per-task=8", "time=90", "qos=high"):
        assert f"#SBATCH --{line}\n" in text
    assert "#SBATCH --account=lab\n" in text
    assert ex._executor.parameters["array_parallelism"] == 3
    (file).write_text(yaml.safe_dump({"partitoin": "gpu"}))
    with pytest.raises(Exception, match="launcher.yaml: partitoin: unknown key"):
        launcher_settings(suite, str(file), {})


def test_an_orphan_running_run_is_closed_when_its_cell_runs_again(in_tmp):
    from bench.engine.cell import RunOptions, run_cell
    from bench.engine.tracking import client, experiment_id
    from bench.suite.load import load_suite

    (cell,) = load_suite(tiny_suite(in_tmp, ablations=False)).cells
    mlf = client()
    exp = experiment_id(mlf, "tiny")
    orphan = mlf.create_run(exp, tags={"config_hash": cell.config_hash}).info.run_id  # RUNNING
    result = run_cell(mlf, exp, cell, RunOptions())
    assert result.status == "finished" and result.run_id != orphan
    assert mlf.get_run(orphan).info.status == "KILLED"
    assert mlf.get_run(result.run_id).info.status == "FINISHED"


@pytest.mark.parametrize(
    ("flags", "executor", "jobs"), [((), "pool", 2), (("--jobs", "1"), "local", 1)]
)
def test_the_suite_launcher_jobs_is_the_default_of_jobs(in_tmp, monkeypatch, flags, executor, jobs):
    import bench.runner
    from bench.engine.executors import Launch

    tiny_suite(in_tmp, launcher={"jobs": 2})
    seen = {}

    def run_suite(*args):
        seen["launch"] = next(a for a in args if isinstance(a, Launch))

    monkeypatch.setattr(bench.runner, "run_suite", run_suite)
    result = CliRunner().invoke(cli, ["run", "tiny.yaml", *flags])
    assert result.exit_code == 0, result.output
    assert (seen["launch"].executor, seen["launch"].jobs) == (executor, jobs)


def test_a_test_time_variant_waits_for_the_training_another_worker_runs(tmp_path, monkeypatch):
    """A cell sharing its training with a cell another worker holds is left for later (it then
    evaluates those weights) instead of training the same model a second time; other cells go
    first. Not under --force, where nothing is reused."""
    from bench.engine.executors import worker
    from bench.suite.load import load_suite

    suite = copy.deepcopy(TINY)
    suite["ablations"] = {"baseline": [{"name": "cap", "eval": {"max_frames": 4}}]}
    suite["seeds"] = [0, 1]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(suite))
    cells = load_suite(tmp_path / "s.yaml").cells  # default/seed0, default/seed1, cap/seed0, ...
    assert cells[2].train_hash == cells[0].train_hash != cells[1].train_hash
    held = {cells[0].config_hash}  # another worker trains default/seed0
    tried = []

    def attempt(mlf, context, cell):
        tried.append(cell.label)
        if cell.config_hash in held:
            return None  # busy: another worker runs it
        if cell is cells[-1]:
            held.clear()  # ... and finishes it while this one runs the last cell
        return worker.Outcome(cell.label, cell.config_hash, "finished")

    monkeypatch.setattr(worker, "attempt", attempt)
    monkeypatch.setattr(worker, "live_claims", lambda context: set(held))
    monkeypatch.setattr(worker, "client", lambda uri: None)
    opts = SimpleNamespace(lease_s=0.04, force=False)
    outcomes = worker.drain(cells, worker.Context("sqlite://", "0", opts))
    names = [c.label for c in cells]
    # pass 1: default/seed0 busy, cap/seed0 waits for it, the rest run; pass 2: both
    assert tried == [names[0], names[1], names[3], names[0], names[2]]
    assert len(outcomes) == 4
    held.add(cells[0].config_hash)
    tried.clear()
    worker.drain(cells, worker.Context("sqlite://", "0", SimpleNamespace(lease_s=0.04, force=True)))
    assert tried[:3] == names[:3]  # --force: nothing waits
