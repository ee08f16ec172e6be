"""Before any training: every folder and file bench will write to must take a write.

A folder is checked by creating (and removing) a probe file in it, or in its nearest existing
parent when the folder is still to be made; a file by opening it for writing without writing;
so nothing is left behind. Permission bits alone do not tell (root ignores them; a read-only
mount does not show in them).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.errors import BenchError


def check_writable(path: Path, what: str) -> None:
    """Raise a BenchError naming ``path`` unless a file can be created in that folder."""
    path = Path(path).absolute()
    folder = path
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise BenchError(f"{path}: {what} cannot be created ({folder} is not a folder)")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".bench-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if folder == path:
            raise BenchError(f"{path}: {what} is not writable ({reason})") from exc
        raise BenchError(
            f"{path}: {what} cannot be created: {folder} is not writable ({reason})"
        ) from exc


def check_file_writable(path: Path, what: str) -> None:
    """Raise a BenchError naming ``path`` unless the existing file opens for writing."""
    try:
        with open(path, "r+b"):
            pass
    except OSError as exc:
        raise BenchError(f"{path}: {what} is not writable ({exc.strerror or exc})") from exc


def writable(path: Path) -> bool:
    """Whether a file (or, if missing, its folder) takes writes, without raising."""
    try:
        if path.exists():
            check_file_writable(path, "")
        check_writable(path.parent, "")
    except BenchError:
        return False
    return True


def check_work_paths(*folders: tuple[Path, str]) -> None:
    """The working directory and ``folders`` ((path, what it is) pairs) take files."""
    check_writable(Path.cwd(), "the working directory")
    for path, what in folders:
        check_writable(path, what)
