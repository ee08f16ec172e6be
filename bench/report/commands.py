"""What ``bench report`` and ``bench compare`` do: read the runs, build, write and print."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd
from tabulate import tabulate

from bench.errors import BenchError
from bench.report.export import write
from bench.report.render import to_markdown
from bench.report.stats import N_BOOT, N_PERM, compare
from bench.report.table import (
    build_report,
    load_failed,
    load_runs,
    parse_row,
    per_query_results,
    runsets,
    table_metrics,
)


def write_reports(
    mlf,
    suite: str | None,
    dataset: str | None,
    out: Path,
    print_table: bool,
    formats: tuple[str, ...] = ("md",),
    reference: str | None = None,
) -> None:
    """One report per suite, in each format; the tables printed when asked."""
    df = load_runs(mlf, suite, dataset)
    failed = load_failed(mlf, suite, dataset)
    if df.empty:
        where = f" for suite '{suite}'" if suite else ""
        extra = f" ({len(failed)} failed: {', '.join(_errors(failed))})" if len(failed) else ""
        raise BenchError(
            f"no finished runs{where} in the MLflow store{extra}; run `bench run SUITE` first"
        )
    for name, runs in df.groupby("tags.suite"):
        fails = failed[failed["tags.suite"] == name] if len(failed) else failed
        title = name if not dataset else f"{name}-{dataset}"
        report = build_report(mlf, runs, fails, title, reference)
        paths = write(mlf, report, out, formats)
        if print_table:
            click.echo(f"\n## {name}\n\n{to_markdown(report.results)}\n")
            if report.failed is not None:
                click.echo(f"failed cells (not ranked):\n\n{to_markdown(report.failed)}\n")
        for path in paths:
            click.echo(f"wrote {path}")


def _errors(failed: pd.DataFrame) -> list[str]:
    names = failed.get("tags.mlflow.runName", failed["tags.config_hash"])
    errors = failed.get("tags.error", pd.Series(["?"] * len(failed), index=failed.index))
    return [f"{n}: {e}" for n, e in zip(names, errors.fillna("?"), strict=True)]


def experiment_name(suite: str) -> str:
    """A suite file's name, or the argument itself (an experiment name)."""
    if Path(suite).is_file():
        from bench.suite.load import load_suite

        return load_suite(suite).name
    return suite


def compare_rows(
    mlf, suite: str, a: str, b: str, n_boot: int = N_BOOT, n_perm: int = N_PERM
) -> list[list]:
    """Per dataset and metric: A, B (means), B - A, its 95 % interval, the p-value and the
    counts behind them."""
    name = experiment_name(suite)
    df = load_runs(mlf, name)
    if df.empty:
        raise BenchError(f"no finished runs of suite '{name}' in the MLflow store")
    row_a, row_b = parse_row(a), parse_row(b)
    present = sorted(set(zip(df["tags.method"], df["tags.variant"], strict=True)))
    for row in (row_a, row_b):
        if row not in present:
            known = ", ".join("/".join(r) for r in present)
            raise BenchError(f"suite '{name}': no finished run of '{'/'.join(row)}'; rows: {known}")
    df = df[df[["tags.method", "tags.variant"]].apply(tuple, axis=1).isin([row_a, row_b])]
    sets = runsets(df, per_query_results(mlf, df))
    metrics = table_metrics(df)
    rows = []
    for ds in dict.fromkeys(df["tags.dataset"]):
        ra, rb = sets.get((ds, *row_a)), sets.get((ds, *row_b))
        if ra is None or rb is None:
            continue
        for d in compare(ra, rb, metrics, n_boot, n_perm):
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
    if not rows:
        raise BenchError(
            f"suite '{name}': {a} and {b} share no (dataset, split, seed) with per-query results"
        )
    return rows


def _mean(df: pd.DataFrame, dataset: str, row: tuple[str, str], metric: str) -> float:
    runs = df[(df["tags.dataset"] == dataset) & (df["tags.method"] == row[0])]
    return runs[runs["tags.variant"] == row[1]][f"metrics.{metric}"].mean()


def print_comparison(mlf, suite: str, a: str, b: str, n_boot: int, n_perm: int) -> None:
    rows = compare_rows(mlf, suite, a, b, n_boot, n_perm)
    header = ["dataset", "metric", "A", "B", "B - A", "95 % CI", "p", "queries", "ids", "seeds"]
    click.echo(f"A = {a}, B = {b}")
    click.echo(tabulate(rows, headers=header, disable_numparse=True))
    click.echo(
        f"B - A in points; interval: paired bootstrap over test identities and seeds "
        f"({n_boot} resamples); p: two-sided sign-flip permutation test over identities "
        f"({n_perm} permutations); *: the interval excludes 0."
    )
