"""The numbers the three papers report, read from ``paper_numbers.yaml`` (data, not code)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from bench.errors import ConfigError

PAPER_FILE = Path(__file__).with_name("paper_numbers.yaml")
KEYS = ("paper", "method", "variant", "dataset", "protocol", "backbone", "input", "source")
METRICS = ("R1", "R5", "R10", "R20", "mAP", "mINP")


@dataclass(frozen=True)
class PaperNumber:
    """One reported number (percent), keyed as the paper states its setting."""

    paper: str
    method: str
    variant: str
    dataset: str
    protocol: str
    backbone: str
    input: str
    source: str
    metric: str
    value: float


def parse_groups(data: dict, where: str) -> list[PaperNumber]:
    """Expand ``groups`` (shared keys + ``values: {metric: number}``) into entries."""
    out = []
    for i, group in enumerate(data.get("groups") or []):
        loc = f"{where}: groups[{i}]"
        missing = [k for k in (*KEYS, "values") if k not in group]
        if missing:
            raise ConfigError(loc, f"missing {', '.join(missing)}")
        unknown = [str(k) for k in group if k not in (*KEYS, "values")]
        if unknown:
            raise ConfigError(loc, f"unknown key {', '.join(unknown)} (a comma in a value?)")
        for metric, value in group["values"].items():
            if metric not in METRICS or not isinstance(value, int | float):
                raise ConfigError(
                    f"{loc}.values.{metric}", f"expected a metric and a number (got {value!r})"
                )
            if not 0 <= value <= 100:
                raise ConfigError(f"{loc}.values.{metric}", f"expected a percentage (got {value})")
            out.append(PaperNumber(*(str(group[k]) for k in KEYS), metric, float(value)))
    return out


@dataclass(frozen=True)
class CostClaim:
    """What a paper says its method costs, in its words; ``measures``: the cost columns the
    claim speaks to ('params', 'gflops')."""

    paper: str
    method: str
    variant: str
    claim: str
    source: str
    measures: tuple[str, ...]


CLAIM_KEYS = ("paper", "method", "variant", "claim", "source", "measures")
MEASURES = ("params", "gflops")


def parse_claims(data: dict, where: str) -> list[CostClaim]:
    """The ``cost_claims`` entries, each checked for its keys and measures."""
    out = []
    for i, entry in enumerate(data.get("cost_claims") or []):
        loc = f"{where}: cost_claims[{i}]"
        if set(entry) != set(CLAIM_KEYS):
            raise ConfigError(
                loc, f"expected the keys {', '.join(CLAIM_KEYS)} (got {sorted(entry)})"
            )
        measures = tuple(entry["measures"])
        if not measures or set(measures) - set(MEASURES):
            raise ConfigError(f"{loc}.measures", f"expected some of {MEASURES} (got {measures})")
        out.append(CostClaim(*(str(entry[k]) for k in CLAIM_KEYS[:-1]), measures))
    return out


@cache
def paper_numbers(path: Path = PAPER_FILE) -> tuple[PaperNumber, ...]:
    return tuple(parse_groups(yaml.safe_load(path.read_text()), str(path)))


@cache
def cost_claims(path: Path = PAPER_FILE) -> tuple[CostClaim, ...]:
    return tuple(parse_claims(yaml.safe_load(path.read_text()), str(path)))


def lookup(method: str, variant: str, dataset: str, metric: str) -> list[PaperNumber]:
    """Entries for one table cell (several when papers or backbones differ)."""
    return [
        p
        for p in paper_numbers()
        if (p.method, p.variant, p.dataset, p.metric) == (method, variant, dataset, metric)
    ]


@dataclass(frozen=True)
class RowSetting:
    """What a paper's number is set beside: a row's backbone, input size (``HxW``), test
    protocol, number of splits and dataset name (None: unknown)."""

    backbone: str | None = None
    input: str | None = None
    protocol: str | None = None
    splits: int | None = None
    dataset: str | None = None

    def protocols(self) -> set[str | None]:
        """The paper protocols the row's runs follow: their own protocol's name, 'N random
        splits' for runs over N splits, 'standard' for a dataset's one fixed partition (whose
        protocol is named after the dataset)."""
        out = {self.protocol}
        if self.splits and self.splits > 1:
            out.add(f"{self.splits} random splits")
        if self.protocol is not None and self.protocol == self.dataset:
            out.add("standard")
        return out


def unmatched(paper: PaperNumber, row: RowSetting) -> list[str]:
    """The paper's settings that are not the row's (or not known for it), as the paper names
    them; empty when backbone, input size and protocol match."""
    out = []
    if paper.backbone != row.backbone:
        out.append(paper.backbone)
    if paper.input != row.input:
        out.append(paper.input)
    if paper.protocol not in row.protocols():
        out.append(f"protocol {paper.protocol}")
    return out
