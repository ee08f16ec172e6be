"""Databases that come and go: errors that name their store, and retries with back-off.

- :func:`label_errors` marks every SQLAlchemy error with the URL of the engine that raised it
  (password hidden), so that the command line names the store in its one line
  (:func:`bench.errors.explain`), whichever engine (MLflow's, the claims', Optuna's) it was.
- :func:`transient` tells a lost or refused connection (a server restarting, a network blip,
  a busy SQLite file) from an error that retrying cannot fix.
- :func:`retrying` calls a function again with exponential back-off while its error is
  transient, for up to :data:`RETRY_S` seconds: a PostgreSQL server restarted in the middle of
  a grid costs retries, not cells (SQLAlchemy's pool drops the dead connections itself).
  Each retry is one warning line; the last error is raised as it came.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import TypeVar

import sqlalchemy as sa

from bench.errors import STORE_ATTR, chain

T = TypeVar("T")
log = logging.getLogger("bench")
#: How long a call keeps retrying a lost database (more than a server restart takes).
RETRY_S = 120.0
FIRST_WAIT_S, MAX_WAIT_S = 0.5, 8.0
#: Words of the drivers' messages for a connection that was lost, refused or is busy.
TRANSIENT_WORDS = (
    "could not connect",
    "connection refused",
    "server closed the connection",
    "terminating connection",
    "the database system is",
    "connection already closed",
    "connection is closed",
    "connection reset",
    "ssl syscall",
    "no connection to the server",
    "database is locked",
    "timeout expired",
    "temporarily unavailable",
)


def _label(context) -> None:
    """handle_error listener: the engine's URL on the error SQLAlchemy raises."""
    engine = context.engine
    if engine is not None and context.sqlalchemy_exception is not None:
        url = engine.url.render_as_string(hide_password=True)
        setattr(context.sqlalchemy_exception, STORE_ATTR, url)


def label_errors() -> None:
    """Name the store on every SQLAlchemy error of this process (once). The pool's own log of
    a dead connection (a traceback) is silenced: the call that met it retries or says so."""
    if not sa.event.contains(sa.engine.Engine, "handle_error", _label):
        sa.event.listen(sa.engine.Engine, "handle_error", _label)
        logging.getLogger("sqlalchemy.pool").setLevel(logging.CRITICAL)


def transient(exc: BaseException) -> bool:
    """A connection lost, refused or busy somewhere in the exception's chain."""
    for err in chain(exc):
        if getattr(err, "connection_invalidated", False):
            return True
        if isinstance(err, sa.exc.DisconnectionError):
            return True
        if isinstance(err, sa.exc.OperationalError | sa.exc.InterfaceError) or type(
            err
        ).__name__ in ("OperationalError", "InterfaceError"):
            text = str(getattr(err, "orig", None) or err).lower()
            if any(word in text for word in TRANSIENT_WORDS):
                return True
    return False


def retrying(fn: Callable[..., T], what: str, budget_s: float | None = None) -> Callable[..., T]:
    """``fn`` retried with back-off (0.5 s doubling to 8 s) while it fails transiently, for up
    to ``budget_s`` (default :data:`RETRY_S`) seconds; ``what`` names it in the warnings."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        deadline = time.monotonic() + (RETRY_S if budget_s is None else budget_s)
        wait = FIRST_WAIT_S
        while True:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not transient(exc) or time.monotonic() + wait > deadline:
                    raise
                log.warning("%s: %s; retrying in %.1f s", what, _said(exc), wait)
                time.sleep(wait)
                wait = min(2 * wait, MAX_WAIT_S)

    return call


def _said(exc: BaseException) -> str:
    """The first line of the driver's own message (a DBAPI error's), else of the error's."""
    inner = next((e.orig for e in chain(exc) if getattr(e, "orig", None) is not None), exc)
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return lines[0] if lines else type(inner).__name__


class RetryingClient:
    """An MlflowClient whose calls retry a lost database (:func:`retrying`); everything else
    is the client's. Safe to retry: a cell's run is found by its config hash whatever its
    id, logging skips what is logged (:mod:`bench.engine.once`), ending a run is idempotent."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name: str):
        value = getattr(self._client, name)
        if callable(value) and not name.startswith("_"):
            return retrying(value, f"MLflow {name} ({self._client.tracking_uri})")
        return value
