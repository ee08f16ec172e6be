"""The suite's pretrain: stage (our warm start): config and hashes, training identities only,
cached and reused, loaded by the cells, not a cell in reports, and kill -9 safe."""

from __future__ import annotations

import copy
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from bench.cli import cli
from bench.data.build import build_dataset
from bench.engine import cell as cell_module
from bench.engine import pretrain
from bench.errors import ConfigError
from bench.files.lock import exclusive
from bench.report.table import load_runs
from bench.suite.load import load_suite
from bench.suite.warmstart import pretrain_spec
from tests.test_cli_e2e import TINY
from tests.test_parallel import ROOT, bench

NARROW = {"channels": [8, 16, 32, 64]}  # a narrow ResNet-18: small weight files, fast steps


def suite_spec(pretrain_section: dict | None = None, seeds=(0,)) -> dict:
    spec = copy.deepcopy(TINY)
    spec.update(seeds=list(seeds), ablations={})
    spec["defaults"]["model"]["kwargs"] = dict(NARROW)
    spec["defaults"]["train"]["max_steps_per_epoch"] = 2
    if pretrain_section is not None:
        spec["pretrain"] = pretrain_section
    return spec


def write(folder, spec: dict, name: str = "tiny.yaml") -> str:
    path = folder / name
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def invoke(*args) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def same_weights(a: dict, b: dict) -> bool:
    """Equal tensors, BatchNorm's step counters aside (bench/models/weights.py loads no
    ``num_batches_tracked``)."""
    return all(torch.equal(a[k], b[k]) for k in b if not k.endswith("num_batches_tracked"))


def hashes(suite) -> list[tuple[str, str]]:
    return [(c.config_hash, c.train_hash) for c in suite.cells]


def test_a_suite_without_pretrain_is_unchanged_and_null_switches_it_off(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, suite_spec()), write(tmp_path, suite_spec({}), "warm.yaml")
    assert "warm start" not in invoke("run", "tiny.yaml", "--dry-run")
    assert "1 cells start from 1 stage" in invoke("run", "warm.yaml", "--dry-run")
    plain = load_suite(write(tmp_path, suite_spec()))
    assert "pretrain" not in plain.raw and plain.spec.pretrain is None
    (cell,) = plain.cells
    assert cell.sections.model.weights is None and "pretrain" not in cell.resolved()
    warm = load_suite(write(tmp_path, suite_spec({}), "warm.yaml"))
    off = load_suite(write(tmp_path, suite_spec({}), "off.yaml"), ["pretrain=null"])
    assert hashes(off) == hashes(plain)  # -o pretrain=null: the from-scratch condition
    assert hashes(warm) != hashes(plain)
    assert all(h != p for (h, _), (p, _) in zip(hashes(warm), hashes(plain), strict=True))


def test_cells_refer_to_the_warm_start_by_hash_not_by_path(tmp_path):
    suite = load_suite(write(tmp_path, suite_spec({"train": {"epochs": 1}})))
    spec = pretrain_spec(suite)
    (cell,) = suite.cells
    assert cell.sections.model.weights == f"pretrain:{spec.hash}"
    assert cell.resolved()["model"]["weights"] == f"pretrain:{spec.hash}"
    # another data root or work dir: the same hashes; another stage setting: other hashes
    assert hashes(load_suite(suite.path, data_root=str(tmp_path / "elsewhere"))) == hashes(suite)
    longer = load_suite(suite.path, ["pretrain.train.epochs=2"])
    assert pretrain_spec(longer).hash != spec.hash and hashes(longer) != hashes(suite)
    assert pretrain_spec(longer).train.val_fraction == 0  # every training identity
    # a variant with another backbone is not warm started
    other = suite_spec({})
    other["ablations"] = {"baseline": [{"name": "r34", "model": {"backbone": "resnet34"}}]}
    cells = load_suite(write(tmp_path, other, "other.yaml")).cells
    assert [c.sections.model.weights is None for c in cells] == [False, True]


def test_each_seed_starts_from_its_own_stage_unless_one_seed_is_set(tmp_path):
    suite = load_suite(write(tmp_path, suite_spec({"train": {"epochs": 1}}, seeds=(0, 1))))
    stages = {s: pretrain_spec(suite, seed=s) for s in (0, 1)}
    assert [c.sections.model.weights for c in suite.cells] == [stages[0].ref, stages[1].ref]
    assert stages[0].hash != stages[1].hash and [stages[s].seed for s in (0, 1)] == [0, 1]
    assert stages[1].resolved()["seed"] == 1
    assert pretrain_spec(suite).hash == stages[0].hash  # the suite's first seed
    assert stages[1].label.endswith(f"/seed1/{stages[1].hash}")
    shared = load_suite(suite.path, ["pretrain.seed=7"])
    (ref,) = {c.sections.model.weights for c in shared.cells}
    spec = pretrain_spec(shared, seed=1)
    assert ref == spec.ref and spec.seed == 7 and spec.hash not in (stages[0].hash, stages[1].hash)


@pytest.mark.slow
def test_two_seeds_train_two_stages_and_a_rerun_trains_nothing(in_tmp, monkeypatch):
    write(in_tmp, suite_spec({"train": {"epochs": 1}}, seeds=(0, 1)))
    trained, real_train = [], pretrain.train_backbone

    def train(spec, *args, **kwargs):
        trained.append(spec.seed)
        return real_train(spec, *args, **kwargs)

    monkeypatch.setattr(pretrain, "train_backbone", train)
    uri = f"sqlite:///{in_tmp / 'mlflow.db'}"  # absolute: a relative URI's store is cached
    out = invoke("pretrain", "tiny.yaml", "--tracking-uri", uri)
    suite = load_suite("tiny.yaml")
    stages = [pretrain_spec(suite, seed=s) for s in (0, 1)]
    assert trained == [0, 1]
    for spec in stages:
        assert f"{spec.label}: " in out and f"(seeds {spec.seed}: model.weights: {spec.ref})" in out
    weights = [
        torch.load(in_tmp / ".bench" / "pretrain" / s.hash / "backbone.pt", weights_only=True)
        for s in stages
    ]
    assert not same_weights(weights[0], weights[1])
    again = invoke("pretrain", "tiny.yaml", "--tracking-uri", uri)
    assert trained == [0, 1] and all(spec.ref in again for spec in stages)
    mlf = MlflowClient(uri)
    exp = mlf.get_experiment_by_name("tiny").experiment_id
    runs = mlf.search_runs([exp], filter_string="tags.stage = 'pretrain'")
    assert sorted(r.data.tags["seed"] for r in runs) == ["0", "1"]


@pytest.mark.parametrize(
    "section, where",
    [
        ({"dataset": "market"}, "pretrain.dataset"),
        ({"train": {"epochs": -1}}, "pretrain.train.epochs"),
        ({"data": {"p": 99}}, "pretrain.data.p"),
        ({"epochs": 3}, "pretrain.epochs: unknown key"),
    ],
)
def test_a_bad_pretrain_section_names_its_key(tmp_path, section, where):
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_suite(write(tmp_path, suite_spec(section)))


def test_the_stage_lock_is_exclusive_across_processes(tmp_path):
    lock = tmp_path / "pretrain" / ".lock"
    code = (
        "import sys; from pathlib import Path; from bench.files.lock import exclusive\n"
        f"with exclusive(Path({str(lock)!r})): Path({str(tmp_path / 'got')!r}).write_text('x')"
    )
    with exclusive(lock):
        other = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
        time.sleep(3)
        assert not (tmp_path / "got").exists()  # blocked while this process holds it
    assert other.wait(timeout=60) == 0 and (tmp_path / "got").exists()


@pytest.mark.slow
def test_the_stage_trains_once_on_training_ids_and_the_cells_start_from_it(in_tmp, monkeypatch):
    write(in_tmp, suite_spec({"train": {"epochs": 1}}))
    seen, starts, trained = [], [], []
    real_loader, real_build, real_train = (
        pretrain.train_loader,
        cell_module.build_method,
        pretrain.train_backbone,
    )

    def loader(tracks, *args, **kwargs):
        seen.extend(tracks)
        return real_loader(tracks, *args, **kwargs)

    def build(*args, **kwargs):
        method, aux, notes = real_build(*args, **kwargs)
        starts.append(method.backbone.timm_state_dict())
        return method, aux, notes

    def train(*args, **kwargs):
        trained.append(1)
        return real_train(*args, **kwargs)

    monkeypatch.setattr(pretrain, "train_loader", loader)
    monkeypatch.setattr(cell_module, "build_method", build)
    monkeypatch.setattr(pretrain, "train_backbone", train)
    invoke("run", "tiny.yaml", "--no-report")

    # trained on the train split's identities only, never a test identity
    spec = pretrain_spec(load_suite("tiny.yaml"))
    dataset = build_dataset(spec.dataset, spec.dataset_options, None)
    split = dataset.load_split(0)
    test_ids = {t.pid for t in (*split.query, *split.gallery)}
    assert seen and set(seen) == set(split.train)
    assert not {t.pid for t in seen} & test_ids
    assert trained == [1]

    # the cell's model starts from the cached weights (a plain, weights-only state dict)
    weights = in_tmp / ".bench" / "pretrain" / spec.hash / "backbone.pt"
    state = torch.load(weights, map_location="cpu", weights_only=True)
    assert not any(k.startswith("fc.") for k in state)
    (start,) = starts
    assert start.keys() == state.keys()
    assert same_weights(start, state)

    # MLflow: one finished stage run with params, loss and the weights; not a cell
    mlf = MlflowClient("sqlite:///mlflow.db")
    exp = mlf.get_experiment_by_name("tiny").experiment_id
    (stage,) = mlf.search_runs([exp], filter_string="tags.stage = 'pretrain'")
    assert stage.info.status == "FINISHED" and stage.data.tags["pretrain_hash"] == spec.hash
    assert "config_hash" not in stage.data.tags
    assert [m.step for m in mlf.get_metric_history(stage.info.run_id, "loss/ce")] == [0]
    assert "backbone.pt" in [a.path for a in mlf.list_artifacts(stage.info.run_id)]
    assert stage.data.params["train.epochs"] == "1"
    runs = load_runs(mlf, "tiny")
    assert len(runs) == 1 and set(runs["tags.method"]) == {"baseline"}
    out = invoke("report", "--table", "--suite", "tiny")
    assert "pretrain" not in out
    out = invoke("status", "tiny.yaml")
    assert "1 finished" in out and "pretrain" not in out

    # a second run reuses the weights; a new work dir restores them from MLflow; the cell of a
    # second seed (the first is finished: same hash) starts from its own seed's stage
    invoke("run", "tiny.yaml", "--no-report")
    invoke("run", "tiny.yaml", "--no-report", "-o", "seeds=[0,1]", "--workdir", "moved")
    assert (in_tmp / "moved" / "pretrain" / spec.hash / "backbone.pt").is_file()
    second = pretrain_spec(load_suite("tiny.yaml", ["seeds=[0,1]"]), seed=1)
    assert second.hash != spec.hash and trained == [1, 1] and len(starts) == 2
    other = torch.load(
        in_tmp / "moved" / "pretrain" / second.hash / "backbone.pt", weights_only=True
    )
    assert same_weights(starts[1], other) and not same_weights(other, state)
    assert len(mlf.search_runs([exp], filter_string="tags.stage = 'pretrain'")) == 2
    out = invoke("pretrain", "tiny.yaml")
    assert spec.hash in out
    assert trained == [1, 1]


def killed_at(folder, point: str, monkeypatch) -> None:
    """A real `bench run` of the suite in ``folder``, killed with SIGKILL at ``point``."""
    with monkeypatch.context() as env:
        env.setenv("BENCH_KILL_AT", point)
        proc = bench(folder, "run", "tiny.yaml", "--no-report")
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == -signal.SIGKILL, out[-3000:]


@pytest.mark.slow
def test_kill9_during_pretraining_then_rerun_finishes(tmp_path, monkeypatch):
    """Killed mid-step, then killed again once the weights are written (not yet logged), then
    rerun with a pool of 2 workers: one stage run, adopted and finished, losses logged once."""
    write(tmp_path, suite_spec({"train": {"epochs": 1}}, seeds=(0, 1)))
    killed_at(tmp_path, "epoch0.step1", monkeypatch)
    mlf = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = mlf.get_experiment_by_name("tiny").experiment_id
    (victim,) = mlf.search_runs([exp])
    assert victim.data.tags["stage"] == "pretrain" and victim.info.status == "RUNNING"
    assert not mlf.get_metric_history(victim.info.run_id, "loss/ce")
    killed_at(tmp_path, "pretrain_saved", monkeypatch)
    (again,) = mlf.search_runs([exp])
    assert again.info.run_id == victim.info.run_id and again.info.status == "RUNNING"
    assert list((tmp_path / ".bench" / "pretrain").glob("*/backbone.pt"))

    rerun = bench(tmp_path, "run", "tiny.yaml", "--no-report", "--jobs", "2")
    out, _ = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    runs = mlf.search_runs([exp])
    stages = [r for r in runs if r.data.tags.get("stage") == "pretrain"]
    first = [r.info.run_id for r in stages if r.data.tags["seed"] == "0"]
    assert first == [victim.info.run_id]  # adopted, once; seed 1's stage trained after it
    assert sorted(r.data.tags["seed"] for r in stages) == ["0", "1"]
    assert all(r.info.status == "FINISHED" for r in stages)
    steps = [m.step for m in mlf.get_metric_history(victim.info.run_id, "loss/ce")]
    assert steps == [0]  # the epoch's loss logged once
    assert "backbone.pt" in [a.path for a in mlf.list_artifacts(victim.info.run_id)]
    cells = [r for r in runs if "config_hash" in r.data.tags]
    assert [r.info.status for r in cells] == ["FINISHED", "FINISHED"]
    assert all(r.data.params["model.weights"].startswith("pretrain:") for r in cells)
    assert len({r.data.params["model.weights"] for r in cells}) == 2  # each its seed's stage
    assert not list((tmp_path / ".bench" / "pretrain").glob("*/.*tmp*"))  # no partial file


def test_tune_warm_starts_its_trials_from_a_stage_without_the_validation_ids(in_tmp, monkeypatch):
    from bench.data.validation import carve_validation

    write(in_tmp, suite_spec({"train": {"epochs": 1}}))
    seen, weights = [], []
    real_loader, real_build = pretrain.train_loader, cell_module.build_method

    def loader(tracks, *args, **kwargs):
        seen.extend(tracks)
        return real_loader(tracks, *args, **kwargs)

    def build(cell, *args, **kwargs):
        weights.append(cell.sections.model.weights)
        return real_build(cell, *args, **kwargs)

    monkeypatch.setattr(pretrain, "train_loader", loader)
    monkeypatch.setattr(cell_module, "build_method", build)
    invoke("tune", "baseline", "--trials", "2", "--suite", "tiny.yaml", "--seed", "3")

    suite = load_suite("tiny.yaml")
    spec = pretrain_spec(suite, None, (0.25, 3), seed=3)  # trained with the trials' seed
    assert spec.hash != pretrain_spec(suite, seed=3).hash and spec.resolved()["holdout_seed"] == 3
    assert spec.seed == 3 and pretrain_spec(suite, None, (0.25, 3)).hash != spec.hash
    assert weights == [spec.ref, spec.ref]  # both trials, from the tune's own stage
    dataset = build_dataset(spec.dataset, spec.dataset_options, None)
    validation = carve_validation(dataset.load_split(0), 0.25, 3)
    validated = {t.pid for t in validation.query}
    assert set(seen) == set(validation.train) and not {t.pid for t in seen} & validated
    mlf = MlflowClient(f"sqlite:///{in_tmp / 'mlflow.db'}")  # a relative URI's store is cached
    exp = mlf.get_experiment_by_name("tune-baseline-synthetic-video").experiment_id
    (stage,) = mlf.search_runs([exp], filter_string="tags.stage = 'pretrain'")
    assert stage.data.params["train.val_fraction"] == "0.25"
