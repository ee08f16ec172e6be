"""How a grid's cells are dispatched: one small module per executor, one call each.

Every executor runs :func:`bench.engine.executors.worker.drain` somewhere (in this process, in
N local processes, in Slurm array tasks); the claims make each cell run exactly once, whoever
runs it. ``execute(cells, context, launch)`` returns one Outcome per cell.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from bench.config import LauncherConfig
from bench.engine.executors.worker import Context, Outcome, drain
from bench.errors import ConfigError, raise_validation
from bench.suite.yaml import read_yaml

__all__ = ["Context", "Outcome", "Launch", "drain", "execute"]


@dataclass
class Launch:
    """How to fan out a grid: the executor, its worker processes (``--jobs``), the Slurm
    launcher's settings, and where the claims live and how long a lease lasts."""

    executor: str = "local"  # local, pool or slurm
    jobs: int | str = 1
    launcher: LauncherConfig = field(default_factory=LauncherConfig)
    claims_uri: str | None = None
    lease_s: float = 60.0


def execute(cells, context: Context, launch: Launch) -> list[Outcome]:
    """Run ``cells`` with the launch's executor; one Outcome per cell."""
    if launch.executor == "pool":
        from bench.engine.executors.pool import run
    elif launch.executor == "slurm":
        from bench.engine.executors.slurm import run
    else:
        from bench.engine.executors.local import run
    return run(cells, context, launch)


def parse_jobs(text: str | None) -> int | str:
    """``--jobs``: a positive number or ``auto``."""
    if text is None:
        return 1
    if text == "auto":
        return text
    if not text.isdigit() or int(text) < 1:
        raise ConfigError("--jobs", f"expected a positive number or 'auto' (got '{text}')")
    return int(text)


def launcher_settings(suite_launcher: LauncherConfig, file: str | None, flags: dict):
    """The suite's ``launcher:`` section <- ``--launcher-config FILE`` <- flags (not None)."""
    merged = suite_launcher.model_dump()
    if file:
        where = f"--launcher-config: {file}"
        try:
            settings = read_yaml(Path(file), "launcher settings file")
            merged.update(LauncherConfig.model_validate(settings).model_dump(exclude_unset=True))
        except ConfigError as exc:
            raise ConfigError("--launcher-config", str(exc)) from exc
        except ValidationError as exc:
            raise_validation(where, exc)
    sbatch = dict(merged["sbatch"])
    for item in flags.pop("sbatch", ()):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--sbatch {item}", "expected KEY=VALUE, e.g. --sbatch qos=high")
        sbatch[key] = value
    merged.update({k: v for k, v in flags.items() if v is not None}, sbatch=sbatch)
    try:
        return LauncherConfig.model_validate(merged)
    except ValidationError as exc:
        raise_validation("launcher flags", exc)
