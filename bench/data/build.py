"""A registered dataset, built from its name and options (validated; no data is read yet)."""

from __future__ import annotations

from pydantic import ValidationError

from bench.data.base import ReIDDataset
from bench.errors import ConfigError, raise_validation
from bench.registry import DATASETS


def build_dataset(
    name: str, options: dict, data_root: str | None, where: str = "suite"
) -> ReIDDataset:
    """Instantiate dataset ``name`` with validated ``options``; errors name ``where``."""
    cls = DATASETS.get(name)
    try:
        opts = cls.Options.model_validate(options)
    except ValidationError as exc:
        raise_validation(f"{where}: dataset {name}", exc)
    try:
        return cls(opts, data_root)
    except ConfigError as exc:  # an option the dataset refuses (aux: exact on real data)
        raise ConfigError(where, str(exc)) from None


def prepared(name: str, options: dict, data_root: str | None) -> ReIDDataset:
    """The dataset, generated or checked on disk (:meth:`ReIDDataset.prepare`)."""
    dataset = build_dataset(name, options, data_root)
    dataset.prepare()
    return dataset
