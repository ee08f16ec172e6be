"""The grid of a suite: dataset entry x split x method x variant x seed, each a fully resolved
:class:`~bench.suite.schema.Cell`.

A variant's config is the suite's ``defaults`` <- ``method_config[method]`` <- the variant's
override (method fields and section patches), with the method's own test protocol filled in
under the eval keys the suite does not set (:func:`resolve_eval`). A variant may also set
dataset options of its own cells (:data:`~bench.suite.schema.DATASET_KEYS`); a warm-started
suite points each cell whose model is the stage's backbone at the weights of its seed's stage.
"""

from __future__ import annotations

import json

from pydantic import ValidationError

from bench.config import SECTIONS, Defaults, MethodConfig
from bench.errors import raise_validation
from bench.registry import method_config
from bench.suite.cross import EntrySplit, entry_splits
from bench.suite.schema import (
    DATASET_KEYS,
    ROLES,
    Cell,
    CrossSpec,
    DatasetSpec,
    Suite,
    runs_row,
)
from bench.suite.warmstart import pretrain_specs
from bench.suite.yaml import deep_merge


def split_override(override: dict) -> tuple[dict, dict]:
    """An override -> (method fields, section patches); its DATASET_KEYS are neither."""
    sections = {k: v for k, v in override.items() if k in SECTIONS}
    skip = {"name", *SECTIONS, *DATASET_KEYS}
    fields = {k: v for k, v in override.items() if k not in skip}
    return fields, sections


def cell_config(suite: Suite, method: str, override: dict, key: str):
    """(method config, sections) of a variant: defaults <- method_config[method] <- the
    variant's ``override``, validated; errors name ``key``."""
    base_fields, base_sections = split_override(suite.spec.method_config.get(method, {}))
    fields, sections = split_override(override)
    patch = deep_merge(base_sections, sections)
    merged = deep_merge(suite.spec.defaults.model_dump(), patch)
    try:
        defaults = Defaults.model_validate(merged)  # first: ``eval`` may be no mapping
        explicit = suite.spec.defaults.eval.model_fields_set | set(patch.get("eval", {}))
        config = method_config(method).model_validate({**base_fields, **fields})
        defaults = resolve_eval(config, defaults, explicit)
    except ValidationError as exc:
        raise_validation(f"{suite.path}: {key}", exc)
    return config, defaults


def resolve_eval(config: MethodConfig, sections: Defaults, explicit: set[str]) -> Defaults:
    """``sections`` with the method's :meth:`~bench.config.MethodConfig.eval_defaults` filled
    in under the ``explicit`` eval keys (those the suite sets itself)."""
    patch = {k: v for k, v in config.eval_defaults(sections.data).items() if k not in explicit}
    if not patch:
        return sections
    ev = sections.eval.model_validate({**sections.eval.model_dump(), **patch})
    return sections.model_copy(update={"eval": ev})


def dataset_patch(suite: Suite, method: str, override: dict) -> dict:
    """The dataset options a variant sets (DATASET_KEYS): method_config <- the variant."""
    merged = {**suite.spec.method_config.get(method, {}), **override}
    return {k: merged[k] for k in DATASET_KEYS if k in merged}


def with_options(
    entry: str | DatasetSpec | CrossSpec, patch: dict
) -> str | DatasetSpec | CrossSpec:
    """A dataset entry with ``patch`` applied to its options (to each side of a cross entry)."""
    if not patch:
        return entry
    if isinstance(entry, CrossSpec):
        sides = {role: with_options(getattr(entry, role), patch) for role in ROLES}
        return entry.model_copy(update=sides)
    if isinstance(entry, str):
        return DatasetSpec(name=entry, **patch)
    return DatasetSpec.model_validate({**entry.model_dump(exclude_none=True), **patch})


class EntrySplits:
    """The splits of one dataset entry under each dataset-option patch a variant sets, each
    expanded once (patches change what is read, not the splits, so index j is one split)."""

    def __init__(self, entry: str | DatasetSpec | CrossSpec, data_root: str | None, where: str):
        self.entry, self.data_root, self.where = entry, data_root, where
        self.expanded: dict[str, list[EntrySplit]] = {}

    def of(self, patch: dict, key: str) -> list[EntrySplit]:
        """The entry's splits with ``patch`` applied; ``key``: the override named in errors."""
        name = json.dumps(patch, sort_keys=True)
        if name not in self.expanded:
            where = f"{self.where}, {key}" if patch else self.where
            entry = with_options(self.entry, patch)
            self.expanded[name] = entry_splits(entry, self.data_root, where)
        return self.expanded[name]


def expand(suite: Suite, data_root: str | None = None) -> list[Cell]:
    """The grid, in order: dataset x split x method x variant x seed, each dataset entry with
    the rows it runs (validates every override and dataset option on the way)."""
    out, warm = [], pretrain_specs(suite, data_root)
    for i, entry in enumerate(suite.spec.datasets):
        splits = EntrySplits(entry, data_root, f"{suite.path}: datasets[{i}]")
        for j in range(len(splits.of({}, ""))):
            for method in suite.spec.methods:
                for variant, override, key in suite.variants(method):
                    if not runs_row(entry, method, variant):
                        continue
                    data = splits.of(dataset_patch(suite, method, override), key)[j]
                    config, sections = cell_config(suite, method, override, key)
                    out += [
                        Cell(
                            suite.name,
                            data.dataset,
                            data.options,
                            data.split,
                            method,
                            variant,
                            seed,
                            config,
                            warm[seed].warm_started(sections) if warm else sections,
                            data.label,
                            data.train_side,
                        )
                        for seed in suite.spec.seeds
                    ]
    return out
