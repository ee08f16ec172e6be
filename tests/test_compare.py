"""``bench compare`` and ``bench report`` on a real MLflow store: rows run otherwise are refused
(or allowed by name), one pair is uncorrected and says so, a table corrects its comparisons,
and both say when the rows ran on more than one machine."""

import tempfile
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from mlflow.entities import Metric, Param, RunTag

from bench.cli import cli
from bench.engine.tracking import client
from bench.eval.per_query import PER_QUERY, write_per_query
from bench.report.table import build_report, load_failed, load_runs

# (method, variant, train.epochs, the machine of each seed)
ROWS = [
    ("baseline", "default", 2, ["CPU A"] * 3),
    ("stal", "default", 1, ["CPU A"] * 3),
    ("iaunet", "default", 2, ["CPU A", "CPU A", "CPU B"]),
]


def log_run(mlf, exp: str, method: str, variant: str, seed: int, epochs: int, machine: str, tmp):
    rng = np.random.default_rng([seed, len(method)])
    pids = np.repeat(np.arange(30), 2)
    first = rng.integers(1, 4, size=len(pids))
    ap = rng.uniform(0.2, 0.9, size=len(pids))
    run_id = mlf.create_run(exp, run_name=f"d/{method}/{variant}/seed{seed}").info.run_id
    key = f"{method}{variant}{seed}"
    params = {"train.epochs": epochs, "data.height": 64, "method.name": method, "seed": seed}
    tags = {"suite": "exp", "dataset": "synthetic-video", "method": method, "variant": variant,
            "seed": str(seed), "split": "0", "config_hash": key, "config_key": key,
            "protocol": "p", "device_name": machine}  # fmt: skip
    metrics = {"R1": float(np.mean(first == 1) * 100), "mAP": float(ap.mean() * 100)}
    mlf.log_batch(
        run_id,
        metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
        params=[Param(k, str(v)) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    query = [SimpleNamespace(pid=int(p), camid=int(i % 2)) for i, p in enumerate(pids)]
    path = tmp / PER_QUERY
    write_per_query(path, {"per_query": {"first": first.tolist(), "ap": ap.tolist()}}, query)
    mlf.log_artifact(run_id, str(path))
    mlf.set_terminated(run_id, status="FINISHED")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root}/mlflow.db"
    mlf = client(uri)
    exp = mlf.create_experiment("exp", artifact_location=str(root / "artifacts"))
    for method, variant, epochs, machines in ROWS:
        for seed, machine in enumerate(machines):
            log_run(mlf, exp, method, variant, seed, epochs, machine, root)
    return uri


def compare(store, *args):
    return CliRunner().invoke(cli, ["compare", "exp", *args, "--tracking-uri", store])


def test_rows_run_otherwise_are_refused_in_one_line(store):
    result = compare(store, "baseline", "stal")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: baseline and stal were run otherwise: train.epochs (2 vs 1); not compared "
        "(pass --allow-different train.epochs to compare them anyway)"
    ]


def test_allowed_settings_are_compared_and_named_uncorrected(store):
    result = compare(store, "baseline", "stal", "--allow-different", "train.epochs")
    assert result.exit_code == 0, result.output
    lines = {line.split()[1]: line for line in result.output.splitlines() if line.startswith("syn")}
    assert set(lines) == {"R1", "mAP"}
    assert "Note: compared although run otherwise (--allow-different): train.epochs (2 vs 1)" in (
        result.output
    )
    assert "Uncorrected: each of these 2 comparisons stands alone" in result.output
    assert "Warning" not in result.output  # one machine


def test_an_unknown_setting_is_a_flag_error(store):
    result = compare(store, "baseline", "stal", "--allow-different", "train.epochs,train.epoch")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: --allow-different: expected settings of these runs, e.g. train.epochs "
        "(got train.epoch)"
    )


def test_compare_warns_when_its_rows_ran_on_two_machines(store):
    result = compare(store, "baseline", "iaunet")
    assert result.exit_code == 0, result.output
    assert (
        "Warning: run on 2 machines: [CPU A] baseline/default, iaunet/default (seed 0, 1); "
        "[CPU B] iaunet/default (seed 2); a difference may be the machines'."
    ) in result.output


def test_the_report_corrects_names_machines_and_leaves_unlike_rows_out(store):
    mlf = client(store)
    report = build_report(mlf, load_runs(mlf, "exp"), load_failed(mlf, "exp"), "exp")
    table = report.results
    rows = {(r[0], r[1]): dict(zip(table.header, r, strict=True)) for r in table.rows}
    assert rows[("stal", "default")]["synthetic-video ΔR1"] == "≠"
    interval = rows[("iaunet", "default")]["synthetic-video ΔR1"]
    assert interval.lo < interval.diff < interval.hi
    assert "Benjamini-Hochberg correction for 2 comparisons" in table.caption
    assert "[CPU B] iaunet/default (seed 2)" in table.caption
    assert any("stal/default: train.epochs (2 vs 1)" in n for n in table.notes)


def test_reading_runs_leaves_no_copies_of_their_artifacts_behind(store, tmp_path, monkeypatch):
    """MLflow's download without a destination copies into a new temp folder it never removes:
    compare and report read each run's per-query table through a folder they remove."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    assert compare(store, "baseline", "iaunet").exit_code == 0
    mlf = client(store)
    build_report(mlf, load_runs(mlf, "exp"), load_failed(mlf, "exp"), "exp")
    assert list(scratch.iterdir()) == []
