"""Claims: which worker works on which cell, so that every cell runs exactly once.

A claim is one row of the ``bench_claims`` table (keyed by experiment id and config hash), in
a database every worker reaches: a SQLite file beside a local ``mlflow.db``, the tracking
store's own PostgreSQL database, or ``--claims-uri``. A worker takes a cell with one atomic
statement (an INSERT, or a compare-and-swap UPDATE guarded by the row's token, state and lease),
so exactly one of several racing workers wins. While it works, a heartbeat thread renews its
lease. A row is free to take when it is ``released`` (interrupted), when its lease expired or
its owner's process is gone (same host), or when it ended (finished/failed) before this launch
started. Each taking gets a new token; checkpoints live under the token, so two workers never
write the same file, and the taker resumes from the previous owner's last checkpoint and
adopts its MLflow run. See docs/claims.md.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa

from bench.engine.database import label_errors, retrying
from bench.errors import BenchError

log = logging.getLogger("bench")
METADATA = sa.MetaData()
CLAIMS = sa.Table(
    "bench_claims",
    METADATA,
    sa.Column("experiment_id", sa.String(64), primary_key=True),
    sa.Column("cell_hash", sa.String(64), primary_key=True),
    sa.Column("label", sa.String(500), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # running, released, finished, failed
    sa.Column("token", sa.String(32), nullable=False),  # changes with every taking
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(64), nullable=False),
    sa.Column("device", sa.String(64), nullable=False),
    sa.Column("lease_expires", sa.Float, nullable=False),
    sa.Column("updated", sa.Float, nullable=False),
    sa.Column("takings", sa.Integer, nullable=False),
    sa.Column("run_id", sa.String(64)),
    sa.Column("previous_token", sa.String(32)),
    sa.Column("error", sa.Text),
)
ENDED = ("finished", "failed")


class ClaimLost(BenchError):
    """Another worker took this cell over (our lease expired while we were stalled)."""


def claims_uri(tracking_uri: str, explicit: str | None = None) -> str:
    """Where the claims table lives: ``explicit``, else $BENCH_CLAIMS_URI, else beside the
    tracking store (a sibling SQLite file, or the same SQL database)."""
    explicit = explicit or os.environ.get("BENCH_CLAIMS_URI")
    if explicit:
        return explicit
    if tracking_uri.startswith("sqlite:///"):
        db = Path(tracking_uri.removeprefix("sqlite:///"))
        return f"sqlite:///{db.with_name(db.stem + '-claims.db')}"
    if tracking_uri.split(":", 1)[0].split("+")[0] in ("postgresql", "mysql", "mssql"):
        return tracking_uri
    raise BenchError(
        f"tracking URI '{tracking_uri}': give --claims-uri postgresql://... (a database every "
        "worker reaches, e.g. the tracking server's backend store) for the cells' claims"
    )


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.close()


class ClaimStore:
    """The claims table of one database (created on first use). Every statement is retried
    while the database is unreachable (:func:`bench.engine.database.retrying`); a retried
    write that had committed shows as our own token in the row (:func:`acquire`,
    :meth:`Claim._set`)."""

    def __init__(self, uri: str):
        self.uri = uri
        label_errors()
        if uri.startswith("sqlite:"):
            self.engine = sa.create_engine(uri, connect_args={"timeout": 60})
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = sa.create_engine(uri, pool_pre_ping=True)
        shown = self.engine.url.render_as_string(hide_password=True)
        for name in ("get", "rows", "insert", "update"):
            setattr(self, name, retrying(getattr(self, name), f"claims ({shown})"))
        retrying(self._create, f"claims ({shown})")()

    def _create(self) -> None:
        if not sa.inspect(self.engine).has_table(CLAIMS.name):
            try:
                METADATA.create_all(self.engine)
            except sa.exc.SQLAlchemyError:  # another process created it in between
                if not sa.inspect(self.engine).has_table(CLAIMS.name):
                    raise

    def get(self, exp_id: str, cell_hash: str) -> dict | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(CLAIMS).where(_key(exp_id, cell_hash))).mappings().first()
        return dict(row) if row else None

    def rows(self, exp_id: str) -> dict[str, dict]:
        """Every claim of an experiment, by config hash."""
        with self.engine.connect() as conn:
            return _rows(conn, exp_id)

    def insert(self, values: dict) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(CLAIMS.insert().values(**values))
        except sa.exc.IntegrityError:
            return False
        return True

    def swap(self, old: dict, values: dict) -> bool:
        """Replace ``old`` by ``values`` only if the row is still exactly ``old`` (its token,
        state and lease): the compare-and-swap that makes one of racing workers win."""
        guard = sa.and_(
            _key(old["experiment_id"], old["cell_hash"]),
            CLAIMS.c.token == old["token"],
            CLAIMS.c.state == old["state"],
            CLAIMS.c.lease_expires == old["lease_expires"],
        )
        return self.update(guard, values)

    def update(self, where, values: dict) -> bool:
        with self.engine.begin() as conn:
            return conn.execute(CLAIMS.update().where(where).values(**values)).rowcount == 1


def _key(exp_id: str, cell_hash: str):
    return sa.and_(CLAIMS.c.experiment_id == exp_id, CLAIMS.c.cell_hash == cell_hash)


def read_rows(uri: str, exp_id: str) -> dict[str, dict]:
    """Every claim of an experiment, by config hash, without creating the table (none: no
    claim yet)."""
    label_errors()
    engine = sa.create_engine(uri, poolclass=sa.pool.NullPool)
    try:
        if not sa.inspect(engine).has_table(CLAIMS.name):
            return {}
        with engine.connect() as conn:
            return _rows(conn, exp_id)
    finally:
        engine.dispose()


def _rows(conn, exp_id: str) -> dict[str, dict]:
    rows = conn.execute(sa.select(CLAIMS).where(CLAIMS.c.experiment_id == exp_id))
    return {r["cell_hash"]: dict(r) for r in rows.mappings()}


@functools.lru_cache(maxsize=8)
def store(uri: str) -> ClaimStore:
    """One store (engine and connection pool) per database and process."""
    return ClaimStore(uri)


def _alive(row: dict) -> bool:
    """False when the owner is a process of this host that no longer exists."""
    if row["host"] != socket.gethostname():
        return True
    try:
        os.kill(row["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def takeable(row: dict, now: float, launch_time: float) -> bool:
    """May a worker of the launch started at ``launch_time`` take this row now?"""
    if row["state"] == "released":
        return True
    if row["state"] == "running":
        return row["lease_expires"] < now or not _alive(row)
    return row["updated"] < launch_time  # ended in an earlier launch (retry or --force)


def owner_device() -> str:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return f"cuda:{visible}" if visible else "cpu"


@dataclass
class Claim:
    """The outcome of :func:`acquire`: ``won`` (this worker holds the cell) or the row of the
    worker that does / did (``state``, ``error``, ``run_id``)."""

    store: ClaimStore
    row: dict
    won: bool
    lease_s: float
    workdir: Path
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _beat: threading.Thread | None = None

    @property
    def state(self) -> str:
        return self.row["state"]

    @property
    def run_id(self) -> str | None:
        return self.row["run_id"]

    def _dir(self, token: str | None) -> Path | None:
        return self.workdir / "cells" / self.row["cell_hash"] / token if token else None

    @property
    def checkpoint(self) -> Path:
        """This claim's own checkpoint file (no other worker writes it)."""
        return self._dir(self.row["token"]) / "checkpoint.pt"

    @property
    def previous_checkpoint(self) -> Path | None:
        """The last checkpoint of the owner this claim took the cell from, if it left one."""
        folder = self._dir(self.row["previous_token"])
        path = folder / "checkpoint.pt" if folder else None
        return path if path is not None and path.is_file() else None

    def inherit_checkpoint(self) -> bool:
        """Copy the previous owner's last checkpoint as ours; True if there was one."""
        previous = self.previous_checkpoint
        if previous is None:
            return False
        self.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(previous, self.checkpoint)
        return True

    def _mine(self):
        return sa.and_(
            _key(self.row["experiment_id"], self.row["cell_hash"]),
            CLAIMS.c.token == self.row["token"],
            CLAIMS.c.state == "running",
        )

    def _set(self, **values) -> bool:
        values["updated"] = time.time()
        if not self.store.update(self._mine(), values) and not self._already(values):
            self.lost.set()
            return False
        self.row.update(values)
        return True

    def _already(self, values: dict) -> bool:
        """True if the row holds our token and ``values`` (a retried write that committed)."""
        row = self.store.get(self.row["experiment_id"], self.row["cell_hash"])
        return (
            row is not None
            and row["token"] == self.row["token"]
            and all(row[k] == v for k, v in values.items())
        )

    def set_run(self, run_id: str) -> None:
        """Record the MLflow run this claim writes (the one a taker-over adopts)."""
        self._set(run_id=run_id)
        self.check()

    def check(self) -> None:
        """Raise ClaimLost if the heartbeat found the cell taken over."""
        if self.lost.is_set():
            raise ClaimLost(f"{self.row['label']}: another worker took this cell over")

    def end(self, state: str, error: str | None = None) -> None:
        """Stop the heartbeat and record the end: finished, failed (with its error) or
        released (interrupted: free for the next worker, which resumes the checkpoint)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        ended = not self.lost.is_set() and self._set(
            state=state, error=error, lease_expires=time.time()
        )
        if ended and state == "finished":
            shutil.rmtree(self.workdir / "cells" / self.row["cell_hash"], ignore_errors=True)

    def start_heartbeat(self) -> None:
        self._beat = threading.Thread(target=self._heartbeat, name="claim-heartbeat", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            try:
                if not self.store.update(
                    self._mine(), {"lease_expires": time.time() + self.lease_s}
                ):
                    log.error("%s: lease lost, another worker took the cell", self.row["label"])
                    self.lost.set()
                    return
            except sa.exc.SQLAlchemyError as exc:  # a passing outage: retry at the next beat
                log.warning("%s: heartbeat failed: %s", self.row["label"], exc)


def acquire(
    uri: str,
    exp_id: str,
    cell_hash: str,
    label: str,
    *,
    lease_s: float,
    launch_time: float,
    workdir: Path,
    worker: str = "",
) -> Claim:
    """Try to take the cell: insert its row, or swap a takeable row for ours."""
    claims = store(uri)
    now = time.time()
    mine = {
        "state": "running",
        "token": uuid.uuid4().hex,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "worker": worker or f"pid{os.getpid()}",
        "device": owner_device(),
        "lease_expires": now + lease_s,
        "updated": now,
        "error": None,
    }
    new = {"experiment_id": exp_id, "cell_hash": cell_hash, "label": label, "takings": 1}
    if claims.insert({**new, **mine, "run_id": None, "previous_token": None}):
        return Claim(
            claims, {**new, **mine, "run_id": None, "previous_token": None}, True, lease_s, workdir
        )
    row = claims.get(exp_id, cell_hash)
    if row is not None and row["token"] == mine["token"]:  # a retried insert that committed
        return Claim(claims, row, True, lease_s, workdir)
    if row is None or not takeable(row, now, launch_time):
        return Claim(claims, row or {**new, **mine, "state": "running"}, False, lease_s, workdir)
    values = {**mine, "previous_token": row["token"], "takings": row["takings"] + 1}
    if not claims.swap(row, values):
        now_row = claims.get(exp_id, cell_hash) or row
        won = now_row["token"] == mine["token"]  # a retried swap that committed
        return Claim(claims, now_row, won, lease_s, workdir)
    return Claim(claims, {**row, **values}, True, lease_s, workdir)
