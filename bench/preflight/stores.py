"""The stores a command uses, checked before any work, each in a few seconds at most.

A store is named by a URI: the MLflow tracking store (``--tracking-uri``), the claims database
(``--claims-uri``) or the Optuna storage (``--storage``). :func:`check_store` checks that

- its scheme is one that store takes (``sqlite``, ``postgresql``, ``mysql``, ``mssql``; for
  tracking also ``http(s)`` and a folder), and the database driver is installed;
- a SQLite file is an SQLite database and, for a command that writes, can itself be written
  (the file, its write-ahead log and its folder: a read-only ``mlflow.db`` in a writable folder
  is refused too), or, for a command that reads, exists;
- a server (PostgreSQL, MySQL, an MLflow tracking server) answers within :data:`TIMEOUT_S`.

Nothing is created: a SQLite file is never opened by SQLite here, only by :mod:`os`.
Every problem is a ConfigError naming the flag, the URI and what was expected.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from bench.errors import BenchError, ConfigError
from bench.preflight.paths import check_file_writable, check_writable, writable

SQL = ("sqlite", "postgresql", "mysql", "mssql")
TIMEOUT_S = 5
SQLITE_MAGIC = b"SQLite format 3\x00"
#: The pip package of a database driver module (SQLAlchemy's default for each scheme first).
DRIVERS = {
    "psycopg": "psycopg[binary]",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
    "pymysql": "pymysql",
    "pyodbc": "pyodbc",
}
#: A driver bench installs, to name in the URI instead of installing another.
INSTALLED = {"postgresql": "postgresql+psycopg2://"}


@dataclass(frozen=True)
class StoreKind:
    """Which store a URI is for: the flag that sets it, what it is, the schemes it takes."""

    flag: str
    what: str
    schemes: tuple[str, ...]


TRACKING = StoreKind("--tracking-uri", "the MLflow tracking store", (*SQL, "http", "https", "file"))
CLAIMS = StoreKind("--claims-uri", "the claims database", SQL)
STORAGE = StoreKind("--storage", "the Optuna storage", SQL)


def scheme_of(uri: str) -> str:
    """'postgresql+psycopg2://…' -> 'postgresql'; a plain path -> 'file'."""
    if "://" not in uri:
        return "file" if not uri.startswith("sqlite:") else "sqlite"
    return uri.split("://", 1)[0].split("+", 1)[0].lower()


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URI (None for an in-memory database)."""
    import sqlalchemy as sa

    database = sa.engine.make_url(uri).database or ""
    if database.startswith("file:"):
        database = database[len("file:") :].split("?", 1)[0]
    return None if database in ("", ":memory:") else Path(database).absolute()


def check_store(uri: str, kind: StoreKind, access: str) -> Path | None:
    """Check the store of ``uri`` for ``access`` (``write``: the command writes to it;
    ``read``: it must exist; ``peek``: it may be missing); its local path, if it has one.
    Every problem names the flag that sets the store."""
    try:
        return _check(uri, kind, access)
    except ConfigError:
        raise
    except BenchError as exc:  # a path that cannot be written or read
        raise ConfigError(kind.flag, str(exc)) from exc


def _check(uri: str, kind: StoreKind, access: str) -> Path | None:
    scheme = scheme_of(uri)
    if scheme not in kind.schemes:
        raise ConfigError(
            kind.flag,
            f"expected a URI with one of the schemes {', '.join(kind.schemes)} for "
            f"{kind.what}, such as sqlite:///{Path(uri).name or 'store.db'} (got '{uri}')",
        )
    if scheme in ("http", "https"):
        return _check_server(uri, kind)
    if scheme == "file":
        return _check_folder(Path(urlparse(uri).path if "://" in uri else uri), kind, access)
    _check_driver(uri, kind)
    if scheme != "sqlite":
        return _check_database_server(uri, kind)
    path = sqlite_path(uri)
    if path is None:
        raise ConfigError(
            kind.flag, f"expected a file, sqlite:///PATH, for {kind.what} (got '{uri}')"
        )
    return _check_sqlite(path, kind, access)


def _check_driver(uri: str, kind: StoreKind) -> None:
    import sqlalchemy as sa

    try:
        dialect = sa.engine.make_url(uri).get_dialect()
    except sa.exc.NoSuchModuleError as exc:  # an ArgumentError too: first
        raise ConfigError(kind.flag, f"unknown database driver in '{uri}': {exc}") from exc
    except sa.exc.ArgumentError as exc:
        raise ConfigError(kind.flag, f"not a database URL: {exc} (got '{uri}')") from exc
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = getattr(exc, "name", None) or str(exc)
        package = DRIVERS.get(module, module)
        instead = INSTALLED.get(scheme_of(uri))
        other = f", or write {instead}... (installed with bench)" if instead else ""
        raise ConfigError(
            kind.flag,
            f"the database driver '{module}' of '{uri}' is not installed; pip install "
            f"{package}{other}",
        ) from exc


def _check_database_server(uri: str, kind: StoreKind) -> None:
    """Connect once (no table is read or made) within TIMEOUT_S."""
    import sqlalchemy as sa

    url = sa.engine.make_url(uri)
    timeout = {"postgresql": "connect_timeout", "mysql": "connect_timeout", "mssql": "timeout"}
    arg = timeout.get(scheme_of(uri))
    engine = sa.create_engine(
        url, poolclass=sa.pool.NullPool, connect_args={arg: TIMEOUT_S} if arg else {}
    )
    try:
        with engine.connect():
            pass
    except sa.exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        raise ConfigError(
            kind.flag,
            f"cannot reach {kind.what} at {url.render_as_string(hide_password=True)} within "
            f"{TIMEOUT_S} s: {reason[0] if reason else type(exc).__name__}; check that the "
            "server is up and the database exists",
        ) from exc
    finally:
        engine.dispose()


def _check_server(uri: str, kind: StoreKind) -> None:
    """An MLflow tracking server answers its health check within TIMEOUT_S."""
    health = uri.rstrip("/") + "/health"
    try:
        urllib.request.urlopen(health, timeout=TIMEOUT_S).close()
    except urllib.error.HTTPError as exc:
        raise ConfigError(
            kind.flag,
            f"{uri} answered HTTP {exc.code} ({exc.reason}) to {health}: expected an MLflow "
            "tracking server",
        ) from exc
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise ConfigError(
            kind.flag,
            f"cannot reach {kind.what} at {uri} within {TIMEOUT_S} s ({reason}); check that "
            "`mlflow server` runs there",
        ) from exc


def _check_folder(path: Path, kind: StoreKind, access: str) -> Path:
    if access == "write":
        check_writable(path, kind.what)
    elif access == "read" and not path.is_dir():
        raise ConfigError(kind.flag, f"no {kind.what} at {path} (expected a folder)")
    return path


def _check_sqlite(path: Path, kind: StoreKind, access: str) -> Path:
    if path.is_dir():
        raise ConfigError(kind.flag, f"{path} is a folder; expected an SQLite file")
    if path.exists():
        try:
            with open(path, "rb") as f:
                head = f.read(len(SQLITE_MAGIC))
        except OSError as exc:
            raise BenchError(f"{path}: {kind.what} is not readable ({exc.strerror})") from exc
        if head and head != SQLITE_MAGIC:
            raise ConfigError(kind.flag, f"{path} is not an SQLite database ({kind.what})")
    elif access == "read" or (access == "peek" and not path.parent.is_dir()):
        raise ConfigError(
            kind.flag,
            f"{path} does not exist ({kind.what}); run `bench run SUITE` first, or give "
            f"{kind.flag}",
        )
    if access == "write":
        check_writable(path.parent, f"{kind.what}'s folder")
        for name in (path.name, f"{path.name}-wal", f"{path.name}-shm"):
            if (path.parent / name).exists():
                check_file_writable(path.parent / name, kind.what)
    return path


def readable_uri(uri: str, kind: StoreKind, access: str = "read") -> str | None:
    """The URI to read the store through, after :func:`check_store`: the store itself, or a
    private snapshot of a SQLite file that cannot be written in place (SQLite must write beside
    a WAL database even to read it); None when a store that may be missing (``peek``) is."""
    path = check_store(uri, kind, access)
    if scheme_of(uri) != "sqlite" or path is None:
        return uri
    if not path.exists():
        return None
    sidecars = [path.parent / f"{path.name}{suffix}" for suffix in ("-wal", "-shm")]
    if writable(path) and all(writable(p) for p in sidecars if p.exists()):
        return uri
    from bench.engine.store import snapshot

    return snapshot(path)
