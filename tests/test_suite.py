"""Suite validation errors, overrides, grid expansion and config hashing."""

import pytest
import yaml

from bench.errors import ConfigError
from bench.suite.load import load_suite, set_path
from bench.suite.yaml import deep_merge

BASE = {
    "name": "t",
    "datasets": ["fixture-video"],
    "methods": ["baseline"],
    "seeds": [0],
    "defaults": {"model": {"backbone": "resnet18"}, "train": {"epochs": 1}},
}


def write(tmp_path, content) -> str:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(content))
    return str(path)


@pytest.mark.parametrize(
    ("patch", "where", "what"),
    [
        ({"defaults": {"train": {"epochs": "many"}}}, "defaults.train.epochs", "integer"),
        ({"defaults": {"data": {"hieght": 3}}}, "defaults.data.hieght", "unknown key"),
        ({"colour": 1}, "colour", "unknown key"),
        ({"methods": ["nope"]}, "methods[0]", "unknown method 'nope'"),
        ({"datasets": ["nope"]}, "datasets[0]", "unknown dataset 'nope'"),
        ({"defaults": {"model": {"backbone": "resnet99"}}}, "defaults.model.backbone", "timm"),
        ({"ablations": {"stal": [{"name": "x"}]}}, "ablations.stal", "not in this suite"),
        (
            {"ablations": {"baseline": [{"name": "x", "margn": 1}]}},
            "ablations.baseline[0]",
            "margn: unknown key",
        ),
        (
            {"ablations": {"baseline": [{"name": "x"}, {"name": "x"}]}},
            "ablations.baseline[1].name",
            "unique",
        ),
        (
            {"ablations": {"baseline": [{"name": "x", "train": {"lr": -1}}]}},
            "ablations.baseline[0]",
            "train.lr",
        ),
        (
            {"datasets": [{"name": "fixture-video", "frames": "x"}]},
            "dataset fixture-video",
            "frames",
        ),
        ({"seeds": "zero"}, "seeds", "list"),
        ({"report": {"reference": "stal/default"}}, "report.reference", "baseline/default"),
        ({"report": {"reference": "baseline/nope"}}, "report.reference", "got 'baseline/nope'"),
        ({"report": {"reference": "a b"}}, "report.reference", "pattern"),
        ({"report": {"refrence": "baseline"}}, "report.refrence", "unknown key"),
        ({"method_config": {"baseline": {"eval": True}}}, "method_config.baseline", "eval:"),
        (
            {"datasets": [{"name": "fixture-video", "rows": ["baseline/nope"]}]},
            "datasets[0].rows[0]",
            "got 'baseline/nope'",
        ),
        ({"datasets": [{"name": "fixture-video", "rows": ["stal"]}]}, "rows[0]", "a method"),
        ({"datasets": [{"name": "fixture-video", "rows": []}]}, "rows", "at least one row"),
        (
            {
                "datasets": [
                    {
                        "train": {"name": "fixture-video", "rows": ["baseline"]},
                        "test": "fixture-image",
                    }
                ]
            },
            "datasets[0].train",
            "not on one side",
        ),
    ],
)
def test_errors_name_file_key_and_expectation(tmp_path, patch, where, what):
    path = write(tmp_path, deep_merge(BASE, patch))
    with pytest.raises(ConfigError) as err:
        load_suite(path)
    message = str(err.value)
    assert message.startswith(path) and where in message and what in message


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such suite file"):
        load_suite(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_suite(bad)


def test_command_line_overrides_go_under_defaults_unless_rooted(tmp_path):
    suite = load_suite(write(tmp_path, BASE), ["train.epochs=3", "seeds=[4, 5]"])
    cells = suite.cells
    assert [c.seed for c in cells] == [4, 5]
    assert all(c.sections.train.epochs == 3 for c in cells)
    tree = {}
    set_path(tree, "data.p", 4)
    assert tree == {"defaults": {"data": {"p": 4}}}


def test_override_file_is_merged(tmp_path):
    patch = tmp_path / "best.yaml"
    patch.write_text(
        yaml.safe_dump(
            {"method_config": {"baseline": {"triplet_margin": 0.7, "train": {"lr": 0.01}}}}
        )
    )
    (cell,) = load_suite(write(tmp_path, BASE), override_files=[str(patch)]).cells
    assert cell.method_config.triplet_margin == 0.7 and cell.sections.train.lr == 0.01


def test_grid_expands_datasets_methods_variants_seeds(tmp_path):
    suite = deep_merge(
        BASE,
        {
            "seeds": [0, 1],
            "method_config": {"baseline": {"data": {"seq_len": 3}}},
            "ablations": {
                "baseline": [
                    {"name": "ce-only", "triplet": "none"},
                    {"name": "T2", "data": {"seq_len": 2}},
                ]
            },
        },
    )
    cells = load_suite(write(tmp_path, suite)).cells
    assert [(c.variant, c.seed) for c in cells] == [
        ("default", 0),
        ("default", 1),
        ("ce-only", 0),
        ("ce-only", 1),
        ("T2", 0),
        ("T2", 1),
    ]
    by = {c.variant: c for c in cells if c.seed == 0}
    assert by["ce-only"].method_config.triplet == "none"
    assert by["ce-only"].sections.data.seq_len == 3  # method_config applies to all variants
    assert by["T2"].sections.data.seq_len == 2  # the variant wins over method_config


def test_dataset_entry_runs_only_its_rows(tmp_path):
    ablations = {
        "baseline": [{"name": "ce-only", "triplet": "none"}, {"name": "x", "triplet_margin": 1}]
    }
    datasets = [
        "fixture-video",
        {"name": "fixture-video", "label": "few", "rows": ["baseline/x"]},
        {"name": "fixture-video", "label": "all", "rows": ["baseline"]},
    ]
    suite = deep_merge(BASE, {"ablations": ablations, "datasets": datasets})
    cells = load_suite(write(tmp_path, suite)).cells
    shown = [(c.shown_dataset, c.variant) for c in cells]
    every = ["default", "ce-only", "x"]
    assert shown == [
        *(("fixture-video", v) for v in every),
        ("few", "x"),
        *(("all", v) for v in every),
    ]


def test_config_hash_tracks_results_not_bookkeeping(tmp_path):
    (a,) = load_suite(write(tmp_path, BASE)).cells
    (b,) = load_suite(write(tmp_path, BASE), ["data.workers=2", "eval.batch_size=5"]).cells
    (c,) = load_suite(write(tmp_path, BASE), ["train.lr=0.01"]).cells
    (d,) = load_suite(write(tmp_path, deep_merge(BASE, {"name": "other"}))).cells
    assert a.config_hash == b.config_hash == d.config_hash
    assert a.config_hash != c.config_hash
    assert len(a.config_hash) == 16


def test_eval_chunk_size_is_bookkeeping_and_rerank_is_a_result(tmp_path):
    (a,) = load_suite(write(tmp_path, BASE)).cells
    (b,) = load_suite(write(tmp_path, BASE), ["eval.chunk_size=64"]).cells
    rerank = deep_merge(
        BASE, {"defaults": {"eval": {"rerank": {"k1": 20, "k2": 6, "lambda": 0.3}}}}
    )
    (c,) = load_suite(write(tmp_path, rerank)).cells
    assert a.config_hash == b.config_hash != c.config_hash
    assert c.sections.eval.rerank.lambda_ == 0.3
