"""The ``bench`` commands: their arguments and flags; each body is one call into
:mod:`bench.runner`."""

from __future__ import annotations

import click

from bench import runner
from bench.cli.options import (
    claims_option,
    device_option,
    launch_options,
    suite_options,
    tracking_option,
    tune_scale_options,
)


@click.command()
@click.argument("suite_file", type=click.Path(dir_okay=False))
@suite_options
@tracking_option
@click.option("--dry-run", is_flag=True, help="Print the grid of cells and stop.")
@click.option("--force", is_flag=True, help="Rerun cells that already finished.")
@click.option(
    "--reuse-stale",
    is_flag=True,
    help="Reuse a cell's finished run made by other code (its config matches, its code "
    "fingerprint does not) instead of running the cell again; tagged reused_stale.",
)
@click.option("--no-report", is_flag=True, help="Do not print the table at the end.")
@click.option(
    "--report-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="Write the report here, named as the suite (default: reports/; a run changed by -o, "
    "-O or -m writes reports/SUITE@CHANGES.md beside the suite's own report).",
)
@click.option(
    "-m", "--method", "only", multiple=True, help="Run only these of the suite's methods."
)
@device_option
@click.option(
    "--ddp",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Train each cell in N local processes with DistributedDataParallel (one per GPU).",
)
@claims_option
@launch_options
def run(**params) -> None:
    """Run every cell of SUITE_FILE (skipping finished ones) and log it to MLflow."""
    slurm = {k: params.pop(k) for k in runner.SLURM_FLAGS}
    runner.run(runner.RunArgs(**params, slurm=slurm))


@click.command()
@click.argument("suite_file", type=click.Path(dir_okay=False))
@suite_options
@tracking_option
@device_option
@click.option("--force", is_flag=True, help="Train again even if the weights are cached.")
def pretrain(force: bool, **params) -> None:
    """Train SUITE_FILE's pretrain: stages (our warm start of its backbone on the training
    identities' frames), one per seed, once; cached as WORKDIR/pretrain/<hash>/backbone.pt."""
    runner.pretrain(runner.SuiteArgs(**params), force)


@click.command()
@click.argument("suite_file", type=click.Path(dir_okay=False))
@suite_options
@tracking_option
@claims_option
def status(claims_uri: str | None, **params) -> None:
    """Each cell of SUITE_FILE: pending, running (where), finished or failed (its error)."""
    runner.status(runner.SuiteArgs(**params), claims_uri)


@click.command()
@click.option("--table", is_flag=True, help="Print the Markdown table.")
@click.option("--suite", "suite_name", default=None, help="Only this suite (experiment name).")
@click.option("--dataset", default=None, help="Only this dataset.")
@click.option("--out", default="reports", show_default=True, type=click.Path(file_okay=False))
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(["md", "latex", "csv", "html"]),
    help="Output format(s) (repeatable; default md).",
)
@click.option("--reference", default=None, help="Reference row METHOD/VARIANT for the Δ columns.")
@click.option(
    "--readme",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Also refresh this README: the main job's table (if its marker names this suite's "
    "report) and the papers' claims counts (between their markers).",
)
@tracking_option
def report(tracking_uri: str | None, **params) -> None:
    """Tables (mean ± std over seeds, Δ to a reference with 95 % intervals) and figures from
    the MLflow runs, into reports/."""
    runner.report(runner.ReportArgs(**params), tracking_uri)


@click.command(name="compare")
@click.argument("suite")
@click.argument("a")
@click.argument("b")
@click.option(
    "--allow-different",
    "allow_different",
    multiple=True,
    metavar="SETTINGS",
    help="Compare although the rows' runs differ in these settings (comma-separated, e.g. "
    "train.epochs,data.height; 'seeds' for different seeds).",
)
@tracking_option
def compare(suite, a, b, allow_different, tracking_uri) -> None:
    """B - A in every metric with its 95 % interval and p-value (uncorrected), for two rows run
    alike. SUITE: a suite file or an experiment name; A, B: METHOD/VARIANT (VARIANT defaults to
    'default')."""
    runner.compare(suite, a, b, allow_different, tracking_uri)


@click.command(name="claims")
@click.argument("suite")
@tracking_option
def claims(suite, tracking_uri) -> None:
    """The papers' claims on SUITE's rows (bench/report/papers/claims.yaml), each with bench's
    difference better - worse, its interval corrected for the suite's claims and a verdict:
    reproduced, contradicted, inconclusive, not run or not compared. SUITE: a suite file or an
    experiment name."""
    runner.claims(suite, tracking_uri)


@click.command()
@click.argument("method")
@click.option("--trials", default=50, show_default=True, type=click.IntRange(1))
@click.option(
    "--suite",
    "suite_file",
    default="suites/video.yaml",
    show_default=True,
    help="Suite giving the dataset (its first) and the shared settings.",
)
@suite_options
@tracking_option
@device_option
@click.option(
    "--storage",
    default="sqlite:///optuna.db",
    show_default=True,
    help="Optuna storage URL (any RDB URL, e.g. postgresql://...).",
)
@click.option("--study-name", default=None, help="Default: METHOD-DATASET.")
@click.option(
    "--val-fraction",
    default=0.25,
    show_default=True,
    type=click.FloatRange(0.05, 0.9),
    help="Share of training identities held out for validation.",
)
@click.option("--out", default="reports/tune", show_default=True, type=click.Path(file_okay=False))
@tune_scale_options
def tune(**params) -> None:
    """Search METHOD's hyper-parameters with Optuna on a validation split of training ids."""
    runner.tune(runner.TuneArgs(**params))


@click.command(name="list")
def list_plugins() -> None:
    """Methods (with their config fields and defaults) and datasets."""
    click.echo(runner.describe_plugins())


COMMANDS = (run, pretrain, status, report, compare, claims, tune, list_plugins)
