"""bench eval and bench extract on a trained cell: the same metrics as its training run, a
cross-dataset evaluation without retraining, the embeddings file, and one-line errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner

from bench.cli import cli
from bench.data.build import build_dataset
from bench.engine.cell import RunOptions, run_cell
from bench.engine.tracking import client, experiment_id
from bench.eval.embeddings_file import read_embeddings
from bench.eval.per_query import PER_QUERY, read_per_query
from bench.files.artifacts import read_artifact
from bench.suite.load import load_suite

SUITE = {
    "name": "trained",
    "datasets": ["fixture-video"],
    "methods": ["baseline"],
    "ablations": {"baseline": [{"name": "ce-only", "triplet": "none"}]},
    "defaults": {
        "model": {"backbone": "resnet18", "kwargs": {"layers": [1, 1, 1, 1]}},
        "data": {"height": 32, "width": 16, "seq_len": 2, "p": 2, "k": 2},
        "train": {"epochs": 1, "lr": 1e-3},
        "runtime": {"device": "cpu"},
    },
}


pytestmark = pytest.mark.slow  # one cell trains (once for the module)


@pytest.fixture(scope="module")
def trained_once(tmp_path_factory):
    """One trained cell in its own folder and MLflow store, shared by the module's tests."""
    folder = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(folder)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("BENCH_DATA_ROOT", raising=False)
        (folder / "s.yaml").write_text(yaml.safe_dump(SUITE))
        cell, other = load_suite(folder / "s.yaml").cells
        mlf = client()
        result = run_cell(mlf, experiment_id(mlf, "trained"), cell, RunOptions())
        run_cell(mlf, experiment_id(mlf, "trained"), other, RunOptions())
    return folder, result


@pytest.fixture
def trained(trained_once, monkeypatch):
    folder, result = trained_once
    monkeypatch.chdir(folder)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)
    return client(), result


def bench(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def bench_fails(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code != 0 and "Traceback" not in result.output, result.output
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("Error: "), result.output
    return lines[-1]


def eval_runs(mlf, name: str):
    exp = mlf.get_experiment_by_name(name)
    return mlf.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])


def test_eval_repeats_the_training_runs_metrics_and_links_to_it(trained, tmp_path):
    mlf, training = trained
    out = bench("eval", training.run_id)
    (run,) = eval_runs(mlf, "trained-eval")
    assert f"logged run {run.info.run_id}" in out
    assert run.data.tags["trained_by"] == training.run_id
    assert run.info.run_name == "baseline/default/seed0 (fixture-video)"
    for key in ("R1", "R5", "mAP", "mINP", "cost.params_M", "cost.gflops_per_clip"):
        assert run.data.metrics[key] == pytest.approx(training.metrics[key], abs=1e-4)
    names = {a.path for a in mlf.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "cmc.png", PER_QUERY} <= names and "model.pt" not in names
    again = read_artifact(mlf, run.info.run_id, PER_QUERY, read_per_query)
    first = read_artifact(mlf, training.run_id, PER_QUERY, read_per_query)
    np.testing.assert_array_equal(again["top"], first["top"])

    # the same from the weights file and its config, and from the suite's cell
    weights = mlf.download_artifacts(training.run_id, "model.pt", str(tmp_path))
    config = mlf.download_artifacts(training.run_id, "config.yaml", str(tmp_path))
    bench("eval", "--weights", weights, "--config", config, "--experiment", "trained-eval")
    bench("eval", "--suite", "s.yaml", "--cell", "fixture-video/baseline/default/seed0")
    by_file, by_cell = eval_runs(mlf, "trained-eval")[1:]
    assert by_file.data.tags["weights_file"].startswith("weights file")
    assert by_cell.data.tags["trained_by"] == training.run_id
    for run in (by_file, by_cell):
        assert run.data.metrics["mAP"] == pytest.approx(training.metrics["mAP"], abs=1e-4)
    # the evaluations report as a suite, cost columns included
    bench("report", "--suite", "trained-eval", "--out", "rep")
    table = Path("rep/trained-eval.md").read_text()
    assert "params (M)" in table and "GFLOPs/clip" in table and "infer clips/s" in table


def test_eval_on_another_dataset_needs_no_training(trained, monkeypatch):
    mlf, training = trained
    from bench.engine import trainer

    monkeypatch.setattr(trainer.Trainer, "fit", lambda *a: pytest.fail("trained again"))
    bench(
        "eval", training.run_id, "-d", "identities=12", "-d", "root=fx12", "--experiment", "cross"
    )
    (run,) = eval_runs(mlf, "cross")
    tags = run.data.tags
    assert tags["trained_by"] == training.run_id and tags["train_dataset"] == "fixture-video"
    assert run.info.run_name == "baseline/default/seed0 (fixture-video identities=12 root=fx12)"
    columns = read_artifact(mlf, run.info.run_id, PER_QUERY, read_per_query)
    assert len(columns["pid"]) == 6 and set(columns["pid"]) == set(range(6, 12))


def test_extract_writes_the_test_embeddings_with_their_ids(trained):
    mlf, training = trained
    bench("extract", training.run_id, "--out", "out/emb.npz")
    got = read_embeddings("out/emb.npz")
    split = build_dataset("fixture-video", {}, None).load_split(0)
    assert len(got) == len(split.query) + len(split.gallery) == 8
    assert got.emb["feat"].dtype == np.float32 and got.emb["feat"].shape[0] == 8
    for i in range(len(got)):
        role = "query" if got.ids["query"][i] >= 0 else "gallery"
        track = getattr(split, role)[got.ids[role][i]]
        assert (got.pid[i], got.camid[i], got.frames[i]) == (track.pid, track.camid, track.frames)
    assert (got.ids["train"] == -1).all() and got.about["trained_by"] == training.run_id
    # the embeddings rank as the run did: the nearest gallery item of each query
    feat = torch.from_numpy(got.emb["feat"])
    q, g = got.ids["query"] >= 0, got.ids["gallery"] >= 0
    dist = torch.cdist(
        torch.nn.functional.normalize(feat[q]), torch.nn.functional.normalize(feat[g])
    )
    top = read_artifact(mlf, training.run_id, PER_QUERY, read_per_query)["top"]
    gallery_ids = torch.from_numpy(got.ids["gallery"][g])
    assert gallery_ids[dist.argmin(1)].tolist() == top[:, 0].tolist()
    # the training tracklets, by their ids in the split's training order
    bench("extract", training.run_id, "--tracklets", "train", "--out", "out/train.npz")
    train = read_embeddings("out/train.npz")
    assert train.ids["train"].tolist() == list(range(len(split.train)))
    assert (train.ids["query"] == -1).all() and train.frames[0] == split.train[0].frames


def test_bad_sources_and_targets_are_one_line_errors(trained):
    _, training = trained
    assert "RUN: expected an MLflow run id" in bench_fails("eval", "nope")
    assert "give one of" in bench_fails("eval")
    assert "--weights: expected both" in bench_fails("eval", "--weights", "s.yaml")
    assert "unknown dataset 'nope'" in bench_fails("eval", training.run_id, "--dataset", "nope")
    assert "identities" in bench_fails("eval", training.run_id, "-d", "identities=x")
    assert "no run 0123" in bench_fails("eval", "0123456789abcdef0123456789abcdef")
    assert "--split: fixture-video has splits 0..0" in bench_fails(
        "eval", training.run_id, "--split", "3"
    )
    assert "--out: expected a .npz" in bench_fails("extract", training.run_id, "--out", "x.csv")
    assert "--device: expected auto" in bench_fails("eval", training.run_id, "--device", "gpu")
    assert "--cell: not a cell of s.yaml" in bench_fails("eval", "--suite", "s.yaml", "--cell", "x")


def border(png, x: int, y: int) -> tuple[int, int, int]:
    from PIL import Image

    with Image.open(png) as img:
        return img.convert("RGB").getpixel((x, y))


def test_show_ranks_draws_the_worst_queries_first_with_true_and_false_borders(trained):
    from bench.report import ranks

    mlf, training = trained
    bench("show", "ranks", training.run_id, "--queries", "3", "--top", "4", "--frames", "2")
    (out,) = Path("reports/ranks").iterdir()
    page = (out / "index.html").read_text()
    pngs = sorted(out.glob("query*.png"))
    assert len(pngs) == 3 and all(p.name in page for p in pngs)
    columns = read_artifact(mlf, training.run_id, PER_QUERY, read_per_query)
    worst = ranks.worst_queries(columns, 3)
    assert [p.name for p in pngs] == sorted(f"query{q:05d}.png" for q in worst)
    assert page.index(f"query{worst[0]:05d}") < page.index(f"query{worst[-1]:05d}")
    split = build_dataset("fixture-video", {}, None).load_split(0)
    w = ranks.THUMB[0] + 2 * ranks.BORDER
    for q in worst:
        for rank, g in enumerate(columns["top"][q][:4]):
            x = 2 * w + ranks.GAP + rank * w + 1
            kind, _ = ranks.match_kind(split.query[q], split.gallery[g])
            assert border(out / f"query{q:05d}.png", x, 15) == kind


def test_show_ranks_of_two_rows_shows_where_they_differ_most(trained):
    bench("show", "ranks", "trained", "baseline", "baseline/ce-only", "--out", "diff")
    page = Path("diff/index.html").read_text()
    assert "A = baseline/default/seed0 (fixture-video)" in page
    assert "B = baseline/ce-only/seed0 (fixture-video)" in page and "(A) vs" in page
    assert "expected RUN, or SUITE A B" in bench_fails("show", "ranks", "a", "b")
    shown = bench_fails("show", "ranks", "trained", "baseline", "iaunet")
    assert "B: expected a row of suite 'trained': " in shown and "(got 'iaunet/default')" in shown


def test_export_of_a_run_embeds_as_the_run_does(trained):
    import onnxruntime as ort

    from bench.engine.cost import dummy_batch
    from bench.engine.trained import from_run, rebuild

    mlf, training = trained
    bench("export", training.run_id, "--out", "model.onnx")
    trained_method = from_run(mlf, training.run_id)
    method, *_ = rebuild(trained_method, trained_method.cell, None, "cpu")
    clips = dummy_batch(2, 2, 32, 16)["clips"]
    (feat,) = ort.InferenceSession("model.onnx").run(["feat"], {"clips": clips.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(feat, method.embed(clips, {})["feat"].numpy(), atol=1e-4)
    assert "--out: expected a .onnx" in bench_fails("export", training.run_id, "--out", "m.pt")


def test_the_run_logs_an_mlflow_pytorch_model_ready_to_embed(trained, tmp_path):
    import mlflow.pytorch

    from bench.engine.cost import dummy_batch
    from bench.engine.trained import from_run, rebuild

    mlf, training = trained
    model = mlflow.pytorch.load_model(f"runs:/{training.run_id}/model", dst_path=str(tmp_path))
    reference = from_run(mlf, training.run_id)  # model.pt, weights_only
    method, *_ = rebuild(reference, reference.cell, None, "cpu")
    clips = dummy_batch(2, 2, 32, 16)["clips"]
    with torch.no_grad():
        torch.testing.assert_close(model.embed(clips, {}), method.embed(clips, {}))
    assert not model.training and type(model).__name__ == "Baseline"
