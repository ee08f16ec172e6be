"""Per-query results of a cell, stored as a CSV artifact so that reports and comparisons can
recompute every metric (and its interval) without the models.

Columns: ``query`` (the query's tracklet id: its index in the split's query order), ``pid``,
``camid``, then per result set (plain, and e.g. ``rerank.`` when the evaluation logged one):
``first`` (1-based rank of the first true match, 0 = the query has no valid match), ``ap``
(0..1) and ``inp`` (0..1) when present, and ``top``: the tracklet ids of the query's nearest
gallery items, nearest first, space-separated (indices in the split's gallery order; items of
a junk identity are not ranked, and so never listed). The split's order is the dataset's own
(``load_split``), so the ids name the same tracklets wherever the data is.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

PER_QUERY = "per_query.csv"
#: gallery items of each query's ranked list kept in the per-query results (for ranked lists)
TOP_K = 10
RANKS = (1, 5, 10, 20)


def per_query_columns(result: dict, prefix: str = "") -> dict[str, list]:
    """``{'first': [...], 'ap': [...], 'rerank.first': [...], ...}`` from an evaluation result
    holding ``per_query`` entries: at the top, as ``<name>.per_query``, or inside a nested
    result such as ``result['rerank']``."""
    columns: dict[str, list] = {}
    for key, value in result.items():
        if not isinstance(value, dict):
            continue
        if key == "per_query" or key.endswith(".per_query"):
            name = prefix + key.removesuffix("per_query")
            columns.update({f"{name}{col}": _plain(v) for col, v in value.items() if len(v)})
        elif not prefix:
            columns.update(per_query_columns(value, f"{key}."))
    return columns


def _plain(values) -> list:
    """A list, tensor or array of numbers as a list of Python numbers."""
    return np.asarray(values.tolist() if hasattr(values, "tolist") else values).tolist()


def write_per_query(path: Path, result: dict, query: Sequence) -> None:
    """Write the per-query CSV; ``query`` is the split's query tracklets (pid, camid)."""
    columns = per_query_columns(result)
    for name, values in columns.items():
        if len(values) != len(query):
            raise ValueError(f"per-query '{name}' has {len(values)} values for {len(query)}")
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["query", "pid", "camid", *columns])
        for i, track in enumerate(query):
            cells = (_cell(columns[c][i]) for c in columns)
            writer.writerow([i, track.pid, track.camid, *cells])


def _cell(value) -> object:
    """A CSV cell: a list (the ``top`` ids) as space-separated numbers."""
    return " ".join(map(str, value)) if isinstance(value, list) else value


def read_per_query(path: Path) -> dict[str, np.ndarray]:
    """The columns of a per-query CSV as arrays (``pid``/``camid``/``first`` int, ``top``
    (Q, k) int, others float)."""
    with Path(path).open(newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    out = {}
    for j, name in enumerate(header):
        if name.endswith("top"):
            out[name] = np.array([row[j].split() for row in body], dtype=np.int64)
            continue
        integer = name in ("query", "pid", "camid") or name.endswith("first")
        values = np.array([row[j] for row in body], dtype=np.float64)
        out[name] = values.astype(np.int64) if integer else values
    return out


def query_values(columns: dict[str, np.ndarray], metric: str) -> np.ndarray | None:
    """Per-query values (Q,) whose mean over valid queries x 100 is ``metric`` ('R5', 'mAP',
    'mINP', 'rerank.R1', ...); None if the columns cannot give it."""
    prefix, _, name = metric.rpartition(".")
    prefix = f"{prefix}." if prefix else ""
    first = columns.get(f"{prefix}first")
    if name.startswith("R") and name[1:].isdigit() and first is not None:
        return ((first > 0) & (first <= int(name[1:]))).astype(np.float64)
    source = {"mAP": "ap", "mINP": "inp"}.get(name)
    return columns.get(f"{prefix}{source}") if source else None


def valid_queries(columns: dict[str, np.ndarray]) -> np.ndarray:
    """(Q,) bool: queries with a true match in the gallery (the others are left out)."""
    return columns["first"] > 0
