"""The papers' claims (bench.report.papers.ledger) on a suite's runs: for each, bench's
difference better row - worse row with its interval, corrected for the suite's claims, and a
verdict (docs/claims-ledger.md).

- **reproduced**: Benjamini-Hochberg over the m claims compared, at a false discovery rate of
  :data:`~bench.report.stats.FDR`, finds a difference, and it is positive;
- **contradicted**: it finds one, and it is negative;
- **inconclusive**: it finds none (which is not evidence that the two rows are equal);
- **not run**: a row has no finished run on the claim's dataset;
- **not compared**: the rows' runs differ in more than their methods and variants
  (:func:`bench.report.alike.differing` names the settings), or share no seed with per-query
  results.

The intervals are at the level ``1 - R * FDR / m`` (R: the claims decided, at least 1), the
false-coverage-rate correction of Benjamini and Yekutieli (2005) for intervals reported beside
a Benjamini-Hochberg selection: they exclude 0 exactly for the claims decided, so an interval
and its verdict never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from bench.report.alike import differing
from bench.report.papers.ledger import (
    PAPER_NAMES,
    Claim,
    Ledger,
    check_suite,
    ledger,
    read_suite,
    row_text,
)
from bench.report.render import Interval, Table
from bench.report.stats import FDR, Difference, RunSet, compare, fdr_adjusted

REPRODUCED, CONTRADICTED, INCONCLUSIVE = "reproduced", "contradicted", "inconclusive"
NOT_RUN, NOT_COMPARED = "not run", "not compared"
Sets = dict[tuple[str, str, str], RunSet]


@dataclass(frozen=True)
class Outcome:
    """A claim on the runs: its verdict, bench's difference (better - worse) when compared, and
    why it was not (a row not run, or the settings its rows' runs differ in)."""

    claim: Claim
    verdict: str
    diff: Difference | None = None
    why: str = ""

    @property
    def text(self) -> str:
        return f"{self.verdict}: {self.why}" if self.why else self.verdict


@dataclass(frozen=True)
class Verdicts:
    """The outcomes of one suite's claims; ``compared``: m, ``decided``: R, ``level``: the
    intervals' level (module docstring)."""

    outcomes: list[Outcome]
    compared: int
    decided: int
    level: float


Pair = tuple[RunSet, RunSet, Difference]  # the worse row's runs, the better row's, better - worse


def _pair(claim: Claim, df: pd.DataFrame, sets: Sets) -> Pair | Outcome:
    """The two rows' runs and their uncorrected difference, or the outcome that says why they
    are not compared."""
    runs = df[df["tags.dataset"] == claim.dataset] if "tags.dataset" in df else df.iloc[:0]
    ran = set(zip(runs.get("tags.method", []), runs.get("tags.variant", []), strict=True))
    missing = [row_text(r) for r in (claim.better, claim.worse) if r not in ran]
    if missing:
        return Outcome(claim, NOT_RUN, why=f"no runs of {' or '.join(missing)} on {claim.dataset}")
    settings = differing(runs, claim.worse, claim.better)
    if settings:
        return Outcome(claim, NOT_COMPARED, why=", ".join(str(s) for s in settings))
    worse, better = (sets.get((claim.dataset, *row)) for row in (claim.worse, claim.better))
    diffs = compare(worse, better, [claim.metric]) if worse and better else []
    if not diffs:
        why = f"no {claim.metric} per-query results of both rows on the same seeds"
        return Outcome(claim, NOT_COMPARED, why=why)
    return worse, better, diffs[0]


def evaluate(claims: list[Claim], df: pd.DataFrame, sets: Sets) -> Verdicts:
    """Every claim on the runs ``df`` (one suite's) and their per-query results ``sets``
    (:func:`bench.report.table.runsets`), corrected together."""
    pairs = {c.id: _pair(c, df, sets) for c in claims}
    compared = {i: p for i, p in pairs.items() if not isinstance(p, Outcome)}
    q_values = dict(zip(compared, fdr_adjusted([p[2].p for p in compared.values()]), strict=True))
    decided = sum(q <= FDR for q in q_values.values())
    level = 1 - max(decided, 1) * FDR / max(len(compared), 1)
    outcomes = []
    for claim in claims:
        pair = pairs[claim.id]
        if isinstance(pair, Outcome):
            outcomes.append(pair)
            continue
        diff = replace(compare(*pair[:2], [claim.metric], level)[0], q=q_values[claim.id])
        outcomes.append(Outcome(claim, _verdict(diff), diff))
    return Verdicts(outcomes, len(compared), decided, level)


def _verdict(diff: Difference) -> str:
    if not diff.discovered:
        return INCONCLUSIVE
    return REPRODUCED if diff.diff > 0 else CONTRADICTED


def suite_claims(
    df: pd.DataFrame, sets: Sets, suite: str, suite_file: str | None, book: Ledger | None = None
) -> Table | None:
    """The claims table of one suite's runs (None when the ledger has no claim on the suite),
    the ledger checked first against the suite's file where it exists."""
    book = book or ledger()
    claims = [c for _, c in book.of(suite)]
    if not claims:
        return None
    if suite_file and Path(suite_file).is_file():
        check_suite(book, read_suite(suite_file))
    return claims_table(evaluate(claims, df, sets), book)


def claims_table(verdicts: Verdicts, book: Ledger) -> Table:
    """One line per claim: the paper's figures, bench's Δ with its interval, the verdict."""
    header = ["id", "claim", "source", "better > worse", "dataset", "metric", "paper", "Δ"]
    body = []
    for o in verdicts.outcomes:
        c, d = o.claim, o.diff
        figures = book.figures.get(c.id)
        body.append(
            [
                c.id,
                c.claim,
                f"{PAPER_NAMES.get(c.paper, c.paper)} {c.source}",
                f"{row_text(c.better)} > {row_text(c.worse)}",
                c.dataset,
                c.metric,
                str(figures) if figures else None,
                None if d is None else Interval(d.diff, d.lo, d.hi, d.discovered),
                o.text,
            ]
        )
    table = Table([*header, "verdict"], body, caption=verdict_rule(verdicts, book.where))
    table.notes += [f"{o.claim.id}: {o.claim.note}." for o in verdicts.outcomes if o.claim.note]
    return table


def verdict_rule(v: Verdicts, where: str) -> str:
    """The table's caption: what Δ is, its interval, and the verdict rule."""
    counts = ", ".join(
        f"{n} {name}"
        for name in (REPRODUCED, CONTRADICTED, INCONCLUSIVE, NOT_RUN, NOT_COMPARED)
        if (n := sum(o.verdict == name for o in v.outcomes))
    )
    return (
        f"The papers' claims on this suite's rows ({where}; docs/claims-ledger.md): {counts}. "
        "Δ: the better row minus the worse row in points, positive in the paper's direction, "
        "with its interval: a t interval over the paired seeds that adds the variance of the "
        "test identities (docs/statistics.md), at the level "
        f"{v.level * 100:.4g} % = 1 - R x {FDR * 100:g} % / m for the m = {v.compared} claims "
        f"compared, R = {v.decided} of them decided (the false-coverage-rate correction of "
        "Benjamini and Yekutieli: the intervals exclude 0 exactly for the decided claims). "
        "Verdict: reproduced (†) when the Benjamini-Hochberg correction over the m claims at a "
        f"false discovery rate of {FDR * 100:g} % finds a difference and it is positive; "
        "contradicted when it finds one and it is negative; inconclusive when it finds none "
        "(not evidence that the rows are equal); not run when a row has no finished run on the "
        "claim's dataset; not compared when the two rows' runs differ in more than their "
        "methods and variants (the settings named, the worse row's value first) or share no "
        "seed with per-query results. paper: the paper's numbers for the two rows on its own "
        "data (paper_numbers.yaml), or the difference its text states: a direction, not a level "
        "to match."
    )
