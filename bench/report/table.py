"""Paper-style tables from the MLflow runs: mean ± std over seeds, each row's difference to a
reference row with its interval (bench.report.stats), corrected for the table's many comparisons,
shown only between rows run alike (bench.report.alike), the machines that ran them, the papers'
numbers, and the failed cells apart. The rendering (Markdown, LaTeX, CSV, HTML) is in
bench.report.export."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.errors import ConfigError
from bench.eval.per_query import PER_QUERY, read_per_query, valid_queries
from bench.files.artifacts import artifact_yaml, has_artifact, read_artifact
from bench.report.alike import Setting, differing
from bench.report.cost import claims_table, cost_caption, cost_columns
from bench.report.machines import MachineRows, describe, machine_rows
from bench.report.papers import RowSetting, lookup, paper_numbers, unmatched
from bench.report.probes import probe_table
from bench.report.provenance import provenance, provenance_line, tag_values
from bench.report.render import MARK, UNLIKE, Entry, Interval, Table, Value, to_markdown
from bench.report.stats import Difference, RunSet, compare, corrected, correction_text
from bench.report.stress import Sweep, find_sweeps, stress_table
from bench.report.training import (
    control_differences,
    control_table,
    training_table,
    unlike_controls,
    val_curves,
)
from bench.report.verdicts import suite_claims
from bench.suite.schema import ROW_PATTERN, Row

METRICS = ("R1", "R5", "R10", "R20", "mAP")
EXTRA_METRICS = ("mINP", "rerank.R1", "rerank.mAP", "rerank.mINP")
DELTA_METRICS = ("R1", "mAP", "mINP", "rerank.R1", "rerank.mAP")
PAPER_METRICS = ("R1", "R5", "R10", "R20", "mAP")
KEYS = ["tags.method", "tags.variant"]
CELL_KEYS = [*KEYS, "tags.dataset", "tags.seed", "tags.split"]
log = logging.getLogger("bench")
DEFAULT_REFERENCE: Row = ("baseline", "default")


def load_runs(
    mlf, suite: str | None = None, dataset: str | None = None, keys: set[str] | None = None
) -> pd.DataFrame:
    """Finished cell runs (not tuning trials) of one suite, or of every suite, as a frame;
    with ``keys``, only the runs of those configs (``config_key``)."""
    df = _keyed(_search(mlf, suite, dataset, "FINISHED"), keys)
    if df.empty:
        return df
    # the newest run of a config counts (a --force rerun, or one by newer code, replaces it)
    df = df.sort_values("start_time")
    return newest_per_cell(df[~config_keys(df).duplicated(keep="last")])


def newest_per_cell(df: pd.DataFrame) -> pd.DataFrame:
    """One run per cell (method, variant, dataset, seed, split): the newest configuration's.
    An experiment that holds two configurations of a cell (the suite edited, or run with
    ``-o``) would otherwise average them as if they were more seeds; the older ones are left
    out with a warning."""
    cells = df.reindex(columns=CELL_KEYS).astype(object).fillna("0").astype(str)
    older = cells.duplicated(keep="last")
    if older.any():
        first = cells[older].iloc[0]
        log.warning(
            "report: %d run(s) of an older configuration of the same cell left out (e.g. "
            "%s/%s on %s, seed %s); give each configuration its own experiment "
            "(-o name=...) to report both",
            int(older.sum()),
            *first[["tags.method", "tags.variant", "tags.dataset", "tags.seed"]],
        )
    return df[~older]


def config_keys(df: pd.DataFrame) -> pd.Series:
    """Each run's config without the code (``config_key``; a run made before code fingerprints
    has only ``config_hash``, which was that)."""
    keys = df["tags.config_hash"]
    return df["tags.config_key"].fillna(keys) if "tags.config_key" in df else keys


def _keyed(df: pd.DataFrame, keys: set[str] | None) -> pd.DataFrame:
    return df if df.empty or not keys else df[config_keys(df).isin(keys)]


def load_failed(
    mlf, suite: str | None = None, dataset: str | None = None, keys: set[str] | None = None
) -> pd.DataFrame:
    """FAILED cell runs whose config has no finished run (the newest per config)."""
    failed = _keyed(_search(mlf, suite, dataset, "FAILED"), keys)
    if failed.empty:
        return failed
    finished = _search(mlf, suite, dataset, "FINISHED")
    done = set(config_keys(finished)) if not finished.empty else set()
    failed = failed[~config_keys(failed).isin(done)].sort_values("start_time")
    return failed[~config_keys(failed).duplicated(keep="last")]


def _search(mlf, suite: str | None, dataset: str | None, status: str) -> pd.DataFrame:
    import mlflow

    exps = [e for e in mlf.search_experiments() if e.name != "Default"]
    if suite is not None:
        exps = [e for e in exps if e.name == suite]
    if not exps:
        return pd.DataFrame()
    df = mlflow.search_runs(
        [e.experiment_id for e in exps],
        filter_string=f"attributes.status = '{status}'",
        output_format="pandas",
    )
    if df.empty or "tags.config_hash" not in df:
        return pd.DataFrame()
    df = df[df["tags.config_hash"].notna()]
    if "tags.stage" in df:  # the pretrain stage's run is not a cell
        df = df[df["tags.stage"].isna()]
    if "tags.tune_study" in df:
        df = df[df["tags.tune_study"].isna()]
    if dataset is not None:
        df = df[df["tags.dataset"] == dataset]
    return df


def table_metrics(df: pd.DataFrame) -> list[str]:
    return [m for m in (*METRICS, *EXTRA_METRICS) if f"metrics.{m}" in df]


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample std (ddof 1) over seeds and splits: index (method, variant), columns
    (dataset, metric, 'mean' | 'std' | 'n')."""
    cols = [f"metrics.{m}" for m in table_metrics(df)]
    grouped = df.groupby([*KEYS, "tags.dataset"])[cols]
    stats = pd.concat(
        {"mean": grouped.mean(), "std": grouped.std(ddof=1), "n": grouped.count()}, axis=1
    )
    stats.columns = stats.columns.set_names(["stat", "metric"])
    stats.columns = stats.columns.set_levels(
        [c.removeprefix("metrics.") for c in stats.columns.levels[1]], level=1
    )
    wide = stats.unstack("tags.dataset")
    return wide.reorder_levels(["tags.dataset", "metric", "stat"], axis=1).sort_index(axis=1)


def check_row(flag: str, text: str) -> None:
    """``text`` is METHOD or METHOD/VARIANT, else a ConfigError naming ``flag``."""
    if not re.match(ROW_PATTERN, text):
        raise ConfigError(flag, f"expected METHOD or METHOD/VARIANT (got {text!r})")


def parse_row(text: str) -> Row:
    """'iaunet/no-Lp' -> ('iaunet', 'no-Lp'); 'iaunet' -> ('iaunet', 'default')."""
    method, _, variant = text.partition("/")
    return method, variant or "default"


def row_order(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda r: (r[0] != "baseline", r[0], r[1] != "default", r[1]))


def is_synthetic(dataset: str) -> bool:
    """Synthetic data (for a cross-dataset ``source→target``: the target, where it is measured)."""
    return dataset.split("→")[-1].startswith("synthetic")


# ---- per-query results and the differences to the reference -----------------------------


def per_query_results(mlf, df: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    """run id -> its per-query columns (runs logged before the artifact existed are left out)."""
    out = {}
    for run_id in df["run_id"]:
        if has_artifact(mlf, run_id, PER_QUERY):
            out[run_id] = read_artifact(mlf, run_id, PER_QUERY, read_per_query)
    return out


def runsets(df: pd.DataFrame, results: dict) -> dict[tuple[str, str, str], RunSet]:
    """(dataset, method, variant) -> {(split, seed): per-query columns}."""
    out: dict = {}
    for _, run in df.iterrows():
        if run["run_id"] in results:
            key = (run["tags.dataset"], run["tags.method"], run["tags.variant"])
            split = run.get("tags.split")
            split = int(split) if pd.notna(split) else 0  # runs made before splits were tagged
            out.setdefault(key, {})[(split, int(run["tags.seed"]))] = results[run["run_id"]]
    return out


def differences(
    sets: dict[tuple[str, str, str], RunSet],
    reference: Row,
    metrics: list[str],
    unlike_rows: dict | None = None,
) -> dict[tuple[str, str, str, str], Difference]:
    """(dataset, method, variant, metric) -> row - reference, for every non-reference row run
    alike (not in ``unlike_rows``), corrected together (one family: ``Difference.q``)."""
    out = {}
    for (ds, m, v), runs in sets.items():
        ref = sets.get((ds, *reference))
        if ref is None or (m, v) == reference or (ds, m, v) in (unlike_rows or {}):
            continue
        for d in compare(ref, runs, metrics):
            out[(ds, m, v, d.metric)] = d
    return corrected(out)


def unlike_reference(df: pd.DataFrame, reference: Row) -> dict[tuple[str, str, str], list]:
    """(dataset, method, variant) -> the settings in which a row's runs differ from the
    reference's (:func:`bench.report.alike.differing`), for the rows that differ."""
    out = {}
    for ds, runs in df.groupby("tags.dataset"):
        rows = set(zip(runs["tags.method"], runs["tags.variant"], strict=True))
        if reference not in rows:
            continue
        for row in sorted(rows - {reference}):
            settings = differing(runs, reference, row)
            if settings:
                out[(ds, *row)] = settings
    return out


@dataclass
class DatasetFacts:
    """What a caption states about one dataset's runs."""

    protocol: str
    seeds: int
    splits: int
    queries: int | None = None
    identities: int | None = None
    aux: str = ""
    machines: MachineRows = field(default_factory=dict)  # device name -> its rows
    sides: tuple[str, str] | None = None  # a cross-dataset entry's (train, test) datasets


def dataset_facts(df: pd.DataFrame, results: dict) -> dict[str, DatasetFacts]:
    out = {}
    for ds, runs in df.groupby("tags.dataset"):
        runs = runs.assign(split=runs.get("tags.split", "0")).fillna({"split": "0"})
        facts = DatasetFacts(
            protocol=", ".join(sorted(set(runs["tags.protocol"].dropna()))) or "unknown",
            seeds=runs["tags.seed"].nunique(),
            splits=runs["split"].nunique(),
        )
        if "tags.aux" in runs:
            facts.aux = ", ".join(sorted(set(runs["tags.aux"].dropna())))
        facts.machines = machine_rows(runs)
        if runs.get("tags.train_dataset", pd.Series(dtype=object)).notna().any():
            facts.sides = (runs["tags.train_dataset"].iloc[0], runs["tags.test_dataset"].iloc[0])
        scored = runs[runs["run_id"].isin(list(results))].drop_duplicates("split")
        if len(scored) == facts.splits:  # one run per split gives its query set
            columns = [results[r] for r in scored["run_id"]]
            valid = [valid_queries(c) for c in columns]
            facts.queries = int(sum(v.sum() for v in valid))
            facts.identities = sum(
                len(set(c["pid"][v])) for c, v in zip(columns, valid, strict=True)
            )
        out[ds] = facts
    return out


# ---- the tables ------------------------------------------------------------------------


def build_table(
    df: pd.DataFrame,
    diffs: dict | None = None,
    reference: Row = DEFAULT_REFERENCE,
    papers: bool = False,
    unlike_rows: dict | None = None,
) -> Table:
    """Rows = method / variant; per dataset: each metric's mean ± std (best in bold), its
    paper number beside it when ``papers`` and the dataset is real, and the Δ-to-reference
    intervals (:data:`UNLIKE` for the ``unlike_rows``, run otherwise than the reference)."""
    unlike_rows = unlike_rows or {}
    wide = summary(df)
    rows = row_order(list(wide.index))
    datasets = list(dict.fromkeys(wide.columns.get_level_values(0)))
    header = ["method", "variant"]
    columns: list[list[Entry]] = []
    for ds in datasets:
        present = [m for m in (*METRICS, *EXTRA_METRICS) if (ds, m, "mean") in wide.columns]
        for metric in present:
            header.append(f"{ds} {metric}")
            columns.append(_value_column(wide, ds, metric, rows))
            paper = _paper_column(df, ds, metric, rows) if papers else None
            if paper is not None:
                header.append(f"{ds} {metric} (paper)")
                columns.append(paper)
        if diffs is not None:
            for metric in [m for m in DELTA_METRICS if m in present]:
                header.append(f"{ds} Δ{metric}")
                columns.append(
                    [
                        UNLIKE
                        if (ds, *row) in unlike_rows
                        else _delta(diffs, ds, row, metric, reference, wide)
                        for row in rows
                    ]
                )
    cost_header, cost = cost_columns(df, rows, KEYS)
    header += cost_header
    columns += cost
    body = [[m, v, *(col[i] for col in columns)] for i, (m, v) in enumerate(rows)]
    table = Table(header, body)
    if any(h.endswith("(paper)") for h in header):
        table.notes.append(PAPER_NOTE)
    if diffs is not None and unlike_rows:
        table.notes.append(unlike_note(unlike_rows, reference))
    return table


PAPER_NOTE = (
    "(paper): the papers' numbers; in parentheses the paper's backbone, input size or test "
    "protocol where it is not the row's."
)


def unlike_note(unlike_rows: dict[tuple[str, str, str], list[Setting]], reference: Row) -> str:
    rows = "; ".join(
        f"{ds} {m}/{v}: {', '.join(str(s) for s in settings)}"
        for (ds, m, v), settings in sorted(unlike_rows.items())
    )
    return (
        f"{UNLIKE}: no Δ, the runs differ from {'/'.join(reference)}'s in more than the method "
        f"and its variant (the reference's value vs the row's): {rows}."
    )


def _value_column(wide: pd.DataFrame, ds: str, metric: str, rows: list[Row]) -> list[Entry]:
    means = wide[(ds, metric, "mean")]
    best = means.max()
    out: list[Entry] = []
    for row in rows:
        mean, n = means[row], wide[(ds, metric, "n")][row]
        std = wide[(ds, metric, "std")][row]
        out.append(Value(mean, std, 0 if pd.isna(n) else int(n), bool(mean == best)))
    return out


def _delta(diffs: dict, ds: str, row: Row, metric: str, reference: Row, wide) -> Entry:
    if row == reference:
        return "ref" if pd.notna(wide[(ds, metric, "mean")].get(row)) else None
    d = diffs.get((ds, *row, metric))
    return None if d is None else Interval(d.diff, d.lo, d.hi, d.discovered)


def _paper_names(df: pd.DataFrame, ds: str) -> list[str]:
    runs = df[df["tags.dataset"] == ds]
    names = [ds]
    if "tags.dataset_name" in runs:
        names += list(runs["tags.dataset_name"].dropna().unique())
    return [n for n in dict.fromkeys(names) if not is_synthetic(n)]


def _paper_column(df: pd.DataFrame, ds: str, metric: str, rows: list[Row]) -> list[Entry] | None:
    """The papers' numbers of each row, each with the paper's settings that are not the row's
    (:func:`bench.report.papers.unmatched`)."""
    if metric not in PAPER_METRICS:
        return None
    names = _paper_names(df, ds)
    found = [[p for n in names for p in lookup(m, v, n, metric)] for m, v in rows]
    if not any(found):
        return None
    out: list[Entry] = []
    for row, entries in zip(rows, found, strict=True):
        setting = row_setting(df, ds, row)
        texts = []
        for p in entries:
            differ = unmatched(p, setting)
            texts.append(f"{p.value:.1f}" + (f" ({', '.join(differ)})" if differ else ""))
        out.append(" / ".join(texts) or None)
    return out


def row_setting(df: pd.DataFrame, ds: str, row: Row) -> RowSetting:
    """A row's backbone, input size, protocol and splits on one dataset (None where its runs
    do not say, or disagree)."""
    runs = df[(df["tags.dataset"] == ds) & (df["tags.method"] == row[0])]
    runs = runs[runs["tags.variant"] == row[1]]

    def one(column: str) -> str | None:
        values = set(runs[column].dropna().astype(str)) if column in runs else set()
        return values.pop() if len(values) == 1 else None

    height, width = one("params.data.height"), one("params.data.width")
    splits = runs["tags.split"].nunique() if "tags.split" in runs else 1
    return RowSetting(
        one("params.model.backbone"),
        f"{height}x{width}" if height and width else None,
        one("tags.protocol"),
        int(splits),
        one("tags.dataset_name") or ds,
    )


def paper_table(rows: list[Row]) -> Table | None:
    """The papers' numbers for the report's rows, one line per paper setting."""
    groups: dict[tuple, dict[str, float]] = {}
    for p in paper_numbers():
        if (p.method, p.variant) in rows:
            key = (
                p.paper,
                p.method,
                p.variant,
                p.dataset,
                p.protocol,
                p.backbone,
                p.input,
                p.source,
            )
            groups.setdefault(key, {})[p.metric] = p.value
    if not groups:
        return None
    header = ["paper", "method", "variant", "dataset", "protocol", "backbone", "input", "source"]
    body = [
        [*key, *(Value(vals[m]) if m in vals else None for m in PAPER_METRICS)]
        for key, vals in sorted(groups.items())
    ]
    return Table([*header, *PAPER_METRICS], body)


def failed_table(failed: pd.DataFrame) -> Table | None:
    if failed.empty:
        return None
    errors = failed.get("tags.error", pd.Series([None] * len(failed), index=failed.index))
    names = failed.get("tags.mlflow.runName", failed["tags.config_hash"])
    body = [
        [name, " ".join(str(err).split()) if pd.notna(err) else "no error message recorded"]
        for name, err in zip(names, errors, strict=True)
    ]
    return Table(["cell", "error"], sorted(body))


def markdown_table(df: pd.DataFrame, diffs: dict | None = None, reference: Row = None) -> str:
    """The results table as Markdown (mean ± std, best in bold, Δ intervals when given)."""
    return to_markdown(build_table(df, diffs, reference or DEFAULT_REFERENCE))


def caption(facts: dict[str, DatasetFacts], reference: Row, diffs: dict | None) -> str:
    """What the table shows and how it was measured; ``diffs``: the Δ comparisons shown."""
    lines = ["Mean ± std over seeds and splits, in %; best mean per column in bold."]
    if diffs is not None:
        lines.append(delta_caption(reference, diffs))
    for ds, f in facts.items():
        counts = (
            f"{f.queries} queries of {f.identities} test identities"
            if f.queries is not None
            else "no per-query results"
        )
        over = f" (over {f.splits} splits)" if f.splits > 1 else ""
        aux = f"; auxiliary inputs: {f.aux}" if f.aux else ""
        machines = f"; {describe(f.machines)}" if f.machines else ""
        cross = (
            f"trained on the training split of {f.sides[0]}, tested on the test split of "
            f"{f.sides[1]}; "
            if f.sides
            else ""
        )
        lines.append(
            f"{ds}: {cross}protocol {f.protocol}; {counts}{over}; {f.seeds} seed(s){aux}{machines}."
        )
    return " ".join(lines)


def delta_caption(reference: Row, diffs: dict[tuple, Difference]) -> str:
    ref = "/".join(reference)
    if not diffs:
        return f"Δ: difference to {ref}: none computed (no per-query results of rows run alike)."
    one_seed = any(d.seeds == 1 for d in diffs.values())
    return (
        f"Δ: difference to {ref} in points with its 95 % interval, a t interval over the paired "
        "seeds that adds the variance of the test identities, never narrower than the seeds' "
        f"own t interval (docs/statistics.md); {MARK}: significant after the "
        f"{correction_text(len(diffs))}, the table's comparisons to {ref} (rows × metrics × "
        f"datasets); an interval may exclude 0 without {MARK}."
        + (" Compared on one seed: the interval covers the test identities only." * one_seed)
    )


# ---- a report: tables + figures -------------------------------------------------------


@dataclass
class Report:
    """Everything one report shows; bench.report.export renders it."""

    name: str
    results: Table
    reference: Row
    papers: Table | None = None
    papers_are_directions: bool = False
    failed: Table | None = None
    figures: list[tuple[str, Path]] = field(default_factory=list)
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    controls: Table | None = None  # each method against its own control
    claims: Table | None = None  # the papers' claims on the suite's rows, with verdicts
    provenance: str = ""  # the command that reproduces it, the commit, machine and wall time
    probes: Table | None = None  # what each mechanism does (probe.*), where no sweep shows it
    stress: Table | None = None  # gains over the controls and probes by nuisance level
    sweeps: list[Sweep] = field(default_factory=list)
    gains: dict = field(default_factory=dict)  # (dataset, method) -> metric -> vs its control
    costs: Table | None = None  # the papers' cost claims beside the measured cost
    training: Table | None = None  # validation curves' ends, convergence, gates
    curves: dict[str, list[float]] = field(default_factory=dict)  # run id -> val.mAP by epoch
    file_name: str = ""  # the files' name without suffix (default: from the name)


def resolve_reference(df: pd.DataFrame, reference: str | None) -> Row:
    """The explicit reference, else the newest run's ``report_reference`` tag, else the
    baseline's default variant."""
    if reference:
        return parse_row(reference)
    if "tags.report_reference" in df:
        tagged = df.sort_values("start_time")["tags.report_reference"].dropna()
        if len(tagged):
            return parse_row(tagged.iloc[-1])
    return DEFAULT_REFERENCE


def build_report(
    mlf,
    df: pd.DataFrame,
    failed: pd.DataFrame,
    name: str,
    reference: str | None = None,
    command: str | None = None,
) -> Report:
    """The report of one suite's runs; ``command``: its reproduce line's (default: from the
    runs' suite file)."""
    ref = resolve_reference(df, reference)
    results = per_query_results(mlf, df)
    sets = runsets(df, results)
    unlike_rows = unlike_reference(df, ref)
    delta_metrics = [m for m in DELTA_METRICS if f"metrics.{m}" in df]
    diffs = differences(sets, ref, delta_metrics, unlike_rows)
    names = df.get("tags.dataset_name", df["tags.dataset"]).fillna(df["tags.dataset"])
    real = any(not is_synthetic(d) for d in names.unique())
    table = build_table(df, diffs, ref, papers=real, unlike_rows=unlike_rows)
    table.caption = caption(dataset_facts(df, results), ref, diffs)
    costs = cost_caption(df)
    table.caption += f" {costs}" if costs else ""
    if (ref[0], ref[1]) not in set(zip(df["tags.method"], df["tags.variant"], strict=True)):
        table.notes.append(f"The reference row {'/'.join(ref)} has no run here: no Δ column.")
    rows = list(set(zip(df["tags.method"], df["tags.variant"], strict=True)))
    papers = None if real else paper_table(rows)
    if papers is not None:
        papers.caption = (
            "The papers' own numbers, on real data with ImageNet-pretrained backbones and long "
            "schedules: directions only, not comparable in level with the synthetic runs above."
        )
    metrics = [m for m in ("R1", "mAP") if f"metrics.{m}" in df]
    curves = val_curves(mlf, df)
    suite = suite_name(df, name)
    unlike = unlike_controls(df)
    gains = control_differences(sets, metrics, unlike)
    sweeps = find_sweeps(df)
    return Report(
        name,
        table,
        ref,
        papers,
        not real,
        failed_table(failed),
        runs=df,
        controls=control_table(sets, diffs, ref, metrics, unlike),
        training=training_table(df, curves),
        curves=curves,
        claims=suite_claims(df, sets, suite, next(iter(tag_values(df, "tags.suite_file")), None)),
        provenance=provenance_line(provenance(df, suite, command)),
        probes=None if sweeps else probe_table(df),
        stress=stress_table(sweeps, gains, df, metrics),
        sweeps=sweeps,
        gains=gains,
        costs=claims_table(df, KEYS, DEFAULT_REFERENCE),
    )


def suite_name(df: pd.DataFrame, name: str) -> str:
    """The suite (experiment) the runs belong to: their newest ``suite`` tag, else ``name``."""
    return next(iter(tag_values(df, "tags.suite")), name)


def mean_cmc_curves(mlf, df: pd.DataFrame, dataset: str) -> dict[str, list[float]]:
    """Mean CMC curve per method / variant on a dataset, from the runs' cmc.yaml artifacts."""
    curves: dict[str, list[list[float]]] = {}
    for _, run in df[df["tags.dataset"] == dataset].iterrows():
        curve = artifact_yaml(mlf, run["run_id"], "cmc.yaml")["cmc"]
        curves.setdefault(label(run["tags.method"], run["tags.variant"]), []).append(curve)
    return {k: [sum(c) / len(c) for c in zip(*v, strict=True)] for k, v in curves.items()}


def rerank_gains(df: pd.DataFrame, dataset: str) -> dict[str, dict[str, tuple[float, float]]]:
    """label -> {'R1' | 'mAP': (plain, re-ranked)} mean over runs, for rows that re-ranked."""
    out: dict = {}
    runs = df[df["tags.dataset"] == dataset]
    for (m, v), rows in runs.groupby(KEYS):
        gains = {
            metric: (rows[f"metrics.{metric}"].mean(), rows[f"metrics.rerank.{metric}"].mean())
            for metric in ("R1", "mAP")
            if f"metrics.rerank.{metric}" in rows and rows[f"metrics.rerank.{metric}"].notna().any()
        }
        if gains:
            out[label(m, v)] = gains
    return out


def seqlen_grids(df: pd.DataFrame) -> dict[tuple[str, str], dict[tuple[int, int], float]]:
    """Mean rank-1 by (probe, gallery) length for each dataset x method that ran the study
    (one variant each, :func:`_seqlen_rows`: one heat map per method keeps a report readable)."""
    cols = [c for c in df.columns if c.startswith("metrics.seqlen.R1.")]
    out: dict = {}
    for key, rows in _seqlen_rows(df):
        grid = {}
        for col in cols:
            value = rows[col].mean()
            if pd.notna(value):
                q, g = col.removeprefix("metrics.seqlen.R1.").split(".")
                grid[(_length(q[1:]), _length(g[1:]))] = float(value)
        if grid:
            out[key] = grid
    return out


def seqlen_caption(df: pd.DataFrame, dataset: str, row: str) -> tuple[str, str]:
    """(short, long) account of how a :func:`seqlen_grids` heat map was measured: the draws
    of L random frames per tracklet (``metrics.seqlen.draws``) and the runs it averages."""
    rows = dict(_seqlen_rows(df))[(dataset, row)]
    draws = rows.get("metrics.seqlen.draws", pd.Series(dtype=float)).dropna()
    runs = f"{len(rows)} run{'s' * (len(rows) != 1)}"
    if draws.empty:  # runs from before the random draws
        return f"first L frames, {runs}", f"rank-1, the first L frames of each tracklet, {runs}"
    n = "/".join(str(int(d)) for d in sorted(set(draws)))
    return f"mean of {n} draws, {runs}", (
        f"rank-1, mean over {n} draws of L random frames per tracklet (shorter tracklets "
        f"padded with random frames of their own) and over {runs}"
    )


def _seqlen_rows(df: pd.DataFrame):
    """((dataset, label), runs) of the variant of each dataset x method that ran the study:
    its default if that did, else the first by name (a suite may give the study a row of its
    own, as it costs more than a training)."""
    cols = [c for c in df.columns if c.startswith("metrics.seqlen.R1.")]
    if not cols:
        return
    ran = df[df[cols].notna().any(axis=1)]
    for (ds, m), rows in ran.groupby(["tags.dataset", "tags.method"]):
        variants = set(rows["tags.variant"])
        v = "default" if "default" in variants else sorted(variants)[0]
        yield (ds, label(m, v)), rows[rows["tags.variant"] == v]


def label(method: str, variant: str) -> str:
    return method if variant == "default" else f"{method} ({variant})"


def _length(text: str) -> int:
    return 0 if text == "all" else int(text)
