"""The README's main-job table and claims counts are the committed reports', never typed by
hand."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.errors import BenchError
from bench.report.readme import (
    CLAIMS_END,
    CLAIMS_START,
    END,
    START,
    claims_counts,
    copy_table,
    first_table,
    readme_table,
    report_verdicts,
    update_readme,
)

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


def test_the_readme_claims_counts_are_the_committed_reports():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = readme_table(readme, CLAIMS_START, CLAIMS_END)
    assert shown == claims_counts(ROOT / "reports", ROOT)
    assert [line.split("|")[1].strip() for line in shown[2:]] == ["IAUnet", "STAL", "RGSA-RGTR"]


CLAIMS_PAGE = """# toy

| method | R1 |
|:--|:--|
| a | 1 |

## The papers' claims

| id | claim | Δ | verdict |
|:--|:--|:--|:--|
| c1 | a over b | +1.0 [+0.5, +1.5] † | reproduced |
| c2 | a over c | -1.0 [-2.0, +0.1] | inconclusive |
| c3 | a over d | | not compared: seed differs |

caption
"""


def test_claims_counts_read_each_report_and_count_by_verdict(tmp_path):
    book = SimpleNamespace(
        suites={"toy": None, "other": None},
        of=lambda suite: [
            (i, SimpleNamespace(id=f"c{i}", paper="stal" if suite == "toy" else "iaunet"))
            for i in range(1, 5)
        ],
    )
    (tmp_path / "toy.md").write_text(CLAIMS_PAGE)
    assert report_verdicts(tmp_path / "toy.md") == {
        "c1": "reproduced",
        "c2": "inconclusive",
        "c3": "not compared",
    }
    lines = claims_counts(tmp_path, tmp_path, book)
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert cells == [
        ["STAL", "4", "1", "0", "1", "1", "1", "[toy](toy.md)"],  # c4: no line, so not run
        ["IAUnet", "4", "—", "—", "—", "—", "—", "[other](other.md)"],  # no report
    ]


def test_update_readme_copies_the_table_only_from_the_report_it_names(tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "video.md").write_text("# v\n\n| a |\n|:--|\n| 1 |\n")
    (reports / "stress.md").write_text("# s\n\n| b |\n|:--|\n| 2 |\n")
    readme = tmp_path / "README.md"
    readme.write_text(f"{START}video.md: -->\n| old |\n{END}\n")
    update_readme(readme, reports, reports / "video.md")
    assert readme_table(readme.read_text()) == ["| a |", "|:--|", "| 1 |"]
    with pytest.raises(BenchError, match="names reports/video.md, not stress.md"):
        update_readme(readme, reports, reports / "stress.md")
    readme.write_text(f"{START}video.md: -->\n| a |\n{END}\n{CLAIMS_START}x -->\n{CLAIMS_END}\n")
    update_readme(readme, reports, reports / "stress.md")  # the claims counts only
    text = readme.read_text()
    assert readme_table(text) == ["| a |"]
    assert readme_table(text, CLAIMS_START, CLAIMS_END)[0].startswith("| paper ")
