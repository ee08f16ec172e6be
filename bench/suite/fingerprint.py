"""The code version of a cell: a fingerprint of the code that can change its numbers.

A cell's config hash and train hash (:class:`bench.suite.schema.Cell`) include it, so that a fixed
bug never reuses stale weights or skips a stale cell. It covers

- the **harness**: every module of the ``bench`` package except those listed in
  :data:`NOT_RESULT_CODE`. So it holds the engine (``engine/cell.py``, ``trainer.py``,
  ``optim.py``, ``checkpoint.py``, ``device.py``, ``distributed.py``, ``finite.py``,
  ``evaluator.py``), the data pipeline (all of ``data/``: loaders, sampling, transforms, the
  dataset plugins and the synthetic generator), the modelling code (``models/``,
  ``method.py``), the losses and the evaluation (``losses.py``, ``metrics.py``, ``distance.py``,
  ``ranking.py``, ``rerank.py``, ``streaming.py``, ``per_query.py``) and ``config.py`` (its
  validators and derived values). A new module counts until it is listed as not changing
  results;
- the **method**: the modules of its registered class, of its ``Config`` and of their plugin
  base classes (those between them and :class:`bench.method.Method` /
  :class:`bench.config.MethodConfig`), with every module of the same top-level package that
  they import (``methods/baseline.py`` brings ``methods/config/baseline.py``), plus its declared
  ``version`` (bump it when results change for a reason the code does not show, e.g. a data
  file it reads);
- the **dataset** plugin's modules outside ``bench`` (a third-party dataset), found the same way.

What is hashed is the code, not its formatting or where it sits: each module's ``ast.dump()``
with docstrings dropped, so a comment, a docstring or a reformat changes nothing while any code
change does. An import of another module of the same code (``bench``, or the plugin's own
package) is hashed as that module's code, not its dotted name, and the modules are combined
as a sorted list of digests without their paths: moving a module to another package (and
rewriting the imports that name it) changes no fingerprint, while pointing an import at
other code does (:func:`module_digest`). Modules without code (a package's docstring-only
``__init__.py``) count for nothing. The fingerprint does not depend on where the checkout
lives; it does depend on the Python version (``ast.dump`` may change between versions).
Third-party libraries (torch, timm, ...) are not fingerprinted: their versions are in every
run's tags; nor is what a plugin imports from outside its own package (its ``version`` covers
that). Each fingerprint is computed once per process,
from each module's analysis, cached on disk by the module's content (:func:`cache_file`):
0.02 s warm, 0.7 s cold on a loaded 2-core machine (``benchmarks/fingerprint.py``).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import json
import os
import sys
from pathlib import Path

from bench.files.atomic import write_text

#: Modules of ``bench`` (paths relative to the package; a folder: all of it) that cannot change
#: a cell's numbers: commands, reporting, scheduling, bookkeeping. Everything else counts.
NOT_RESULT_CODE = (
    "__init__.py",  # the package version string
    "api.py",  # the commands as Python functions
    "cli",  # argument parsing (``bench data`` too)
    "distance.py",  # the old path of eval/distance.py, re-exported
    "engine/claims.py",
    "engine/database.py",  # retries of a lost database
    "engine/eval_run.py",  # bench eval: a trained model tested again, never a cell's training
    "engine/export.py",  # bench export
    "engine/extraction.py",  # bench extract
    "engine/executors",
    "engine/killpoints.py",  # test fault injection
    "engine/once.py",  # idempotent logging
    "engine/stale.py",
    "engine/status.py",
    "engine/store.py",
    "engine/tracking.py",
    "engine/trained.py",  # a trained model found again (bench eval, extract, export)
    "errors.py",
    "eval/embeddings_file.py",  # the file bench extract writes
    "eval/memory.py",  # evaluation chunk sizes (``eval.chunk_size`` is not a result key either)
    "files",  # how files are written and who may write them, not what
    "preflight",  # checks before any work
    "registry.py",
    "report",  # tables, intervals (recomputed from the stored per-query results), figures
    "runner.py",
    "suite/checks.py",  # validation before a run
    "suite/fingerprint.py",
    "suite/schema.py",  # what it derives is the config, hashed as such
    "suite/yaml.py",
    "tune",  # a trial's config is its cell's config
)
BENCH = Path(__file__).resolve().parents[1]
#: Import statements of a module: (level, module, imported names) each.
Imports = list[tuple[int, str, list[str]]]


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _drop_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            keep_one = not isinstance(node, ast.Module)
            node.body = body[1:] or ([ast.Pass()] if keep_one else [])
    return tree


def _blank_imports(tree: ast.AST) -> Imports:
    """The import statements of ``tree`` in walk order, their module names blanked in the tree
    (the names come back as :func:`module_digest`'s import tokens)."""
    imports: Imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports += [(0, alias.name, []) for alias in node.names]
            for alias in node.names:
                alias.name = ""
        elif isinstance(node, ast.ImportFrom):
            imports.append((node.level, node.module or "", [a.name for a in node.names]))
            node.module, node.level = None, 0
    return imports


def analyse(source: str) -> tuple[str, Imports]:
    """(skeleton, imports) of one module's source: the digest of its AST without docstrings and
    without the module names of its imports (of the raw text if it does not parse), and the
    import statements as (level, module, imported names)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return _digest(["unparsed", source]), []
    imports = _blank_imports(_drop_docstrings(tree))
    return _digest([ast.dump(tree)]), imports


#: The skeleton of a module without code (only a docstring, or nothing).
EMPTY = analyse("")[0]


def source_digest(source: str) -> str:
    """The fingerprint of one module's source, its imports taken as named (see
    :func:`analyse`)."""
    skeleton, imports = analyse(source)
    return _digest([skeleton, *(f"{lv} {mod} {names}" for lv, mod, names in imports)])


@functools.cache
def _facts(path: Path) -> tuple[str, Imports]:
    """:func:`analyse` of a module file, read once per process; from the disk cache when this
    exact source was analysed before (parsing every module takes about 0.3 s)."""
    raw = path.read_bytes()
    key = hashlib.sha256(f"{ANALYSIS} {sys.version_info[:2]}".encode() + raw).hexdigest()
    cache = _disk_cache()
    try:
        digest, imports = cache[key]
        return str(digest), [(int(lv), str(mod), list(names)) for lv, mod, names in imports]
    except (KeyError, TypeError, ValueError):  # not seen, or a damaged entry
        cache[key] = analyse(raw.decode("utf-8"))
        _DIRTY.append(key)
        return cache[key]


_DIRTY: list[str] = []
CACHE_ENTRIES = 4096
#: Part of every disk cache key: change it when :func:`analyse` changes.
ANALYSIS = "ast-without-docstrings-or-import-names-2"


def cache_file() -> Path:
    """``$BENCH_CACHE_DIR`` (else ``$XDG_CACHE_HOME/bench``, else ``~/.cache/bench``) /
    ``code-digests.json``: source hash -> analysis, so valid across checkouts and edits."""
    folder = os.environ.get("BENCH_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache", "bench"
    )
    return Path(folder) / "code-digests.json"


@functools.cache
def _disk_cache() -> dict[str, tuple[str, Imports]]:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _save_cache() -> None:
    """Write the new analyses (the newest :data:`CACHE_ENTRIES` are kept); a cache that cannot
    be written is skipped."""
    if not _DIRTY:
        return
    cache = _disk_cache()
    kept = dict(list(cache.items())[-CACHE_ENTRIES:])
    with contextlib.suppress(OSError):
        write_text(cache_file(), json.dumps(kept))
    _DIRTY.clear()


def _excluded(rel: str) -> bool:
    return any(rel == entry or rel.startswith(entry + "/") for entry in NOT_RESULT_CODE)


def _not_result(path: Path) -> bool:
    """Whether a module file of ``bench`` is listed in :data:`NOT_RESULT_CODE`."""
    return path.is_relative_to(BENCH) and _excluded(path.relative_to(BENCH).as_posix())


def harness_modules() -> list[str]:
    """The ``bench`` modules in the fingerprint, as sorted paths relative to the package."""
    paths = (p.relative_to(BENCH).as_posix() for p in BENCH.rglob("*.py"))
    return sorted(rel for rel in paths if not _excluded(rel))


def _module_name(rel: str, top: str = "bench") -> str:
    """``engine/cell.py`` -> ``bench.engine.cell``; ``eval/__init__.py`` -> ``bench.eval``."""
    parts = rel.removesuffix(".py").split("/")
    return ".".join([top, *(parts[:-1] if parts[-1] == "__init__" else parts)])


@functools.cache
def harness_fingerprint() -> str:
    """The fingerprint of the harness code that can change results (see the module docs)."""
    digests = []
    for rel in harness_modules():
        if _facts(BENCH / rel)[0] != EMPTY:
            digests.append(module_digest(_module_name(rel), BENCH / rel))
    _save_cache()
    return _digest(sorted(digests))


def _absolute(package: str, level: int, module: str) -> str:
    """The absolute name of an import relative to ``package`` (``level`` dots)."""
    if not level:
        return module
    anchor = package.split(".")[: len(package.split(".")) - level + 1]
    return ".".join([*anchor, *([module] if module else [])])


def _import_tokens(name: str, path: Path, deep: bool) -> list[str]:
    """One token per import: an outside module by its name; a module of the same code
    (``bench``, or ``name``'s own top-level package) by its code (:func:`_shallow_digest`,
    or as not-result code if :data:`NOT_RESULT_CODE` lists it) when ``deep``, else as
    ``local``; with ``deep``, each imported name that is a module of the same code gets a token
    too."""
    local = {"bench", name.split(".")[0]}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tokens = []
    for level, module, names in _facts(path)[1]:
        absolute = _absolute(package, level, module) if deep or not level else name
        top = absolute.split(".")[0]
        if top not in local:
            tokens.append(f"{absolute} {names}")
        elif not deep:
            tokens.append("local")
        else:
            for i, target in enumerate([absolute, *(f"{absolute}.{n}" for n in names)]):
                found = _find(target)
                if found is not None and _not_result(found):
                    tokens.append(f"{i} not-result-code")  # its code cannot change results
                elif found is not None:
                    tokens.append(f"{i} {_shallow_digest(found, top)}")
                elif not i:
                    tokens.append(f"0 {target}")  # not a file (a namespace package)
    return tokens


@functools.cache
def _shallow_digest(path: Path, top: str) -> str:
    """A module's code (of package ``top``) with every import of the same code as ``local``."""
    return _digest([_facts(path)[0], *_import_tokens(top, path, deep=False)])


def module_digest(name: str, path: Path) -> str:
    """The fingerprint of module ``name`` at ``path``: its code, with each import of the same
    code (``bench``, or ``name``'s own package) hashed as the imported module's code."""
    return _digest([_facts(path)[0], *_import_tokens(name, path, deep=True)])


def _module_file(name: str) -> Path | None:
    """The source file of an imported module (None: built in, or not a file of its own)."""
    module = sys.modules.get(name)
    file = getattr(module, "__file__", None)
    return Path(file) if file and file.endswith(".py") else None


def _find(name: str) -> Path | None:
    """The file of module ``name`` (of an imported top-level package), without importing it."""
    top, *rest = name.split(".")
    if not rest:
        return _module_file(name)
    for folder in getattr(sys.modules.get(top), "__path__", ()):
        base = Path(folder).joinpath(*rest)
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def _imported(name: str, imports: Imports, is_package: bool) -> set[str]:
    """Absolute names of what module ``name`` imports, with their parent packages (``from a
    import b`` gives ``a`` and ``a.b``, which may be a name rather than a module)."""
    package = name if is_package else name.rpartition(".")[0]
    out = set()
    for level, module, names in imports:
        module = _absolute(package, level, module)
        out.update([module, *(f"{module}.{n}" for n in names)])
    parts = [m.split(".") for m in out if m]
    return {".".join(p[:i]) for p in parts for i in range(1, len(p) + 1)}


def _package_closure(root: str) -> dict[str, Path]:
    """Module ``root`` and the modules of its own top-level package that it imports,
    transitively (name -> file)."""
    top = root.split(".")[0]
    found: dict[str, Path] = {}
    todo = [root]
    while todo:
        name = todo.pop()
        path = None if name in found else _find(name)
        if path is None:
            continue
        found[name] = path
        imported = _imported(name, _facts(path)[1], path.name == "__init__.py")
        todo += [m for m in imported if m.split(".")[0] == top]
    return found


def plugin_modules(classes: tuple[type, ...]) -> dict[str, Path]:
    """The modules of plugin classes outside ``bench`` and of what their packages import."""
    out: dict[str, Path] = {}
    for cls in classes:
        if cls.__module__.split(".")[0] != "bench":
            out.update(_package_closure(cls.__module__))
    return out


@functools.cache
def plugin_fingerprint(cls: type, base: type) -> str:
    """The fingerprint of a plugin class: the modules of it and of its bases below ``base``
    (and of ``cls.Config`` below ``bench.config.MethodConfig``), and its ``version``."""
    from bench.config import MethodConfig

    classes = [c for c in cls.__mro__ if issubclass(c, base) and c is not base]
    config = getattr(cls, "Config", None)
    if isinstance(config, type) and issubclass(config, MethodConfig):
        classes += [c for c in config.__mro__ if issubclass(c, MethodConfig)]
    modules = plugin_modules(tuple(classes))
    parts = sorted(module_digest(name, path) for name, path in modules.items())
    # a class defined where no source file is (an interactive session): its name only
    unread = {f"{c.__module__}.{c.__qualname__}" for c in classes if c.__module__ not in modules}
    unread = {name for name in unread if name.split(".")[0] != "bench"}
    _save_cache()
    return _digest([f"version {getattr(cls, 'version', '')}", *parts, *sorted(unread)])


@functools.cache
def code_fingerprint(method: str, dataset: str) -> dict[str, str]:
    """The code version of a cell of ``method`` on ``dataset``: ``fingerprint`` (what the
    hashes use) and its parts (``harness``, ``method``, ``method_version``, ``dataset``)."""
    from bench.data.base import ReIDDataset
    from bench.method import Method
    from bench.registry import DATASETS, METHODS

    cls = METHODS.get(method)
    parts = {
        "harness": harness_fingerprint(),
        "method": plugin_fingerprint(cls, Method),
        "method_version": str(getattr(cls, "version", "")),
        "dataset": plugin_fingerprint(DATASETS.get(dataset), ReIDDataset),
    }
    return {"fingerprint": _digest([f"{k} {v}" for k, v in sorted(parts.items())]), **parts}
