"""Like with like: the settings in which two rows' runs differ, beyond their methods.

Two rows of one dataset are compared (Δ, p) only when their runs ran on the same (split, seed)
keys and their resolved configs (the runs' MLflow params) agree pair by pair, except in

- the method's own config (``method.*``) and the test protocol a method declares as its own
  (the ``eval`` keys of its :meth:`~bench.config.MethodConfig.eval_defaults`);
- the settings a variant sets itself: the ``data``, ``eval`` and auxiliary-input settings in
  which a row's runs differ from its method's default row (a clip length, an augmentation, a
  test-time protocol). The dataset, the schedule (``train.*``), the backbone and its weights
  (``model.*``), the input size (``data.height``, ``data.width``), the test protocol and the
  seeds are never a variant's own;
- what cannot change a result: where and how a run ran (``runtime.*``, worker counts, batch
  sizes of the evaluation, the data root), its code version and its seed and split (the pairing).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.config import DataConfig
from bench.errors import BenchError
from bench.registry import method_config
from bench.suite.schema import NON_RESULT_KEYS, Row

#: Settings that cannot change a result, or that pairing fixes (prefixes of param keys).
IGNORED = (
    "method.",
    "code.",
    "runtime.",
    "launcher.",
    "seed",
    "split",
    "dataset.root",
    "train_dataset.root",
    *(f"{section}.{key}" for section, key in NON_RESULT_KEYS),
)
#: Settings a variant may set itself; INPUT_SIZE is never a variant's own.
VARIANT_KEYS = ("data.", "eval.", "dataset.aux", "train_dataset.aux", "train_aux")
INPUT_SIZE = ("data.height", "data.width")
#: Tags compared as settings: tag -> the setting's name.
TAG_SETTINGS = {"tags.protocol": "protocol"}
SEEDS = "seeds"


@dataclass(frozen=True)
class Setting:
    """A setting in which two rows differ, with each row's value."""

    name: str
    a: str
    b: str

    def __str__(self) -> str:
        return f"{self.name} ({self.a} vs {self.b})"


def _ignored(key: str) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in IGNORED)


def _variant_key(key: str) -> bool:
    return key.startswith(VARIANT_KEYS) and key not in INPUT_SIZE


def row_settings(runs: pd.DataFrame, row: Row) -> dict[tuple[int, int], dict[str, str]]:
    """(split, seed) -> {setting: value as text} of one row's runs of one dataset."""
    mine = runs[(runs["tags.method"] == row[0]) & (runs["tags.variant"] == row[1])]
    params = [c for c in mine.columns if c.startswith("params.")]
    columns = {c: c.removeprefix("params.") for c in params if not _ignored(c[7:])}
    columns.update({t: name for t, name in TAG_SETTINGS.items() if t in mine})
    out = {}
    for _, run in mine.iterrows():
        split = run.get("tags.split")
        split = 0 if pd.isna(split) else int(split)
        values = {name: "unset" if pd.isna(run[c]) else str(run[c]) for c, name in columns.items()}
        out[(split, int(run["tags.seed"]))] = values
    return out


def _paired_differences(a: dict, b: dict) -> dict[str, Setting]:
    """Settings whose values differ in some (split, seed) both rows ran (the first such pair's
    values)."""
    out: dict[str, Setting] = {}
    for key in sorted(set(a) & set(b)):
        for name in sorted(set(a[key]) | set(b[key])):
            va, vb = a[key].get(name, "unset"), b[key].get(name, "unset")
            if va != vb and name not in out:
                out[name] = Setting(name, va, vb)
    return out


def own_settings(runs: pd.DataFrame, row: Row) -> set[str]:
    """The settings a row sets itself: its method's declared test protocol, and the variant
    settings in which it differs from its method's default row (none for that row)."""
    own = {f"eval.{k}" for k in _eval_defaults(row[0])}
    if row[1] != "default":
        default = row_settings(runs, (row[0], "default"))
        diffs = _paired_differences(row_settings(runs, row), default)
        own |= {name for name in diffs if _variant_key(name)}
    return own


def _eval_defaults(method: str) -> set[str]:
    try:
        config = method_config(method)()
    except (BenchError, TypeError, ValueError):  # an unknown method or one that needs fields
        return set()
    return set(config.eval_defaults(DataConfig()))


def differing(runs: pd.DataFrame, a: Row, b: Row) -> list[Setting]:
    """The settings beyond the methods and their variants in which rows ``a`` and ``b`` differ
    on one dataset's ``runs`` (each with a's value, then b's); empty when they ran alike."""
    sa, sb = row_settings(runs, a), row_settings(runs, b)
    out = []
    if set(sa) != set(sb):
        out.append(Setting(SEEDS, _keys(sa), _keys(sb)))
    skip = own_settings(runs, a) | own_settings(runs, b)
    return out + [s for name, s in _paired_differences(sa, sb).items() if name not in skip]


def _keys(settings: dict) -> str:
    splits = {split for split, _ in settings}
    if len(splits) <= 1:
        return ", ".join(str(seed) for _, seed in sorted(settings)) or "none"
    return ", ".join(f"{split}/{seed}" for split, seed in sorted(settings))


def known_settings(runs: pd.DataFrame) -> set[str]:
    """Every setting name the runs carry (what ``--allow-different`` may name)."""
    params = {c[7:] for c in runs.columns if c.startswith("params.") and not _ignored(c[7:])}
    return params | {name for t, name in TAG_SETTINGS.items() if t in runs} | {SEEDS}
