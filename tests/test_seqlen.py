"""STAL's sequence-length study: seeded random frames, padding, draws, pooled vs clip path."""

from __future__ import annotations

import random

import pytest
import torch
import yaml

from bench.config import DataConfig, EvalConfig, ModelConfig
from bench.data.build import build_dataset
from bench.engine.evaluator import _unique, extract, score_embeddings
from bench.engine.seqlen import (
    clip_embedder,
    draw_frames,
    drawn,
    frame_pooler,
    sequence_length_study,
)
from bench.eval.distance import euclidean
from bench.files.artifacts import artifact_yaml
from bench.method import Method
from bench.suite.load import load_suite
from methods.baseline import Baseline, BaselineConfig
from methods.stal import STAL, STALConfig

DATA = DataConfig(height=32, width=16, seq_len=2, p=2, k=2)
RESNET = ModelConfig(backbone="resnet18")


class FrameColour(Method):
    """Per-frame mean colour of the top and bottom halves (B, 6), averaged over frames: the
    fixture identities' signal, frame-separable, no weights."""

    frame_separable = True

    def embed(self, clips: torch.Tensor, aux) -> dict[str, torch.Tensor]:
        halves = clips.unflatten(3, (2, -1)).mean((4, 5))  # (B, T, 3, 2)
        return {"feat": halves.flatten(2).mean(1)}

    def distance(self, query, gallery) -> torch.Tensor:
        return euclidean(query["feat"], gallery["feat"])


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    ds = build_dataset("fixture-video", {"identities": 16}, str(tmp_path_factory.mktemp("data")))
    ds.prepare()
    return ds.load_split(0)


def colour(separable: bool = True) -> FrameColour:
    method = FrameColour(None, RESNET, DATA, 1)
    method.frame_separable = separable
    return method


def study(method, split, seed=0, **ev):
    ev = EvalConfig(**{"seq_lengths": [1, 8, 0], "seq_length_draws": 3, **ev})
    return sequence_length_study(method, split, DATA, ev, frozenset(), seed)


def test_draws_are_seeded_sorted_distinct_and_differ_between_draws():
    counts = [30, 12, 9]
    assert drawn(counts, 4, seed=0, draw=1) == drawn(counts, 4, seed=0, draw=1)
    assert drawn(counts, 4, seed=0, draw=1) != drawn(counts, 4, seed=0, draw=2)
    assert drawn(counts, 4, seed=0, draw=1) != drawn(counts, 4, seed=1, draw=1)
    for picks, n in zip(drawn(counts, 4, 0, 0), counts, strict=True):
        assert picks == sorted(set(picks)) and len(picks) == 4 and max(picks) < n
    assert drawn(counts, 0, 0, 0) == [list(range(n)) for n in counts]  # 0 = all frames


def test_a_short_tracklet_is_padded_with_its_own_random_frames():
    picks = draw_frames(2, 5, random.Random(3))
    assert len(picks) == 5 and set(picks) == {0, 1} and picks == sorted(picks)
    assert draw_frames(2, 5, random.Random(3)) == picks
    paddings = {tuple(draw_frames(2, 5, random.Random(s))) for s in range(20)}
    assert len(paddings) > 1  # which frames pad is drawn, not fixed


def test_the_grid_is_the_mean_and_std_over_the_stated_draws(split):
    result = study(colour(), split)
    assert result.draws == 3 and len(result.per_draw) == 3
    ones = [grid[(1, 1)] for grid in result.per_draw]
    assert len(set(ones)) > 1  # one random frame per tracklet: draws differ
    assert result.mean[(1, 1)] == pytest.approx(sum(ones) / 3)
    assert result.std[(1, 1)] == pytest.approx(torch.tensor(ones).std().item())
    assert result.std[(0, 0)] == 0  # all frames: nothing random
    metrics = result.metrics()
    assert metrics["seqlen.draws"] == 3 and metrics["seqlen.R1.q1.g1"] == result.mean[(1, 1)]
    assert metrics["seqlen.R1_std.q1.g1"] == result.std[(1, 1)]
    assert metrics["seqlen.R1.qall.g8"] == result.mean[(0, 8)]
    again = study(colour(), split)
    assert again.per_draw == result.per_draw  # same seed, same numbers
    assert study(colour(), split, seed=1).per_draw != result.per_draw


def test_pooled_frames_give_what_embedding_every_drawn_clip_gives(split):
    tracks, ev, method = _unique(split), EvalConfig(batch_size=3), colour()
    counts = [len(t.frames) for t in tracks]
    pooled = frame_pooler(method, tracks, counts, DATA, ev, frozenset())
    clips = clip_embedder(method, tracks, DATA, ev, frozenset())
    for length in (1, 3, 8, 0):  # 8 pads the 5-frame tracklets
        picks = drawn(counts, length, seed=0, draw=1)
        want = clips(picks, "clips")["feat"]
        torch.testing.assert_close(pooled(picks, "pooled")["feat"], want, rtol=1e-5, atol=1e-6)
    a, b = study(colour(), split), study(colour(separable=False), split)
    assert [a.mean[k] for k in a.mean] == pytest.approx([b.mean[k] for k in a.mean])


def test_length_zero_is_the_whole_tracklet_evaluation(split):
    for method in (colour(), colour(separable=False)):
        full = extract(method, _unique(split), DATA, EvalConfig(), frozenset(), length=0)
        r1 = score_embeddings(method, split, full, full)["R1"]
        assert study(method, split, seq_lengths=[0], seq_length_draws=2).mean[(0, 0)] == r1


@pytest.mark.parametrize(
    "method",
    [
        lambda: STAL(STALConfig(local_dim=8, roi_size=2), RESNET, DATA, 2),
        lambda: Baseline(BaselineConfig(), RESNET, DATA, 2),
    ],
    ids=["stal", "baseline"],
)
def test_frame_separable_methods_embed_a_clip_as_the_pool_of_its_frames(method):
    torch.manual_seed(0)
    model = method().eval()
    frames = torch.randn(1, 3, 3, 32, 16)
    picks = [2, 0, 2, 1]  # padded with a repeated frame
    kp = torch.rand(1, 3, 14, 3) * torch.tensor([16.0, 32.0, 1.0])
    with torch.no_grad():
        whole = model.embed(frames[:, picks], {"keypoints": kp[:, picks]})
        per_frame = model.embed(frames[0, picks].unsqueeze(1), {"keypoints": kp[0, picks, None]})
        pooled = model.aggregate(per_frame, torch.zeros(4, dtype=torch.long), 1, False)
    assert whole.keys() == pooled.keys()
    for key in whole:
        torch.testing.assert_close(pooled[key], whole[key], rtol=1e-4, atol=1e-5)


def test_a_cell_logs_the_study_and_the_report_states_the_draws(in_tmp):
    from test_engine import SUITE

    from bench.engine.cell import RunOptions, run_cell
    from bench.engine.tracking import client, experiment_id
    from bench.report.export import make_figures
    from bench.report.table import Report, load_runs, seqlen_caption, seqlen_grids

    train = {"epochs": 1, "max_steps_per_epoch": 1}
    evaluation = {"seq_lengths": [1, 0], "seq_length_draws": 2}
    suite = {**SUITE, "name": "seqlen"}
    suite["defaults"] = {**SUITE["defaults"], "train": train, "eval": evaluation}
    (in_tmp / "s.yaml").write_text(yaml.safe_dump(suite))
    (cell,) = load_suite(in_tmp / "s.yaml").cells
    mlf = client()
    run = run_cell(mlf, experiment_id(mlf, "seqlen"), cell, RunOptions(force=True))
    assert run.metrics["seqlen.draws"] == 2
    assert {"seqlen.R1.q1.g1", "seqlen.R1_std.q1.g1", "seqlen.R1.qall.gall"} <= set(run.metrics)
    rows = artifact_yaml(mlf, run.run_id, "seqlen.yaml")
    assert {(r["probe"], r["gallery"]) for r in rows} == {(1, 1), (1, 0), (0, 1), (0, 0)}
    assert all(len(r["R1_draws"]) == 2 for r in rows)
    df = load_runs(mlf, "seqlen")
    assert seqlen_grids(df)[("fixture-video", "baseline")][(1, 1)] == run.metrics["seqlen.R1.q1.g1"]
    short, caption = seqlen_caption(df, "fixture-video", "baseline")
    assert short == "mean of 2 draws, 1 run" and "2 draws of L random frames" in caption
    report = Report(name="seqlen", results=None, reference=("baseline", "default"), runs=df)
    make_figures(mlf, report, in_tmp)
    (title,) = [t for t, _ in report.figures if t.startswith("sequence lengths")]
    assert "mean over 2 draws" in title
