"""The data of one cell, resolved once: the identities it trains on and the split it is
tested on.

A cell trains on its split's training identities and is tested on that split's query and
gallery, under its protocol. A cross-dataset cell (its entries are expanded by
:mod:`bench.suite.cross`) trains instead on the training identities of another dataset's
split: both sides are loaded here, checked disjoint when they are one registered dataset
(equal pids are then the same person), and joined into one :class:`~bench.data.base.Split`;
the auxiliary inputs are those both sides provide, and ``tags`` name the two sides. Either
way a validation split is carved out of the training identities when asked
(``train.val_fraction``, :func:`bench.data.validation.carve_validation`): the cell then trains
on the other training identities, is validated on those after every epoch, and is tested on
the test split as any cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from bench.data.base import Split, Tracklet
from bench.data.build import prepared
from bench.data.validation import carve_validation
from bench.errors import BenchError


class DataRef(NamedTuple):
    """One split of a registered dataset under validated options."""

    dataset: str
    options: dict
    split: int


@dataclass(frozen=True)
class CellData:
    """What a cell trains and is tested on (``split``), the held-out training identities it is
    validated on (``validation``: its query and gallery; None without ``val_fraction``), the
    auxiliary inputs it may use, and MLflow tags naming a cross-dataset cell's two sides."""

    split: Split
    available: frozenset[str]
    tags: dict[str, str] = field(default_factory=dict)
    validation: Split | None = None


def load_cell_data(
    test: DataRef,
    train: DataRef | None,
    label: str,
    data_root: str | None,
    val_fraction: float = 0.0,
    seed: int = 0,
) -> CellData:
    """The cell's data: ``test``'s split, trained on ``train``'s training identities when the
    cell is cross-dataset (``train`` not None); ``label`` names the cell in errors."""
    target = prepared(test.dataset, test.options, data_root)
    split, available, tags = target.load_split(test.split), target.available_aux(), {}
    if train is not None:
        source = prepared(train.dataset, train.options, data_root)
        trained_on = source.load_split(train.split).train
        if train.dataset == test.dataset:
            check_disjoint(label, trained_on, split)
        split = Split(trained_on, split.query, split.gallery, split.protocol, split.index)
        available &= source.available_aux()
        tags = {
            "train_dataset": train.dataset,
            "test_dataset": test.dataset,
            "train_split": str(train.split),
        }
    validation = None
    if val_fraction > 0:
        validation = carve_validation(split, val_fraction, seed)
        split = Split(validation.train, split.query, split.gallery, split.protocol, split.index)
    if not split.train or not split.query or not split.gallery:
        raise BenchError(f"{label}: the split has an empty train, query or gallery set")
    return CellData(split, available, tags, validation)


def check_disjoint(label: str, train: list[Tracklet], test: Split) -> None:
    """No training identity among the test identities (both sides one registered dataset, so
    equal pids are the same person)."""
    shared = {t.pid for t in train} & {t.pid for t in (*test.query, *test.gallery)}
    if shared:
        shown = ", ".join(map(str, sorted(shared)[:5])) + (", ..." if len(shared) > 5 else "")
        raise BenchError(
            f"{label}: {len(shared)} training identities of the train side are test identities "
            f"of the test side (pids {shown}); a cross-dataset cell of one dataset must train "
            "and test on disjoint identities: give both sides the same split options"
        )
