"""``bench data``: make a dataset (generate or validate it) and draw a contact sheet of it."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import click

from bench.data.base import ReIDDataset, Split


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


def _dataset(name: str, root: str | None, options: tuple[str, ...], command: str) -> ReIDDataset:
    from bench.suite.schema import build_dataset, parse_override

    values = dict(parse_override(text) for text in options)
    if root is not None:
        values["root"] = root
    return build_dataset(name, values, None, f"bench data {command}")


def describe(split: Split) -> str:
    """One line per role: tracklets, identities, cameras and frames."""
    lines = []
    for role in ("train", "query", "gallery"):
        tracks = getattr(split, role)
        cams = Counter(t.camid for t in tracks)
        lines.append(
            f"  {role:8s} {len(tracks):5d} tracklets  {len({t.pid for t in tracks}):4d} ids  "
            f"{sum(len(t.frames) for t in tracks):6d} frames  cameras {dict(sorted(cams.items()))}"
        )
    return "\n".join(lines)


@click.group("data")
def data() -> None:
    """Make and inspect datasets."""


@data.command("make")
@click.argument("name")
@_options
@click.option("--difficulty", is_flag=True, help="Also score a colour-histogram nearest neighbour.")
def make(name: str, root: str | None, options: tuple[str, ...], difficulty: bool) -> None:
    """Generate (synthetic) or validate (real) dataset NAME and print what it holds."""
    dataset = _dataset(name, root, options, "make")
    start = time.perf_counter()
    dataset.prepare(progress=True)
    click.echo(f"{name}: ready in {time.perf_counter() - start:.1f} s at {dataset.root}")
    for index in dataset.split_indices()[:1]:
        split = dataset.load_split(index)
        click.echo(f"split {index}:\n{describe(split)}")
        _print_sharing(dataset)
        if difficulty:
            from bench.eval.difficulty import histogram_baseline

            for person_only in (False, True):
                r = histogram_baseline(split, person_only)
                where = "person pixels" if person_only else "whole frames"
                click.echo(
                    f"colour histogram ({where}): R1 {r['R1']:.1f} R5 {r['R5']:.1f} "
                    f"mAP {r['mAP']:.1f} (chance R1 {r['chance']:.1f})"
                )


def _print_sharing(dataset: ReIDDataset) -> None:
    path = getattr(dataset, "path", None)
    if path is None or not (Path(path) / "index.json").is_file():
        return
    from bench.data.synthetic import read_index

    for split, shares in read_index(path)["sharing"].items():
        parts = ", ".join(f"{p} {100 * v:.0f}%" for p, v in shares.items())
        click.echo(f"  {split} identities sharing each part's value: {parts}")


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
    from bench.data.synthetic.sheet import contact_sheet

    dataset = _dataset(name, root, options, "show")
    dataset.prepare(progress=True)
    split = dataset.load_split(dataset.split_indices()[0])
    path = contact_sheet(split, Path(out or f"reports/figures/{name}.png"), pairs, frames)
    click.echo(f"wrote {path}")
