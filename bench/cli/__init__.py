"""The ``bench`` command line: run, report, tune, list and data."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from bench.cli.data import data
from bench.errors import BenchError
from bench.preflight import check_run_paths, store_folders


def _tracking_option(f):
    return click.option(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db).",
    )(f)


def _device_option(f):
    return click.option(
        "--device",
        default=None,
        help="auto (first visible GPU, else the CPU) | cpu | cuda | cuda:N | mps; "
        "default: the suite's defaults.runtime.device (auto).",
    )(f)


def _with_device(overrides: tuple[str, ...], device: str | None) -> tuple[str, ...]:
    """The overrides, plus the --device choice as defaults.runtime.device."""
    return (*overrides, f"defaults.runtime.device={device}") if device else overrides


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


def _spawn_ranks(n: int, suite_name: str, params: dict) -> int:
    """``bench run`` again in n processes (the ranks of DDP), after creating the MLflow store
    and the experiment here, so that no rank runs migrations; returns their exit code."""
    from bench.engine import store
    from bench.engine.distributed import spawn

    uri, _ = store.prepare(params["tracking_uri"], suite_name, params["claims_uri"])
    args = ["run", params["suite_file"], "--tracking-uri", uri, "--workdir", params["workdir"]]
    args += ["--lease-s", str(params["lease_s"])]
    args += [a for o in params["overrides"] for a in ("-o", o)]
    args += [a for o in params["override_files"] for a in ("-O", o)]
    args += [a for m in params["only"] for a in ("-m", m)]
    for flag in ("force", "reuse_stale", "no_report"):
        args += [f"--{flag.replace('_', '-')}"] if params[flag] else []
    for key in ("data_root", "device", "claims_uri"):
        args += [f"--{key.replace('_', '-')}", params[key]] if params[key] else []
    return spawn(n, args)


def _options(*specs: tuple[str, dict]):
    """A decorator adding click options given as data: (flag, click.option kwargs), in order."""

    def apply(f):
        for flag, kwargs in reversed(specs):
            f = click.option(flag, **kwargs)(f)
        return f

    return apply


_tune_scale_options = _options(
    (
        "--workers",
        dict(
            default=1,
            show_default=True,
            type=click.IntRange(1),
            help="Worker processes on this machine, each running trials of the study.",
        ),
    ),
    (
        "--first-worker",
        dict(
            default=0,
            show_default=True,
            type=click.IntRange(0),
            help="Index of this machine's first worker (seeds differ by index): give each "
            "machine joining a study its own range.",
        ),
    ),
    ("--seed", dict(default=0, show_default=True, help="Base seed of the workers' samplers.")),
    (
        "--heartbeat-interval",
        dict(
            default=10,
            show_default=True,
            type=click.IntRange(1),
            help="Seconds between a running trial's heartbeats.",
        ),
    ),
    (
        "--grace-period",
        dict(
            default=30,
            show_default=True,
            type=click.IntRange(1),
            help="A trial whose heartbeat is older than this (its worker died) is marked failed.",
        ),
    ),
)


def _claims_option(f):
    return click.option(
        "--claims-uri",
        default=None,
        envvar="BENCH_CLAIMS_URI",
        help="Database of the cells' claims (default: beside the tracking store; needed with "
        "a tracking server, e.g. postgresql://USER@HOST/DB).",
    )(f)


#: --jobs, --launcher, the lease of a claim and the Slurm settings.
_launch_options = _options(
    (
        "--jobs",
        dict(
            default=None,
            metavar="N|auto",
            help="Worker processes on this machine (auto: one per visible GPU, else cores/2; "
            "default: the suite's launcher.jobs, else 1).",
        ),
    ),
    (
        "--launcher",
        dict(
            type=click.Choice(["local", "pool", "slurm"]),
            default=None,
            help="Where cells run: this process, --jobs processes, or a Slurm job array "
            "(default: pool with --jobs, else local).",
        ),
    ),
    (
        "--lease-s",
        dict(
            default=60.0,
            show_default=True,
            type=click.FloatRange(1),
            help="A claim its worker has not renewed for this long is taken over.",
        ),
    ),
    (
        "--launcher-config",
        dict(
            default=None,
            type=click.Path(exists=True, dir_okay=False),
            help="YAML of launcher settings, over the suite's launcher: section.",
        ),
    ),
    (
        "--sbatch",
        dict(multiple=True, metavar="KEY=VALUE", help="Extra sbatch option (repeatable)."),
    ),
    *(
        (flag, dict(type=kind, default=None, help=text))
        for flag, kind, text in [
            ("--partition", str, "Slurm partition."),
            ("--gpus-per-task", click.IntRange(0), "GPUs of each Slurm task (one cell)."),
            ("--cpus-per-task", click.IntRange(1), "CPU cores of each Slurm task."),
            ("--mem-gb", click.FloatRange(0, min_open=True), "Memory of each Slurm task."),
            ("--time-min", click.IntRange(1), "Time limit of each Slurm task, minutes."),
            ("--array-parallelism", click.IntRange(1), "Slurm tasks running at once."),
        ]
    ),
)


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
@click.option(
    "--reuse-stale",
    is_flag=True,
    help="Reuse a cell's finished run made by other code (its config matches, its code "
    "fingerprint does not) instead of running the cell again; tagged reused_stale.",
)
@click.option("--no-report", is_flag=True, help="Do not print the table at the end.")
@click.option(
    "-m", "--method", "only", multiple=True, help="Run only these of the suite's methods."
)
@_device_option
@click.option(
    "--ddp",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Train each cell in N local processes with DistributedDataParallel (one per GPU).",
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
    reuse_stale,
    no_report,
    only,
    device,
    ddp,
    claims_uri,
    jobs,
    launcher,
    lease_s,
    launcher_config,
    sbatch,
    **slurm,
) -> None:
    """Run every cell of SUITE_FILE (skipping finished ones) and log it to MLflow."""
    from bench.suite.checks import check_weights
    from bench.suite.schema import load_suite

    suite = load_suite(suite_file, _with_device(overrides, device), override_files, data_root)
    from bench.runner import print_grid, run_suite  # after validation: torch and MLflow

    unknown = set(only) - set(suite.spec.methods)
    if unknown:
        raise click.BadParameter(
            f"not methods of this suite: {', '.join(sorted(unknown))}", param_hint="--method"
        )
    cells = [c for c in suite.cells(data_root) if not only or c.method in only]
    if dry_run:
        print_grid(suite, cells)
        return
    folders = [(Path(workdir), "the --workdir"), (Path("reports"), "the report folder")]
    check_run_paths(tracking_uri, *folders)
    check_weights(suite, cells)
    from bench.engine.executors import Launch, launcher_settings, parse_jobs

    jobs = parse_jobs(jobs) if jobs is not None else suite.spec.launcher.jobs or 1
    settings = launcher_settings(suite.spec.launcher, launcher_config, dict(slurm, sbatch=sbatch))
    launch = Launch(
        executor=launcher or ("local" if jobs == 1 else "pool"),
        jobs=jobs,
        launcher=settings,
        claims_uri=claims_uri,
        lease_s=lease_s,
    )
    if ddp > 1 and launch.executor != "local":
        raise click.BadParameter("--ddp trains one cell at a time: not with --jobs", "--ddp")
    if ddp > 1 and "WORLD_SIZE" not in os.environ:
        sys.exit(_spawn_ranks(ddp, suite.name, click.get_current_context().params))
    run_suite(
        suite,
        cells,
        tracking_uri,
        Path(workdir),
        data_root,
        force,
        not no_report,
        launch,
        reuse_stale,
    )


@cli.command()
@click.argument("suite_file", type=click.Path(dir_okay=False))
@_suite_options
@_tracking_option
@_device_option
@click.option("--force", is_flag=True, help="Train again even if the weights are cached.")
def pretrain(
    suite_file, overrides, override_files, data_root, workdir, tracking_uri, device, force
) -> None:
    """Train SUITE_FILE's pretrain: stage (our warm start of its backbone on the training
    identities' frames) once; cached as WORKDIR/pretrain/<hash>/backbone.pt."""
    from bench.suite.schema import load_suite

    suite = load_suite(suite_file, _with_device(overrides, device), override_files, data_root)
    from bench.runner import run_pretrain

    check_run_paths(tracking_uri, (Path(workdir), "the --workdir"))
    run_pretrain(suite, tracking_uri, Path(workdir), data_root, force)


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
    from bench.suite.schema import load_suite

    suite = load_suite(suite_file, overrides, override_files, data_root)
    show_status(suite, suite.cells(data_root), tracking_uri, claims_uri)


@cli.command()
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
@_tracking_option
def report(table, suite_name, dataset, out, formats, reference, tracking_uri) -> None:
    """Tables (mean ± std over seeds, Δ to a reference with 95 % intervals) and figures from
    the MLflow runs, into reports/."""
    from bench.runner import make_reports

    check_run_paths(tracking_uri, (Path(out), "the --out folder"))
    make_reports(tracking_uri, suite_name, dataset, Path(out), table, formats or ("md",), reference)


@cli.command(name="compare")
@click.argument("suite")
@click.argument("a")
@click.argument("b")
@click.option("--bootstrap", "n_boot", default=2000, show_default=True, type=click.IntRange(100))
@click.option("--permutations", "n_perm", default=2000, show_default=True, type=click.IntRange(100))
@_tracking_option
def compare_cmd(suite, a, b, n_boot, n_perm, tracking_uri) -> None:
    """B - A in every metric with its 95 % interval and permutation p-value. SUITE: a suite
    file or an experiment name; A, B: METHOD/VARIANT (VARIANT defaults to 'default')."""
    from bench.engine.tracking import client
    from bench.report.commands import print_comparison

    print_comparison(client(tracking_uri), suite, a, b, n_boot, n_perm)


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
@_device_option
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
@_tune_scale_options
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
    device,
    **scale,
) -> None:
    """Search METHOD's hyper-parameters with Optuna on a validation split of training ids."""
    from bench.runner import run_tune
    from bench.tune.workers import Heartbeat

    scale["heartbeat"] = Heartbeat(scale.pop("heartbeat_interval"), scale.pop("grace_period"))

    check_run_paths(
        tracking_uri,
        *store_folders(storage, "the tune storage"),
        (Path(workdir), "the --workdir"),
        (Path(out), "the --out folder"),
    )
    run_tune(
        method,
        trials,
        suite_file,
        _with_device(overrides, device),
        override_files,
        data_root,
        Path(workdir),
        tracking_uri,
        storage,
        study_name,
        val_fraction,
        Path(out),
        **scale,
    )


@cli.command(name="list")
def list_plugins() -> None:
    """Methods (with their config fields and defaults) and datasets."""
    from bench.runner import describe_plugins

    click.echo(describe_plugins())


def main() -> None:
    cli(prog_name="bench")


cli.add_command(data)


if __name__ == "__main__":
    main()
