"""A run's artifact read through a temporary folder that is removed afterwards.

``MlflowClient.download_artifacts(run_id, path)`` without a destination copies the artifact
into a new folder under the system's temp dir and never removes it: every report, compare
or eval would leave its runs' per-query tables and weights behind in ``/tmp``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


def has_artifact(mlf, run_id: str, path: str) -> bool:
    """Whether run ``run_id`` logged an artifact at ``path`` (top level of its artifacts)."""
    return any(a.path == path for a in mlf.list_artifacts(run_id))


def read_artifact(mlf, run_id: str, path: str, read: Callable[[Path], T]) -> T:
    """``read`` applied to the local copy of run ``run_id``'s artifact ``path``."""
    with tempfile.TemporaryDirectory(prefix="bench-artifact-") as tmp:
        return read(Path(mlf.download_artifacts(run_id, path, tmp)))


def artifact_yaml(mlf, run_id: str, path: str) -> Any:
    """A run's YAML artifact, parsed with ``yaml.safe_load``."""
    return read_artifact(mlf, run_id, path, lambda local: yaml.safe_load(local.read_text()))
