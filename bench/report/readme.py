"""The README's table of the main job, copied from its committed report, never typed.

The README holds the first table of ``reports/<suite>.md`` between a line starting with
:data:`START` and the line :data:`END`; ``bench report --suite SUITE --readme README.md``
writes it there after writing the report, and a test checks that the two agree.
"""

from __future__ import annotations

from pathlib import Path

from bench.errors import BenchError
from bench.files.atomic import write_text

START = "<!-- table from reports/"
END = "<!-- end of table -->"


def first_table(markdown: str) -> list[str]:
    """The lines of the first Markdown table of a page."""
    lines = markdown.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), None)
    if start is None:
        return []
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def readme_table(readme: str) -> list[str]:
    """The table between the README's markers."""
    lines = readme.splitlines()
    start, end = _markers(lines)
    return lines[start + 1 : end]


def _markers(lines: list[str]) -> tuple[int, int]:
    start = next((i for i, line in enumerate(lines) if line.startswith(START)), None)
    end = next((i for i, line in enumerate(lines) if line == END), None)
    if start is None or end is None or end < start:
        raise BenchError(f"the README has no '{START}...' and '{END}' lines around its table")
    return start, end


def check_readme(readme: Path) -> None:
    """The README has the markers its table goes between (checked before any report)."""
    try:
        _markers(readme.read_text(encoding="utf-8").splitlines())
    except BenchError as exc:
        raise BenchError(f"--readme: {readme}: {exc}") from exc


def copy_table(report: Path, readme: Path) -> None:
    """Put the first table of ``report`` between the markers of ``readme``."""
    table = first_table(report.read_text(encoding="utf-8"))
    if not table:
        raise BenchError(f"{report}: no table to copy into {readme}")
    lines = readme.read_text(encoding="utf-8").splitlines()
    start, end = _markers(lines)
    write_text(readme, "\n".join([*lines[: start + 1], *table, *lines[end:]]) + "\n")
