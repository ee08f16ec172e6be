"""The real CLI end to end on a tiny suite: run -> report -> tune -> run again (skipped)."""

import re

import optuna
import yaml
from click.testing import CliRunner

from bench.cli import cli
from bench.eval.per_query import PER_QUERY
from bench.files.artifacts import read_artifact

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
    check_statistics_and_exports(in_tmp, table)

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


def check_statistics_and_exports(root, table):
    """Per-query artifacts, the Δ column, bench compare, the four formats, failed cells and a
    hand-written reading that survives regeneration (on the runs of the test above)."""
    import csv

    from bench.engine.tracking import client

    mlf = client(None)
    exp = mlf.get_experiment_by_name("tiny")
    runs = mlf.search_runs([exp.experiment_id])
    # each run names its suite file; the report's first line reruns it (the commit's hash is
    # the checkout's, or 'unknown' outside a git work tree)
    assert {r.data.tags["suite_file"] for r in runs} == {"tiny.yaml"}
    assert re.match(
        r"# tiny\n\nReproduce: `bench run tiny.yaml && bench report --suite tiny` — commit "
        r"(\w{7}|unknown); on .+; 4 cells in .+ of wall time \(the first run's start to the last "
        r"run's end; .+ of cell time\)\.\n",
        table,
    )
    rows = read_artifact(
        mlf,
        runs[0].info.run_id,
        PER_QUERY,
        lambda path: list(csv.DictReader(path.read_text().splitlines())),
    )
    assert list(rows[0])[:5] == ["query", "pid", "camid", "first", "ap"] and len(rows) == 8

    assert "synthetic-video ΔR1" in table and "| ref " in table
    assert re.search(r"[+-]\d+\.\d \[[+-]\d+\.\d, [+-]\d+\.\d\]", table)  # B - A [lo, hi]
    assert "8 queries of 4 test identities" in table and "2 seed(s)" in table
    assert "Benjamini-Hochberg correction for" in table
    assert "protocol synthetic-per-camera" in table
    assert "The papers' numbers (directions only)" in table

    out = invoke("compare", "tiny.yaml", "baseline/default", "baseline/ce-only")
    lines = {line.split()[1]: line for line in out.splitlines() if line.startswith("synthetic")}
    assert set(lines) == {"R1", "R5", "R10", "R20", "mAP", "mINP"}
    assert re.search(r"\[[+-]\d+\.\d, [+-]\d+\.\d\]\s+[\d.]+", lines["mAP"])  # CI, p
    assert "Uncorrected: each of these 6 comparisons stands alone" in out
    bad = CliRunner().invoke(cli, ["compare", "tiny", "baseline", "stal"])
    assert bad.exit_code == 1 and "Error: B: expected a row of suite 'tiny'" in bad.output
    assert "(got 'stal/default')" in bad.output

    # a diverged cell: FAILED with its message, listed apart and never ranked
    failed = mlf.create_run(exp.experiment_id, run_name="synthetic-video/baseline/lr1e6/seed0")
    tags = {"config_hash": "f" * 16, "suite": "tiny", "dataset": "synthetic-video",
            "method": "baseline", "variant": "lr1e6", "seed": "0",
            "error": "non-finite loss at epoch 1, step 1 (ce=nan)"}  # fmt: skip
    for key, value in tags.items():
        mlf.set_tag(failed.info.run_id, key, value)
    mlf.set_terminated(failed.info.run_id, status="FAILED")

    report = root / "reports" / "tiny.md"
    report.write_text(report.read_text() + "\n## Reading\n\nHand-written.\n")
    invoke("report", "--suite", "tiny", *[f"--format={f}" for f in ("md", "latex", "csv", "html")])
    text = report.read_text()
    assert text.count("Hand-written.") == 1
    head, failed_part = text.split("## Failed cells")
    assert (
        "lr1e6" not in head and "| synthetic-video/baseline/lr1e6/seed0 | non-finite" in failed_part
    )
    tex = (root / "reports" / "tiny.tex").read_text()
    assert r"\toprule" in tex and r"$\pm$" in tex and r"\textbf{" in tex and "[$" in tex
    with open(root / "reports" / "tiny.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len({r["run_id"] for r in rows}) == 4 and {"R1", "mAP"} <= {r["metric"] for r in rows}
    page = (root / "reports" / "tiny.html").read_text()
    assert page.count("data:image/png;base64,") == 1 and 'src="figures' not in page
    assert "Hand-written." in page and "non-finite loss" in page


def test_tune_scores_on_training_identities_only(in_tmp, monkeypatch):
    from bench.engine import cell as cell_module

    (in_tmp / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    seen = []
    original = cell_module.cell_data

    def spy(cell, data_root):
        data = original(cell, data_root)
        seen.append(data)
        return data

    monkeypatch.setattr(cell_module, "cell_data", spy)
    invoke(
        "tune", "baseline", "--trials", "1", "--suite", "tiny.yaml", "--storage", "sqlite:///o.db"
    )
    from bench.data.build import build_dataset

    ds = build_dataset(
        "synthetic-video", {k: v for k, v in TINY["datasets"][0].items() if k != "name"}, None
    )
    test_ids = {t.pid for t in ds.load_split(0).query + ds.load_split(0).gallery}
    train_ids = {t.pid for t in ds.load_split(0).train}
    (data,) = seen
    scored = {t.pid for t in data.validation.query + data.validation.gallery}
    assert scored <= train_ids and not scored & test_ids
    assert not {t.pid for t in data.split.train} & scored
    import mlflow

    trials = mlflow.search_runs(search_all_experiments=True, filter_string="tags.tune_trial = '0'")
    assert len(trials) == 1 and (trials["metrics.val.mAP"] >= 0).all()
    assert "metrics.mAP" not in trials  # never scored on the test split


def test_user_errors_are_one_clear_line(in_tmp):
    (in_tmp / "bad.yaml").write_text(yaml.safe_dump({**TINY, "methods": ["baseline", "nope"]}))
    result = CliRunner().invoke(cli, ["run", "bad.yaml"])
    assert result.exit_code == 1
    assert "bad.yaml: methods[1]: unknown method 'nope'" in result.output
    assert "Traceback" not in result.output


def test_report_table_marks_missing_entries_and_bolds_the_best():
    import pandas as pd

    from bench.report.table import markdown_table

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
    # 10 and 20: sample std (ddof 1) 7.1; no run of baseline on dataset b
    assert "15.0 ± 7.1" in baseline and "–" in baseline
    assert "**30.0**" in x and "**5.0**" in x
