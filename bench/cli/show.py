"""``bench show``: pictures of finished runs to look at (``attention``, ``ranks``); parsing
only."""

from __future__ import annotations

import click

from bench import runner
from bench.cli.options import tracking_option
from bench.eval.per_query import TOP_K

data_root_option = click.option(
    "--data-root",
    default=None,
    envvar="BENCH_DATA_ROOT",
    help="Folder holding the datasets (default ./data).",
)


@click.group("show")
def show() -> None:
    """Pictures of finished runs to look at."""


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
@data_root_option
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


@show.command("ranks")
@click.argument("targets", nargs=-1, required=True, metavar="RUN | SUITE A B")
@click.option(
    "--top", default=TOP_K, show_default=True, type=click.IntRange(1, TOP_K), help="Ranks shown."
)
@click.option(
    "--queries", default=20, show_default=True, type=click.IntRange(1), help="Queries drawn."
)
@click.option(
    "--frames", default=4, show_default=True, type=click.IntRange(1), help="Frames of a query."
)
@click.option(
    "--out",
    default=None,
    type=click.Path(file_okay=False),
    help="Folder of the PNGs and index.html (default reports/ranks/<RUN or SUITE-A-B>).",
)
@data_root_option
@tracking_option
def ranks(targets: tuple[str, ...], **params) -> None:
    """Ranked lists: RUN's worst queries first (lowest AP), or for SUITE A B (rows
    METHOD/VARIANT) the queries where A and B differ most; each query's frames and its top
    gallery tracklets, green for a true match, red for a false one, junk greyed."""
    runner.show_ranks(runner.RanksArgs(targets, **params))
