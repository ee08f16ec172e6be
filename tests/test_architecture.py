"""The house's rules, read from the code with ``ast``: no import circle (lazy imports inside
functions included) and no import that runs upward, in ``bench/`` and ``methods/``
(docs/architecture.md draws the layers)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Layers, lowest first: a module may import its own package and any lower layer. A key is a
#: package or module (the longest that contains a module decides).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("bench", "bench.errors", "bench.files", "bench.config"),
    ("bench.registry",),
    ("bench.data",),
    ("bench.eval",),
    ("bench.models", "bench.losses", "bench.method", "bench.distance"),
    ("methods",),
    ("bench.suite",),
    ("bench.report",),
    ("bench.engine",),
    ("bench.tune",),
    ("bench.preflight", "bench.runner"),
    ("bench.cli", "bench.api"),
)
RANK = {key: i for i, keys in enumerate(LAYERS) for key in keys}


def modules() -> dict[str, Path]:
    """Dotted name -> file of every module of bench/ and methods/."""
    out = {}
    for top in ("bench", "methods"):
        for path in (ROOT / top).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` that ``name`` imports anywhere in its file (functions and
    ``TYPE_CHECKING`` blocks included); ``from a import b`` counts ``a.b`` if it is a module,
    else ``a``."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(name, path, known) for name, path in known.items()}


def layer(name: str) -> int:
    key = name
    while key not in RANK:
        key = key.rpartition(".")[0]
        if not key:
            raise AssertionError(f"{name} is in no layer of LAYERS")
    return RANK[key]


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                out.append(sorted(part))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_in_bench_or_methods():
    assert circles(graph()) == []


def test_no_import_runs_upward():
    upward = [
        f"{a} -> {b}"
        for a, targets in graph().items()
        for b in sorted(targets)
        if layer(b) > layer(a)
    ]
    assert upward == []


def test_every_package_says_what_it_is_for():
    for init in sorted((ROOT / "bench").rglob("__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and doc.splitlines()[0].endswith("."), init  # a first line that says it


@pytest.mark.parametrize(
    "edges, expected",
    [
        ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": set()}, []),
    ],
)
def test_the_circle_finder_finds_circles(edges, expected):
    assert circles(edges) == expected


def test_a_lazy_import_inside_a_function_is_an_edge(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("def f():\n    from pkg.b import g\n    return g\n")
    (tmp_path / "pkg" / "b.py").write_text("from pkg import a\n")
    known = {"pkg.a": tmp_path / "pkg" / "a.py", "pkg.b": tmp_path / "pkg" / "b.py"}
    edges = {name: imported(name, path, known) for name, path in known.items()}
    assert circles(edges) == [["pkg.a", "pkg.b"]]
