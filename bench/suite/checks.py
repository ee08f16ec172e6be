"""Checks of a validated suite that need more than its own text, run before any work.

- datasets: the ``splits`` asked for exist, and every cell's P identities per batch fit the
  training identities of its split (read from the dataset's index files, no frame decoded);
- backbones: the timm model exists, accepts ``model.kwargs``, exposes 4 stages of stride
  4/8/16/32, and the input is no smaller than its output stride (built on PyTorch's ``meta``
  device: no memory, no weights);
- weights (:func:`check_weights`, before a run, not a dry run): ``model.weights`` exists (a
  ``pretrain:<hash>`` warm start is made by the suite's stage before the cells run);
  ``model.pretrained`` weights are cached or reachable.

Each failure is a ConfigError naming the file and the key path that set the value.
"""

from __future__ import annotations

import json

from bench.data.base import ReIDDataset
from bench.data.build import build_dataset
from bench.data.validation import held_out_count
from bench.errors import ConfigError
from bench.suite.schema import Cell, CrossSpec, Suite, dataset_spec
from bench.suite.warmstart import is_ref, pretrain_spec


def key_path(suite: Suite, cell: Cell, section: str, field: str) -> str:
    """Where a cell's ``section.field`` comes from: its variant, its method_config, or
    defaults."""
    for name, override, key in suite.variants(cell.method):
        if name == cell.variant and field in override.get(section, {}):
            return f"{key}.{section}.{field}"
    if field in suite.spec.method_config.get(cell.method, {}).get(section, {}):
        return f"method_config.{cell.method}.{section}.{field}"
    return f"defaults.{section}.{field}"


def check_datasets(suite: Suite, cells: list[Cell], data_root: str | None) -> None:
    """``splits`` in range and distinct; P no larger than the training identities (a
    cross-dataset cell's: its training side's)."""
    for i, spec in enumerate(suite.spec.datasets):
        test_side = isinstance(spec, CrossSpec)
        name, options = dataset_spec(spec.test if test_side else spec)
        dataset = build_dataset(name, options, data_root, suite.path)
        asked = dataset.options.splits
        if asked:
            n = dataset.num_splits()
            if any(not 0 <= s < n for s in asked) or len(set(asked)) != len(asked):
                raise ConfigError(
                    f"{suite.path}: datasets[{i}]{'.test' if test_side else ''}.splits",
                    f"expected distinct split numbers in 0..{n - 1} of '{name}' (got {asked})",
                )
    sources: dict[str, ReIDDataset] = {}
    for cell in cells:
        name, options, split = cell.trained_on()
        key = json.dumps([name, options], sort_keys=True)
        if key not in sources:
            sources[key] = build_dataset(name, options, data_root, suite.path)
        ids = sources[key].train_identities(split)
        if ids is None:
            continue
        train = cell.sections.train
        usable = ids - held_out_count(ids, train.val_fraction)
        p = cell.sections.data.p
        if p > usable:
            held = f" after holding out {ids - usable} for validation" if usable < ids else ""
            raise ConfigError(
                f"{suite.path}: {key_path(suite, cell, 'data', 'p')}",
                f"expected at most {usable} identities per batch: '{name}' split "
                f"{split} has {usable} training identities{held} (got p={p})",
            )


def check_backbones(suite: Suite, cells: list[Cell]) -> None:
    """Each distinct (model, input size) of the grid, checked once."""
    from bench.models.backbone import check_backbone

    seen = set()
    for cell in cells:
        model, data = cell.sections.model, cell.sections.data
        key = (model.model_dump_json(), data.height, data.width)
        if key in seen:
            continue
        seen.add(key)
        problem = check_backbone(model, data.height, data.width)
        if problem is not None:
            field, message = problem
            section = "data" if field in ("height", "width") else "model"
            where = f"{suite.path}: {key_path(suite, cell, section, field)}"
            raise ConfigError(where, message)


def check_weights(suite: Suite, cells: list[Cell]) -> None:
    """``model.weights`` files exist, ``model.pretrained`` weights are cached or the hub answers
    (one short probe), for the cells and the ``pretrain:`` stage's starting point: a property
    of this machine, so checked only before running."""
    from bench.models.backbone import check_weights as problem_of

    if suite.spec.pretrain is not None:  # the stage starts from defaults.model
        problem = problem_of(suite.spec.defaults.model)
        if problem is not None:
            raise ConfigError(f"{suite.path}: defaults.model.{problem[0]}", problem[1])
    for cell in {c.sections.model.model_dump_json(): c for c in cells}.values():
        if is_ref(cell.sections.model.weights):
            continue  # the suite's pretrain stage makes this file before the cells run
        problem = problem_of(cell.sections.model)
        if problem is not None:
            field, message = problem
            raise ConfigError(f"{suite.path}: {key_path(suite, cell, 'model', field)}", message)


def check_stage(suite: Suite, data_root: str | None) -> None:
    """The ``pretrain:`` stage's backbone takes its input size, as a cell's must."""
    from bench.models.backbone import check_backbone

    spec = pretrain_spec(suite, data_root)
    if spec is None:
        return
    problem = check_backbone(spec.model, spec.data.height, spec.data.width)
    if problem is not None:
        field, message = problem
        section = "data" if field in ("height", "width") else "model"
        patched = section == "data" and field in suite.spec.pretrain.data
        key = f"pretrain.data.{field}" if patched else f"defaults.{section}.{field}"
        raise ConfigError(f"{suite.path}: {key}", f"{message}, in the pretrain: stage")


def check_cells(suite: Suite, cells: list[Cell], data_root: str | None) -> None:
    check_datasets(suite, cells, data_root)
    check_backbones(suite, cells)
    check_stage(suite, data_root)
