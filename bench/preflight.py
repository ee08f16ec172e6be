"""Before any training: every folder bench will write to must take a file.

Checked by creating (and removing) a probe file in the folder, or in its nearest existing
parent when the folder is still to be made, so nothing is left behind. Permission bits alone
do not tell (root ignores them; a read-only mount does not show in them).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from bench.engine.tracking import tracking_uri
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


def store_folders(url: str, what: str) -> list[tuple[Path, str]]:
    """The local folder a store URL writes to (a sqlite file's folder, a file store); none
    for a server."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        db = url.split(":///", 1)[1] if ":///" in url else ""
        return [(Path(db).parent, f"{what}'s folder")] if db else []
    if parsed.scheme in ("", "file"):
        return [(Path(parsed.path or url), what)]
    return []


def check_run_paths(uri: str | None, *folders: tuple[Path, str]) -> None:
    """The working directory, the tracking store, the artifact root (``./mlruns`` for a local
    store) and ``folders``."""
    check_writable(Path.cwd(), "the working directory")
    store = store_folders(tracking_uri(uri), "the tracking store")
    artifacts = [(Path.cwd() / "mlruns", "the MLflow artifact root")] if store else []
    for path, what in [*store, *artifacts, *folders]:
        check_writable(path, what)
