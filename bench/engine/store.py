"""Create the MLflow store, the experiment and the claims table once, before any worker starts.

MLflow runs its Alembic migrations when a process first opens a SQL store whose tables are
missing (``SqlAlchemyStore.__init__``); several processes doing so at once corrupt a fresh
store. So the driver opens it under a lock (a file lock beside a SQLite file, an advisory lock
on PostgreSQL) and workers only ever open a store that is complete, where MLflow migrates
nothing. Several plain ``bench run`` processes are each a driver; the lock orders them.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from bench.engine import claims
from bench.engine.tracking import client, experiment_id, tracking_uri


@contextlib.contextmanager
def store_lock(uri: str) -> Iterator[None]:
    """Held by one process at a time per store (no-op for a tracking server, which migrates
    its own database when it starts)."""
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        db.parent.mkdir(parents=True, exist_ok=True)
        with open(db.with_name(db.name + ".lock"), "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
    elif uri.startswith("postgresql"):
        engine = sa.create_engine(uri, poolclass=sa.pool.NullPool)
        key = zlib.crc32(b"bench-store")
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        engine.dispose()
    else:
        yield


def _wal(uri: str) -> None:
    """Let readers and the writer of a SQLite store work at once (kept in the file)."""
    if uri.startswith("sqlite:///"):
        engine = sa.create_engine(uri, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        engine.dispose()


def _experiment(mlf, name: str) -> str:
    """The experiment's id; a tracking server takes no lock, so another driver may create the
    experiment between our look-up and our create."""
    from mlflow.exceptions import MlflowException

    try:
        return experiment_id(mlf, name)
    except MlflowException:
        exp = mlf.get_experiment_by_name(name)
        if exp is None:
            raise
        return exp.experiment_id


def prepare(
    uri: str | None, experiment: str, claims_uri: str | None = None, with_claims: bool = True
) -> tuple[str, str]:
    """(absolute tracking URI, experiment id), with the store, the experiment and (unless not
    ``with_claims``) the claims table created if missing; safe when several drivers start at
    once."""
    uri = tracking_uri(uri)
    with store_lock(uri):
        mlf = client(uri)
        exp_id = _experiment(mlf, experiment)
        _wal(uri)
        if with_claims:
            claims.store(claims.claims_uri(uri, claims_uri))
    return uri, exp_id


def snapshot(db: Path) -> str:
    """A ``sqlite:///`` URI of a private copy of the SQLite store ``db`` (with its write-ahead
    log), for reading a store whose file or folder cannot be written; removed at exit."""
    folder = Path(tempfile.mkdtemp(prefix="bench-read-only-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    for name in (db.name, f"{db.name}-wal"):
        if (db.parent / name).exists():
            shutil.copyfile(db.parent / name, folder / name)
    return f"sqlite:///{folder / db.name}"
