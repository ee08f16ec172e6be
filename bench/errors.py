"""User-facing errors: each one says where the problem is and what was expected."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError


class BenchError(Exception):
    """An error caused by the user's input (suite, data, options); shown without a traceback."""


class ConfigError(BenchError):
    """A suite or override that does not validate. `where` is 'file: key.path'."""

    def __init__(self, where: str, message: str):
        self.where = where
        super().__init__(f"{where}: {message}")


class DataError(BenchError):
    """A dataset root, annotation or frame that is missing or malformed."""


#: pydantic's names of the union members of a suite's dataset entries (not key paths).
UNION_TAGS = ("str", "DatasetSpec", "CrossSpec")


def format_loc(loc: tuple) -> str:
    """('ablations', 'iaunet', 0, 'x') -> 'ablations.iaunet[0].x'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "<root>"


def raise_validation(where: str, exc: ValidationError, prefix: tuple = ()) -> None:
    """Re-raise a pydantic error as a ConfigError naming the first bad key path."""
    errors = exc.errors()
    err = errors[0]
    loc = [p for p in (*prefix, *err["loc"]) if p not in UNION_TAGS]
    got = f" (got {shown(err['input'])})" if err["type"] != "missing" else ""
    msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
    more = f" [and {len(errors) - 1} more]" if len(errors) > 1 else ""
    raise ConfigError(where, f"{format_loc(tuple(loc))}: {msg}{got}{more}")


def shown(value: Any, limit: int = 80) -> str:
    """repr of a bad value on one line, shortened."""
    text = repr(value).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- errors of the libraries bench uses, said in one line at the command line -----------------

#: A library (top-level module of an exception's class) -> what it is and what to check.
LIBRARIES = {
    "sqlalchemy": ("database", "check that it is reachable and writable, or give another URI"),
    "psycopg2": ("PostgreSQL", "check that the server is up and the database exists"),
    "sqlite3": ("SQLite", "check that the file is an SQLite database and can be written"),
    "mlflow": ("MLflow", "check the tracking store (--tracking-uri)"),
    "optuna": ("Optuna", "check the study's storage (--storage)"),
    "submitit": ("Slurm", "check the launcher settings and the task logs under WORKDIR/submitit"),
    "requests": ("HTTP", "check that the server is up (--tracking-uri)"),
    "urllib3": ("HTTP", "check that the server is up (--tracking-uri)"),
}
#: Set on a database error by :func:`bench.engine.database.label_errors`: the store's URL.
STORE_ATTR = "bench_store"
DEBUG_HINT = "--debug shows the traceback"
#: Set by ``bench --debug`` (and inherited by its worker processes): show tracebacks.
DEBUG_ENV = "BENCH_DEBUG"


def debugging() -> bool:
    """True under ``bench --debug``: errors keep their tracebacks."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions it was raised from or during, outermost first."""
    out: list[BaseException] = []
    while exc is not None and exc not in out:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


def library_of(exc: BaseException) -> str:
    """The top-level package an exception class (or a base of it) comes from."""
    for cls in type(exc).__mro__:
        top = cls.__module__.split(".")[0]
        if top in LIBRARIES:
            return top
    return type(exc).__module__.split(".")[0]


def _first_line(exc: BaseException, limit: int = 240) -> str:
    orig = getattr(exc, "orig", None)  # a SQLAlchemy DBAPIError: the driver's own message
    text = str(orig if orig is not None else getattr(exc, "message", None) or exc)
    line = next((x.strip() for x in text.splitlines() if x.strip()), type(exc).__name__)
    return line if len(line) <= limit else line[: limit - 3] + "..."


def explain(exc: BaseException) -> str:
    """One line for an error that is not a BenchError: where (the store's URL, the file), what
    happened, what to check, and that ``--debug`` shows the traceback."""
    errors = chain(exc)
    where = next((getattr(e, STORE_ATTR) for e in errors if hasattr(e, STORE_ATTR)), None)
    known = [e for e in errors if library_of(e) in LIBRARIES]
    if known:  # the outermost library says what to check, the innermost error what happened
        inner, (name, advice) = known[-1], LIBRARIES[library_of(known[0])]
        what = f"{_first_line(inner)} ({library_of(inner)}.{type(inner).__name__})"
        return f"{where or name}: {what}; {advice} ({DEBUG_HINT})"
    io = next((e for e in errors if isinstance(e, OSError)), None)
    if io is not None:
        path = io.filename or where or "a file"
        advice = "check the path, its permissions and free space"
        return f"{path}: {io.strerror or io}; {advice} ({DEBUG_HINT})"
    return (
        f"internal error: {type(exc).__name__}: {_first_line(exc)}; this is a bug in bench, "
        f"please report it ({DEBUG_HINT})"
    )
