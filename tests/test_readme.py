"""The README's main-job table is the committed report's, never typed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.errors import BenchError
from bench.report.readme import END, START, copy_table, first_table, readme_table

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_table_is_the_committed_reports():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    report = (ROOT / "reports" / "video.md").read_text(encoding="utf-8")
    assert readme_table(readme) == first_table(report) != []


def test_copy_table_replaces_what_stands_between_the_markers(tmp_path):
    report = tmp_path / "r.md"
    report.write_text("# r\n\n| a | b |\n|:--|:--|\n| 1 | 2 |\n\ncaption\n\n| other |\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}video.md -->\n| old |\n{END}\nafter\n")
    copy_table(report, readme)
    text = readme.read_text()
    assert readme_table(text) == ["| a | b |", "|:--|:--|", "| 1 | 2 |"]
    assert text.startswith("intro\n") and text.endswith(f"{END}\nafter\n")
    readme.write_text("no markers\n")
    with pytest.raises(BenchError, match="no '<!-- table from reports/"):
        copy_table(report, readme)
