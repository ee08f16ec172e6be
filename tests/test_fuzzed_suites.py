"""Fuzzed suites (issue 25): malformed suites and overrides generated from the schema
(``tests/fuzz_suites.py``) through the real CLI of every command that loads a suite; each ends
in one ``Error:`` line before any work, with no traceback and nothing created.

The sample here is small and derandomized (the same cases on every CI run);
``python benchmarks/fuzz_suites.py --cases N`` runs a large random sample and counts failures.
"""

from __future__ import annotations

import importlib
import os

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

from bench.cli import cli
from tests.fuzz_suites import BASE, WORK, Case, ReachedWork, cases, nodes, outcome

EXAMPLES = int(os.environ.get("BENCH_FUZZ_EXAMPLES", "40"))


def invoke(argv: list[str]):
    return CliRunner().invoke(cli, argv)


@pytest.fixture
def no_work(monkeypatch):
    """Every command's first step of work raises ReachedWork (a case must never get there)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("BENCH_DATA_ROOT", raising=False)

    def reached(*args, **kwargs):
        raise ReachedWork

    for module, name in WORK:
        monkeypatch.setattr(importlib.import_module(module), name, reached)


def test_the_base_suite_is_valid_and_reaches_work(no_work):
    """The mutations start from a suite that validates: every failure is the mutation's."""
    result = outcome(Case(BASE, ("run",)), invoke)
    assert result == "validation passed"


def test_the_schema_walk_reaches_every_kind_of_node():
    paths = {n.path for n in nodes(BASE)}
    for path in [
        (),
        ("defaults", "data"),
        ("defaults", "eval", "rerank"),
        ("report",),
        ("launcher",),
        ("pretrain", "train"),
        ("method_config", "baseline", "data"),
        ("ablations", "baseline", 0, "train"),
        ("datasets", 0),
        ("datasets", 1, "test"),
    ]:
        assert path in paths


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_a_malformed_suite_is_one_error_line_before_any_work(no_work, case):
    assert outcome(case, invoke) is None, (case.argv(), case.changed)
