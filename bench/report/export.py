"""Write a report (bench.report.table.Report) as Markdown, LaTeX, CSV or HTML, with its figures.

Markdown keeps a hand-written ``## Reading`` section of the existing file; HTML is one
self-contained page (figures embedded as base64 PNG); CSV is one row per run and metric.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import re
from pathlib import Path

import pandas as pd

from bench.files.atomic import atomic_path, write_text
from bench.report.figures import (
    cmc_figure,
    curves_figure,
    heatmap_figure,
    rerank_figure,
    sweep_figure,
)
from bench.report.render import to_html, to_latex, to_markdown
from bench.report.stress import gain_series, probe_series
from bench.report.table import Report, mean_cmc_curves, rerank_gains, seqlen_caption, seqlen_grids
from bench.report.training import mean_curves

FORMATS = ("md", "latex", "csv", "html")
SUFFIX = {"md": ".md", "latex": ".tex", "csv": ".csv", "html": ".html"}
READING = "\n## Reading"
#: Put at the top of a kept reading when the table above it changed since it was written.
STALE_MARK = (
    "> **Written for an earlier table.** The numbers above changed after this reading was "
    "written (`bench report` regenerated them); check it against them before relying on it."
)
RUN_COLUMNS = {
    "run_id": "run_id",
    "tags.suite": "suite",
    "tags.dataset": "dataset",
    "tags.split": "split",
    "tags.method": "method",
    "tags.variant": "variant",
    "tags.seed": "seed",
    "tags.protocol": "protocol",
    "tags.config_hash": "config_hash",
    "tags.code_fingerprint": "code_fingerprint",
}


def make_figures(mlf, report: Report, out_dir: Path) -> None:
    """CMC curves per dataset, the re-ranking gain where runs re-ranked, and the
    sequence-length heat maps, into ``out_dir/figures``; recorded on the report."""
    df, slug = report.runs, file_name(report)
    figures = out_dir / "figures"
    for ds in dict.fromkeys(df["tags.dataset"]):
        curves = mean_cmc_curves(mlf, df, ds)
        path = cmc_figure(curves, f"CMC on {ds}", figures / f"{slug}-{slug_of(ds)}-cmc.png")
        report.figures.append((f"CMC on {ds}", path))
        gains = rerank_gains(df, ds)
        if gains:
            name = f"{slug}-{slug_of(ds)}-rerank.png"
            path = rerank_figure(gains, f"re-ranking on {ds}", figures / name)
            report.figures.append((f"re-ranking gain on {ds}", path))
        validation = mean_curves(df, report.curves, ds)
        if validation:
            name = f"{slug}-{slug_of(ds)}-validation.png"
            path = curves_figure(validation, f"validation mAP on {ds}", figures / name)
            report.figures.append((f"validation mAP by epoch on {ds}, mean over seeds", path))
    for (ds, row), grid in seqlen_grids(df).items():
        name = f"{slug}-{slug_of(ds)}-{slug_of(row)}-seqlen.png"
        short, caption = seqlen_caption(df, ds, row)
        path = heatmap_figure(grid, f"{row} on {ds}\n{short}", figures / name)
        report.figures.append((f"sequence lengths, {row} on {ds}: {caption}", path))
    stress_figures(report, figures)


def stress_figures(report: Report, figures: Path) -> None:
    """Per nuisance sweep: each method's gain over its control against the level (with its
    interval), and the probes against the level (mean ± std over seeds)."""
    slug, seen = slug_of(report.name), set()
    for sweep in report.sweeps:
        base = f"{slug}-stress-{slug_of(sweep.nuisance)}"
        name = base if base not in seen else f"{base}-{len(seen)}"
        seen.add(name)
        gains = {
            f"Δ{m} to its control (points)": gain_series(sweep, report.gains, m)
            for m in ("R1", "mAP")
        }
        gains = {k: v for k, v in gains.items() if v}
        if gains:
            title = f"default minus control by {sweep.nuisance} (95 % intervals)"
            path = sweep_figure(
                gains, title, sweep.nuisance, sweep.today, figures / f"{name}-gain.png", zero=True
            )
            report.figures.append((f"gain over the control by {sweep.nuisance}", path))
        probes = probe_series(sweep, report.runs)
        if probes:
            title = f"probes by {sweep.nuisance} (mean ± std over seeds)"
            path = sweep_figure(
                probes, title, sweep.nuisance, sweep.today, figures / f"{name}-probes.png"
            )
            report.figures.append((f"probes by {sweep.nuisance}", path))


def file_slug(text: str, limit: int = 60) -> str:
    """Any text (a run's overrides) as a file-name part: letters, digits and ``._=+-`` kept,
    the rest as ``_``; a long one shortened with a hash of the whole."""
    safe = re.sub(r"[^A-Za-z0-9._=+-]+", "_", text).strip("_")
    if len(safe) <= limit:
        return safe
    return f"{safe[: limit - 9]}_{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def slug_of(name: str) -> str:
    """A file-name part and link target: no '/', spaces or parentheses ('stal (seqlen)' as
    'stal-seqlen'), and a cross-dataset 'a→b' as 'a-to-b'."""
    for old, new in (("/", "-"), ("→", "-to-"), (" (", "-"), ("(", "-"), (")", ""), (" ", "-")):
        name = name.replace(old, new)
    return name


def file_name(report: Report) -> str:
    """The report's files' name, without suffix."""
    return report.file_name or slug_of(report.name)


def _sections(report: Report) -> list[tuple[str, object]]:
    """(heading, table) of the secondary tables, in order."""
    out = []
    if report.claims is not None:
        out.append(("The papers' claims", report.claims))
    if report.controls is not None:
        out.append(("Each method against its own control", report.controls))
    if report.stress is not None:
        out.append(("Stress: each method's gain and probes by nuisance level", report.stress))
    if report.probes is not None:
        out.append(("Probes: what each mechanism does", report.probes))
    if report.training is not None:
        out.append(("Training: validation, convergence, gates", report.training))
    if report.failed is not None:
        out.append(("Failed cells (not ranked)", report.failed))
    if report.costs is not None:
        out.append(("What the papers say a method costs", report.costs))
    if report.papers is not None:
        title = "The papers' numbers"
        title += " (directions only)" if report.papers_are_directions else ""
        out.append((title, report.papers))
    return out


def to_markdown_page(report: Report, out_dir: Path) -> str:
    lines = [f"# {report.name}", "", *([report.provenance, ""] if report.provenance else [])]
    lines += [to_markdown(report.results), ""]
    for heading, table in _sections(report):
        lines += [f"## {heading}", "", to_markdown(table), ""]
    for title, path in report.figures:
        lines += [f"![{title}]({path.relative_to(out_dir).as_posix()})", ""]
    return "\n".join(lines)


def to_latex_page(report: Report) -> str:
    slug = slug_of(report.name)
    parts = [f"% {report.name}: generated by `bench report --format latex`; needs booktabs"]
    if report.provenance:
        parts[0] += f"\n% {report.provenance}"
    parts.append(to_latex(report.results, f"tab:{slug}"))
    for i, (_, table) in enumerate(_sections(report)):
        parts.append(to_latex(table, f"tab:{slug}-{i + 1}"))
    return "\n\n".join(parts) + "\n"


def to_html_page(report: Report, reading: str = "") -> str:
    body = [f"<h1>{html.escape(report.name)}</h1>"]
    body += [f"<p>{html.escape(report.provenance)}</p>"] if report.provenance else []
    body.append(to_html(report.results))
    for heading, table in _sections(report):
        body += [f"<h2>{html.escape(heading)}</h2>", to_html(table)]
    for title, path in report.figures:
        data = base64.b64encode(path.read_bytes()).decode()
        body.append(
            f'<figure><img alt="{html.escape(title)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(title)}</figcaption></figure>"
        )
    if reading:
        body.append(f"<pre>{html.escape(reading.strip())}</pre>")
    style = (
        "body{font-family:sans-serif;max-width:80em;margin:2em auto}"
        "table{border-collapse:collapse;font-size:.85em}"
        "th,td{border-bottom:1px solid #ccc;padding:.2em .5em;text-align:right}"
        "img{max-width:48em}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(report.name)}'
        f"</title><style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """One row per run and final metric."""
    metrics = sorted(c for c in df.columns if c.startswith("metrics."))
    cols = [c for c in RUN_COLUMNS if c in df]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*(RUN_COLUMNS[c] for c in cols), "metric", "value"])
        for _, run in df.iterrows():
            for metric in metrics:
                if pd.notna(run[metric]):
                    writer.writerow([*(run[c] for c in cols), metric[8:], run[metric]])


def kept_reading(path: Path, page: str) -> str:
    """A hand-written '## Reading' section of an existing report survives regeneration; when
    the generated part above it changed (``page`` is the new one), the reading is marked as
    written for an earlier table (once)."""
    if not path.is_file():
        return ""
    text = path.read_text()
    if READING not in text:
        return ""
    start = text.index(READING)
    reading = text[start:]
    if text[:start] == page or STALE_MARK in reading:
        return reading
    heading, _, body = reading.partition("\n\n")
    return f"{heading}\n\n{STALE_MARK}\n\n{body}"


def write(mlf, report: Report, out_dir: Path, formats: tuple[str, ...] = ("md",)) -> list[Path]:
    """Write the report in each format into ``out_dir``; the written paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = file_name(report)  # may hold dots (an override's key): never Path.with_suffix
    if {"md", "html"} & set(formats):
        make_figures(mlf, report, out_dir)
    page = to_markdown_page(report, out_dir)
    reading = kept_reading(out_dir / f"{name}.md", page)
    paths = []
    for fmt in formats:
        path = out_dir / f"{name}{SUFFIX[fmt]}"
        if fmt == "md":
            write_text(path, page + reading)
        elif fmt == "latex":
            write_text(path, to_latex_page(report))
        elif fmt == "html":
            write_text(path, to_html_page(report, reading))
        else:
            write_csv(report.runs, path)
        paths.append(path)
    return paths
