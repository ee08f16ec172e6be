"""Loading a suite: read the file, apply the patches (``-O``) and overrides (``-o``), validate
its shape and names, expand the grid and check it before any work.

Every problem is one :class:`~bench.errors.ConfigError` naming the file, the key path and
what was expected. Checks that need the datasets' sizes (index files only) and the backbones
come last, so that a plain mistake is reported before timm and torch are imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bench.errors import ConfigError, raise_validation
from bench.registry import DATASETS, METHODS, known_method
from bench.suite.checks import check_cells
from bench.suite.cross import check_cross, shown_name
from bench.suite.grid import expand
from bench.suite.schema import ROOT_KEYS, CrossSpec, Suite, SuiteFile, dataset_spec, entry_rows
from bench.suite.yaml import deep_merge, parse_yaml, read_yaml


def set_path(tree: dict, dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict (a number indexes a list: ``datasets.0.train_ids``); a
    path not starting at a root key goes under defaults (``train.epochs=2`` means
    ``defaults.train.epochs``)."""
    keys: list[Any] = dotted.split(".")
    if keys[0] not in ROOT_KEYS:
        keys = ["defaults", *keys]
    node: Any = tree
    for i, key in enumerate(keys):
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise ConfigError(
                    f"-o {dotted}", f"expected an index 0..{len(node) - 1} of '{keys[i - 1]}'"
                )
            key = keys[i] = int(key)
        elif not isinstance(node, dict):
            raise ConfigError(f"-o {dotted}", f"'{keys[i - 1]}' is not a mapping")
        if i == len(keys) - 1:
            node[key] = value
        elif isinstance(node, list):
            node = node[key]
        else:
            node = node.setdefault(key, {})


def parse_override(text: str) -> tuple[str, Any]:
    """'train.epochs=2' -> ('train.epochs', 2); values are parsed as YAML."""
    if "=" not in text:
        raise ConfigError(f"-o {text}", "expected KEY=VALUE, e.g. train.epochs=2")
    key, value = text.split("=", 1)
    return key.strip(), parse_yaml(value, f"-o {text}")


def load_suite(
    path: str | Path,
    overrides: list[str] = (),
    override_files: list[str] = (),
    data_root: str | None = None,
) -> Suite:
    """Read, patch, validate and expand a suite file (its grid: ``Suite.cells``)."""
    path = Path(path)
    raw = read_yaml(path, "suite file")
    for extra in override_files:
        raw = deep_merge(raw, read_yaml(Path(extra), "patch file"))
    for text in overrides:
        set_path(raw, *parse_override(text))
    try:
        spec = SuiteFile.model_validate(raw)
    except ValidationError as exc:
        raise_validation(str(path), exc)
    suite = Suite(str(path), spec, raw)
    check_names(suite)
    suite.cells = expand(suite, data_root)
    check_cells(suite, suite.cells, data_root)
    return suite


def check_names(suite: Suite) -> None:
    """Unknown methods and datasets, repeated datasets, ablations of methods the suite does not
    run, the report's reference row, and variant names (backbones: :mod:`.checks`)."""
    spec, where = suite.spec, suite.path
    for i, method in enumerate(spec.methods):
        if not known_method(method):
            raise ConfigError(
                f"{where}: methods[{i}]",
                f"unknown method '{method}'; known: {', '.join(METHODS.names())}",
            )
    check_datasets_named(suite)
    for key in ("ablations", "method_config"):
        for method in getattr(spec, key):
            if method not in spec.methods:
                raise ConfigError(
                    f"{where}: {key}.{method}", f"method '{method}' is not in this suite's methods"
                )
    for method, variants in spec.ablations.items():
        names = [v.get("name") for v in variants]
        for i, name in enumerate(names):
            if not isinstance(name, str) or not name or name == "default" or name in names[:i]:
                raise ConfigError(
                    f"{where}: ablations.{method}[{i}].name",
                    "expected a unique, non-empty variant name other than 'default'",
                )
    check_reference(suite)  # after the variant names: they list them
    check_entry_rows(suite)


def check_datasets_named(suite: Suite) -> None:
    """Every dataset entry names registered datasets, and each is shown under its own name."""
    shown = []
    for i, entry in enumerate(suite.spec.datasets):
        if isinstance(entry, CrossSpec):
            check_cross(entry, suite.path, i)
        name = dataset_spec(entry)[0]
        if name not in DATASETS:
            raise ConfigError(
                f"{suite.path}: datasets[{i}]",
                f"unknown dataset '{name}'; known: {', '.join(DATASETS.names())}",
            )
        shown.append(shown_name(entry))
        if shown[-1] in shown[:-1]:
            raise ConfigError(
                f"{suite.path}: datasets[{i}]",
                f"expected distinct datasets; give a label to tell apart two '{name}' entries",
            )


def check_row(suite: Suite, text: str, key: str, whole_method: bool = False) -> None:
    """``text`` names a row of the suite, METHOD/VARIANT (METHOD: its default, or with
    ``whole_method`` every variant of it); else one line naming ``key``."""
    method, _, variant = text.partition("/")
    known = [name for name, _, _ in suite.variants(method)] if method in suite.spec.methods else []
    if (variant or "default") not in known:
        rows = ", ".join(f"{m}/{v}" for m in suite.spec.methods for v, _, _ in suite.variants(m))
        methods = f"a method ({', '.join(suite.spec.methods)}) or " if whole_method else ""
        raise ConfigError(f"{suite.path}: {key}", f"expected {methods}one of {rows} (got {text!r})")


def check_reference(suite: Suite) -> None:
    """``report.reference`` names a method of the suite and one of its variants."""
    if suite.spec.report.reference is not None:
        check_row(suite, suite.spec.report.reference, "report.reference")


def check_entry_rows(suite: Suite) -> None:
    """Each dataset entry's ``rows`` name methods or rows of the suite, at least one."""
    for i, entry in enumerate(suite.spec.datasets):
        rows = entry_rows(entry)
        if rows == []:
            raise ConfigError(f"{suite.path}: datasets[{i}].rows", "expected at least one row")
        for j, text in enumerate(rows or []):
            check_row(suite, text, f"datasets[{i}].rows[{j}]", whole_method=True)
