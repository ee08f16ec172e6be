"""The options several ``bench`` commands share, declared once."""

from __future__ import annotations

import click


def tracking_option(f):
    return click.option(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db).",
    )(f)


def device_option(f):
    return click.option(
        "--device",
        default=None,
        help="auto (first visible GPU, else the CPU) | cpu | cuda | cuda:N | mps; "
        "default: the suite's defaults.runtime.device (auto).",
    )(f)


def suite_options(f):
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


def options(*specs: tuple[str, dict]):
    """A decorator adding click options given as data: (flag, click.option kwargs), in order."""

    def apply(f):
        for flag, kwargs in reversed(specs):
            f = click.option(flag, **kwargs)(f)
        return f

    return apply


tune_scale_options = options(
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


def claims_option(f):
    return click.option(
        "--claims-uri",
        default=None,
        envvar="BENCH_CLAIMS_URI",
        help="Database of the cells' claims (default: beside the tracking store; needed with "
        "a tracking server, e.g. postgresql://USER@HOST/DB).",
    )(f)


#: --jobs, --launcher, the lease of a claim and the Slurm settings.
launch_options = options(
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
