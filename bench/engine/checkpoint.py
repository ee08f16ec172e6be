"""Per-epoch checkpoints that make an interrupted cell resume where it stopped."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch


def save(path: Path, state: dict[str, Any]) -> None:
    """Write atomically: a crash during the write leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(path: Path) -> dict[str, Any] | None:
    """The saved state, or None if there is no checkpoint."""
    if not path.is_file():
        return None
    return torch.load(path, map_location="cpu", weights_only=True)
