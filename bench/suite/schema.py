"""Suite files: load, override, validate, and expand into a grid of cells.

A suite names datasets (each a name, a spec with options, or a cross-dataset pair
``{train: A, test: B}``, bench/cross.py), methods, per-method base overrides
(``method_config``), named ablation variants and seeds, plus ``defaults`` for the model, data,
train and eval sections. An override (of a method or a variant) holds method config fields and
optional section patches (``model``/``data``/``train``/``eval``). Every error names the file,
the key path and what was expected.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    ValidationError,
    field_validator,
)

from bench.config import SECTIONS, Defaults, LauncherConfig, MethodConfig, PretrainConfig
from bench.errors import ConfigError
from bench.registry import DATASETS, METHODS, known_method, method_config
from bench.suite.fingerprint import code_fingerprint
from bench.suite.yaml import parse_yaml, read_yaml_file

ROOT_KEYS = (
    "name",
    "description",
    "datasets",
    "methods",
    "method_config",
    "ablations",
    "seeds",
    "defaults",
    "report",
    "launcher",
    "pretrain",
)


#: A seed: a non-negative integer below 2**32 (numpy's limit); booleans are not seeds.
Seed = Annotated[StrictInt, Field(ge=0, lt=2**32)]


class DatasetSpec(BaseModel):
    """A dataset entry: its registered name, an optional display label (to tell apart two
    entries of one dataset, e.g. clean and polluted) and the dataset's own options."""

    model_config = ConfigDict(extra="allow")
    name: str
    label: str | None = None


def _entry_kind(value: Any) -> str:
    """Which model a dataset entry is: a name, a cross-dataset pair, or a dataset spec."""
    if not isinstance(value, dict):
        return "str"
    return "CrossSpec" if "name" not in value and {"train", "test"} & set(value) else "DatasetSpec"


#: One side of a cross-dataset entry: a dataset name or a dataset spec with options.
DatasetSide = Annotated[
    Annotated[str, Tag("str")] | Annotated[DatasetSpec, Tag("DatasetSpec")],
    Discriminator(lambda value: "DatasetSpec" if isinstance(value, dict) else "str"),
]


#: The two sides of a cross-dataset entry.
ROLES = ("train", "test")


class CrossSpec(BaseModel):
    """A cross-dataset entry: train on ``train``'s training split, test on ``test``'s test
    split (bench/cross.py); each side a dataset name or a spec with options."""

    model_config = ConfigDict(extra="forbid")
    train: DatasetSide
    test: DatasetSide
    label: str | None = None


DatasetEntry = Annotated[
    Annotated[str, Tag("str")]
    | Annotated[DatasetSpec, Tag("DatasetSpec")]
    | Annotated[CrossSpec, Tag("CrossSpec")],
    Discriminator(_entry_kind),
]


class ReportSpec(BaseModel):
    """How the suite's report is made: the reference row of the Δ columns (METHOD/VARIANT)."""

    model_config = ConfigDict(extra="forbid")
    reference: str | None = Field(default=None, pattern=r"^[^/\s]+(/[^/\s]+)?$")


class SuiteFile(BaseModel):
    """The shape of a suite file (semantic checks come after, in :func:`validate`)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, pattern=r"^[^\s/\\][^/\\]*$")
    description: str = ""
    datasets: list[DatasetEntry] = Field(min_length=1)
    methods: list[str] = Field(min_length=1)
    method_config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    ablations: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1, max_length=1000)
    defaults: Defaults = Field(default_factory=Defaults)
    report: ReportSpec = Field(default_factory=ReportSpec)
    launcher: LauncherConfig = Field(default_factory=LauncherConfig)
    pretrain: PretrainConfig | None = None

    @field_validator("methods", "seeds")
    @classmethod
    def _unique(cls, values: list) -> list:
        repeated = sorted({v for i, v in enumerate(values) if v in values[:i]}, key=str)
        if repeated:
            raise ValueError(f"expected distinct entries; repeated: {repeated}")
        return values


def format_loc(loc: tuple) -> str:
    """('ablations', 'iaunet', 0, 'x') -> 'ablations.iaunet[0].x'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def raise_validation(where: str, exc: ValidationError, prefix: tuple = ()) -> None:
    """Re-raise a pydantic error as a ConfigError naming the first bad key path."""
    errors = exc.errors()
    err = errors[0]
    loc = [p for p in (*prefix, *err["loc"]) if p not in ("str", "DatasetSpec", "CrossSpec")]
    got = f" (got {_shown(err['input'])})" if err["type"] != "missing" else ""
    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    more = f" [and {len(errors) - 1} more]" if len(errors) > 1 else ""
    raise ConfigError(where, f"{format_loc(tuple(loc))}: {msg}{got}{more}")


def _shown(value: Any, limit: int = 80) -> str:
    """repr of a bad value on one line, shortened."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def set_path(tree: dict, dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict; a path not starting at a root key goes under defaults
    (so ``train.epochs=2`` means ``defaults.train.epochs``)."""
    keys = dotted.split(".")
    if keys[0] not in ROOT_KEYS:
        keys = ["defaults", *keys]
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"-o {dotted}", f"'{key}' is not a mapping")
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """'train.epochs=2' -> ('train.epochs', 2); values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"-o {text}", "expected KEY=VALUE, e.g. train.epochs=2")
    key, value = text.split("=", 1)
    return key.strip(), parse_yaml(value, f"-o {text}")


def deep_merge(base: dict, patch: dict) -> dict:
    """A copy of ``base`` with ``patch`` merged in (mappings recursively, the rest replaced)."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: Path) -> dict:
    if not path.is_file():
        raise ConfigError(str(path), "no such suite file")
    data = read_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError(str(path), "expected a mapping at the top level")
    return data


#: Override keys that set dataset options of the override's cells (both sides of a
#: cross-dataset entry): options that choose what is read, never which split it is.
DATASET_KEYS = ("aux",)


def split_override(override: dict) -> tuple[dict, dict]:
    """An override -> (method fields, section patches); its DATASET_KEYS are neither."""
    sections = {k: v for k, v in override.items() if k in SECTIONS}
    skip = {"name", *SECTIONS, *DATASET_KEYS}
    fields = {k: v for k, v in override.items() if k not in skip}
    return fields, sections


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


@dataclass(frozen=True)
class TrainSide:
    """What a cross-dataset cell trains on: split ``split``'s training identities of the
    dataset ``dataset`` (validated ``options``); ``aux``: the auxiliary inputs it trains with
    when the test side provides fewer than this dataset does (None: all of this dataset's)."""

    dataset: str
    options: dict
    split: int
    aux: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Cell:
    """One unit of work: a dataset split x a method variant x a seed, fully resolved.

    ``dataset``, ``dataset_options`` and ``split`` are what the cell is tested on; a
    cross-dataset cell trains on ``train_side`` instead of the same split's training set."""

    suite: str
    dataset: str
    dataset_options: dict
    split: int
    method: str
    variant: str
    seed: int
    method_config: MethodConfig
    sections: Defaults
    dataset_label: str = ""
    train_side: TrainSide | None = None

    @property
    def shown_dataset(self) -> str:
        """The name results are reported under (the suite's label, else the dataset name)."""
        return self.dataset_label or self.dataset_name

    @property
    def dataset_name(self) -> str:
        """The dataset's registered name; ``train→test`` for a cross-dataset cell."""
        side = self.train_side
        return f"{side.dataset}→{self.dataset}" if side else self.dataset

    def trained_on(self) -> tuple[str, dict, int]:
        """(dataset, options, split) whose training identities the cell trains on."""
        side = self.train_side
        if side is None:
            return self.dataset, self.dataset_options, self.split
        return side.dataset, side.options, side.split

    @property
    def label(self) -> str:
        split = f"/split{self.split}" if self.split else ""
        return f"{self.shown_dataset}{split}/{self.method}/{self.variant}/seed{self.seed}"

    def resolved(self) -> dict[str, Any]:
        """Everything that determines the result (logged as params, saved as config.yaml)."""
        return {
            "dataset": {"name": self.dataset, **self.dataset_options},
            "split": self.split,
            **train_side_config(self.train_side),
            "method": {
                "name": self.method,
                "variant": self.variant,
                **self.method_config.model_dump(mode="json"),
            },
            **self.sections.model_dump(mode="json"),
            "seed": self.seed,
            "code": self.code,
        }

    @property
    def code(self) -> dict[str, str]:
        """The version of the code that computes this cell (:mod:`bench.suite.fingerprint`)."""
        return dict(code_fingerprint(self.method, self.dataset))

    def _result_config(self) -> dict[str, Any]:
        """The resolved config without settings that cannot change the numbers."""
        cfg = self.resolved()
        cfg["dataset"].pop("root", None)
        cfg.get("train_dataset", {}).pop("root", None)
        cfg.pop("runtime", None)
        cfg.pop("code")
        for section, key in NON_RESULT_KEYS:
            cfg[section].pop(key, None)
        return cfg

    @property
    def config_key(self) -> str:
        """Identifies the cell's config alone: runs of one config by other code share it."""
        return _digest(self._result_config())

    @property
    def config_hash(self) -> str:
        """Identifies the cell's result, its config and code (a finished cell with this hash is
        not run again)."""
        return _digest({"config": self.config_key, "code": self.code["fingerprint"]})

    @property
    def train_hash(self) -> str:
        """Identifies the trained weights: the config without the ``eval`` section and the
        method's test-time fields, so that cells differing only there share one training (a
        cross-dataset cell's: its training side's, as its source's own cell has it)."""
        cfg = as_trained(self._result_config())
        cfg.pop("eval")
        for key in self.method_config.test_time_fields() | {"variant"}:
            cfg["method"].pop(key)
        return _digest({**cfg, "code": self.code["fingerprint"]})


def train_side_config(side: TrainSide | None) -> dict[str, Any]:
    """The resolved-config keys of a cross-dataset cell's training side (none for others)."""
    if side is None:
        return {}
    aux = {} if side.aux is None else {"train_aux": list(side.aux)}
    dataset = {"name": side.dataset, **side.options}
    return {"train_dataset": dataset, "train_split": side.split, **aux}


def as_trained(cfg: dict) -> dict:
    """A cross-dataset cell's result config with its training side as the dataset and split:
    the training then hashes as its source dataset's own cell does."""
    if "train_dataset" in cfg:
        cfg["dataset"], cfg["split"] = cfg.pop("train_dataset"), cfg.pop("train_split")
    cfg["dataset"].pop("splits", None)  # which splits a suite runs cannot change one's training
    return cfg


def _digest(cfg: dict) -> str:
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


NON_RESULT_KEYS = (
    ("data", "workers"),
    ("data", "cache_frames"),
    ("eval", "batch_size"),
    ("eval", "chunk_size"),
)


@dataclass
class Suite:
    """A validated suite: the file it came from and its raw (validated) content."""

    path: str
    spec: SuiteFile
    raw: dict

    @property
    def name(self) -> str:
        return self.spec.name

    def variants(self, method: str) -> list[tuple[str, dict, str]]:
        """(name, override, key path) of each variant of a method, ``default`` first."""
        ablations = self.spec.ablations.get(method, [])
        return [
            ("default", {}, f"method_config.{method}"),
            *[(v["name"], v, f"ablations.{method}[{i}]") for i, v in enumerate(ablations)],
        ]

    def cell_config(self, method: str, override: dict, key: str) -> tuple[MethodConfig, Defaults]:
        """Defaults <- method_config[method] <- variant override, validated."""
        where = f"{self.path}: {key}"
        base_fields, base_sections = split_override(self.spec.method_config.get(method, {}))
        fields, sections = split_override(override)
        patch = deep_merge(base_sections, sections)
        merged = deep_merge(self.spec.defaults.model_dump(), patch)
        explicit = self.spec.defaults.eval.model_fields_set | set(patch.get("eval", {}))
        try:
            defaults = Defaults.model_validate(merged)
            config = method_config(method).model_validate({**base_fields, **fields})
            defaults = resolve_eval(config, defaults, explicit)
        except ValidationError as exc:
            raise_validation(where, exc)
        return config, defaults

    def dataset_patch(self, method: str, override: dict) -> dict:
        """The dataset options a variant sets (DATASET_KEYS): method_config <- the variant."""
        merged = {**self.spec.method_config.get(method, {}), **override}
        return {k: merged[k] for k in DATASET_KEYS if k in merged}

    def cells(self, data_root: str | None = None) -> list[Cell]:
        """The grid, in order: dataset x split x method x variant x seed."""
        from bench.suite.warmstart import pretrain_spec

        out, warm = [], pretrain_spec(self, data_root)
        for i, entry in enumerate(self.spec.datasets):
            splits = EntrySplits(entry, data_root, f"{self.path}: datasets[{i}]")
            for j in range(len(splits.of({}, ""))):
                for method in self.spec.methods:
                    for variant, override, key in self.variants(method):
                        data = splits.of(self.dataset_patch(method, override), key)[j]
                        config, sections = self.cell_config(method, override, key)
                        sections = warm.warm_started(sections) if warm else sections
                        out += [
                            Cell(
                                self.name,
                                data.dataset,
                                data.options,
                                data.split,
                                method,
                                variant,
                                seed,
                                config,
                                sections,
                                data.label,
                                data.train_side,
                            )
                            for seed in self.spec.seeds
                        ]
        return out


class EntrySplits:
    """The splits of one dataset entry under each dataset-option patch a variant sets, each
    expanded once (patches change what is read, not the splits, so index j is one split)."""

    def __init__(self, entry: str | DatasetSpec | CrossSpec, data_root: str | None, where: str):
        self.entry, self.data_root, self.where = entry, data_root, where
        self.expanded: dict[str, list] = {}

    def of(self, patch: dict, key: str) -> list:
        """The entry's splits with ``patch`` applied; ``key``: the override named in errors."""
        from bench.suite.cross import entry_splits  # here: bench.suite.cross imports this module

        name = json.dumps(patch, sort_keys=True)
        if name not in self.expanded:
            where = f"{self.where}, {key}" if patch else self.where
            entry = with_options(self.entry, patch)
            self.expanded[name] = entry_splits(entry, self.data_root, where)
        return self.expanded[name]


def dataset_spec(spec: str | DatasetSpec | CrossSpec) -> tuple[str, dict]:
    """(name, options) of an entry; a cross-dataset entry's training side (what tuning uses)."""
    if isinstance(spec, CrossSpec):
        spec = spec.train
    if isinstance(spec, str):
        return spec, {}
    return spec.name, {k: v for k, v in spec.model_dump().items() if k not in ("name", "label")}


def build_dataset(name: str, options: dict, data_root: str | None, where: str = "suite"):
    """Instantiate a registered dataset with validated options (no data is read yet)."""
    cls = DATASETS.get(name)
    try:
        opts = cls.Options.model_validate(options)
    except ValidationError as exc:
        raise_validation(f"{where}: dataset {name}", exc)
    try:
        return cls(opts, data_root)
    except ConfigError as exc:  # an option the dataset refuses (aux: exact on real data)
        raise ConfigError(where, str(exc)) from None


def load_suite(
    path: str | Path,
    overrides: list[str] = (),
    override_files: list[str] = (),
    data_root: str | None = None,
):
    """Read, patch and validate a suite file; every problem is a ConfigError with a key path.

    Checks that need the datasets' sizes (index files only) and the backbones come last, so
    that a plain mistake is reported before timm and torch are imported."""
    path = Path(path)
    raw = read_yaml(path)
    for extra in override_files:
        raw = deep_merge(raw, read_yaml(Path(extra)))
    for text in overrides:
        set_path(raw, *parse_override(text))
    try:
        spec = SuiteFile.model_validate(raw)
    except ValidationError as exc:
        raise_validation(str(path), exc)
    suite = Suite(str(path), spec, raw)
    check_names(suite)
    cells = suite.cells(data_root)  # validates every override and dataset option
    from bench.suite.checks import check_cells  # here: bench.suite.checks imports this module

    check_cells(suite, cells, data_root)
    return suite


def check_names(suite: Suite) -> None:
    """Unknown methods and datasets, repeated datasets, and ablations of methods the suite does
    not run (backbones: :mod:`bench.suite.checks`)."""
    spec, where = suite.spec, suite.path
    for i, method in enumerate(spec.methods):
        if not known_method(method):
            raise ConfigError(
                f"{where}: methods[{i}]",
                f"unknown method '{method}'; known: {', '.join(METHODS.names())}",
            )
    from bench.suite.cross import (  # here: bench.suite.cross imports this module
        check_cross,
        shown_name,
    )

    shown = []
    for i, ds in enumerate(spec.datasets):
        if isinstance(ds, CrossSpec):
            check_cross(ds, where, i)
        name = dataset_spec(ds)[0]
        if name not in DATASETS:
            raise ConfigError(
                f"{where}: datasets[{i}]",
                f"unknown dataset '{name}'; known: {', '.join(DATASETS.names())}",
            )
        shown.append(shown_name(ds))
        if shown[-1] in shown[:-1]:
            raise ConfigError(
                f"{where}: datasets[{i}]",
                f"expected distinct datasets; give a label to tell apart two '{name}' entries",
            )
    for key in ("ablations", "method_config"):
        for method in getattr(spec, key):
            if method not in spec.methods:
                raise ConfigError(
                    f"{where}: {key}.{method}", f"method '{method}' is not in this suite's methods"
                )
    check_reference(suite)
    for method, variants in spec.ablations.items():
        names = [v.get("name") for v in variants]
        for i, name in enumerate(names):
            if not isinstance(name, str) or not name or name == "default" or name in names[:i]:
                raise ConfigError(
                    f"{where}: ablations.{method}[{i}].name",
                    "expected a unique, non-empty variant name other than 'default'",
                )


def check_reference(suite: Suite) -> None:
    """``report.reference`` names a method of the suite and one of its variants."""
    ref = suite.spec.report.reference
    if ref is None:
        return
    method, _, variant = ref.partition("/")
    known = [name for name, _, _ in suite.variants(method)] if method in suite.spec.methods else []
    if (variant or "default") not in known:
        rows = ", ".join(f"{m}/{v}" for m in suite.spec.methods for v, _, _ in suite.variants(m))
        raise ConfigError(
            f"{suite.path}: report.reference", f"expected one of {rows} (got {ref!r})"
        )


def resolve_eval(config: MethodConfig, sections: Defaults, explicit: set[str]) -> Defaults:
    """``sections`` with the method's :meth:`~bench.config.MethodConfig.eval_defaults` filled
    in under the ``explicit`` eval keys (those the suite sets itself)."""
    patch = {k: v for k, v in config.eval_defaults(sections.data).items() if k not in explicit}
    if not patch:
        return sections
    ev = sections.eval.model_validate({**sections.eval.model_dump(), **patch})
    return sections.model_copy(update={"eval": ev})
