"""What the README shows from the committed reports, copied, never typed.

- The main job's table: the first table of ``reports/<suite>.md``, between a line starting with
  :data:`START` that names that report and the line :data:`END`.
- The papers' claims counted by verdict, one line per paper, read from the claims tables of
  the ledger's suites' reports, between :data:`CLAIMS_START` and :data:`CLAIMS_END`.

``bench report --suite SUITE --readme README.md`` writes the report, then the table if the
README's marker names SUITE's report, and the claims counts (from every report in ``--out``);
tests check that the README agrees with the committed reports.
"""

from __future__ import annotations

import os
from pathlib import Path

from tabulate import tabulate

from bench.errors import BenchError
from bench.files.atomic import write_text
from bench.report.export import slug_of
from bench.report.papers.ledger import PAPER_NAMES, Ledger, ledger

START = "<!-- table from reports/"
END = "<!-- end of table -->"
CLAIMS_START = "<!-- claims counts from reports/"
CLAIMS_END = "<!-- end of claims counts -->"
#: The heading of a report's claims table (bench.report.export).
CLAIMS_HEADING = "## The papers' claims"
VERDICTS = ("reproduced", "contradicted", "inconclusive", "not run", "not compared")


def first_table(markdown: str) -> list[str]:
    """The lines of the first Markdown table of a page."""
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        return []
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def readme_table(readme: str, start: str = START, end: str = END) -> list[str]:
    """The lines between the README's markers."""
    lines = readme.splitlines()
    first, last = _markers(lines, start, end)
    return lines[first + 1 : last]


def _find(lines: list[str], start: str, end: str) -> tuple[int, int] | None:
    first = next((i for i, line in enumerate(lines) if line.startswith(start)), None)
    last = next((i for i, line in enumerate(lines) if line == end), None)
    return None if first is None or last is None or last < first else (first, last)


def _markers(lines: list[str], start: str = START, end: str = END) -> tuple[int, int]:
    found = _find(lines, start, end)
    if found is None:
        raise BenchError(f"the README has no '{start}...' and '{end}' lines around its table")
    return found


def table_report(readme: str) -> str | None:
    """The report file (``video.md``) the README's main-job table marker names."""
    line = next((x for x in readme.splitlines() if x.startswith(START)), None)
    return None if line is None else line[len(START) :].split()[0].rstrip(":")


def check_readme(readme: Path) -> None:
    """The README has the markers of its table or of its claims counts (checked before any
    report)."""
    lines = readme.read_text(encoding="utf-8").splitlines()
    if not (_find(lines, START, END) or _find(lines, CLAIMS_START, CLAIMS_END)):
        raise BenchError(
            f"--readme: {readme}: expected the lines '{START}...' and '{END}' around the main "
            f"job's table, or '{CLAIMS_START}...' and '{CLAIMS_END}' around the claims counts"
        )


def _replace(readme: Path, lines: list[str], start: str, end: str) -> None:
    text = readme.read_text(encoding="utf-8").splitlines()
    first, last = _markers(text, start, end)
    write_text(readme, "\n".join([*text[: first + 1], *lines, *text[last:]]) + "\n")


def copy_table(report: Path, readme: Path) -> None:
    """Put the first table of ``report`` between the markers of ``readme``."""
    table = first_table(report.read_text(encoding="utf-8"))
    if not table:
        raise BenchError(f"{report}: no table to copy into {readme}")
    _replace(readme, table, START, END)


def report_verdicts(report: Path) -> dict[str, str] | None:
    """Claim id -> verdict, from a report's claims table (None: no report, or no table)."""
    if not report.is_file():
        return None
    text = report.read_text(encoding="utf-8")
    if CLAIMS_HEADING not in text:
        return None
    table = first_table(text.split(CLAIMS_HEADING, 1)[1])
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table[2:]]
    return {row[0]: row[-1].split(":")[0].strip() for row in cells}


def claims_counts(reports: Path, relative_to: Path, book: Ledger | None = None) -> list[str]:
    """One Markdown line per paper: its claims counted by verdict in its suite's report."""
    book = book or ledger()
    body = []
    for suite in book.suites:
        report = reports / f"{slug_of(suite)}.md"
        verdicts = report_verdicts(report)
        link = f"[{suite}]({Path(os.path.relpath(report, relative_to)).as_posix()})"
        for paper in dict.fromkeys(c.paper for _, c in book.of(suite)):
            found = [
                verdicts and verdicts.get(c.id, "not run")
                for _, c in book.of(suite)
                if c.paper == paper
            ]
            counts = [sum(v == name for v in found) if verdicts else "—" for name in VERDICTS]
            body.append([PAPER_NAMES.get(paper, paper), len(found), *counts, link])
    header = ["paper", "claims", *VERDICTS, "report"]
    return tabulate(body, headers=header, tablefmt="pipe", disable_numparse=True).splitlines()


def update_readme(readme: Path, reports: Path, suite_report: Path) -> None:
    """After ``suite_report`` was written: the README's table if its marker names that report,
    and its claims counts, wherever it has their markers (else one line saying so)."""
    text = readme.read_text(encoding="utf-8")
    lines, updated = text.splitlines(), False
    if _find(lines, START, END) and table_report(text) == suite_report.name:
        copy_table(suite_report, readme)
        updated = True
    if _find(lines, CLAIMS_START, CLAIMS_END):
        _replace(readme, claims_counts(reports, readme.parent), CLAIMS_START, CLAIMS_END)
        updated = True
    if not updated:
        raise BenchError(
            f"--readme: {readme}: its table marker names reports/{table_report(text)}, not "
            f"{suite_report.name}, and it has no '{CLAIMS_START}...' lines for the claims counts"
        )
