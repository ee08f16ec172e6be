"""Import every module of a package, so that its ``@register_*`` decorators run."""

from __future__ import annotations

import pkgutil
from importlib import import_module


def import_submodules(package: str) -> None:
    """Import ``package`` and each of its direct submodules (not starting with '_')."""
    pkg = import_module(package)
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            import_module(f"{package}.{info.name}")
