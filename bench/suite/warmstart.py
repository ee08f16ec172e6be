"""The warm start of a suite, as config: what its ``pretrain:`` stage trains, the hash that
names the weights, and how the cells refer to them.

The stage (:mod:`bench.engine.pretrain`) trains the suite's ``defaults.model`` on the frames
of the training identities of one of its datasets: our warm start, not the papers' ImageNet
(none can be downloaded offline). Each seed of the suite has its own stage, trained with that
seed (unless ``pretrain.seed`` names one stage for all), so that the spread over seeds includes
the start. Its weights are cached as ``WORKDIR/pretrain/<hash>/backbone.pt``; a cell of seed s
whose model is that backbone gets ``model.weights: pretrain:<hash>`` of seed s's stage, so
its config hash depends on the warm start's hash and never on the absolute path of the file
(moving the work dir changes no hash). The path is resolved only when the cell builds its
model (:func:`resolve_weights`). No torch here: a suite validates without it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bench.config import DataConfig, Defaults, ModelConfig, PretrainConfig, TrainConfig
from bench.data.base import ReIDDataset
from bench.data.build import build_dataset
from bench.data.validation import held_out_count
from bench.errors import BenchError, ConfigError, raise_validation
from bench.registry import DATASETS
from bench.suite.fingerprint import harness_fingerprint, plugin_fingerprint
from bench.suite.schema import NON_RESULT_KEYS, Suite, dataset_spec, digest
from bench.suite.yaml import deep_merge

REF = "pretrain:"
WEIGHTS = "backbone.pt"
#: The stage's training defaults, between the suite's ``defaults.train`` and ``pretrain.train``.
STAGE_TRAIN = {"epochs": 8, "lr": 1e-3, "scheduler": "none", "warmup_epochs": 0}


@dataclass(frozen=True)
class PretrainSpec:
    """The resolved stage: its dataset (one split), the model, data and train sections."""

    suite: str
    dataset: str
    dataset_options: dict
    dataset_label: str
    split: int
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    device: str
    config: PretrainConfig
    seed: int  # of the stage's sampling and initialisation
    holdout_seed: int | None = None  # with train.val_fraction: the ids a tune validates on

    def resolved(self) -> dict[str, Any]:
        """Everything that determines the weights (logged as the stage run's params)."""
        resolved = {
            "stage": "pretrain",
            "dataset": {"name": self.dataset, **self.dataset_options},
            "split": self.split,
            "model": self.model.model_dump(mode="json"),
            "data": self.data.model_dump(mode="json"),
            "train": self.train.model_dump(mode="json"),
            "loss": self.config.model_dump(
                mode="json", exclude={"dataset", "data", "train", "seed"}
            ),
            "seed": self.seed,
        }
        if self.holdout_seed is not None:
            resolved["holdout_seed"] = self.holdout_seed
        return resolved

    def hashed(self) -> dict[str, Any]:
        """The resolved config without what cannot change the weights (as for cells)."""
        cfg = self.resolved()
        cfg["dataset"].pop("root", None)
        for section, key in NON_RESULT_KEYS:
            if section in cfg:
                cfg[section].pop(key, None)
        cfg["code"] = self.code
        return cfg

    @property
    def code(self) -> dict[str, str]:
        """The code that trains the weights: the harness (this stage, the engine, the data
        pipeline, the models) and the dataset plugin (:mod:`bench.suite.fingerprint`)."""
        return {
            "harness": harness_fingerprint(),
            "dataset": plugin_fingerprint(DATASETS.get(self.dataset), ReIDDataset),
        }

    @property
    def hash(self) -> str:
        return digest(self.hashed())

    @property
    def ref(self) -> str:
        """What a warm-started cell's ``model.weights`` holds."""
        return REF + self.hash

    @property
    def label(self) -> str:
        return f"pretrain/{self.dataset_label or self.dataset}/seed{self.seed}/{self.hash}"

    def for_cells_of(self, seed: int) -> PretrainSpec:
        """The stage the cells of ``seed`` start from: trained with ``seed``, or the one stage
        of ``pretrain.seed`` when the suite sets it."""
        return replace(self, seed=seed if self.config.seed is None else self.config.seed)

    def folder(self, workdir: Path) -> Path:
        return cache_folder(workdir, self.hash)

    def warm_started(self, sections: Defaults) -> Defaults:
        """A cell's sections with ``model.weights`` pointing at this warm start, if the cell's
        model is the backbone the stage trains (same backbone, kwargs and initial weights; the
        last stride may differ); otherwise unchanged."""
        model, base = sections.model, self.model
        same = (model.backbone, model.kwargs, model.pretrained, model.weights) == (
            base.backbone,
            base.kwargs,
            base.pretrained,
            base.weights,
        )
        if not same:
            return sections
        return sections.model_copy(update={"model": model.model_copy(update={"weights": self.ref})})


def cache_folder(workdir: Path, digest: str) -> Path:
    return Path(workdir) / "pretrain" / digest


def is_ref(weights: str | None) -> bool:
    return weights is not None and weights.startswith(REF)


def resolve_weights(model: ModelConfig, workdir: Path) -> ModelConfig:
    """``model`` with a ``pretrain:<hash>`` reference turned into the cached file's path."""
    if not is_ref(model.weights):
        return model
    path = (cache_folder(workdir, model.weights.removeprefix(REF)) / WEIGHTS).resolve()
    if not path.is_file():
        raise BenchError(
            f"model.weights: the warm start '{model.weights}' is not trained in this work dir "
            f"(expected {path}); run `bench pretrain SUITE` (or `bench run SUITE`) with the "
            "same --workdir first"
        )
    return model.model_copy(update={"weights": str(path)})


def pretrain_specs(suite: Suite, data_root: str | None = None) -> dict[int, PretrainSpec]:
    """{seed: the stage its cells start from} for each of the suite's seeds ({} without a
    ``pretrain:`` section); validated once (:func:`pretrain_spec`)."""
    spec = pretrain_spec(suite, data_root)
    return {} if spec is None else {seed: spec.for_cells_of(seed) for seed in suite.spec.seeds}


def pretrain_spec(
    suite: Suite,
    data_root: str | None = None,
    holdout: tuple[float, int] | None = None,
    seed: int | None = None,
) -> PretrainSpec | None:
    """The suite's resolved ``pretrain:`` stage that the cells of ``seed`` (default: the
    suite's first) start from (None without one), validated: the dataset names one of the
    suite's entries with a single split in the grid, the patches validate, and P fits its
    training identities. Each error names ``pretrain.<key>``.

    ``holdout``: a tune's validation (fraction, seed) on the suite's first dataset. When the
    stage trains on that dataset, it leaves out the same identities (``train.val_fraction``,
    ``holdout_seed``: :func:`bench.data.validation.carve_validation`), so that no trial is
    scored on identities its warm start was trained on; the stage then has its own hash."""
    cfg = suite.spec.pretrain
    if cfg is None:
        return None
    entry = _dataset_entry(suite, cfg.dataset)
    name, options = dataset_spec(entry)
    dataset = build_dataset(name, options, data_root, suite.path)
    splits = dataset.split_indices()
    if len(splits) != 1:
        raise ConfigError(
            f"{suite.path}: pretrain.dataset",
            f"'{name}' runs {len(splits)} splits, whose test identities are other splits' "
            "training identities; pretrain on another dataset, or give it one split "
            "(splits: [N])",
        )
    defaults = suite.spec.defaults
    try:
        data = DataConfig.model_validate(deep_merge(defaults.data.model_dump(), cfg.data))
    except ValidationError as exc:
        raise_validation(suite.path, exc, ("pretrain", "data"))
    if "val_fraction" in cfg.train:
        raise ConfigError(
            f"{suite.path}: pretrain.train.val_fraction",
            "expected none: the stage trains on every training identity (bench tune holds out "
            f"its own validation identities) (got {cfg.train['val_fraction']!r})",
        )
    train_patch = deep_merge(deep_merge(defaults.train.model_dump(), STAGE_TRAIN), cfg.train)
    holdout = holdout if entry is suite.spec.datasets[0] else None
    fraction = holdout[0] if holdout else 0.0  # never a patch's: all training ids, or a tune's
    try:
        train = TrainConfig.model_validate({**train_patch, "val_fraction": fraction})
    except ValidationError as exc:
        raise_validation(suite.path, exc, ("pretrain", "train"))
    ids = dataset.train_identities(splits[0])
    if ids is not None and fraction:
        ids -= held_out_count(ids, fraction)
    if ids is not None and data.p > ids:
        raise ConfigError(
            f"{suite.path}: pretrain.data.p",
            f"expected at most {ids} identities per batch: '{name}' has {ids} training "
            f"identities (got p={data.p})",
        )
    spec = PretrainSpec(
        suite.name,
        name,
        dataset.options.model_dump(mode="json"),
        getattr(entry, "label", None) or "",
        splits[0],
        defaults.model,
        data,
        train,
        defaults.runtime.device,
        cfg,
        seed=suite.spec.seeds[0] if seed is None else seed,
        holdout_seed=holdout[1] if holdout else None,
    )
    return spec.for_cells_of(spec.seed)


def _dataset_entry(suite: Suite, wanted: str | None):
    """The suite's dataset entry named (by label, else name) ``wanted``; the first if None."""
    entries = suite.spec.datasets
    if wanted is None:
        return entries[0]
    for key in ("label", "name"):
        for entry in entries:
            shown = getattr(entry, "label", None) if key == "label" else dataset_spec(entry)[0]
            if shown == wanted:
                return entry
    known = [getattr(e, "label", None) or dataset_spec(e)[0] for e in entries]
    raise ConfigError(
        f"{suite.path}: pretrain.dataset",
        f"expected one of the suite's datasets: {', '.join(known)} (got {wanted!r})",
    )
