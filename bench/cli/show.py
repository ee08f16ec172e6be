"""``bench show``: look inside finished runs."""

from __future__ import annotations

import click

from bench import runner
from bench.cli.options import tracking_option


@click.group("show")
def show() -> None:
    """Look inside finished runs."""


@show.command("attention")
@click.argument("run_id")
@click.option(
    "--tracklet",
    required=True,
    help="A test tracklet of the run's cell: its index (queries first, then the gallery's "
    "others) or its folder name (synthetic: e.g. p0071_c2_t0).",
)
@click.option("--start", default=0, show_default=True, type=click.IntRange(0), help="First frame.")
@click.option(
    "--frames",
    default=None,
    type=click.IntRange(1),
    help="Frames drawn (default 8, at most the tracklet's; a method with a fixed clip length "
    "draws that many).",
)
@click.option(
    "--out",
    default=None,
    type=click.Path(dir_okay=False),
    help="PNG (default reports/figures/attention-<run>-<tracklet>.png).",
)
@click.option(
    "--data-root",
    default=None,
    envvar="BENCH_DATA_ROOT",
    help="Folder holding the datasets (default ./data).",
)
@tracking_option
def attention(
    run_id: str,
    tracklet: str,
    start: int,
    frames: int | None,
    out: str | None,
    data_root: str | None,
    tracking_uri: str | None,
) -> None:
    """Draw the attention of RUN's trained model (an MLflow run id of a finished cell) over the
    frames of one test tracklet, beside the exact part masks and nuisances of generated data."""
    runner.show_attention(run_id, tracklet, start, frames, out, data_root, tracking_uri)
