"""Cross-dataset cells (bench/suite/cross.py): validation, splits, hashes, data, report, CLI."""

from __future__ import annotations

import csv

import pytest
import yaml
from click.testing import CliRunner
from fixtures import real_layouts as fx

from bench.data.cell_data import load_cell_data
from bench.errors import BenchError, ConfigError
from bench.eval.per_query import PER_QUERY
from bench.files.artifacts import read_artifact
from bench.registry import DATASETS
from bench.report.table import build_table
from bench.suite.load import load_suite
from bench.suite.yaml import deep_merge

BASE = {
    "name": "x",
    "datasets": ["fixture-video"],
    "methods": ["baseline"],
    "defaults": {"model": {"backbone": "resnet18"}, "data": {"p": 2, "k": 2}},
}
FIX6 = {"name": "fixture-video", "identities": 6}


def suite_file(tmp_path, datasets, **patch) -> str:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(deep_merge({**BASE, "datasets": datasets}, patch)))
    return str(path)


@pytest.mark.parametrize(
    ("entry", "where", "what"),
    [
        ({"train": "nope", "test": FIX6}, "datasets[0].train", "unknown dataset 'nope'"),
        ({"train": "fixture-video", "test": "nope"}, "datasets[0].test", "unknown dataset"),
        ({"train": "fixture-video"}, "datasets[0].test", "Field required"),
        ({"test": "fixture-video", "label": "a"}, "datasets[0].train", "Field required"),
        ({"train": "fixture-video", "test": FIX6, "tset": 1}, "datasets[0].tset", "unknown key"),
        ({"train": {"identities": 6}, "test": FIX6}, "datasets[0].train.name", "required"),
        (
            {"train": "fixture-video", "test": {**FIX6, "framez": 2}},
            "datasets[0].test.framez",
            "unknown key",
        ),
        (
            {"train": {"name": "synthetic-video", "polluted": "maybe"}, "test": "synthetic-video"},
            "datasets[0].train.polluted",
            "boolean",
        ),
        (
            {"train": "synthetic-image", "test": "synthetic-video"},
            "datasets[0]",
            "train side 'synthetic-image' is image data and test side 'synthetic-video' video",
        ),
        (
            {"train": "fixture-video", "test": {"name": "fixture-video", "root": "elsewhere"}},
            "datasets[0]",
            "not a cross-dataset cell",
        ),
        (
            {"train": "fixture-video", "test": {**FIX6, "splits": [3]}},
            "datasets[0].test.splits",
            "expected distinct split numbers in 0..0",
        ),
        (
            {"train": {**FIX6, "splits": [0]}, "test": "fixture-video"},
            "datasets[0].train.splits",
            "set splits under test",
        ),
    ],
)
def test_bad_cross_entries_are_one_line_naming_the_key(tmp_path, entry, where, what):
    path = suite_file(tmp_path, [entry])
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {where}") and what in message, message
    assert "\n" not in message


def test_two_cross_entries_need_distinct_names(tmp_path):
    entry = {"train": "fixture-video", "test": FIX6}
    with pytest.raises(ConfigError, match=r"datasets\[1\]: expected distinct datasets"):
        load_suite(suite_file(tmp_path, [entry, entry]))
    cells = load_suite(suite_file(tmp_path, [entry, {**entry, "label": "again"}])).cells
    assert [c.shown_dataset for c in cells] == ["fixture-video→fixture-video", "again"]


def test_hashes_see_both_sides_and_training_hashes_as_the_source(tmp_path):
    cross = {"train": "fixture-video", "test": FIX6, "label": "to6"}
    six = {**FIX6, "label": "six"}
    plain, to6, target = load_suite(suite_file(tmp_path, ["fixture-video", cross, six])).cells
    assert to6.dataset_name == "fixture-video→fixture-video" and to6.shown_dataset == "to6"
    assert to6.trained_on() == plain.trained_on()
    assert len({plain.config_hash, to6.config_hash, target.config_hash}) == 3
    assert to6.train_hash == plain.train_hash != target.train_hash
    resolved = to6.resolved()
    assert resolved["dataset"]["identities"] == 6 and resolved["train_dataset"]["identities"] == 8
    assert "train_dataset" not in plain.resolved()  # plain cells hash as before
    smaller = {**cross, "train": {**FIX6, "identities": 4}}
    (other,) = load_suite(suite_file(tmp_path, [smaller])).cells
    assert other.train_hash != to6.train_hash


def fixture(identities: int, data_root: str):
    cls = DATASETS.get("fixture-video")
    return cls(cls.Options(identities=identities), data_root)


def test_cross_split_trains_on_the_source_train_split_and_tests_on_the_target_test_split(
    tmp_path,
):
    """One dataset under two options: pids are the same persons on both sides."""
    data = str(tmp_path / "data")
    entry = {"train": FIX6, "test": {"name": "fixture-video", "identities": 8}}
    (cell,) = load_suite(suite_file(tmp_path, [entry]), data_root=data).cells
    got = load_cell_data(cell.tested_on, cell.trained_on(), cell.label, data)
    split, aux = got.split, got.available
    source, target = (fixture(n, data).load_split(0) for n in (6, 8))
    assert split.train == source.train  # pids 0..2
    assert (split.query, split.gallery) == (target.query, target.gallery)  # pids 4..7
    assert {t.pid for t in split.train}.isdisjoint({t.pid for t in split.query + split.gallery})
    assert aux == {"part_masks", "keypoints"}
    # the other way round, the source's training ids 0..3 include the target's test id 3
    leaky = {"train": {"name": "fixture-video", "identities": 8}, "test": FIX6}
    (cell,) = load_suite(suite_file(tmp_path, [leaky]), data_root=data).cells
    with pytest.raises(BenchError, match=r"1 training identities .* test identities .*pids 3\)"):
        load_cell_data(cell.tested_on, cell.trained_on(), cell.label, data)


def test_paper_numbers_match_the_cross_dataset_name():
    import pandas as pd

    df = pd.DataFrame(
        [
            {
                "tags.method": "stal",
                "tags.variant": "default",
                "tags.dataset": shown,
                "tags.dataset_name": "ilids-vid→prid2011",
                "tags.seed": "0",
                "metrics.R1": 50.0,
            }
            for shown in ("ilids-vid→prid2011", "my label")
        ]
    )
    table = build_table(df, papers=True)
    row = dict(zip(table.header, table.rows[0], strict=True))
    # the runs carry no backbone or input size: the paper's settings are named in the cell
    assert row["ilids-vid→prid2011 R1 (paper)"] == row["my label R1 (paper)"]
    assert row["my label R1 (paper)"].startswith("63.7 (googlenet, 224x224")


# --- real layouts ------------------------------------------------------------------------------


@pytest.fixture
def real_root(tmp_path):
    root = tmp_path / "data"
    fx.build_ilids(root / "iLIDS-VID")
    fx.build_prid(root / "prid_2011")
    return root


PRID = {"name": "prid2011", "min_frames": 3}  # persons 1, 2, 4, 5, 6: 10 splits of 3 / 2


def test_split_i_trains_on_the_source_split_i_and_aux_is_what_both_sides_give(tmp_path, real_root):
    entry = {"train": "ilids-vid", "test": {**PRID, "splits": [0, 3]}}
    cells = load_suite(suite_file(tmp_path, [entry]), data_root=str(real_root)).cells
    assert [(c.split, c.train_side.split) for c in cells] == [(0, 0), (3, 3)]
    assert all(c.train_side.aux is None for c in cells)  # neither side has aux inputs
    # a single-split source trains once for every target split; fewer aux inputs on the
    # test side change the training, and its hash says so
    entry = {"train": "fixture-video", "test": {**PRID, "splits": [1, 2]}}
    one, two = load_suite(suite_file(tmp_path, [entry]), data_root=str(real_root)).cells
    (plain,) = load_suite(suite_file(tmp_path, ["fixture-video"])).cells
    assert (one.train_side.split, two.train_side.split) == (0, 0)
    assert one.train_side.aux == () and one.resolved()["train_aux"] == []
    assert one.train_hash == two.train_hash != plain.train_hash


def test_batch_identities_are_checked_against_the_train_side(tmp_path, real_root):
    entry = {"train": "ilids-vid", "test": PRID}  # 3 training persons in iLIDS-VID, 3 in PRID
    path = suite_file(tmp_path, [entry], defaults={"data": {"p": 4}})
    with pytest.raises(ConfigError, match="defaults.data.p: .*'ilids-vid' split 0 has 3 train"):
        load_suite(path, data_root=str(real_root))


def run_cli(*args: str) -> str:
    from bench.cli import cli

    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_ilidsvid_to_prid2011_end_to_end(in_tmp, real_root):
    """Through the CLI: the cross cells finish, reuse the iLIDS-VID cells' weights, score
    PRID's queries and are reported as ilids-vid→prid2011."""
    from bench.engine.tracking import client

    suite = deep_merge(
        BASE,
        {
            "name": "cross",
            "datasets": [
                {"name": "ilids-vid", "splits": [1]},
                {"train": "ilids-vid", "test": {**PRID, "splits": [1]}},
            ],
            "defaults": {
                "data": {"height": 32, "width": 16, "seq_len": 2},
                "train": {"epochs": 1, "max_steps_per_epoch": 1},
            },
        },
    )
    (in_tmp / "cross.yaml").write_text(yaml.safe_dump(suite))
    out = run_cli("run", "cross.yaml", "--data-root", str(real_root), "--no-report")
    assert out.count("finished") == 2, out
    mlf = client()
    exp = mlf.get_experiment_by_name("cross")
    runs = mlf.search_runs([exp.experiment_id])
    assert {r.info.status for r in runs} == {"FINISHED"}
    own = {r.data.tags["split"]: r for r in runs if r.data.tags["dataset"] == "ilids-vid"}
    cross = [r for r in runs if r.data.tags["dataset"] == "ilids-vid→prid2011"]
    prid = DATASETS.get("prid2011")(DATASETS.get("prid2011").Options(min_frames=3), str(real_root))
    for run in cross:
        tags, split = run.data.tags, int(run.data.tags["split"])
        assert (tags["train_dataset"], tags["test_dataset"]) == ("ilids-vid", "prid2011")
        assert tags["train_split"] == tags["split"] and tags["protocol"].startswith("prid2011/")
        assert tags["weights_from"] == own[tags["split"]].info.run_id  # trained once
        assert run.data.params["train_dataset.name"] == "ilids-vid"
        rows = read_artifact(
            mlf,
            run.info.run_id,
            PER_QUERY,
            lambda path: list(csv.DictReader(path.read_text().splitlines())),
        )
        test = prid.load_split(split).query
        assert [(int(r["pid"]), int(r["camid"])) for r in rows] == [(t.pid, 0) for t in test]
    run_cli("report", "--suite", "cross")
    table = (in_tmp / "reports" / "cross.md").read_text()
    assert "ilids-vid→prid2011 R1" in table
    assert "ilids-vid→prid2011: trained on the training split of ilids-vid, tested on" in table
    assert "prid2011/seed-0; 2 queries of 2 test identities; 1 seed(s)" in table  # PRID's
    assert (in_tmp / "reports" / "figures" / "cross-ilids-vid-to-prid2011-cmc.png").is_file()
    status = run_cli("status", "cross.yaml", "--data-root", str(real_root))
    assert "ilids-vid→prid2011/split1/baseline/default/seed0" in status and "finished" in status


def test_cross_suite_pairs_each_ilidsvid_split_with_the_prid_split(monkeypatch, real_root):
    """suites/cross.yaml (STAL's Table VI), with the fixture's short PRID sequences."""
    from pathlib import Path

    monkeypatch.setenv("BENCH_DATA_ROOT", str(real_root))
    monkeypatch.setattr("bench.suite.checks.check_datasets", lambda *args: None)  # P > fixture ids
    path = Path(__file__).parent.parent / "suites" / "cross.yaml"
    short = "datasets=[ilids-vid, {train: ilids-vid, test: {name: prid2011, min_frames: 3}}]"
    cells = load_suite(path, [short]).cells
    own = {(c.split, c.method): c for c in cells if c.train_side is None}
    cross = [c for c in cells if c.train_side is not None]
    assert len(own) == len(cross) == 20  # 10 splits x baseline, stal
    for cell in cross:
        assert cell.shown_dataset == "ilids-vid→prid2011" and cell.train_side.split == cell.split
        assert cell.train_hash == own[(cell.split, cell.method)].train_hash
