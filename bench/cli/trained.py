"""``bench eval``, ``bench extract`` and ``bench export``: commands on a trained method (an
MLflow run, a suite's cell, or a weights file with its config); parsing only."""

from __future__ import annotations

import click

from bench import runner
from bench.cli.options import device_option, tracking_option


def trained_options(f):
    """RUN, or --suite/--cell, or --weights/--config: which trained method."""
    for names, kwargs in reversed(
        [
            (
                ("--suite", "suite_file"),
                dict(
                    type=click.Path(exists=True, dir_okay=False),
                    help="A suite file whose --cell's finished run is the trained method.",
                ),
            ),
            (("--cell",), dict(help="A cell label of --suite, e.g. ds/baseline/default/seed0.")),
            (
                ("--weights",),
                dict(
                    type=click.Path(exists=True, dir_okay=False),
                    help="A state dict (a run's model.pt), with --config.",
                ),
            ),
            (
                ("--config",),
                dict(
                    type=click.Path(exists=True, dir_okay=False),
                    help="The config.yaml of the run that trained --weights.",
                ),
            ),
            (
                ("-o", "--override", "overrides"),
                dict(multiple=True, metavar="KEY=VALUE", help="Override a key of --suite."),
            ),
        ]
    ):
        f = click.option(*names, **kwargs)(f)
    return click.argument("run", required=False)(f)


def target_options(f):
    """The split tested on: --dataset, -d KEY=VALUE, --split, --data-root."""
    for names, kwargs in reversed(
        [
            (("--dataset",), dict(help="Registered dataset to test on (default: the run's).")),
            (
                ("-d", "--dataset-option", "dataset_options"),
                dict(
                    multiple=True,
                    metavar="KEY=VALUE",
                    help="A dataset option (over the run's own when the dataset is the same).",
                ),
            ),
            (
                ("--split",),
                dict(type=click.IntRange(0), help="Split index (default: the run's)."),
            ),
            (
                ("--data-root",),
                dict(envvar="BENCH_DATA_ROOT", help="Folder holding the datasets (./data)."),
            ),
        ]
    ):
        f = click.option(*names, default=None, **kwargs)(f)
    return f


def _source(params: dict) -> runner.TrainedArgs:
    keys = ("run", "suite_file", "cell", "weights", "config", "overrides", "tracking_uri")
    return runner.TrainedArgs(**{k: params.pop(k) for k in keys})


def _target(params: dict) -> runner.TargetArgs:
    return runner.TargetArgs(
        params.pop("dataset"),
        params.pop("dataset_options"),
        params.pop("split"),
        params.pop("data_root"),
    )


@click.command(name="eval")
@trained_options
@target_options
@tracking_option
@device_option
@click.option(
    "--experiment", default=None, help="Experiment of the evaluation run (default: SUITE-eval)."
)
def evaluate(**params) -> None:
    """Evaluate a trained method (RUN: an MLflow run id) on any dataset split with its own test
    protocol, as a new run tagged trained_by RUN: no training, cross-dataset included."""
    source, target = _source(params), _target(params)
    runner.evaluate(source, target, params["experiment"], params["device"])


@click.command()
@trained_options
@target_options
@tracking_option
@device_option
@click.option(
    "--tracklets",
    type=click.Choice(["test", "query", "gallery", "train"]),
    default="test",
    show_default=True,
    help="Which tracklets of the split (test: query and gallery).",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The .npz file.")
def extract(**params) -> None:
    """Write the embeddings of a split's tracklets by a trained method to an .npz file
    (float32, with pid, camid, tracklet ids and frame paths; docs/api.md)."""
    source, target = _source(params), _target(params)
    runner.extract(source, target, params["tracklets"], params["out"], params["device"])


@click.command()
@trained_options
@tracking_option
@device_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["onnx", "torchscript"]),
    default="onnx",
    show_default=True,
    help="ONNX (every shipped method exports) or TorchScript.",
)
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="The file (.onnx, .pt)."
)
@click.option(
    "--data-root",
    default=None,
    envvar="BENCH_DATA_ROOT",
    help="Folder holding the dataset the method trained on (./data).",
)
def export(**params) -> None:
    """Write a trained method's embedding model (a batch of clips of T frames in, each clip's
    embedding out; docs/api.md says the inputs, outputs and STAL's distance)."""
    source = _source(params)
    runner.export(source, params["fmt"], params["out"], params["device"], params["data_root"])


COMMANDS = (evaluate, extract, export)
