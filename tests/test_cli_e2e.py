"""The real CLI end to end on a tiny suite: run -> report -> tune -> run again (skipped)."""

import re

import optuna
import yaml
from click.testing import CliRunner

from bench.cli import cli

TINY = {
    "name": "tiny",
    "datasets": [
        {
            "name": "synthetic-video",
            "train_ids": 6,
            "test_ids": 4,
            "distractors": 2,
            "cameras": 2,
            "min_len": 4,
            "max_len": 6,
            "height": 32,
            "width": 16,
        }
    ],
    "methods": ["baseline"],
    "ablations": {"baseline": [{"name": "ce-only", "triplet": "none"}]},
    "seeds": [0, 1],
    "defaults": {
        "model": {"backbone": "resnet18"},
        "data": {"height": 32, "width": 16, "seq_len": 2, "p": 2, "k": 2},
        "train": {"epochs": 1},
    },
}


def invoke(*args):
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_run_report_tune_and_skip(in_tmp):
    (in_tmp / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    out = invoke("run", "tiny.yaml", "--dry-run")
    assert "4 cells" in out and "ce-only" in out

    out = invoke("run", "tiny.yaml", "--no-report")
    assert out.count("finished") == 4
    assert (in_tmp / "mlflow.db").is_file()

    out = invoke("report", "--table", "--suite", "tiny")
    table = (in_tmp / "reports" / "tiny.md").read_text()
    assert "| baseline | default" in table and "| baseline | ce-only" in table
    assert re.search(r"\d+\.\d ± \d+\.\d", table)  # mean ± std over the two seeds
    assert "**" in table  # the best of a column is bold
    assert (in_tmp / "reports" / "figures" / "tiny-synthetic-video-cmc.png").is_file()
    assert "synthetic-video R1" in out

    out = invoke(
        "tune",
        "baseline",
        "--trials",
        "2",
        "--suite",
        "tiny.yaml",
        "--storage",
        "sqlite:///optuna.db",
    )
    study = optuna.load_study(study_name="baseline-synthetic-video", storage="sqlite:///optuna.db")
    assert len(study.trials) == 2
    best = yaml.safe_load(
        (in_tmp / "reports" / "tune" / "baseline-synthetic-video.yaml").read_text()
    )
    assert set(best["method_config"]["baseline"]["train"]) == {"lr", "weight_decay"}

    # the same study continues where it stopped
    invoke("tune", "baseline", "--trials", "3", "--suite", "tiny.yaml")
    assert (
        len(
            optuna.load_study(
                study_name="baseline-synthetic-video", storage="sqlite:///optuna.db"
            ).trials
        )
        == 3
    )

    out = invoke("run", "tiny.yaml", "--no-report")
    assert out.count("skipped") == 4 and "finished" not in out

    # the tuned override is accepted by bench run (a new config, so it trains)
    out = invoke(
        "run",
        "tiny.yaml",
        "--no-report",
        "-O",
        "reports/tune/baseline-synthetic-video.yaml",
        "-o",
        "seeds=[0]",
        "-o",
        "ablations={}",
    )
    assert out.count("finished") == 1


def test_tune_scores_on_training_identities_only(in_tmp, monkeypatch):
    from bench.engine import cell as cell_module

    (in_tmp / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    seen = []
    original = cell_module.prepare_split

    def spy(cell, opts):
        split, aux = original(cell, opts)
        seen.append(split)
        return split, aux

    monkeypatch.setattr(cell_module, "prepare_split", spy)
    invoke(
        "tune", "baseline", "--trials", "1", "--suite", "tiny.yaml", "--storage", "sqlite:///o.db"
    )
    from bench.suite import build_dataset

    ds = build_dataset(
        "synthetic-video", {k: v for k, v in TINY["datasets"][0].items() if k != "name"}, None
    )
    test_ids = {t.pid for t in ds.load_split(0).query + ds.load_split(0).gallery}
    train_ids = {t.pid for t in ds.load_split(0).train}
    (split,) = seen
    scored = {t.pid for t in split.query + split.gallery}
    assert scored <= train_ids and not scored & test_ids
    assert not {t.pid for t in split.train} & scored


def test_user_errors_are_one_clear_line(in_tmp):
    (in_tmp / "bad.yaml").write_text(yaml.safe_dump({**TINY, "methods": ["baseline", "nope"]}))
    result = CliRunner().invoke(cli, ["run", "bad.yaml"])
    assert result.exit_code == 1
    assert "bad.yaml: methods[1]: unknown method 'nope'" in result.output
    assert "Traceback" not in result.output


def test_report_table_marks_missing_entries_and_bolds_the_best():
    import pandas as pd

    from bench.report import markdown_table

    rows = [
        ("baseline", "default", "a", 0, 10.0),
        ("baseline", "default", "a", 1, 20.0),
        ("x", "default", "a", 0, 30.0),
        ("x", "default", "b", 0, 5.0),
    ]
    df = pd.DataFrame(
        [
            {
                "tags.method": m,
                "tags.variant": v,
                "tags.dataset": d,
                "tags.seed": s,
                "metrics.R1": r1,
            }
            for m, v, d, s, r1 in rows
        ]
    )
    table = markdown_table(df)
    baseline, x = [
        line
        for line in table.splitlines()
        if line.startswith("| baseline") or line.startswith("| x")
    ]
    assert "15.0 ± 5.0" in baseline and "–" in baseline  # no run of baseline on dataset b
    assert "**30.0**" in x and "**5.0**" in x
