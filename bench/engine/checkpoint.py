"""Per-epoch checkpoints that make an interrupted cell resume where it stopped.

A checkpoint holds only tensors, numbers and state dicts, so it loads with
``torch.load(weights_only=True)``: a crafted file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from bench.errors import DataError
from bench.files.atomic import atomic_path


def save(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a crash or a full disk leaves the previous checkpoint intact."""
    with atomic_path(path, keeps="the previous checkpoint") as tmp:
        torch.save(state, tmp)


def load(path: Path) -> dict[str, Any] | None:
    """The saved state, or None if there is no checkpoint."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise DataError(
            f"{path}: not a checkpoint bench can load safely (weights only): "
            f"{str(exc).splitlines()[0]}; delete it to retrain the cell"
        ) from exc
