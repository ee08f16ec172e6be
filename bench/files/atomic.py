"""Atomic file writes: every file bench writes appears whole or not at all.

A file is written to a hidden temporary name in its own folder, flushed to disk and renamed
over the target (``os.replace`` is atomic on POSIX), so a crash or a full disk never leaves a
partial file under the real name, and the previous version stays usable until the rename. A
failed write removes its temporary file; a full disk becomes a :class:`DiskFullError` that
names the path.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.errors import BenchError


class DiskFullError(BenchError):
    """No space left on the device while writing a file."""


def temporary_name(path: Path) -> Path:
    """``dir/.name.tmp-PID.ext``: hidden, unique per process, same suffix (for savefig/np.save)."""
    return path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Free space below which a failed write is taken to have filled the disk (some writers, such as
#: torch.save, report a full disk as a RuntimeError without an errno).
FULL_BELOW = 1 << 20


def _disk_full(exc: BaseException, folder: Path) -> bool:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    try:
        return shutil.disk_usage(folder).free < FULL_BELOW
    except OSError:
        return False


@contextmanager
def atomic_path(path: str | Path, keeps: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``.

    keeps: what survives a failed write, for the message (e.g. "the previous checkpoint").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except Exception as exc:
        full = _disk_full(exc, path.parent)
        tmp.unlink(missing_ok=True)
        if not full:
            raise
        # drop the failed writer's frames: an open handle would keep the space in use
        exc.with_traceback(None)
        kept = f"; {keeps} is kept" if keeps else ""
        message = f"{path}: the disk is full (no space left on device){kept}"
        raise DiskFullError(message) from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
