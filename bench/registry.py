"""Name -> class registries for methods and datasets, extensible through entry points.

Built-in and third-party plugins are found the same way: a package declares an entry point in
the group ``bench.methods`` or ``bench.datasets`` whose value is a module; importing that module
runs its ``@register_method`` / ``@register_dataset`` decorators.

Validating a suite needs only the methods' configs, not the methods (which import torch): a
method's ``Config`` may be registered on its own with ``@register_method_config`` in an
import-light module (built-ins: ``methods/config/``; third parties: the entry-point group
``bench.method_configs``). :func:`method_config` uses it, and falls back to the method itself.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from importlib import import_module
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from bench.errors import BenchError

T = TypeVar("T")


def import_submodules(package: str) -> None:
    """Import ``package`` and each of its direct submodules (not starting with '_'), so that
    their ``@register_*`` decorators run."""
    pkg = import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            import_module(f"{package}.{info.name}")


class Registry(Generic[T]):
    """A mapping of names to plugin classes, filled by a decorator and by entry points."""

    def __init__(self, kind: str, group: str, builtin_package: str):
        self.kind = kind
        self.group = group
        self._builtin = builtin_package
        self._items: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def wrap(cls: type[T]) -> type[T]:
            known = self._items.get(name)
            if known is not None and known.__qualname__ != cls.__qualname__:
                raise BenchError(f"{self.kind} '{name}' is registered twice ({known} and {cls})")
            cls.name = name  # type: ignore[attr-defined]
            self._items[name] = cls
            return cls

        return wrap

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        import_submodules(self._builtin)
        for ep in entry_points(group=self.group):
            try:
                ep.load()
            except Exception as exc:  # a broken third-party plugin must not hide the others
                raise BenchError(
                    f"entry point '{ep.name} = {ep.value}' in group '{self.group}' failed to "
                    f"load: {exc}"
                ) from exc

    def get(self, name: str) -> type[T]:
        self._load()
        if name not in self._items:
            raise BenchError(f"unknown {self.kind} '{name}'; known: {', '.join(self.names())}")
        return self._items[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items


METHODS: Registry = Registry("method", "bench.methods", "methods")
DATASETS: Registry = Registry("dataset", "bench.datasets", "bench.data.datasets")
register_method = METHODS.register
register_dataset = DATASETS.register
METHOD_CONFIGS: Registry = Registry("method", "bench.method_configs", "methods.config")
register_method_config = METHOD_CONFIGS.register


def method_config(name: str) -> type:
    """The Config class of a method, without importing the method when it is registered apart."""
    if name in METHOD_CONFIGS:
        return METHOD_CONFIGS.get(name)
    return METHODS.get(name).Config


def known_method(name: str) -> bool:
    return name in METHOD_CONFIGS or name in METHODS
