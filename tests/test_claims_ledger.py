"""The papers' claims ledger (bench/report/papers/claims.yaml): the shipped ledger against the
shipped suites, one-line errors naming a claim, verdicts on runs with known differences
(reproduced, contradicted, inconclusive, not run, not compared), ``bench claims`` and
``bench report`` through the real CLI on a real MLflow store, and the line at the top of every
report that says how to reproduce it."""

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner
from mlflow.entities import Metric, Param, RunTag

from bench.cli import cli
from bench.engine.tracking import client
from bench.errors import BenchError, ConfigError
from bench.eval.per_query import PER_QUERY, write_per_query
from bench.report.papers.ledger import check_suite, ledger, read_ledger, read_suite, uncovered
from bench.report.provenance import provenance, provenance_line
from bench.report.stats import compare
from bench.report.table import runsets
from bench.report.verdicts import claims_table, evaluate
from bench.runner import suite_file_tag

ROOT = Path(__file__).resolve().parents[1]
PIDS = np.repeat(np.arange(40), 2)  # 40 test identities of 2 queries each


def test_the_shipped_ledger_names_rows_of_the_shipped_suites_and_covers_them():
    book = ledger()
    assert len(book.claims) >= 45 and {c.paper for c in book.claims} == {
        "iaunet",
        "stal",
        "rgsa-rgtr",
    }
    for name, entry in book.suites.items():
        suite = read_suite(ROOT / entry.file)
        assert suite.name == name
        check_suite(book, suite)
        assert uncovered(book, suite) == [], name  # each row: a claim, or untested with why
        named = {r for _, c in book.of(name) for r in (c.better, c.worse)}
        assert not named & set(book.untested.get(name, {})), name
    # the figures come from paper_numbers.yaml (the paper's row where it is not the suite's)
    shown = {k: str(v) for k, v in book.figures.items()}
    assert shown["rgsa-rgtr-relation-module-over-inner-product"] == "mars: 84.0 vs 82.5 (+1.5)"
    assert shown["rgsa-rgtr-T4-over-T2"] == "mars: 83.4 vs 82.5 (+0.9)"
    assert shown["stal-over-baseline-polluted"] == "ilids-vid-polluted: 78.4 vs 70.2 (+8.2)"
    assert shown["iaunet-ciau-over-se"] == "mars: +2.0 (text)"
    assert shown["iaunet-iau-over-baseline"] == "market1501 (resnet18): 89.8 vs 79.1 (+10.7)"


def test_a_row_no_suite_defines_is_one_line_naming_the_claim(monkeypatch, store):
    book = ledger()
    i = next(i for i, c in enumerate(book.claims) if c.id == "iaunet-stiau-over-spatial-only")
    typo = book.claims[i].model_copy(update={"worse": ("iaunet", "stiau-spatal")})
    bad = replace(book, claims=(*book.claims[:i], typo, *book.claims[i + 1 :]))
    monkeypatch.setattr("bench.report.commands.ledger", lambda: bad)
    suite = ROOT / "suites" / "ablations" / "iaunet.yaml"
    result = CliRunner().invoke(cli, ["claims", str(suite), "--tracking-uri", store])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith(
        f"Error: bench/report/papers/claims.yaml: claims[{i}] (iaunet-stiau-over-spatial-only): "
        f"worse: no row iaunet/stiau-spatal in suite 'iaunet-ablations' ({suite}); its iaunet "
        "rows: iaunet/default, iaunet/control, "
    )
    elsewhere = typo.model_copy(update={"worse": ("iaunet", "ciau"), "dataset": "polluted"})
    bad = replace(book, claims=(*book.claims[:i], elsewhere, *book.claims[i + 1 :]))
    with pytest.raises(ConfigError, match=r"dataset: no dataset entry 'polluted' in suite"):
        check_suite(bad, read_suite(suite))


def test_a_claim_on_a_row_its_dataset_entry_does_not_run_names_the_claim():
    book = ledger()
    i = next(i for i, c in enumerate(book.claims) if c.id == "stal-over-baseline-across-datasets")
    moved = book.claims[i].model_copy(update={"worse": ("stal", "TAN")})
    bad = replace(book, claims=(*book.claims[:i], moved, *book.claims[i + 1 :]))
    with pytest.raises(ConfigError) as err:
        check_suite(bad, read_suite(ROOT / "suites" / "ablations" / "stal.yaml"))
    assert str(err.value).startswith(f"bench/report/papers/claims.yaml: claims[{i}]")
    assert "worse: row stal/TAN is not run on 'seed0→seed1'" in str(err.value)


GOOD = {
    "id": "c1",
    "paper": "stal",
    "source": "Fig. 5",
    "claim": "a over b",
    "suite": "toy",
    "better": "stal/a",
    "worse": "stal/b",
    "metric": "R1",
}


@pytest.mark.parametrize(
    ("claims", "extra", "message"),
    [
        ([{**GOOD, "metric": "map"}], {}, "claims[0] (c1): metric: Input should be 'R1', "),
        ([{**GOOD, "better": "stal"}], {}, "claims[0] (c1): better: Value error, expected a row"),
        ([{**GOOD, "suite": "x"}], {}, "claims[0] (c1): suite: expected one of the ledger's"),
        ([{**GOOD, "worse": "stal/a"}], {}, "claims[0] (c1): worse: the same row as better"),
        ([GOOD, GOOD], {}, "claims[1] (c1): id: given twice"),
        ([{**GOOD, "colour": 1}], {}, "claims[0] (c1): colour: unknown key"),
        (
            [{**GOOD, "figures": {"dataset": "mars"}}],
            {},
            "claims[0] (c1): figures.better: no number in paper_numbers.yaml for stal/a on mars",
        ),
        ([GOOD], {"untested": {"toy": {"stal": "x"}}}, "untested.toy.stal: expected a row"),
    ],
)
def test_a_malformed_ledger_is_one_line_naming_the_claim(tmp_path, claims, extra, message):
    path = tmp_path / "claims.yaml"
    suites = {"toy": {"file": "toy.yaml", "dataset": "synthetic-video"}}
    path.write_text(yaml.safe_dump({"suites": suites, "claims": claims, **extra}))
    with pytest.raises(ConfigError) as info:
        read_ledger(path)
    assert str(info.value).startswith(f"{path}: {message}")
    assert "\n" not in str(info.value)


# ---- verdicts on runs with known differences ------------------------------------------------


def query_results(shift: float, seed: int, noise: int) -> dict[str, np.ndarray]:
    """Per-query columns: AP drawn per query (the same for every row of a seed), plus ``shift``
    and the row's own noise; the first hit at rank 1 where AP > 0.5."""
    base = np.random.default_rng(seed).uniform(0.2, 0.7, len(PIDS))
    ap = np.clip(
        base + shift + np.random.default_rng([seed, noise]).normal(0, 0.05, len(PIDS)), 0, 1
    )
    return {
        "pid": PIDS,
        "camid": np.arange(len(PIDS)) % 2,
        "first": np.where(ap > 0.5, 1, 3),
        "ap": ap,
    }


def toy_runs(rows: dict[tuple[str, str], tuple[float, int]]):
    """(method, variant) -> (AP shift, train.epochs), 3 seeds each: the runs' frame and their
    per-query results by run id."""
    records, results = [], {}
    for k, ((method, variant), (shift, epochs)) in enumerate(rows.items()):
        for seed in range(3):
            run_id = f"{method}-{variant}-{seed}"
            results[run_id] = query_results(shift, seed, k)
            records.append(
                {
                    "run_id": run_id,
                    "tags.method": method,
                    "tags.variant": variant,
                    "tags.dataset": "synthetic-video",
                    "tags.seed": str(seed),
                    "tags.split": "0",
                    "params.train.epochs": str(epochs),
                }
            )
    return pd.DataFrame(records), results


def toy_ledger(tmp_path, better: list[str]):
    claims = [
        {**GOOD, "id": f"{b}-over-baseline", "better": f"stal/{b}", "worse": "baseline/default"}
        for b in better
    ]
    path = tmp_path / "claims.yaml"
    suites = {"toy": {"file": "toy.yaml", "dataset": "synthetic-video"}}
    path.write_text(yaml.safe_dump({"suites": suites, "claims": claims}))
    return read_ledger(path)


def test_verdicts_on_runs_with_known_differences(tmp_path):
    df, results = toy_runs(
        {
            ("baseline", "default"): (0.0, 3),
            ("stal", "up"): (0.2, 3),
            ("stal", "down"): (-0.2, 3),
            ("stal", "same"): (0.0, 3),
            ("stal", "otherwise"): (0.2, 6),
        }
    )
    book = toy_ledger(tmp_path, ["up", "down", "same", "missing", "otherwise"])
    sets = runsets(df, results)
    for metric in ("mAP", "R1"):
        claims = [c.model_copy(update={"metric": metric}) for c in book.claims]
        verdicts = evaluate(claims, df, sets)
        texts = {o.claim.id.removesuffix("-over-baseline"): o.text for o in verdicts.outcomes}
        assert texts == {
            "up": "reproduced",
            "down": "contradicted",
            "same": "inconclusive",
            "missing": "not run: no runs of stal/missing on synthetic-video",
            "otherwise": "not compared: train.epochs (3 vs 6)",
        }
        assert (verdicts.compared, verdicts.decided) == (3, 2)
        assert verdicts.level == pytest.approx(1 - 2 * 0.05 / 3)
    up, down, same = (o.diff for o in verdicts.outcomes[:3])
    assert up.lo > 0 and down.hi < 0 and same.lo < 0 < same.hi  # the verdicts' intervals
    # the corrected interval is wider than the uncorrected 95 % one, around the same estimate
    (plain,) = compare(
        sets[("synthetic-video", "baseline", "default")],
        sets[("synthetic-video", "stal", "up")],
        ["R1"],
    )
    assert up.diff == pytest.approx(plain.diff) and up.hi - up.lo > plain.hi - plain.lo
    table = claims_table(verdicts, book)
    assert [row[-1] for row in table.rows][:3] == ["reproduced", "contradicted", "inconclusive"]
    assert table.rows[0][3] == "stal/up > baseline/default" and table.rows[0][7].significant
    assert "m = 3 claims compared, R = 2 of them decided" in table.caption
    assert "1 reproduced, 1 contradicted, 1 inconclusive, 1 not run, 1 not compared" in (
        table.caption
    )


def test_claims_before_any_run_are_not_run(tmp_path):
    book = toy_ledger(tmp_path, ["up"])
    verdicts = evaluate(list(book.claims), pd.DataFrame(), {})
    assert [o.text for o in verdicts.outcomes] == [
        "not run: no runs of stal/up or baseline/default on synthetic-video"
    ]
    assert verdicts.compared == 0 and verdicts.level == pytest.approx(0.95)


# ---- through the CLI, on a real MLflow store -----------------------------------------------

T0 = 1_700_000_000_000  # ms
# rgsa-rgtr-ablations rows: (AP shift, train.epochs)
RGSA_ROWS = {
    "default": (0.15, 3),
    "rgsa-rgtr-ip": (0.0, 3),
    "baseline-total": (0.15, 3),
    "rgsa-total": (0.15, 3),
    "rgsa-rgtr-ce": (0.0, 6),
}


def log_cell(mlf, exp: str, variant: str, seed: int, k: int, folder: Path) -> None:
    """One finished cell of rgsa-rgtr-ablations: per-query results and CMC, the tags a cell
    gets; cell k starts at T0 + k minutes and takes 50 s."""
    shift, epochs = RGSA_ROWS[variant]
    columns = query_results(shift, seed, list(RGSA_ROWS).index(variant))
    run = mlf.create_run(exp, run_name=f"{variant}/seed{seed}", start_time=T0 + k * 60_000)
    run_id = run.info.run_id
    tags = {"suite": "rgsa-rgtr-ablations", "suite_file": "suites/ablations/rgsa-rgtr.yaml",
            "dataset": "synthetic-video", "method": "rgsa-rgtr", "variant": variant,
            "seed": str(seed), "split": "0", "config_hash": f"{variant}{seed}",
            "config_key": f"{variant}{seed}", "protocol": "p", "device_name": "CPU A",
            "git_commit": "0123456789abcdef"}  # fmt: skip
    params = {"train.epochs": epochs, "data.height": 128, "seed": seed}
    metrics = {"mAP": float(columns["ap"].mean() * 100), "time.total_s": 50.0}
    mlf.log_batch(
        run_id,
        metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
        params=[Param(k, str(v)) for k, v in params.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    pairs = zip(PIDS, columns["camid"], strict=True)
    query = [SimpleNamespace(pid=int(p), camid=int(c)) for p, c in pairs]
    result = {"per_query": {"first": columns["first"].tolist(), "ap": columns["ap"].tolist()}}
    write_per_query(folder / PER_QUERY, result, query)
    (folder / "cmc.yaml").write_text(yaml.safe_dump({"cmc": [0.5] * 20}))
    for name in (PER_QUERY, "cmc.yaml"):
        mlf.log_artifact(run_id, str(folder / name))
    mlf.set_terminated(run_id, status="FINISHED", end_time=T0 + k * 60_000 + 50_000)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root}/mlflow.db"
    mlf = client(uri)
    exp = mlf.create_experiment("rgsa-rgtr-ablations", artifact_location=str(root / "artifacts"))
    for k, (variant, seed) in enumerate((v, s) for v in RGSA_ROWS for s in range(3)):
        log_cell(mlf, exp, variant, seed, k, root)
    return uri


def claim_lines(output: str) -> dict[str, str]:
    """claim id -> its verdict, from a printed Markdown claims table."""
    rows = [line.split("|") for line in output.splitlines() if line.startswith("| ")]
    return {cells[1].strip(): cells[-2].strip() for cells in rows if cells[1].strip() != "id"}


def test_bench_claims_prints_each_claim_of_the_suite_with_its_verdict(store):
    by_name = CliRunner().invoke(cli, ["claims", "rgsa-rgtr-ablations", "--tracking-uri", store])
    assert by_name.exit_code == 0, by_name.output
    verdicts = claim_lines(by_name.output)
    assert len(verdicts) == len(ledger().of("rgsa-rgtr-ablations"))
    assert verdicts["rgsa-rgtr-relation-module-over-inner-product"] == "reproduced"
    assert verdicts["rgsa-rgtr-inner-product-over-baseline"] == "contradicted"
    assert verdicts["rgsa-over-average-pooling"] == "inconclusive"
    assert verdicts["rgsa-rgtr-over-rgsa"] == "inconclusive"
    assert verdicts["rgsa-rgtr-total-over-ce"] == "not compared: train.epochs (6 vs 3)"
    assert verdicts["rgsa-rgtr-T8-over-T6"] == (
        "not run: no runs of rgsa-rgtr/T8 or rgsa-rgtr/T6 on synthetic-video"
    )
    assert "m = 4 claims compared, R = 2 of them decided" in by_name.output
    suite = str(ROOT / "suites" / "ablations" / "rgsa-rgtr.yaml")
    by_file = CliRunner().invoke(cli, ["claims", suite, "--tracking-uri", store])
    assert by_file.exit_code == 0 and by_file.output == by_name.output
    unknown = CliRunner().invoke(cli, ["claims", "video", "--tracking-uri", store])
    assert unknown.exit_code == 1 and unknown.output.startswith(
        "Error: bench/report/papers/claims.yaml has no claims on suite 'video'; its suites: "
    )


def test_the_report_reproduces_in_one_line_and_shows_the_claims(store, tmp_path):
    out = tmp_path / "reports"
    args = ["report", "--suite", "rgsa-rgtr-ablations", "--out", str(out), "--tracking-uri", store]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    page = (out / "rgsa-rgtr-ablations.md").read_text()
    assert page.splitlines()[:3] == [
        "# rgsa-rgtr-ablations",
        "",
        "Reproduce: `bench run suites/ablations/rgsa-rgtr.yaml && bench report --suite "
        "rgsa-rgtr-ablations` — commit 0123456; on CPU A; 15 cells in 14 min 50 s of wall time "
        "(the first run's start to the last run's end; 12 min 30 s of cell time).",
    ]
    claims = page[page.index("## The papers' claims") :]
    assert claim_lines(claims)["rgsa-rgtr-relation-module-over-inner-product"] == "reproduced"
    assert "mars: 84.0 vs 82.5 (+1.5)" in claims


def test_the_reproduce_line_of_runs_that_do_not_name_their_suite_file():
    start = pd.Timestamp("2024-01-01 10:00", tz="UTC")
    df = pd.DataFrame(
        {
            "start_time": [start, start + pd.Timedelta(minutes=1)],
            "end_time": [
                start + pd.Timedelta(seconds=30),
                start + pd.Timedelta(hours=1, seconds=5),
            ],
            "tags.git_commit": ["aaaaaaaaaa", "bbbbbbbbbb"],
            "tags.device_name": ["CPU A", "CPU A"],
        }
    )
    assert provenance_line(provenance(df, "x")) == (
        "Reproduce: `bench report --suite x` (the runs do not name their suite file) — commits "
        "bbbbbbb, aaaaaaa; on CPU A; 2 cells in 1 h 5 s of wall time (the first run's start to "
        "the last run's end)."
    )


def test_runs_name_their_suite_file_relative_to_the_working_directory(in_tmp):
    assert suite_file_tag(str(in_tmp / "suites" / "a.yaml")) == "suites/a.yaml"
    assert suite_file_tag("suites/a.yaml") == "suites/a.yaml"
    assert suite_file_tag("/elsewhere/a.yaml") == "/elsewhere/a.yaml"


def test_a_suite_without_runs_has_all_its_claims_not_run(store, tmp_path):
    result = CliRunner().invoke(cli, ["claims", "stal-ablations", "--tracking-uri", store])
    assert result.exit_code == 0, result.output
    assert set(claim_lines(result.output).values()) == {
        f"not run: no runs of {c.better[0]}/{c.better[1]} or {c.worse[0]}/{c.worse[1]} on "
        f"{c.dataset}"
        for _, c in ledger().of("stal-ablations")
    }
    with pytest.raises(BenchError):
        read_suite(tmp_path / "missing.yaml")
