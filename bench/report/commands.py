"""What ``bench report`` and ``bench compare`` do: read the runs, build, write and print."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import click
import pandas as pd
from tabulate import tabulate

from bench.errors import BenchError, ConfigError
from bench.report.alike import Setting, differing, known_settings
from bench.report.export import write
from bench.report.machines import MachineRows, describe, machine_rows
from bench.report.papers.ledger import check_suite, ledger, read_suite
from bench.report.provenance import tag_values
from bench.report.render import Table, to_markdown
from bench.report.stats import compare
from bench.report.table import (
    Row,
    build_report,
    load_failed,
    load_runs,
    parse_row,
    per_query_results,
    runsets,
    table_metrics,
)
from bench.report.verdicts import suite_claims


@dataclass
class ReportScope:
    """Which runs a report shows, and what it is called."""

    suite: str | None = None  # an experiment (default: every suite)
    dataset: str | None = None
    cells: set[str] = field(default_factory=set)  # config keys (default: every cell's runs)
    title: str | None = None  # the heading (default: the suite's name)
    file_name: str | None = None  # the files' name without suffix (default: from the title)
    command: str | None = None  # the command in the reproduce line (default: from the runs)


def write_reports(
    mlf,
    scope: ReportScope,
    out: Path,
    print_table: bool,
    formats: tuple[str, ...] = ("md",),
    reference: str | None = None,
    strict: bool = False,
) -> None:
    """One report per suite, in each format; the tables printed when asked. Nothing is
    written unless the scope has runs and, when ``strict``, the reference row is one."""
    df = load_runs(mlf, scope.suite, scope.dataset, scope.cells)
    failed = load_failed(mlf, scope.suite, scope.dataset, scope.cells)
    if df.empty:
        check_scope(mlf, scope)
        where = f" for suite '{scope.suite}'" if scope.suite else ""
        extra = f" ({len(failed)} failed: {', '.join(_errors(failed))})" if len(failed) else ""
        raise BenchError(
            f"no finished runs{where} in the MLflow store{extra}; run `bench run SUITE` first"
        )
    if strict and reference:
        check_reference(df, reference)
    for name, runs in df.groupby("tags.suite"):
        fails = failed[failed["tags.suite"] == name] if len(failed) else failed
        title = scope.title or (name if not scope.dataset else f"{name}-{scope.dataset}")
        report = build_report(mlf, runs, fails, title, reference, scope.command)
        report.file_name = scope.file_name or ""
        paths = write(mlf, report, out, formats or ("md",))
        if print_table:
            click.echo(f"\n## {name}\n\n{to_markdown(report.results)}\n")
            if report.claims is not None:
                click.echo(f"The papers' claims:\n\n{to_markdown(report.claims)}\n")
            if report.failed is not None:
                click.echo(f"failed cells (not ranked):\n\n{to_markdown(report.failed)}\n")
        for path in paths:
            click.echo(f"wrote {path}")


def check_scope(mlf, scope: ReportScope, suite_flag: str = "--suite") -> None:
    """A ``--suite`` that is no experiment of the store, or a ``--dataset`` none of its runs
    is on, as a ConfigError naming the flag and what there is."""
    suites = sorted(e.name for e in mlf.search_experiments() if e.name != "Default")
    if scope.suite is not None and scope.suite not in suites:
        raise ConfigError(
            suite_flag,
            f"expected one of the suites in the MLflow store: "
            f"{', '.join(suites) or 'none'} (got '{scope.suite}')",
        )
    if scope.dataset is not None:
        runs = load_runs(mlf, scope.suite)
        datasets = sorted(set(runs["tags.dataset"])) if not runs.empty else []
        if scope.dataset not in datasets:
            where = f" of suite '{scope.suite}'" if scope.suite else ""
            raise ConfigError(
                "--dataset",
                f"expected a dataset with finished runs{where}: "
                f"{', '.join(datasets) or 'none'} (got '{scope.dataset}')",
            )


def check_reference(df: pd.DataFrame, reference: str) -> None:
    """The reference row has runs in every suite reported."""
    row = parse_row(reference)
    for name, runs in df.groupby("tags.suite"):
        rows = set(zip(runs["tags.method"], runs["tags.variant"], strict=True))
        if row not in rows:
            shown = ", ".join("/".join(r) for r in sorted(rows))
            raise ConfigError(
                "--reference", f"expected a row of suite '{name}': {shown} (got '{reference}')"
            )


def _errors(failed: pd.DataFrame) -> list[str]:
    names = failed.get("tags.mlflow.runName", failed["tags.config_hash"])
    errors = failed.get("tags.error", pd.Series(["?"] * len(failed), index=failed.index))
    return [f"{n}: {e}" for n, e in zip(names, errors.fillna("?"), strict=True)]


def experiment_name(suite: str) -> str:
    """A suite file's name (the file validated), or the argument itself (an experiment name)."""
    if Path(suite).is_file():
        from bench.suite.load import load_suite

        return load_suite(suite).name
    if Path(suite).suffix in (".yaml", ".yml") or "/" in suite:
        raise ConfigError("SUITE", f"expected a suite file or a suite's name (got '{suite}')")
    return suite


@dataclass
class Comparison:
    """What ``bench compare`` prints: per dataset and metric A, B (means), B - A, its interval,
    the p-value and the counts behind them; the settings the rows were allowed to differ in;
    the machines that ran them."""

    rows: list[list]
    allowed: list[Setting]
    machines: MachineRows


def check_rows_ran(df: pd.DataFrame, name: str, a: str, b: str) -> tuple[Row, Row]:
    """Rows A and B (METHOD/VARIANT), each with finished runs in ``df`` (suite ``name``'s);
    else one line naming the argument and the rows there are."""
    rows = parse_row(a), parse_row(b)
    present = sorted(set(zip(df["tags.method"], df["tags.variant"], strict=True)))
    for arg, row in zip(("A", "B"), rows, strict=True):
        if row not in present:
            known = ", ".join("/".join(r) for r in present)
            raise ConfigError(
                arg, f"expected a row of suite '{name}': {known} (got '{'/'.join(row)}')"
            )
    return rows


def compare_rows(mlf, suite: str, a: str, b: str, allow_different: tuple[str, ...] = ()):
    """B - A on every dataset both rows ran, as a :class:`Comparison`; refused (one line) when
    their runs differ in a setting beyond the method and variant (:mod:`bench.report.alike`)
    that ``allow_different`` does not name."""
    name = experiment_name(suite)
    df = load_runs(mlf, name)
    if df.empty:
        check_scope(mlf, ReportScope(suite=name), "SUITE")
        raise BenchError(f"no finished runs of suite '{name}' in the MLflow store")
    row_a, row_b = check_rows_ran(df, name, a, b)
    allowed = check_allowed(df, allow_different)
    differ = [s for _, runs in df.groupby("tags.dataset") for s in differing(runs, row_a, row_b)]
    refused = [s for s in differ if s.name not in allowed]
    if refused:
        names = ",".join(dict.fromkeys(s.name for s in refused))
        raise BenchError(
            f"{a} and {b} were run otherwise: {', '.join(map(str, dict.fromkeys(refused)))}; "
            f"not compared (pass --allow-different {names} to compare them anyway)"
        )
    pair = df[df[["tags.method", "tags.variant"]].apply(tuple, axis=1).isin([row_a, row_b])]
    rows = _rows(pair, row_a, row_b, runsets(pair, per_query_results(mlf, pair)))
    if not rows:
        raise BenchError(
            f"suite '{name}': {a} and {b} share no (dataset, split, seed) with per-query results"
        )
    return Comparison(rows, list(dict.fromkeys(differ)), machine_rows(pair))


def check_allowed(df: pd.DataFrame, allow_different: tuple[str, ...]) -> set[str]:
    """The settings ``--allow-different`` names (comma-separated, repeatable), each one that
    the runs carry."""
    names = {n.strip() for item in allow_different for n in item.split(",") if n.strip()}
    unknown = sorted(names - known_settings(df))
    if unknown:
        raise ConfigError(
            "--allow-different",
            f"expected settings of these runs, e.g. train.epochs (got {', '.join(unknown)})",
        )
    return names


def _rows(df: pd.DataFrame, row_a: Row, row_b: Row, sets: dict) -> list[list]:
    rows = []
    for ds in dict.fromkeys(df["tags.dataset"]):
        ra, rb = sets.get((ds, *row_a)), sets.get((ds, *row_b))
        if ra is None or rb is None:
            continue
        for d in compare(ra, rb, table_metrics(df)):
            means = [_mean(df, ds, r, d.metric) for r in (row_a, row_b)]
            mark = " *" if d.significant else ""
            rows.append(
                [
                    ds,
                    d.metric,
                    f"{means[0]:.1f}",
                    f"{means[1]:.1f}",
                    f"{d.diff:+.1f}{mark}",
                    f"[{d.lo:+.1f}, {d.hi:+.1f}]",
                    f"{d.p:.3g}",
                    d.queries,
                    d.identities,
                    d.seeds,
                ]
            )
    return rows


def _mean(df: pd.DataFrame, dataset: str, row: Row, metric: str) -> float:
    runs = df[(df["tags.dataset"] == dataset) & (df["tags.method"] == row[0])]
    return runs[runs["tags.variant"] == row[1]][f"metrics.{metric}"].mean()


def print_comparison(mlf, suite: str, a: str, b: str, allow_different: tuple[str, ...]) -> None:
    result = compare_rows(mlf, suite, a, b, allow_different)
    header = ["dataset", "metric", "A", "B", "B - A", "95 % CI", "p", "queries", "ids", "seeds"]
    click.echo(f"A = {a}, B = {b}")
    click.echo(tabulate(result.rows, headers=header, disable_numparse=True))
    click.echo(
        "B - A in points; 95 % CI: a t interval over the paired seeds that adds the variance of "
        "the test identities, never narrower than the seeds' own t interval; p: the same t test "
        "(p < 0.05 exactly when the interval excludes 0); *: the interval excludes 0. "
        f"Uncorrected: each of these {len(result.rows)} comparisons stands alone (bench report "
        "corrects a table's comparisons for their number; this does not)."
    )
    if result.allowed:
        click.echo(
            "Note: compared although run otherwise (--allow-different): "
            + ", ".join(str(s) for s in result.allowed)
        )
    if len(result.machines) > 1:
        click.echo(f"Warning: {describe(result.machines)}; a difference may be the machines'.")


def claims_of(mlf, suite: str) -> tuple[str, Table]:
    """(suite name, claims table) of SUITE, a suite file or an experiment name: each claim of
    the ledger on the suite's finished runs (all *not run* before any), the ledger checked
    against the suite file (the one given, else the one the runs name, where it exists)."""
    book, name, given = ledger(), suite, Path(suite).is_file()
    if given:  # checked before any run is read; else against the file the runs name
        spec = read_suite(suite)
        name = spec.name
        check_suite(book, spec)
    if not book.of(name):
        raise BenchError(
            f"{book.where} has no claims on suite '{name}'; its suites: {', '.join(book.suites)}"
        )
    df = load_runs(mlf, name)
    files = [] if given else tag_values(df, "tags.suite_file")
    sets = runsets(df, per_query_results(mlf, df)) if not df.empty else {}
    return name, suite_claims(df, sets, name, next(iter(files), None), book)


def print_claims(mlf, suite: str) -> None:
    name, table = claims_of(mlf, suite)
    click.echo(f"## {name}: the papers' claims\n\n{to_markdown(table)}")
