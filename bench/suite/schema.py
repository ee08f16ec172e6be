"""Suite files: load, override, validate, and expand into a grid of cells.

A suite names datasets (each a name, a spec with options, or a cross-dataset pair
``{train: A, test: B}``, bench/suite/cross.py), methods, per-method base overrides
(``method_config``), named ablation variants and seeds, plus ``defaults`` for the model, data,
train and eval sections. An override (of a method or a variant) holds method config fields and
optional section patches (``model``/``data``/``train``/``eval``). Every error names the file,
the key path and what was expected.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    field_validator,
)

from bench.config import Defaults, LauncherConfig, MethodConfig, PretrainConfig
from bench.data.cell_data import DataRef
from bench.suite.fingerprint import code_fingerprint

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


#: A row of a report, as (method, variant).
Row = tuple[str, str]

#: A row of a report as written: METHOD or METHOD/VARIANT.
ROW_PATTERN = r"^[^/\s]+(/[^/\s]+)?$"

#: The rows a dataset entry runs (METHOD: all its variants; METHOD/VARIANT: that one); None: all.
EntryRows = list[Annotated[str, Field(pattern=ROW_PATTERN)]] | None


class DatasetSpec(BaseModel):
    """A dataset entry: its registered name, an optional display label (to tell apart two
    entries of one dataset, e.g. clean and polluted), the rows run on it (default: every row)
    and the dataset's own options."""

    model_config = ConfigDict(extra="allow")
    name: str
    label: str | None = None
    rows: EntryRows = None


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
    split (bench/suite/cross.py); each side a dataset name or a spec with options."""

    model_config = ConfigDict(extra="forbid")
    train: DatasetSide
    test: DatasetSide
    label: str | None = None
    rows: EntryRows = None

    @field_validator("train", "test")
    @classmethod
    def _no_side_rows(cls, side: str | DatasetSpec) -> str | DatasetSpec:
        if isinstance(side, DatasetSpec) and side.rows is not None:
            raise ValueError("rows: set on the entry, beside train and test, not on one side")
        return side


DatasetEntry = Annotated[
    Annotated[str, Tag("str")]
    | Annotated[DatasetSpec, Tag("DatasetSpec")]
    | Annotated[CrossSpec, Tag("CrossSpec")],
    Discriminator(_entry_kind),
]


class ReportSpec(BaseModel):
    """How the suite's report is made: the reference row of the Δ columns (METHOD/VARIANT)."""

    model_config = ConfigDict(extra="forbid")
    reference: str | None = Field(default=None, pattern=ROW_PATTERN)


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


#: Override keys that set dataset options of the override's cells (both sides of a
#: cross-dataset entry): options that choose what is read, never which split it is.
DATASET_KEYS = ("aux",)


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

    @property
    def tested_on(self) -> DataRef:
        """The split whose query and gallery the cell is tested on."""
        return DataRef(self.dataset, self.dataset_options, self.split)

    def trained_on(self) -> DataRef:
        """The split whose training identities the cell trains on."""
        side = self.train_side
        return self.tested_on if side is None else DataRef(side.dataset, side.options, side.split)

    @property
    def label(self) -> str:
        split = f"/split{self.split}" if self.split else ""
        return f"{self.shown_dataset}{split}/{self.method}/{self.variant}/seed{self.seed}"

    @property
    def run_name(self) -> str:
        """Its MLflow run's name: what the run is first (method/variant/seed), then where
        (dataset, split), so that the run list's narrow name column says the first."""
        split = f" split {self.split}" if self.split else ""
        return f"{self.method}/{self.variant}/seed{self.seed} ({self.shown_dataset}{split})"

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
        return digest(self._result_config())

    @property
    def config_hash(self) -> str:
        """Identifies the cell's result, its config and code (a finished cell with this hash is
        not run again)."""
        return digest({"config": self.config_key, "code": self.code["fingerprint"]})

    @property
    def train_hash(self) -> str:
        """Identifies the trained weights: the config without the ``eval`` section and the
        method's test-time fields, so that cells differing only there share one training (a
        cross-dataset cell's: its training side's, as its source's own cell has it)."""
        cfg = as_trained(self._result_config())
        cfg.pop("eval")
        for key in self.method_config.test_time_fields() | {"variant"}:
            cfg["method"].pop(key)
        return digest({**cfg, "code": self.code["fingerprint"]})


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


def digest(cfg: dict) -> str:
    """A short, stable hash of a JSON-able config."""
    return hashlib.sha256(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:16]


NON_RESULT_KEYS = (
    ("data", "workers"),
    ("data", "cache_frames"),
    ("eval", "batch_size"),
    ("eval", "chunk_size"),
)


@dataclass
class Suite:
    """A validated suite: the file it came from, its raw (validated) content and its grid of
    cells (filled by :func:`bench.suite.load.load_suite`)."""

    path: str
    spec: SuiteFile
    raw: dict
    cells: list[Cell] = field(default_factory=list)

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


def dataset_spec(spec: str | DatasetSpec | CrossSpec) -> tuple[str, dict]:
    """(name, options) of an entry; a cross-dataset entry's training side (what tuning uses)."""
    if isinstance(spec, CrossSpec):
        spec = spec.train
    if isinstance(spec, str):
        return spec, {}
    not_options = ("name", "label", "rows")
    return spec.name, {k: v for k, v in spec.model_dump().items() if k not in not_options}


def entry_rows(entry: str | DatasetSpec | CrossSpec) -> list[str] | None:
    """The rows a dataset entry lists (None: it runs every row)."""
    return None if isinstance(entry, str) else entry.rows


def runs_row(entry: str | DatasetSpec | CrossSpec, method: str, variant: str) -> bool:
    """Whether a dataset entry runs the row METHOD/VARIANT (its ``rows``, else every row)."""
    rows = entry_rows(entry)
    return rows is None or method in rows or f"{method}/{variant}" in rows
