"""``bench data``: make a dataset (generate or validate it) and draw a contact sheet of it."""

from __future__ import annotations

import click

from bench import runner
from bench.suite.load import parse_override


def _options(f):
    f = click.option(
        "-o",
        "--option",
        "options",
        multiple=True,
        metavar="KEY=VALUE",
        help="A dataset option, e.g. -o train_ids=20 -o polluted=true (values are YAML).",
    )(f)
    return click.option(
        "--root", default=None, type=click.Path(file_okay=False), help="Dataset folder."
    )(f)


def _parsed(options: tuple[str, ...]) -> dict:
    return dict(parse_override(text) for text in options)


@click.group("data")
def data() -> None:
    """Make and inspect datasets."""


@data.command("make")
@click.argument("name")
@_options
@click.option("--difficulty", is_flag=True, help="Also score a colour-histogram nearest neighbour.")
def make(name: str, root: str | None, options: tuple[str, ...], difficulty: bool) -> None:
    """Generate (synthetic) or validate (real) dataset NAME and print what it holds."""
    runner.data_make(name, root, _parsed(options), difficulty)


@data.command("show")
@click.argument("name")
@_options
@click.option(
    "--out", default=None, type=click.Path(dir_okay=False), help="PNG (reports/figures/NAME.png)."
)
@click.option("--pairs", default=3, show_default=True, type=click.IntRange(1), help="Identities.")
@click.option("--frames", default=6, show_default=True, type=click.IntRange(1))
def show(
    name: str, root: str | None, options: tuple[str, ...], out: str | None, pairs: int, frames: int
) -> None:
    """Write a contact sheet of NAME: query/gallery tracklets with masks and keypoints."""
    runner.data_show(name, root, _parsed(options), out, pairs, frames)
