"""A large random sample of malformed suites, overrides and flags through the real CLI
(issue 25): how many cases were tried and how many failed, by kind of failure, with one
example of each.

    python benchmarks/fuzz_suites.py [--cases 2000] [--flag-cases 300]

The cases and the checks are ``tests/fuzz_suites.py``'s (the CI tests run a small sample).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

from click.testing import CliRunner
from hypothesis import HealthCheck, Phase, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ beside bench/

from bench.cli import cli  # noqa: E402
from tests.fuzz_suites import (  # noqa: E402
    WORK,
    ReachedWork,
    cases,
    fixture_store,
    flag_cases,
    flag_outcome,
    outcome,
)


def reached(*args, **kwargs):
    raise ReachedWork


def invoke(argv: list[str]):
    return CliRunner().invoke(cli, argv)


def tally(n: int, strategy, check) -> tuple[Counter, dict]:
    """Run ``n`` generated cases through ``check``; counts by kind of failure and examples."""
    counts, examples = Counter(), {}

    @settings(
        max_examples=n,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def one(case):
        counts["tried"] += 1
        problem = check(case, invoke)
        if problem is not None:
            kind = problem.split(":")[0]
            counts[kind] += 1
            examples.setdefault(kind, (case.argv(), problem[:300]))

    one()
    return counts, examples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=2000, help="suites and overrides")
    parser.add_argument("--flag-cases", type=int, default=300, help="flags (fewer exist)")
    args = parser.parse_args()
    fixture_store()
    with ExitStack() as stack:
        for module, name in WORK:
            stack.enter_context(mock.patch.object(importlib.import_module(module), name, reached))
        for what, n, strategy, check in (
            ("suites and overrides", args.cases, cases(), outcome),
            ("flags", args.flag_cases, flag_cases(), flag_outcome),
        ):
            if n == 0:
                continue
            counts, examples = tally(n, strategy, check)
            tried = counts.pop("tried")
            print(f"{what}: tried {tried} cases, {sum(counts.values())} failed")
            for kind, count in counts.most_common():
                print(f"  {count:5d}  {kind}\n         e.g. {examples[kind]}")


if __name__ == "__main__":
    main()
