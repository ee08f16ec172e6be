"""Strict, bounded YAML for suites, patches and ``-o`` values.

On top of ``yaml.SafeLoader`` (no Python objects): a key given twice in one mapping is an
error, aliases may expand to at most :data:`MAX_NODES` nodes (an "alias bomb" of nested
anchors fails at once instead of exhausting memory later), text must be UTF-8, and every
problem is one line naming where it is.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from bench.errors import ConfigError

MAX_NODES = 100_000
MAX_BYTES = 10_000_000


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # keys merged in with << may be overridden
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (dict, list)):
                continue  # left to the base class, which rejects unhashable keys
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}'", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _expanded_size(node: yaml.Node, memo: dict[int, int], limit: int) -> int:
    """Nodes the document has once every alias is expanded (stops counting past ``limit``)."""
    if id(node) in memo:
        return memo[id(node)]
    memo[id(node)] = limit + 1  # a recursive alias counts as too big
    size = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [n for pair in node.value for n in pair]
    else:
        children = []
    for child in children:
        size += _expanded_size(child, memo, limit)
        if size > limit:
            break
    memo[id(node)] = size
    return size


def _one_line(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"{problem}{where}"


def parse_yaml(text: str, where: str) -> Any:
    """The YAML value of ``text``; a ConfigError (one line, starting with ``where``) if it is
    not valid, strict, bounded YAML."""
    loader = StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}, MAX_NODES) > MAX_NODES:
            raise ConfigError(
                where, f"YAML aliases expand to more than {MAX_NODES:,} nodes (an alias bomb?)"
            )
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise ConfigError(where, f"not valid YAML: {_one_line(exc)}") from exc
    except RecursionError as exc:
        raise ConfigError(where, "YAML nested too deeply") from exc
    finally:
        loader.dispose()


def read_yaml_file(path: Path) -> Any:
    """The YAML value of a file (UTF-8 text, at most MAX_BYTES), errors naming the file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read the file ({exc.strerror})") from exc
    if len(data) > MAX_BYTES:
        raise ConfigError(str(path), f"expected at most {MAX_BYTES:,} bytes (got {len(data):,})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            str(path), f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc
    return parse_yaml(text, str(path))


def read_yaml(path: Path, what: str = "suite file") -> dict:
    """A YAML file holding a mapping (a suite, a patch, launcher settings)."""
    if not path.is_file():
        raise ConfigError(str(path), f"no such {what}")
    data = read_yaml_file(path)
    if not isinstance(data, dict):
        raise ConfigError(str(path), "expected a mapping at the top level")
    return data


def deep_merge(base: dict, patch: dict) -> dict:
    """A copy of ``base`` with ``patch`` merged in (mappings recursively, the rest replaced)."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
