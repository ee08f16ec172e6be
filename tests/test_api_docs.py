"""docs/api.md's walkthrough runs: every Python block of the page, in order, in one namespace,
in an empty working directory (its own MLflow store, data and reports)."""

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "api.md"

pytestmark = pytest.mark.slow  # it trains the page's two tiny cells


def blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_api_walkthrough_runs(in_tmp):
    code = blocks(PAGE.read_text())
    assert len(code) >= 6  # run, report/compare, evaluate, extract, ranks, export
    namespace: dict = {}
    for i, block in enumerate(code):
        exec(compile(block, f"{PAGE}:block{i}", "exec"), namespace)  # noqa: S102
    assert (in_tmp / "reports" / "walkthrough.md").is_file()
    assert (in_tmp / "embeddings.npz").is_file() and (in_tmp / "baseline.onnx").is_file()
    assert namespace["polluted"]["run_id"] != namespace["same"]["run_id"]
