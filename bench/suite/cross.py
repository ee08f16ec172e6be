"""Cross-dataset cells: train on one dataset, test on another (STAL, TIP 2019, Sec. IV-E1 and
Table VI: trained on iLIDS-VID, tested on PRID-2011, repeated 10 times and averaged).

A suite dataset entry ``{train: SOURCE, test: TARGET, label: ...}`` (each side a dataset name
or a ``{name: ..., <options>}`` spec) expands into one cell per numbered split of the target:

- **Training identities: the source's training split**, never the whole source. Split ``i``
  trains on the source's split ``i mod n`` (``n`` = the source's number of splits; 0 for a
  single-split source). The training is then exactly the source's own cell's, so the two share
  one train hash and one set of trained weights (:meth:`bench.suite.schema.Cell.train_hash`), and a
  cross pair of one dataset with itself under other options (clean -> polluted) never trains on
  the identities it tests on.
- **Test identities: the target's test split** (its query and gallery, its protocol), so the
  numbers read against the target's own cells: same queries, same gallery, same scoring.
- **Splits: the target's** (``splits`` under ``test`` selects them; ``splits`` under
  ``train`` is refused). iLIDS-VID -> PRID-2011 thus has PRID's 10 splits, each trained on the
  iLIDS-VID split of the same number, averaged as the paper does.
- **Auxiliary inputs**: the ones both sides provide; when that is fewer than the source's, the
  training differs from the source's own cell and the train hash says so (``train_aux``).
- Reported as the entry's ``label``, else ``source→target`` (each side by its own label, if it
  has one); the tag ``dataset_name`` is always ``source→target`` (the names the papers' numbers
  are keyed by), ``train_dataset`` / ``test_dataset`` / ``train_split`` record the sides.

Checked before any work (:func:`check_cross`): both sides known datasets with valid options,
of one modality (video or image), and not the same dataset with the same options. When both
sides are one registered dataset (its pids name the same persons) loading also checks that no
training identity is a test identity (:func:`bench.data.cell_data.check_disjoint`, where a
cell's data is loaded).
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from bench.data.build import build_dataset
from bench.errors import ConfigError, raise_validation
from bench.registry import DATASETS
from bench.suite.schema import ROLES, CrossSpec, DatasetSpec, TrainSide, dataset_spec

#: Options that do not change which data a side is (ignored when comparing the two sides).
NOT_DATA = ("root", "splits")


@dataclass(frozen=True)
class EntrySplit:
    """One split of a suite dataset entry: what its cells test on, and train on if apart."""

    dataset: str
    options: dict
    split: int
    label: str = ""
    train_side: TrainSide | None = None


def shown_name(entry: str | DatasetSpec | CrossSpec) -> str:
    """The name an entry's results are reported under."""
    if isinstance(entry, CrossSpec):
        return entry.label or f"{shown_name(entry.train)}→{shown_name(entry.test)}"
    return entry if isinstance(entry, str) else entry.label or entry.name


def check_cross(entry: CrossSpec, path: str, index: int) -> None:
    """Both sides known, with valid options, of one modality, and not one dataset twice."""
    where = f"{path}: datasets[{index}]"
    names, options = {}, {}
    for role in ROLES:
        names[role], given = dataset_spec(getattr(entry, role))
        if names[role] not in DATASETS:
            known = ", ".join(DATASETS.names())
            raise ConfigError(f"{where}.{role}", f"unknown dataset '{names[role]}'; known: {known}")
        try:
            options[role] = DATASETS.get(names[role]).Options.model_validate(given)
        except ValidationError as exc:
            raise_validation(path, exc, ("datasets", index, role))
    if options["train"].splits is not None:
        raise ConfigError(
            f"{where}.train.splits",
            "a cross-dataset entry runs the test side's splits (split i trains on the train "
            "side's split i); set splits under test",
        )
    kinds = {role: "video" if DATASETS.get(names[role]).video else "image" for role in ROLES}
    if kinds["train"] != kinds["test"]:
        raise ConfigError(
            where,
            f"train side '{names['train']}' is {kinds['train']} data and test side "
            f"'{names['test']}' {kinds['test']} data; expected two video or two image datasets",
        )
    data = [options[role].model_dump(mode="json", exclude=set(NOT_DATA)) for role in ROLES]
    if names["train"] == names["test"] and data[0] == data[1]:
        raise ConfigError(
            where,
            f"train and test are '{names['train']}' with the same options: not a cross-dataset "
            f"cell; list '{names['train']}' as a plain entry, or give the sides different "
            "options",
        )


def entry_splits(
    entry: str | DatasetSpec | CrossSpec, data_root: str | None, where: str
) -> list[EntrySplit]:
    """The splits an entry's cells run, with their datasets' validated options (no data is read;
    a real dataset's index and split files are)."""
    if not isinstance(entry, CrossSpec):
        name, options = dataset_spec(entry)
        dataset = build_dataset(name, options, data_root, where)
        label = (entry.label or "") if isinstance(entry, DatasetSpec) else ""
        opts = dataset.options.model_dump(mode="json")
        return [EntrySplit(name, opts, i, label) for i in dataset.split_indices()]
    (source_name, source_opts), (target_name, target_opts) = (
        dataset_spec(getattr(entry, role)) for role in ROLES
    )
    source = build_dataset(source_name, source_opts, data_root, f"{where}.train")
    target = build_dataset(target_name, target_opts, data_root, f"{where}.test")
    shared = source.available_aux() & target.available_aux()
    aux = None if shared == source.available_aux() else tuple(sorted(shared))
    options = source.options.model_dump(mode="json")
    n = source.num_splits()
    return [
        EntrySplit(
            target_name,
            target.options.model_dump(mode="json"),
            i,
            shown_name(entry),
            TrainSide(source_name, options, i % n, aux),
        )
        for i in target.split_indices()
    ]
