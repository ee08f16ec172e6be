"""The papers' claims that the ablation suites can test, read from ``claims.yaml`` (data, not
code; docs/claims-ledger.md).

A claim names two rows of one suite (``METHOD/VARIANT``), the dataset entry it is read on, a
metric and the paper's direction: ``better`` beats ``worse``. Its figures are the paper's own:
looked up in ``paper_numbers.yaml`` (never typed twice) or, where only the text gives one, the
difference the text states. Every row of a suite is named by a claim or listed under
``untested`` with the reason. Errors are one line naming the claim:
``bench/report/papers/claims.yaml: claims[i] (id): key: what was expected``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from bench.errors import ConfigError, raise_validation
from bench.report.papers import METRICS, PaperNumber, paper_numbers
from bench.suite.cross import shown_name
from bench.suite.schema import Row, Suite, SuiteFile, runs_row
from bench.suite.yaml import parse_yaml, read_yaml

LEDGER_FILE = Path(__file__).with_name("claims.yaml")


#: How the papers are named in tables.
PAPER_NAMES = {"iaunet": "IAUnet", "stal": "STAL", "rgsa-rgtr": "RGSA-RGTR"}


def row_text(row: Row) -> str:
    return "/".join(row)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _row(value: object) -> object:
    """'iaunet/stiau' -> ('iaunet', 'stiau'); anything else is left to fail validation."""
    if isinstance(value, str):
        method, slash, variant = value.partition("/")
        if not (method and slash and variant) or "/" in variant or " " in value:
            raise ValueError("expected a row METHOD/VARIANT, e.g. iaunet/stiau")
        return (method, variant)
    return value


class Figures(Strict):
    """The paper's figures for a claim: its numbers for the two rows on ``dataset``, looked up
    in paper_numbers.yaml (``better`` / ``worse``: the paper's row where it is not the claim's,
    ``backbone`` where the paper reports several), or the difference its text states."""

    dataset: str
    better: str | None = None
    worse: str | None = None
    backbone: str | None = None
    delta: float | None = None

    @model_validator(mode="after")
    def _lookup_or_delta(self) -> Figures:
        if self.delta is not None and (self.better or self.worse or self.backbone):
            raise ValueError("give delta (the text's difference) or rows to look up, not both")
        return self


class Claim(Strict):
    """One claim: ``better`` beats ``worse`` in ``metric`` on ``dataset`` (a dataset entry's
    label; default: the suite's, from the ledger's ``suites``)."""

    id: str
    paper: Literal["iaunet", "stal", "rgsa-rgtr"]
    source: str
    claim: str
    suite: str
    dataset: str | None = None
    better: tuple[str, str]
    worse: tuple[str, str]
    metric: Literal[METRICS]  # type: ignore[valid-type]
    figures: Figures | None = None
    note: str = ""

    rows_as_pairs = field_validator("better", "worse", mode="before")(_row)


class SuiteEntry(Strict):
    """A suite the claims name: its file (relative to the repository root) and the dataset
    entry a claim is read on unless it names another."""

    file: str
    dataset: str


class LedgerFile(Strict):
    suites: dict[str, SuiteEntry]
    claims: list[dict]
    untested: dict[str, dict[str, str]] = {}


@dataclass(frozen=True)
class PaperFigures:
    """What the paper says of a claim: its numbers for the two rows, or only the difference."""

    dataset: str
    delta: float
    better: float | None = None
    worse: float | None = None
    backbone: str | None = None

    def __str__(self) -> str:
        where = self.dataset + (f" ({self.backbone})" if self.backbone else "")
        if self.better is None:
            return f"{where}: {self.delta:+.1f} (text)"
        return f"{where}: {self.better:.1f} vs {self.worse:.1f} ({self.delta:+.1f})"


@dataclass(frozen=True)
class Ledger:
    """The claims (datasets resolved), their figures by claim id, the suites they name and the
    rows each suite leaves untested, with why; ``where``: the file as errors name it."""

    where: str
    suites: dict[str, SuiteEntry]
    claims: tuple[Claim, ...]
    figures: dict[str, PaperFigures]
    untested: dict[str, dict[Row, str]]

    def of(self, suite: str) -> list[tuple[int, Claim]]:
        """(index in the file, claim) of one suite's claims."""
        return [(i, c) for i, c in enumerate(self.claims) if c.suite == suite]

    def at(self, index: int) -> str:
        return f"{self.where}: claims[{index}] ({self.claims[index].id})"


def shown_path(path: Path) -> str:
    """The shipped ledger as ``bench/report/papers/claims.yaml``; another file as given."""
    root = LEDGER_FILE.parents[3]
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def read_ledger(path: Path = LEDGER_FILE) -> Ledger:
    """The ledger of ``path``, each claim checked (its figures looked up) before any use."""
    where = shown_path(path)
    raw = parse_yaml(path.read_text(encoding="utf-8"), where)
    try:
        top = LedgerFile.model_validate(raw)
    except ValidationError as exc:
        raise_validation(where, exc)
    claims: list[Claim] = []
    figures = {}
    for i, entry in enumerate(top.claims):
        at = f"{where}: claims[{i}] ({entry.get('id', '?')})"
        claim = _claim(entry, at, top.suites, {c.id for c in claims})
        claims.append(claim)
        if claim.figures is not None:
            figures[claim.id] = _figures(claim, at)
    return Ledger(where, top.suites, tuple(claims), figures, _untested(top, where))


def _claim(entry: dict, at: str, suites: dict[str, SuiteEntry], seen: set[str]) -> Claim:
    try:
        claim = Claim.model_validate(entry)
    except ValidationError as exc:
        raise_validation(at, exc)
    if claim.id in seen:
        raise ConfigError(at, "id: given twice (each claim needs its own id)")
    if claim.suite not in suites:
        raise ConfigError(at, f"suite: {_unknown_suite(claim.suite, suites)}")
    if claim.better == claim.worse:
        raise ConfigError(at, f"worse: the same row as better ({row_text(claim.better)})")
    return claim.model_copy(update={"dataset": claim.dataset or suites[claim.suite].dataset})


def _untested(top: LedgerFile, where: str) -> dict[str, dict[Row, str]]:
    """suite -> {row: why no claim names it}."""
    out: dict[str, dict[Row, str]] = {}
    for suite, rows in top.untested.items():
        if suite not in top.suites:
            raise ConfigError(f"{where}: untested.{suite}", _unknown_suite(suite, top.suites))
        for text, why in rows.items():
            try:
                out.setdefault(suite, {})[_row(text)] = why
            except ValueError as exc:
                raise ConfigError(f"{where}: untested.{suite}.{text}", str(exc)) from exc
    return out


def _unknown_suite(name: str, suites: dict) -> str:
    return f"expected one of the ledger's suites: {', '.join(suites)} (got {name!r})"


def _figures(claim: Claim, at: str) -> PaperFigures:
    f = claim.figures
    if f.delta is not None:
        return PaperFigures(f.dataset, f.delta)
    better = _paper_number(claim, claim.better, f.better, at, "better")
    worse = _paper_number(claim, claim.worse, f.worse, at, "worse")
    return PaperFigures(f.dataset, better - worse, better, worse, f.backbone)


def _paper_number(claim: Claim, row: Row, paper_row: str | None, at: str, side: str) -> float:
    """The one paper_numbers.yaml entry of a side: the claim's row, or the paper's row named
    (VARIANT of the same method, or METHOD/VARIANT)."""
    method, variant = row
    if paper_row:
        method, _, variant = paper_row.rpartition("/")
        method = method or row[0]
    f = claim.figures
    found: list[PaperNumber] = [
        p
        for p in paper_numbers()
        if (p.method, p.variant, p.dataset, p.metric) == (method, variant, f.dataset, claim.metric)
        and f.backbone in (None, p.backbone)
    ]
    if len(found) != 1:
        what = f"{method}/{variant} on {f.dataset}, {claim.metric}"
        what += f", {f.backbone}" if f.backbone else ""
        count = "no number" if not found else f"{len(found)} numbers (name a backbone)"
        raise ConfigError(at, f"figures.{side}: {count} in paper_numbers.yaml for {what}")
    return found[0].value


@cache
def ledger() -> Ledger:
    """The shipped ledger."""
    return read_ledger()


# ---- the claims against a suite --------------------------------------------------------


def read_suite(path: str | Path) -> Suite:
    """A suite file validated as a suite, without its grid: its rows and dataset entries."""
    raw = read_yaml(Path(path))
    try:
        spec = SuiteFile.model_validate(raw)
    except ValidationError as exc:
        raise_validation(str(path), exc)
    return Suite(str(path), spec, raw)


def suite_rows(suite: Suite) -> list[Row]:
    """Every row (method, variant) of a suite, in its order."""
    return [(m, v) for m in suite.spec.methods for v, _, _ in suite.variants(m)]


def check_suite(book: Ledger, suite: Suite) -> None:
    """Each claim of ``suite`` names rows and a dataset entry the suite defines, and each row
    the ledger leaves untested is one of its rows (else one line naming the claim)."""
    rows = suite_rows(suite)
    labels = [shown_name(entry) for entry in suite.spec.datasets]
    where = f"suite '{suite.name}' ({suite.path})"
    for i, claim in book.of(suite.name):
        for side in ("better", "worse"):
            row = getattr(claim, side)
            if row not in rows:
                known = ", ".join(row_text(r) for r in rows if r[0] == row[0]) or "none"
                raise ConfigError(
                    book.at(i),
                    f"{side}: no row {row_text(row)} in {where}; its {row[0]} rows: {known}",
                )
        if claim.dataset not in labels:
            raise ConfigError(
                book.at(i),
                f"dataset: no dataset entry '{claim.dataset}' in {where}; its entries: "
                + ", ".join(labels),
            )
        entry = suite.spec.datasets[labels.index(claim.dataset)]
        for side in ("better", "worse"):
            if not runs_row(entry, *getattr(claim, side)):
                raise ConfigError(
                    book.at(i),
                    f"{side}: row {row_text(getattr(claim, side))} is not run on "
                    f"'{claim.dataset}' in {where} (the entry's rows: {', '.join(entry.rows)})",
                )
    for row in book.untested.get(suite.name, {}):
        if row not in rows:
            raise ConfigError(
                f"{book.where}: untested.{suite.name}.{row_text(row)}", f"not a row of {where}"
            )


def uncovered(book: Ledger, suite: Suite) -> list[Row]:
    """The suite's rows that no claim names and the ledger does not list as untested."""
    named = {r for _, c in book.of(suite.name) for r in (c.better, c.worse)}
    named |= set(book.untested.get(suite.name, {}))
    return [r for r in suite_rows(suite) if r not in named]
