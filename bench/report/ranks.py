"""Ranked lists to look at: ``bench show ranks``.

For a run, the queries it ranks worst (lowest AP first): each query tracklet (a few of its
frames) and its nearest gallery tracklets (one frame each, nearest first) framed green for a
true match, red for a false one, and greyed for junk (its own identity seen by its own camera,
which the metrics leave out). For two rows of a suite, the queries whose AP differs most
between them, both lists one above the other. One PNG per query and one HTML page listing
them, from the run's ``per_query.csv`` (its ``top`` ids) and the frames of its test split.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from bench.data.base import Split, Tracklet
from bench.data.build import prepared
from bench.eval.per_query import PER_QUERY, read_per_query
from bench.files.artifacts import artifact_yaml, has_artifact, read_artifact
from bench.files.atomic import atomic_path, write_text

TRUE, FALSE, JUNK = (40, 170, 60), (210, 40, 40), (150, 150, 150)
THUMB = (48, 96)  # width, height of one frame
BORDER, GAP = 4, 12


@dataclass
class RunLists:
    """One run's ranked lists: its label, test split and per-query columns."""

    label: str
    split: Split
    columns: dict[str, np.ndarray]


def run_lists(mlf, run_id: str, data_root: str | None = None) -> RunLists:
    """A run's per-query results and the test split they index (from its config.yaml)."""
    from bench.errors import BenchError

    if not has_artifact(mlf, run_id, PER_QUERY):
        raise BenchError(f"run {run_id}: no {PER_QUERY} artifact (not a finished cell's run)")
    columns = read_artifact(mlf, run_id, PER_QUERY, read_per_query)
    if "top" not in columns:
        raise BenchError(
            f"run {run_id}: its {PER_QUERY} has no top column (logged before ranked lists were "
            "kept); run `bench eval` on it to get one"
        )
    cfg = artifact_yaml(mlf, run_id, "config.yaml")
    options = {k: v for k, v in cfg["dataset"].items() if k != "name"}
    split = prepared(cfg["dataset"]["name"], options, data_root).load_split(int(cfg["split"]))
    label = mlf.get_run(run_id).data.tags.get("mlflow.runName", run_id)
    return RunLists(label, split, columns)


def worst_queries(columns: dict[str, np.ndarray], n: int) -> list[int]:
    """The ``n`` valid queries of lowest AP (ties: the earlier query first)."""
    valid = np.flatnonzero(columns["first"] > 0)
    order = np.lexsort((valid, columns["ap"][valid]))
    return valid[order][:n].tolist()


def differing_queries(a: dict[str, np.ndarray], b: dict[str, np.ndarray], n: int) -> list[int]:
    """The ``n`` valid queries whose AP differs most between two runs of one split."""
    valid = np.flatnonzero((a["first"] > 0) & (b["first"] > 0))
    gap = np.abs(b["ap"][valid] - a["ap"][valid])
    return valid[np.lexsort((valid, -gap))][:n].tolist()


def _frame(path: str) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB").resize(THUMB)


def _framed(img: Image.Image, colour: tuple[int, int, int], grey: bool) -> Image.Image:
    if grey:
        img = Image.blend(ImageOps.grayscale(img).convert("RGB"), Image.new("RGB", img.size), 0.3)
    return ImageOps.expand(img, BORDER, fill=colour)


def _picks(track: Tracklet, n: int) -> list[str]:
    idx = np.linspace(0, len(track.frames) - 1, min(n, len(track.frames))).round().astype(int)
    return [track.frames[i] for i in idx]


def match_kind(query: Tracklet, item: Tracklet) -> tuple[tuple[int, int, int], bool]:
    """(border colour, greyed): a true match, a false one, or junk."""
    if item.pid != query.pid:
        return FALSE, False
    return (JUNK, True) if item.camid == query.camid else (TRUE, False)


def ranked_row(lists: RunLists, q: int, k: int, frames: int) -> Image.Image:
    """Query ``q``'s row: its frames, then its ``k`` nearest gallery tracklets, captioned."""
    query = lists.split.query[q]
    tiles = [
        ImageOps.expand(_frame(p), BORDER, fill=(255, 255, 255)) for p in _picks(query, frames)
    ]
    tops = [lists.split.gallery[g] for g in lists.columns["top"][q][:k]]
    ranked = [_framed(_frame(_picks(t, 1)[0]), *match_kind(query, t)) for t in tops]
    w, h = tiles[0].size
    caption = 14
    row = Image.new("RGB", (w * (len(tiles) + len(ranked)) + GAP, h + 2 * caption), "white")
    draw = ImageDraw.Draw(row)
    ap, first = lists.columns["ap"][q], lists.columns["first"][q]
    draw.text(
        (2, 0), f"{lists.label}  query {q}  pid {query.pid}  AP {ap:.2f}  first {first}", "black"
    )
    for i, tile in enumerate(tiles):
        row.paste(tile, (i * w, caption))
    x0 = len(tiles) * w + GAP
    for i, (tile, t) in enumerate(zip(ranked, tops, strict=True)):
        row.paste(tile, (x0 + i * w, caption))
        draw.text((x0 + i * w + 2, caption + h), f"{i + 1}: {t.pid}", "black")
    return row


def stacked(rows: list[Image.Image]) -> Image.Image:
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), "white")
    y = 0
    for row in rows:
        sheet.paste(row, (0, y))
        y += row.height
    return sheet


def save_png(img: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def write_page(out: Path, title: str, entries: list[tuple[str, str]]) -> Path:
    """``out/index.html``: the title, a legend and each (caption, PNG name) in order."""
    legend = (
        "Query frames on the left, then its nearest gallery tracklets, nearest first (rank: pid). "
        "Green: a true match; red: a false match; grey: junk (its own identity seen by its own "
        "camera, left out of the metrics)."
    )
    items = "\n".join(
        f"<figure><img src='{html.escape(png)}' alt='{html.escape(text)}'>"
        f"<figcaption>{html.escape(text)}</figcaption></figure>"
        for text, png in entries
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif} figure{margin:0 0 1.5em}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{legend}</p>\n{items}\n</body></html>\n"
    )
    write_text(out / "index.html", page)
    return out / "index.html"


def draw_worst(lists: RunLists, out: Path, queries: int, k: int, frames: int) -> Path:
    """The worst ``queries`` of one run, one PNG each, and the page; the page's path."""
    entries = []
    for q in worst_queries(lists.columns, queries):
        name = f"query{q:05d}.png"
        save_png(ranked_row(lists, q, k, frames), out / name)
        ap = lists.columns["ap"][q]
        entries.append((f"query {q} (pid {lists.split.query[q].pid}), AP {ap:.3f}", name))
    return write_page(out, f"{lists.label}: the worst queries first (lowest AP)", entries)


def draw_differences(
    a: RunLists, b: RunLists, out: Path, queries: int, k: int, frames: int
) -> Path:
    """The ``queries`` where runs A and B differ most in AP, A's list above B's."""
    entries = []
    for q in differing_queries(a.columns, b.columns, queries):
        name = f"query{q:05d}.png"
        save_png(stacked([ranked_row(r, q, k, frames) for r in (a, b)]), out / name)
        aps = f"AP {a.columns['ap'][q]:.3f} (A) vs {b.columns['ap'][q]:.3f} (B)"
        entries.append((f"query {q} (pid {a.split.query[q].pid}): {aps}", name))
    title = f"A = {a.label}, B = {b.label}: the queries where they differ most"
    return write_page(out, title, entries)


def paired_runs(mlf, suite: str, a: str, b: str) -> tuple[str, str, str]:
    """(A's run, B's run, what they share) of rows A and B of a suite (METHOD/VARIANT): the
    first (dataset, split, seed) both have a finished run of."""
    from bench.errors import BenchError
    from bench.report.commands import check_rows_ran, experiment_name
    from bench.report.table import load_runs

    name = experiment_name(suite)
    df = load_runs(mlf, name)
    if df.empty:
        raise BenchError(f"no finished runs of suite '{name}' in the MLflow store")
    df = df.assign(split=df.get("tags.split", "0")).fillna({"split": "0"})
    keyed = {}
    for row, (method, variant) in zip((a, b), check_rows_ran(df, name, a, b), strict=True):
        runs = df[(df["tags.method"] == method) & (df["tags.variant"] == variant)]
        keys = zip(runs["tags.dataset"], runs["split"], runs["tags.seed"], strict=True)
        keyed[row] = dict(zip(keys, runs["run_id"], strict=True))
    shared = sorted(set(keyed[a]) & set(keyed[b]))
    if not shared:
        raise BenchError(f"suite '{name}': {a} and {b} share no (dataset, split, seed)")
    ds, split, seed = shared[0]
    return keyed[a][shared[0]], keyed[b][shared[0]], f"{ds}, split {split}, seed {seed}"
