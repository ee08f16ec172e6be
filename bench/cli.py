"""The ``bench`` command line: run, report, tune, list and data."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from bench.data.cli import data
from bench.errors import BenchError


def _tracking_option(f):
    return click.option(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db).",
    )(f)


def _suite_options(f):
    f = click.option(
        "-o",
        "--override",
        "overrides",
        multiple=True,
        metavar="KEY=VALUE",
        help="Override a suite key, e.g. -o train.epochs=2 -o seeds=[0].",
    )(f)
    f = click.option(
        "-O",
        "--override-file",
        "override_files",
        multiple=True,
        type=click.Path(exists=True, dir_okay=False),
        help="A YAML patch merged into the suite (e.g. from bench tune).",
    )(f)
    f = click.option(
        "--data-root",
        default=None,
        envvar="BENCH_DATA_ROOT",
        help="Folder holding the datasets (default ./data).",
    )(f)
    return click.option(
        "--workdir",
        default=".bench",
        show_default=True,
        type=click.Path(file_okay=False),
        help="Checkpoints of running cells.",
    )(f)


def _claims_option(f):
    return click.option(
        "--claims-uri",
        default=None,
        envvar="BENCH_CLAIMS_URI",
        help="Database of the cells' claims (default: beside the tracking store; needed with "
        "a tracking server, e.g. postgresql://USER@HOST/DB).",
    )(f)


def _launch_options(f):
    """--jobs, --launcher, the Slurm settings and the lease of a claim."""
    slurm = [
        ("--partition", str, "Slurm partition."),
        ("--gpus-per-task", click.IntRange(0), "GPUs of each Slurm task (one cell)."),
        ("--cpus-per-task", click.IntRange(1), "CPU cores of each Slurm task."),
        ("--mem-gb", click.FloatRange(0, min_open=True), "Memory of each Slurm task."),
        ("--time-min", click.IntRange(1), "Time limit of each Slurm task, minutes."),
        ("--array-parallelism", click.IntRange(1), "Slurm tasks running at once."),
    ]
    for flag, kind, text in reversed(slurm):
        f = click.option(flag, type=kind, default=None, help=text)(f)
    f = click.option(
        "--sbatch", multiple=True, metavar="KEY=VALUE", help="Extra sbatch option (repeatable)."
    )(f)
    f = click.option(
        "--launcher-config",
        default=None,
        type=click.Path(exists=True, dir_okay=False),
        help="YAML of launcher settings, over the suite's launcher: section.",
    )(f)
    f = click.option(
        "--lease-s",
        default=60.0,
        show_default=True,
        type=click.FloatRange(1),
        help="A claim its worker has not renewed for this long is taken over.",
    )(f)
    f = click.option(
        "--launcher",
        type=click.Choice(["local", "pool", "slurm"]),
        default=None,
        help="Where cells run: this process, --jobs processes, or a Slurm job array "
        "(default: pool with --jobs, else local).",
    )(f)
    return click.option(
        "--jobs",
        default=None,
        metavar="N|auto",
        help="Worker processes on this machine (auto: one per visible GPU, else cores/2).",
    )(f)


class BenchGroup(click.Group):
    """Turns a user error (BenchError) into one clear message and exit code 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BenchError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=BenchGroup)
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def cli(verbose: bool) -> None:
    """bench: fair, reproducible benchmarks of person re-identification methods."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@cli.command()
@click.argument("suite_file", type=click.Path(dir_okay=False))
@_suite_options
@_tracking_option
@click.option("--dry-run", is_flag=True, help="Print the grid of cells and stop.")
@click.option("--force", is_flag=True, help="Rerun cells that already finished.")
@click.option("--no-report", is_flag=True, help="Do not print the table at the end.")
@click.option(
    "-m", "--method", "only", multiple=True, help="Run only these of the suite's methods."
)
@_claims_option
@_launch_options
def run(
    suite_file,
    overrides,
    override_files,
    data_root,
    workdir,
    tracking_uri,
    dry_run,
    force,
    no_report,
    only,
    claims_uri,
    jobs,
    launcher,
    lease_s,
    launcher_config,
    sbatch,
    **slurm,
) -> None:
    """Run every cell of SUITE_FILE (skipping finished ones) and log it to MLflow."""
    from bench.engine.executors import Launch, launcher_settings, parse_jobs
    from bench.runner import print_grid, run_suite
    from bench.suite import load_suite

    suite = load_suite(suite_file, overrides, override_files)
    unknown = set(only) - set(suite.spec.methods)
    if unknown:
        raise click.BadParameter(
            f"not methods of this suite: {', '.join(sorted(unknown))}", param_hint="--method"
        )
    cells = [c for c in suite.cells(data_root) if not only or c.method in only]
    if dry_run:
        print_grid(suite, cells)
        return
    jobs = parse_jobs(jobs)
    settings = launcher_settings(suite.spec.launcher, launcher_config, dict(slurm, sbatch=sbatch))
    launch = Launch(
        executor=launcher or ("local" if jobs == 1 else "pool"),
        jobs=jobs,
        launcher=settings,
        claims_uri=claims_uri,
        lease_s=lease_s,
    )
    run_suite(suite, cells, tracking_uri, Path(workdir), data_root, force, not no_report, launch)


@cli.command()
@click.argument("suite_file", type=click.Path(dir_okay=False))
@_suite_options
@_tracking_option
@_claims_option
def status(
    suite_file, overrides, override_files, data_root, workdir, tracking_uri, claims_uri
) -> None:
    """Each cell of SUITE_FILE: pending, running (where), finished or failed (its error)."""
    from bench.runner import show_status
    from bench.suite import load_suite

    suite = load_suite(suite_file, overrides, override_files)
    show_status(suite, suite.cells(data_root), tracking_uri, claims_uri)


@cli.command()
@click.option("--table", is_flag=True, help="Print the Markdown table.")
@click.option("--suite", "suite_name", default=None, help="Only this suite (experiment name).")
@click.option("--dataset", default=None, help="Only this dataset.")
@click.option("--out", default="reports", show_default=True, type=click.Path(file_okay=False))
@_tracking_option
def report(table, suite_name, dataset, out, tracking_uri) -> None:
    """Tables (mean ± std over seeds) and figures from the MLflow runs, into reports/."""
    from bench.runner import make_reports

    make_reports(tracking_uri, suite_name, dataset, Path(out), print_table=table)


@cli.command()
@click.argument("method")
@click.option("--trials", default=50, show_default=True, type=click.IntRange(1))
@click.option(
    "--suite",
    "suite_file",
    default="suites/video.yaml",
    show_default=True,
    help="Suite giving the dataset (its first) and the shared settings.",
)
@_suite_options
@_tracking_option
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
def tune(
    method,
    trials,
    suite_file,
    overrides,
    override_files,
    data_root,
    workdir,
    tracking_uri,
    storage,
    study_name,
    val_fraction,
    out,
) -> None:
    """Search METHOD's hyper-parameters with Optuna on a validation split of training ids."""
    from bench.runner import run_tune

    run_tune(
        method,
        trials,
        suite_file,
        overrides,
        override_files,
        data_root,
        Path(workdir),
        tracking_uri,
        storage,
        study_name,
        val_fraction,
        Path(out),
    )


@cli.command(name="list")
def list_plugins() -> None:
    """Methods (with their config fields and defaults) and datasets."""
    from bench.runner import describe_plugins

    click.echo(describe_plugins())


def main() -> None:
    cli(prog_name="bench")


cli.add_command(data)
