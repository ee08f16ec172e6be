"""Report tables without MLflow: paper numbers, failed cells, renderers, re-ranking gain."""

import numpy as np
import pandas as pd
import pytest
import yaml

from bench.errors import ConfigError
from bench.registry import DATASETS, METHODS
from bench.report.papers import METRICS, paper_numbers, parse_groups
from bench.report.render import Interval, Table, Value, to_html, to_latex, to_markdown
from bench.report.stats import Difference
from bench.report.table import (
    build_report,
    build_table,
    caption,
    differences,
    failed_table,
    paper_table,
    rerank_gains,
)


def runs(rows):
    """rows: (method, variant, dataset, seed, {metric: value})."""
    return pd.DataFrame(
        [
            {
                "tags.method": m,
                "tags.variant": v,
                "tags.dataset": d,
                "tags.seed": str(s),
                **{f"metrics.{k}": x for k, x in values.items()},
            }
            for m, v, d, s, values in rows
        ]
    )


def suite_variants(method: str) -> set[str]:
    path = f"suites/ablations/{method}.yaml"
    try:
        with open(path) as fh:
            suite = yaml.safe_load(fh)
    except FileNotFoundError:
        return set()
    return {v["name"] for v in suite.get("ablations", {}).get(method, [])}


def test_every_paper_number_is_well_formed():
    entries = paper_numbers()
    assert len(entries) > 100
    keys = set()
    for p in entries:
        assert p.method in METHODS.names() and p.paper in ("iaunet", "stal", "rgsa-rgtr")
        for name in p.dataset.split("→"):
            assert name.removesuffix("-polluted") in DATASETS.names(), p
        # a variant is a row of the method's ablation suite, or a clip-length row T<n>
        named = p.variant in suite_variants(p.method) | {"default"}
        assert named or (p.variant[0] == "T" and p.variant[1:].isdigit()), p
        assert p.metric in METRICS and 0 < p.value <= 100
        assert p.backbone and p.input and p.protocol and p.source
        key = (p.method, p.variant, p.dataset, p.metric, p.backbone, p.input)
        assert key not in keys, f"duplicate entry {key}"
        keys.add(key)
    # spot checks against the papers' tables
    stal_ilids = {
        p.metric: p.value for p in entries if (p.method, p.dataset) == ("stal", "ilids-vid")
    }
    assert stal_ilids == {"R1": 82.8, "R5": 95.3, "R10": 97.7, "R20": 98.8}
    ip = [p for p in entries if p.variant == "rgsa-rgtr-ip" and p.dataset == "mars"]
    assert {p.metric: p.value for p in ip} == {"R1": 88.4, "mAP": 82.5}


def test_a_malformed_paper_entry_is_one_clear_error():
    with pytest.raises(ConfigError, match=r"groups\[0\]: missing variant, dataset, .*backbone"):
        parse_groups({"groups": [{"paper": "x", "method": "stal", "values": {}}]}, "f.yaml")
    good = {
        "paper": "stal",
        "method": "stal",
        "variant": "default",
        "dataset": "mars",
        "protocol": "p",
        "backbone": "b",
        "input": "i",
        "source": "s",
    }
    with pytest.raises(ConfigError, match=r"values.R1: expected a percentage"):
        parse_groups({"groups": [{**good, "values": {"R1": 823}}]}, "f.yaml")
    with pytest.raises(ConfigError, match=r"groups\[0\]: unknown key Table XI"):
        parse_groups({"groups": [{**good, "Table XI": None, "values": {}}]}, "f.yaml")


def test_a_real_dataset_table_shows_the_paper_column_beside_the_measured_one():
    df = runs(
        [
            ("baseline", "default", "mars", 0, {"R1": 60.0, "mAP": 40.0}),
            ("stal", "default", "mars", 0, {"R1": 70.0, "mAP": 50.0}),
            ("stal", "TAN", "mars", 0, {"R1": 65.0, "mAP": 45.0}),
        ]
    )
    table = build_table(df, papers=True)
    header = table.header
    assert header.index("mars R1 (paper)") == header.index("mars R1") + 1
    assert header.index("mars mAP (paper)") == header.index("mars mAP") + 1
    rows = {(r[0], r[1]): dict(zip(header, r, strict=True)) for r in table.rows}
    # the runs say nothing of their backbone or input: every paper setting is named
    assert rows[("stal", "default")]["mars R1 (paper)"] == (
        "80.3 (googlenet, 224x224, protocol unstated) / 82.2 (resnet50, 224x224, protocol unstated)"
    )
    assert rows[("baseline", "default")]["mars mAP (paper)"].startswith("50.8 (")
    assert rows[("stal", "TAN")]["mars R1 (paper)"] is None
    assert "mars R1 (paper)" not in build_table(df).header
    assert any("in parentheses the paper's backbone" in n for n in table.notes)


def test_a_paper_number_stands_bare_only_beside_a_row_of_its_setting():
    def paper_cell(backbone: str, height: int, protocol: str, splits=(0,)) -> str:
        df = runs([("rgsa-rgtr", "default", "dukemtmc-videoreid", 0, {"R1": 90.0})] * len(splits))
        df["tags.split"] = [str(s) for s in splits]
        df["tags.protocol"] = protocol
        df["params.model.backbone"], df["params.data.height"] = backbone, height
        df["params.data.width"] = 128
        table = build_table(df, papers=True)
        return table.rows[0][table.header.index("dukemtmc-videoreid R1 (paper)")]

    # the dataset's one fixed partition is the paper's 'standard' protocol
    assert paper_cell("resnet50", 256, "dukemtmc-videoreid") == "97.2"
    assert paper_cell("resnet18", 128, "dukemtmc-videoreid") == "97.2 (resnet50, 256x128)"
    assert paper_cell("resnet50", 256, "other") == "97.2 (protocol standard)"
    from bench.report.papers import RowSetting, lookup, unmatched

    (ilids,) = lookup("rgsa-rgtr", "default", "ilids-vid", "R1")
    row = RowSetting("resnet50", "256x128", "ilids-vid/x", 10, "ilids-vid")
    assert unmatched(ilids, row) == [] and unmatched(ilids, RowSetting("resnet50", "256x128")) == [
        "protocol 10 random splits"
    ]


def test_synthetic_reports_get_the_paper_numbers_as_a_separate_table():
    table = paper_table([("rgsa-rgtr", "rgsa-rgtr-ip"), ("baseline", "default")])
    assert {r[2] for r in table.rows} == {"rgsa-rgtr-ip", "default"}
    ip = next(r for r in table.rows if r[2] == "rgsa-rgtr-ip" and r[3] == "mars")
    assert ip[table.header.index("R1")] == Value(88.4)
    assert paper_table([("rgsa-rgtr", "no-such-row")]) is None


def test_delta_columns_mark_rows_significant_after_the_correction():
    df = runs(
        [
            ("baseline", "default", "d", 0, {"R1": 10.0}),
            ("x", "default", "d", 0, {"R1": 30.0}),
            ("y", "default", "d", 0, {"R1": 12.0}),
            ("z", "default", "d", 0, {"R1": 14.0}),
        ]
    )
    diffs = {
        ("d", "x", "default", "R1"): Difference("R1", 20, 12, 28, 0.001, 9, 9, 1, q=0.003),
        ("d", "y", "default", "R1"): Difference("R1", 2, -3, 7, 0.4, 9, 9, 1, q=0.4),
        # its interval excludes 0, but not after the correction: no mark
        ("d", "z", "default", "R1"): Difference("R1", 4, 1, 7, 0.03, 9, 9, 1, q=0.09),
    }
    text = to_markdown(build_table(df, diffs))
    lines = {line.split("|")[1].strip(): line for line in text.splitlines()[2:]}
    assert "ref" in lines["baseline"]
    assert "+20.0 [+12.0, +28.0] †" in lines["x"] and "**30.0**" in lines["x"]
    assert "+2.0 [-3.0, +7.0]" in lines["y"] and "†" not in lines["y"]
    assert "+4.0 [+1.0, +7.0]" in lines["z"] and "†" not in lines["z"]
    cap = caption({}, ("baseline", "default"), diffs)
    assert "†: significant after the Benjamini-Hochberg correction for 3 comparisons" in cap
    assert "false discovery rate of 5 %" in cap


def test_the_table_corrects_its_comparisons_together():
    """Twelve rows, each 2 points better than the reference with noise: their p-values are
    adjusted as one family; a † stands exactly where the adjusted p is at most 5 %."""
    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(40), 2)

    def row(shift: float) -> dict:
        return {
            (0, s): {
                "pid": pids,
                "camid": pids * 0,
                "first": pids * 0 + 1,
                "ap": np.clip(rng.uniform(0.2, 0.8, len(pids)) + shift, 0, 1),
            }
            for s in range(3)
        }

    sets = {("d", "baseline", "default"): row(0.0)}
    sets |= {("d", f"m{i}", "default"): row(0.02 * (i % 4)) for i in range(12)}
    diffs = differences(sets, ("baseline", "default"), ["mAP"])
    assert len(diffs) == 12
    ps = sorted(d.p for d in diffs.values())
    m = len(ps)
    bh = [min(min(ps[j] * m / (j + 1), 1) for j in range(i, m)) for i in range(m)]
    assert sorted(d.q for d in diffs.values()) == pytest.approx(bh)
    assert any(d.significant and not d.discovered for d in diffs.values())
    df = runs([(m, v, "d", s, {"mAP": 50.0}) for (_, m, v) in sets for s in range(3)])
    table = build_table(df, diffs)
    column = table.header.index("d ΔmAP")
    for r in table.rows:
        d = diffs.get(("d", r[0], r[1], "mAP"))
        assert d is None or r[column].significant == (d.q <= 0.05)


def test_rows_run_otherwise_get_no_delta_and_the_table_says_why():
    """Only the method and the variant may differ: a schedule does not (stal, and a baseline
    variant that sets its own learning rate), nor the seeds (iaunet); a variant's own clip
    length (rgsa-rgtr/T2) and a method's own test protocol (rgsa-rgtr's eval defaults) do, as
    does where a run ran."""
    rows = [("baseline", "default"), ("baseline", "lr"), ("stal", "default"), ("stal", "TAN")]
    rows += [("rgsa-rgtr", "default"), ("rgsa-rgtr", "T2"), ("iaunet", "default")]
    df = runs(
        [(m, v, "d", s, {"R1": 50.0}) for m, v in rows for s in (0, 1) if (m, s) != ("iaunet", 1)]
    )
    df["run_id"] = [f"r{i}" for i in range(len(df))]
    df["start_time"] = range(len(df))
    df["tags.protocol"] = "p"
    df["params.train.epochs"] = np.where(df["tags.method"] == "stal", "1", "2")
    df["params.train.lr"] = np.where(df["tags.variant"] == "lr", "0.1", "0.001")
    df["params.data.seq_len"] = np.where(df["tags.variant"] == "T2", "2", "4")
    rgsa = df["tags.method"] == "rgsa-rgtr"
    df["params.eval.clip_norm"] = np.where(rgsa, "True", "False")
    stride = np.where(df["params.data.seq_len"] == "2", "1", "2")
    df["params.eval.clip_stride"] = np.where(rgsa, stride, "None")
    df["params.method.name"] = df["tags.method"]
    df["params.runtime.device"] = np.where(df["tags.seed"] == "0", "cpu", "cuda")
    report = build_report(NoArtifacts(), df, pd.DataFrame(), "x")
    table = report.results
    delta = {(r[0], r[1]): r[table.header.index("d ΔR1")] for r in table.rows}
    assert delta[("baseline", "default")] == "ref"
    unlike = {row for row, entry in delta.items() if entry == "≠"}
    assert unlike == {
        ("baseline", "lr"),
        ("stal", "default"),
        ("stal", "TAN"),
        ("iaunet", "default"),
    }
    (note,) = [n for n in table.notes if n.startswith("≠")]
    assert "d stal/default: train.epochs (2 vs 1)" in note
    assert "d baseline/lr: train.lr (0.001 vs 0.1)" in note
    assert "d iaunet/default: seeds (0, 1 vs 0)" in note
    assert "rgsa" not in note and "runtime" not in note and "method.name" not in note
    assert r"$\neq$" in to_latex(table)


def test_failed_cells_are_listed_with_their_message():
    failed = pd.DataFrame(
        {
            "tags.config_hash": ["h1", "h2"],
            "tags.mlflow.runName": ["d/x/default/seed0", "d/y/default/seed1"],
            "tags.error": ["non-finite loss at epoch 1, step 3:\n  ce=nan", None],
        }
    )
    table = failed_table(failed)
    assert table.rows == [
        ["d/x/default/seed0", "non-finite loss at epoch 1, step 3: ce=nan"],
        ["d/y/default/seed1", "no error message recorded"],
    ]
    assert failed_table(pd.DataFrame()) is None


def test_one_table_renders_as_latex_and_html():
    table = Table(
        ["method", "variant", "d R1", "d ΔR1"],
        [["a_b", "default", Value(30.0, 2.0, 3, best=True), Interval(5, 1, 9, True)]],
        caption="Mean ± std; 95 % interval",
    )
    tex = to_latex(table, "tab:x")
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert r"\textbf{30.0 $\pm$ 2.0}" in tex and r"$+5.0$ [$+1.0$, $+9.0$]$^\dagger$" in tex
    assert r"a\_b" in tex and r"d $\Delta$R1" in tex and r"95 \% interval" in tex
    page = to_html(table)
    assert "<b>30.0 ± 2.0</b>" in page and "+5.0 [+1.0, +9.0] †" in page


def test_rerank_gain_and_its_figure(tmp_path):
    from bench.report.figures import rerank_figure

    df = runs(
        [
            (
                "baseline",
                "default",
                "d",
                0,
                {"R1": 40.0, "mAP": 30, "rerank.R1": 45.0, "rerank.mAP": 38},
            ),
            (
                "baseline",
                "default",
                "d",
                1,
                {"R1": 50.0, "mAP": 34, "rerank.R1": 55.0, "rerank.mAP": 40},
            ),
            ("x", "default", "d", 0, {"R1": 20.0, "mAP": 10}),
        ]
    )
    gains = rerank_gains(df, "d")
    assert gains == {"baseline": {"R1": (45.0, 50.0), "mAP": (32.0, 39.0)}}
    path = rerank_figure(gains, "re-ranking", tmp_path / "g.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


class NoArtifacts:
    """An MLflow client stand-in whose runs logged no per-query results."""

    def list_artifacts(self, run_id):
        return []

    def get_metric_history(self, run_id, key):
        return []


def report_of(dataset: str, aux: str | None = None, **tags):
    df = runs(
        [
            ("baseline", "default", dataset, 0, {"R1": 60.0, "mAP": 40.0}),
            ("baseline", "default", dataset, 1, {"R1": 62.0, "mAP": 42.0}),
            ("stal", "default", dataset, 0, {"R1": 70.0, "mAP": 50.0}),
        ]
    )
    df["run_id"] = [f"r{i}" for i in range(len(df))]
    df["start_time"] = range(len(df))
    df["tags.protocol"] = "p"
    if aux:
        df["tags.aux"] = aux
    for key, value in tags.items():
        df[f"tags.{key}"] = value
    return build_report(NoArtifacts(), df, pd.DataFrame(), "x")


def test_real_and_synthetic_reports_place_the_paper_numbers_differently():
    real = report_of("mars")
    assert "mars R1 (paper)" in real.results.header and real.papers is None
    synthetic = report_of("synthetic-video", aux="estimated")
    assert not any("(paper)" in h for h in synthetic.results.header)
    assert synthetic.papers is not None and synthetic.papers_are_directions
    caption = synthetic.results.caption
    assert "protocol p" in caption and "2 seed(s)" in caption and "no per-query results" in caption
    assert "auxiliary inputs: estimated" in caption
    assert "Δ: difference to baseline/default: none computed" in caption


def test_caption_names_every_machine_the_runs_ran_on():
    intel, amd = "Intel(R) Xeon(R) Processor, 2 cores", "AMD EPYC 7B13, 2 cores"
    machines = [intel, amd, intel]  # one per run of report_of
    caption = report_of("synthetic-video", device_name=machines).results.caption
    assert (
        "run on 2 machines: [AMD EPYC 7B13, 2 cores] baseline/default (seed 1); "
        "[Intel(R) Xeon(R) Processor, 2 cores] baseline/default (seed 0), stal/default."
    ) in caption
    one = report_of("synthetic-video", device_name=intel).results.caption
    assert f"run on {intel}." in one and "machines" not in one
    assert "run on" not in report_of("synthetic-video").results.caption


def test_cpu_device_name_is_the_cpu_model_and_core_count():
    import os

    import torch

    from bench.engine.device import cpu_model, device_name

    name = device_name(torch.device("cpu"))
    assert name == f"{cpu_model()}, {os.cpu_count()} cores" and cpu_model() not in ("", "cpu")


def test_caption_counts_queries_and_identities_over_splits():
    from bench.report.table import dataset_facts

    df = runs([("b", "default", "d", s, {"R1": 1.0}) for s in (0, 1)] * 2)
    df["run_id"] = ["a", "b", "c", "d"]
    df["tags.split"] = ["0", "0", "1", "1"]
    df["tags.protocol"] = "p"
    split0 = {"pid": np.array([1, 1, 2, 3]), "first": np.array([1, 2, 0, 4])}
    split1 = {"pid": np.array([7, 8]), "first": np.array([3, 1])}
    facts = dataset_facts(df, {"b": split0, "c": split1})["d"]
    assert (facts.queries, facts.identities, facts.seeds, facts.splits) == (5, 4, 2, 2)
    assert dataset_facts(df, {"b": split0})["d"].queries is None  # split 1 has no results


def test_an_older_configuration_of_a_cell_is_left_out_with_a_warning(caplog):
    from bench.report.table import newest_per_cell

    df = runs(
        [
            ("baseline", "default", "d", 0, {"R1": 10.0}),  # seed 0, then run again with -o
            ("baseline", "default", "d", 1, {"R1": 20.0}),
            ("baseline", "default", "d", 0, {"R1": 50.0}),
        ]
    )
    assert list(newest_per_cell(df)["metrics.R1"]) == [20.0, 50.0]
    assert "1 run(s) of an older configuration of the same cell left out" in caplog.text
    assert "baseline/default on d, seed 0" in caplog.text
    caplog.clear()
    assert len(newest_per_cell(df.iloc[:2])) == 2 and not caplog.text


def test_cmc_figure_draws_many_rows_distinctly(tmp_path):
    from bench.report.figures import cmc_figure, curve_style

    assert len({tuple(curve_style(i).values()) for i in range(40)}) == 40
    curves = {f"row {i}": [i + 1.0, i + 2.0, i + 3.0] for i in range(15)}
    path = cmc_figure(curves, "CMC", tmp_path / "cmc.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_sequence_length_study_may_be_a_row_of_its_own():
    from bench.report.table import seqlen_grids

    grid = {"seqlen.R1.q1.g1": 40.0, "seqlen.R1.qall.gall": 60.0}
    df = runs(
        [
            ("baseline", "default", "d", 0, {"R1": 50.0}),
            ("stal", "default", "d", 0, {"R1": 55.0}),
            ("stal", "seqlen", "d", 0, {"R1": 55.0, **grid}),
            ("stal", "seqlen", "d", 1, {"R1": 57.0, **{k: v + 2 for k, v in grid.items()}}),
        ]
    )
    assert seqlen_grids(df) == {("d", "stal (seqlen)"): {(1, 1): 41.0, (0, 0): 61.0}}
    with_default = runs([("stal", "default", "d", 0, {"R1": 55.0, **grid})])
    assert seqlen_grids(pd.concat([df, with_default])) == {
        ("d", "stal"): {(1, 1): 40.0, (0, 0): 60.0}
    }


def test_figure_names_are_plain_link_targets():
    from bench.report.export import slug_of

    assert slug_of("stal (seqlen)") == "stal-seqlen" and slug_of("a→b") == "a-to-b"
    assert slug_of("synthetic-video/x y") == "synthetic-video-x-y"


def test_the_control_table_corrects_its_own_family_and_leaves_unlike_controls_out():
    from bench.report.alike import Setting
    from bench.report.training import control_table

    rng = np.random.default_rng(1)
    pids = np.repeat(np.arange(30), 2)

    def row(shift: float) -> dict:
        ap = rng.uniform(0.2, 0.8, len(pids))
        cols = {"pid": pids, "camid": pids * 0, "first": pids * 0 + 1}
        return {(0, s): {**cols, "ap": ap + shift + rng.normal(0, 0.01)} for s in range(3)}

    variants = ("default", "control")
    sets = {("d", m, v): row(0.1 * (v == "default")) for m in ("iaunet", "stal") for v in variants}
    unlike = {("d", "stal"): [Setting("train.epochs", "1", "2")]}
    table = control_table(sets, {}, ("baseline", "default"), ["mAP"], unlike)
    cells = {r[1]: r[2] for r in table.rows}
    assert cells["stal"] == "≠" and cells["iaunet"].diff == pytest.approx(10, abs=2)
    assert "Benjamini-Hochberg correction for 1 comparison at" in table.caption
    (note,) = table.notes
    assert note.startswith("≠: no Δ to the control")
    assert note.endswith("d stal: train.epochs (1 vs 2).")


def test_cost_columns_and_the_papers_cost_claims_beside_them():
    from bench.report.cost import claims_table, cost_caption
    from bench.report.papers import cost_claims
    from bench.report.table import KEYS

    cost = {"cost.params_M": 11.0, "cost.gflops_per_clip": 2.0, "time.step_s": 0.5}
    df = runs(
        [
            ("baseline", "default", "d", 0, {"R1": 50.0, **cost}),
            ("baseline", "default", "d", 1, {"R1": 52.0, **cost, "time.step_s": 0.7}),
            ("iaunet", "default", "d", 0, {"R1": 55.0, **cost, "cost.params_M": 11.55}),
        ]
    ).assign(**{"tags.device_name": "cpu: Test CPU"})
    table = build_table(df)
    assert table.header[-3:] == ["params (M)", "GFLOPs/clip", "train s/step"]
    by_method = {row[0]: row[-3:] for row in table.rows}
    assert by_method["baseline"] == ["11", "2", "0.6"] and by_method["iaunet"][0] == "11.6"
    assert "times measured on cpu: Test CPU" in cost_caption(df)
    claims = claims_table(df, KEYS)
    rows = [r for r in claims.rows if r[1] == "iaunet/default"]
    assert len(rows) == len([c for c in cost_claims() if c.method == "iaunet"]) == 2
    assert rows[0][4] == "11.6 vs 11 (+5.0 %)" and "lightweight" in rows[0][2]
    assert claims_table(df[df["tags.method"] == "baseline"], KEYS) is None


def test_cost_claims_name_what_they_measure():
    from bench.report.papers import parse_claims

    entry = {"paper": "p", "method": "m", "variant": "v", "claim": "c", "source": "s"}
    with pytest.raises(ConfigError, match=r"cost_claims\[0\]\.measures"):
        parse_claims({"cost_claims": [{**entry, "measures": ["speed"]}]}, "f")
    with pytest.raises(ConfigError, match="expected the keys"):
        parse_claims({"cost_claims": [entry]}, "f")
