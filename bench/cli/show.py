"""``bench show``: pictures of results to look at (``ranks``: ranked lists); parsing only."""

from __future__ import annotations

import click

from bench import runner
from bench.cli.options import tracking_option
from bench.eval.per_query import TOP_K


@click.group("show")
def show() -> None:
    """Pictures of results to look at."""


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
@click.option("--data-root", default=None, envvar="BENCH_DATA_ROOT", help="Datasets' folder.")
@tracking_option
def ranks(targets: tuple[str, ...], **params) -> None:
    """Ranked lists: RUN's worst queries first (lowest AP), or for SUITE A B (rows
    METHOD/VARIANT) the queries where A and B differ most; each query's frames and its top
    gallery tracklets, green for a true match, red for a false one, junk greyed."""
    runner.show_ranks(runner.RanksArgs(targets, **params))
