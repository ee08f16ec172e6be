"""Training, checkpoints, resume after interruption, skip of finished cells, data loading."""

import shutil
from pathlib import Path

import pytest
import torch
import yaml

from bench.config import DataConfig
from bench.data.build import build_dataset
from bench.data.frames import FrameReader
from bench.data.loader import train_loader
from bench.engine import cell as cell_module
from bench.engine import checkpoint
from bench.engine.assemble import build_method, cell_data
from bench.engine.cell import RunOptions, run_cell
from bench.engine.tracking import client, experiment_id
from bench.engine.trainer import Trainer
from bench.errors import DataError
from bench.eval.per_query import PER_QUERY, query_values, read_per_query, valid_queries
from bench.files.artifacts import read_artifact
from bench.suite.load import load_suite

SUITE = {
    "name": "engine",
    "datasets": ["fixture-video"],
    "methods": ["baseline"],
    "defaults": {
        "model": {"backbone": "resnet18"},
        "data": {"height": 32, "width": 16, "seq_len": 2, "p": 2, "k": 2},
        "train": {"epochs": 3, "lr": 1e-3},
    },
}


@pytest.fixture
def setup(in_tmp):
    (in_tmp / "s.yaml").write_text(yaml.safe_dump(SUITE))
    (cell,) = load_suite(in_tmp / "s.yaml").cells
    mlf = client()
    return mlf, experiment_id(mlf, "engine"), cell


def test_interrupted_cell_resumes_in_the_same_run_and_matches_an_uninterrupted_one(
    setup, monkeypatch
):
    mlf, exp, cell = setup
    reference = run_cell(mlf, exp, cell, RunOptions(workdir=setup_dir("ref"), force=True))

    epochs_run = []
    original = Trainer.train_epoch

    def interrupt_at_epoch_2(self, epoch):
        epochs_run.append(epoch)
        if epoch == 2 and len(epochs_run) == 3:
            raise KeyboardInterrupt
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", interrupt_at_epoch_2)
    opts = RunOptions(workdir=setup_dir("w"), force=False)
    mlf.delete_run(reference.run_id)  # so that the cell is not "finished"
    with pytest.raises(KeyboardInterrupt):
        run_cell(mlf, exp, cell, opts)
    killed = [r for r in mlf.search_runs([exp]) if r.info.status == "KILLED"]
    assert len(killed) == 1
    resumed = run_cell(mlf, exp, cell, opts)
    assert epochs_run == [0, 1, 2, 2]  # epochs 0 and 1 were not trained again
    assert resumed.status == "resumed" and resumed.run_id == killed[0].info.run_id
    assert mlf.get_run(resumed.run_id).info.status == "FINISHED"
    for key in ("R1", "mAP"):
        assert resumed.metrics[key] == pytest.approx(reference.metrics[key], abs=1e-4)
    losses = mlf.get_metric_history(resumed.run_id, "loss/total")
    assert sorted(m.step for m in losses) == [0, 1, 2]


def setup_dir(name: str) -> Path:
    path = Path(name)
    shutil.rmtree(path, ignore_errors=True)
    return path


def test_finished_cell_is_skipped_unless_forced(setup, monkeypatch):
    mlf, exp, cell = setup
    first = run_cell(mlf, exp, cell, RunOptions())
    assert first.status == "finished"
    calls = []
    monkeypatch.setattr(cell_module, "cell_data", lambda *a: calls.append(a))
    again = run_cell(mlf, exp, cell, RunOptions())
    assert again.status == "skipped" and again.run_id == first.run_id and not calls
    assert again.metrics["R1"] == first.metrics["R1"]
    run = mlf.get_run(first.run_id)
    assert run.data.tags["config_hash"] == cell.config_hash
    assert run.data.params["train.epochs"] == "3"
    for tag in ("git_commit", "version.torch", "dataset", "method", "variant", "seed"):
        assert tag in run.data.tags
    names = {a.path for a in mlf.list_artifacts(first.run_id)}
    assert {"config.yaml", "cmc.png", "model.pt", PER_QUERY} <= names
    # the per-query results give back the logged metrics without the model
    columns = read_artifact(mlf, first.run_id, PER_QUERY, read_per_query)
    valid = valid_queries(columns)
    for metric in ("R1", "R5", "R10", "R20", "mAP"):
        recomputed = query_values(columns, metric)[valid].mean() * 100
        assert recomputed == pytest.approx(run.data.metrics[metric], abs=1e-4)


def test_same_seed_repeats_a_cpu_run(setup):
    mlf, exp, cell = setup
    a = run_cell(mlf, exp, cell, RunOptions(force=True))
    b = run_cell(mlf, exp, cell, RunOptions(force=True))
    assert a.run_id != b.run_id
    assert a.metrics["mAP"] == pytest.approx(b.metrics["mAP"], abs=1e-5)


def test_loader_gives_ordered_frames_aux_and_pk_batches(in_tmp):
    ds = build_dataset("fixture-video", {}, None)
    ds.prepare()
    split = ds.load_split(0)
    track = split.train[0]
    assert list(track.frames) == sorted(track.frames)
    loader, sampler = train_loader(split.train, load_data_cfg(), ds.available_aux(), seed=0)
    batch = next(iter(loader))
    assert batch["clips"].shape == (4, 2, 3, 32, 16)
    assert batch["part_masks"].shape == (4, 2, 32, 16) and int(batch["part_masks"].max()) <= 4
    assert batch["keypoints"].shape == (4, 2, 14, 3)
    assert len(set(batch["pids"].tolist())) == 2


def load_data_cfg() -> DataConfig:
    return DataConfig(height=32, width=16, seq_len=2, p=2, k=2, flip=0, erasing=0)


def test_keypoints_are_scaled_to_the_input_size(in_tmp):
    ds = build_dataset("fixture-video", {}, None)
    ds.prepare()
    track = ds.load_split(0).train[0]
    reader = FrameReader(64, 8)  # frames are 32 x 16: y doubles, x halves
    clip = reader.clip(track, [0], frozenset({"keypoints"}))
    assert clip["keypoints"][0, 0, 0].item() == pytest.approx(4.0)
    assert clip["keypoints"][0, -1, 1].item() == pytest.approx(62.0)


def test_corrupt_or_missing_frame_is_named(tmp_path):
    bad = tmp_path / "frame0001.jpg"
    bad.write_bytes(b"not an image")
    reader = FrameReader(8, 4)
    with pytest.raises(DataError, match="frame0001.jpg"):
        reader.frame(str(bad))
    with pytest.raises(DataError, match="missing frame file: .*nothere.png"):
        reader.frame(str(tmp_path / "nothere.png"))


def test_trainer_checkpoint_holds_next_epoch(setup, tmp_path):
    _, _, cell = setup
    data = cell_data(cell, None)
    split = data.split
    method, aux, _ = build_method(cell, data)
    loader, _ = train_loader(split.train, cell.sections.data, aux, 0)
    path = tmp_path / "ck" / "c.pt"
    Trainer(method, loader, cell.sections.train.model_copy(update={"epochs": 1}), path).fit()
    state = checkpoint.load(path)
    assert state["epoch"] == 1 and set(state) >= {"model", "optimizer", "scheduler", "rng"}
    assert torch.equal(state["model"]["neck.bn.running_mean"], method.neck.bn.running_mean)


def test_cells_differing_only_at_test_time_share_one_training(in_tmp, monkeypatch):
    suite = {
        **SUITE,
        "ablations": {
            "baseline": [
                {"name": "long-clips", "eval": {"clip_len": 4}},
                {"name": "other-lr", "train": {"lr": 5e-4}},
            ]
        },
    }
    (in_tmp / "s.yaml").write_text(yaml.safe_dump(suite))
    default, long_clips, other_lr = load_suite(in_tmp / "s.yaml").cells
    assert default.train_hash == long_clips.train_hash != other_lr.train_hash
    assert default.config_hash != long_clips.config_hash
    mlf = client()
    exp = experiment_id(mlf, "engine")
    trained = run_cell(mlf, exp, default, RunOptions())
    fits = []
    monkeypatch.setattr(Trainer, "fit", lambda self, hook=None: fits.append(1))
    shared = run_cell(mlf, exp, long_clips, RunOptions())
    assert not fits
    assert mlf.get_run(shared.run_id).data.tags["weights_from"] == trained.run_id
    run_cell(mlf, exp, other_lr, RunOptions())
    assert fits == [1]


def test_data_crop_reaches_the_training_clips_and_changes_nothing_else(in_tmp):
    ds = build_dataset("fixture-video", {}, None)
    ds.prepare()
    train, aux = ds.load_split(0).train, ds.available_aux()
    batches = {}
    for name, fields in {
        "off": {},
        "zero": {"crop": 0.0, "crop_pad": 4},
        "on": {"crop": 1.0},
    }.items():
        cfg = load_data_cfg().model_copy(update={"crop_pad": 4, **fields})
        batches[name] = next(iter(train_loader(train, cfg, aux, seed=0)[0]))
    off, zero, on = batches["off"], batches["zero"], batches["on"]
    assert all(torch.equal(off[k], zero[k]) for k in off)
    assert torch.equal(off["pids"], on["pids"]) and torch.equal(off["camids"], on["camids"])
    assert not torch.equal(off["clips"], on["clips"])
    assert not torch.equal(off["part_masks"], on["part_masks"])
