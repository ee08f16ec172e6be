"""The stress report (gains over the controls and probes by nuisance level) and `bench show
attention`, from tables of runs and, end to end, from a tiny stress suite's real runs."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from PIL import Image

from bench.cli import cli
from bench.data.synthetic import GeneratorConfig
from bench.report.export import stress_figures, to_markdown_page
from bench.report.probes import probe_table
from bench.report.render import Interval, Table, to_markdown
from bench.report.stats import Difference
from bench.report.stress import find_sweeps, gain_series, probe_series, stress_table
from bench.report.table import Report

DEFAULTS = {k: str(v) for k, v in GeneratorConfig().model_dump().items()}
DATASETS = {
    "today": {},
    "occlusion-0": {"occlusion_rate": "0.0"},
    "occlusion-0.8": {"occlusion_rate": "0.8"},
    "misdetection-0.25": {"misdetection_rate": "0.25"},
    "both": {"occlusion_rate": "0.8", "misdetection_rate": "0.25"},  # two at once: no level
    "other-test-set": {"test_ids": "20", "clutter": "3.0"},  # another base, without today
}


def stress_runs(datasets: dict[str, dict] = DATASETS) -> pd.DataFrame:
    """Three seeds of stal/default and stal/control on each dataset, with their options as
    MLflow params and a probe that grows with the occlusion rate."""
    rows = []
    for label, changes in datasets.items():
        options = {**DEFAULTS, "name": "synthetic-video", **changes}
        for variant in ("default", "control"):
            for seed in range(3):
                row = {
                    "tags.dataset": label,
                    "tags.method": "stal",
                    "tags.variant": variant,
                    "tags.seed": str(seed),
                    "metrics.R1": 50.0,
                    **{f"params.dataset.{k}": v for k, v in options.items()},
                }
                if variant == "default":
                    row["metrics.probe.stal.visibility_rank_corr"] = (
                        float(options["occlusion_rate"]) + 0.01 * seed
                    )
                rows.append(row)
    return pd.DataFrame(rows)


def gains_of(datasets) -> dict:
    """A gain over the control that grows with the occlusion rate, its interval +- 2."""
    out = {}
    for label, changes in datasets.items():
        gain = 10 * float(changes.get("occlusion_rate", 0.3))
        d = Difference("R1", gain, gain - 2, gain + 2, 0.01, 1, 1, 3, q=0.01)  # discovered
        out[(label, "stal")] = {"R1": d}
    return out


def test_sweeps_are_found_from_the_logged_options_one_nuisance_at_a_time():
    sweeps = {s.nuisance: s for s in find_sweeps(stress_runs())}
    assert set(sweeps) == {"occlusion_rate", "misdetection_rate"}
    assert sweeps["occlusion_rate"].levels == (
        (0.0, "occlusion-0"),
        (0.3, "today"),
        (0.8, "occlusion-0.8"),
    )
    assert sweeps["misdetection_rate"].levels == ((0.06, "today"), (0.25, "misdetection-0.25"))
    assert sweeps["misdetection_rate"].today == 0.06
    assert find_sweeps(stress_runs({"today": {}})) == []  # the main job: no sweep
    real = stress_runs({"today": {}}).drop(columns=["params.dataset.clutter"])
    assert find_sweeps(real) == []  # datasets without the nuisance options


def test_stress_table_gives_gains_with_intervals_and_probes_per_level():
    df = stress_runs()
    sweeps = find_sweeps(df)
    table = stress_table(sweeps, gains_of(DATASETS), df, ["R1"])
    occlusion = [row for row in table.rows if row[0] == "occlusion_rate"]
    assert [row[1] for row in occlusion] == ["0", "0.3 (today)", "0.8"]
    assert occlusion[2][3] == Interval(8.0, 6.0, 10.0, True)
    assert occlusion[2][4] == "stal.visibility_rank_corr 0.810 ± 0.010"
    assert occlusion[2][5] is None  # the control has no probe
    text = to_markdown(table)
    assert "ΔR1 to its control" in text and "+8.0 [+6.0, +10.0] †" in text
    assert stress_table([], {}, df, ["R1"]) is None


def test_series_for_the_figures_follow_the_levels():
    df = stress_runs()
    sweep = next(s for s in find_sweeps(df) if s.nuisance == "occlusion_rate")
    gains = gain_series(sweep, gains_of(DATASETS), "R1")
    assert gains == {"stal": [(0.0, 0.0, -2.0, 2.0), (0.3, 3.0, 1.0, 5.0), (0.8, 8.0, 6.0, 10.0)]}
    probes = probe_series(sweep, df)["stal.visibility_rank_corr"]["stal"]
    assert [p[0] for p in probes] == [0.0, 0.3, 0.8]
    level, mean, lo, hi = probes[2]
    assert mean == pytest.approx(0.81) and hi - mean == pytest.approx(0.01)


def test_the_report_draws_a_gain_and_a_probe_figure_per_nuisance(tmp_path):
    df = stress_runs()
    sweeps = find_sweeps(df)
    gains = gains_of(DATASETS)
    report = Report("stress", Table(["method"], [["stal"]]), ("stal", "control"), runs=df)
    report.sweeps, report.gains = sweeps, gains
    report.stress = stress_table(sweeps, gains, df, ["R1"])
    stress_figures(report, tmp_path / "figures")
    names = sorted(p.name for _, p in report.figures)
    assert names == [
        "stress-stress-misdetection_rate-gain.png",
        "stress-stress-misdetection_rate-probes.png",
        "stress-stress-occlusion_rate-gain.png",
        "stress-stress-occlusion_rate-probes.png",
    ]
    assert all(Image.open(p).size[0] > 300 for _, p in report.figures)
    page = to_markdown_page(report, tmp_path)
    assert "## Stress: each method's gain and probes by nuisance level" in page
    assert "figures/stress-stress-occlusion_rate-gain.png" in page


def test_the_probe_table_gives_each_row_its_probes():
    table = probe_table(stress_runs({"today": {}}))
    assert table.rows == [["today", "stal", "default", "stal.visibility_rank_corr 0.310 ± 0.010"]]
    assert probe_table(stress_runs({"today": {}}).filter(regex="^(?!metrics.probe)")) is None


# --- end to end ---------------------------------------------------------------------------

SMALL = {"train_ids": 6, "test_ids": 4, "distractors": 1, "cameras": 2, "min_len": 4}
SUITE = {
    "name": "tiny-stress",
    "datasets": [
        {"name": "synthetic-video", "label": "today", **SMALL, "max_len": 6},
        {
            "name": "synthetic-video",
            "label": "occlusion-1",
            **SMALL,
            "max_len": 6,
            "occlusion_rate": 1.0,
        },
    ],
    "methods": ["iaunet", "stal", "rgsa-rgtr"],
    "method_config": {"stal": {"split_stage": 2, "local_dim": 16}},
    "ablations": {
        "iaunet": [{"name": "control", "blocks": "none"}],
        "stal": [{"name": "control", "train_branches": "global", "test_branches": "global"}],
        "rgsa-rgtr": [{"name": "control", "spatial": "avg", "temporal": "avg"}],
    },
    "seeds": [0],
    "defaults": {
        "model": {"backbone": "resnet18", "kwargs": {"channels": [8, 16, 32, 64]}},
        "data": {"height": 64, "width": 32, "seq_len": 3, "p": 2, "k": 2},
        "train": {"epochs": 1},
    },
}


def invoke(*args) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.slow
def test_a_stress_suite_logs_probes_reports_sweeps_and_draws_attention(in_tmp):
    import mlflow

    (in_tmp / "stress.yaml").write_text(yaml.safe_dump(SUITE))
    invoke("run", "stress.yaml", "--no-report")
    runs = mlflow.search_runs(experiment_names=["tiny-stress"], output_format="pandas")
    assert len(runs) == 12 and set(runs["status"]) == {"FINISHED"}
    default = runs[(runs["tags.variant"] == "default") & (runs["tags.dataset"] == "occlusion-1")]
    for method, probe in [
        ("stal", "stal.visibility_rank_corr"),
        ("iaunet", "iaunet.part_iou"),
        ("rgsa-rgtr", "rgsa.mask_share"),
    ]:
        value = default[default["tags.method"] == method][f"metrics.probe.{probe}"].iloc[0]
        assert math.isfinite(value)
    controls = runs[runs["tags.variant"] == "control"]
    iaunet = controls[controls["tags.method"] == "iaunet"]
    assert iaunet["tags.probes"].str.contains("control without the mechanism").all()

    invoke("report", "--suite", "tiny-stress")
    page = (in_tmp / "reports" / "tiny-stress.md").read_text()
    assert "## Stress" in page and "| occlusion_rate | 1" in page
    figures = in_tmp / "reports" / "figures"
    assert (figures / "tiny-stress-stress-occlusion_rate-gain.png").is_file()
    assert (figures / "tiny-stress-stress-occlusion_rate-probes.png").is_file()

    for method in ("stal", "iaunet", "rgsa-rgtr"):
        run = default[default["tags.method"] == method]["run_id"].iloc[0]
        out = in_tmp / f"{method}.png"
        invoke("show", "attention", run, "--tracklet", "1", "--out", str(out))
        assert Image.open(out).size[1] > 600
    fixed = default[default["tags.method"] == "rgsa-rgtr"]["run_id"].iloc[0]
    name = "p0007_c1_t0"
    result = CliRunner().invoke(cli, ["show", "attention", fixed, "--tracklet", "nope"])
    assert result.exit_code == 1 and "Error: --tracklet: expected an index 0.." in result.output
    result = CliRunner().invoke(cli, ["show", "attention", "0" * 32, "--tracklet", name])
    assert result.exit_code == 1 and "Error: RUN: no run" in result.output
