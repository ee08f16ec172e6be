"""Checks before any work, each giving one line that names the flag or key path.

The folders and files a command writes (``paths``), the stores it uses (``stores``: tracking,
claims, Optuna; scheme, driver, writable, reachable) and the devices and ``--ddp`` it runs on
(``devices``).
"""

from __future__ import annotations

from pathlib import Path

from bench.engine.tracking import tracking_uri
from bench.preflight.paths import check_work_paths, check_writable
from bench.preflight.stores import CLAIMS, STORAGE, TRACKING, check_store, readable_uri

__all__ = ["CLAIMS", "STORAGE", "TRACKING", "check_run_paths", "check_store", "readable_uri"]


def check_run_paths(uri: str | None, *folders: tuple[Path, str]) -> None:
    """Before a command that writes to the tracking store: the working directory, ``folders``
    ((path, what it is) pairs), the store itself and, for a local store, MLflow's artifact root
    (``./mlruns``)."""
    check_work_paths(*folders)
    if check_store(tracking_uri(uri), TRACKING, "write") is not None:
        check_writable(Path.cwd() / "mlruns", "the MLflow artifact root")
