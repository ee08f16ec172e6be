"""A real PostgreSQL server for the tests that need one, started from the machine's binaries.

The server runs in a temporary data folder on a free loopback port, as the ``postgres`` user
when the tests run as root (PostgreSQL refuses to run as root). ``.ci/run`` installs the
distribution's ``postgresql`` package; where no server can start, the fixture skips with the
reason, so the test output says why.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ADMIN = "postgres"


def _bindir() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve().parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    return Path(dirs[-1]) if dirs else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_server_user(cmd: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return cmd
    if shutil.which("runuser") is None:
        raise RuntimeError("running as root and no runuser to switch to the postgres user")
    return ["runuser", "-u", ADMIN, "--", *cmd]


class PostgresServer:
    """initdb + pg_ctl start in a temporary folder; ``url(db)`` creates a database."""

    def __init__(self, bindir: Path):
        self.bindir = bindir
        self.tmp = Path(tempfile.mkdtemp(prefix="bench-pg-"))
        self.data = self.tmp / "data"
        self.port = _free_port()
        self._dbs = 0
        if os.geteuid() == 0:
            shutil.chown(self.tmp, ADMIN)
            os.chmod(self.tmp, 0o755)

    def _run(self, *args: str) -> None:
        cmd = _as_server_user([str(self.bindir / args[0]), *args[1:]])
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {out.stderr.strip() or out.stdout.strip()}")

    def start(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", ADMIN, "-A", "trust", "-E", "UTF8")
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.tmp} -c fsync=off"
        log = str(self.tmp / "server.log")  # the server must not hold our pipes open
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", opts, "-w", "-t", "60", "start")

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every connection is cut, the server is down for about a
        second, then answers again on the same port."""
        log = str(self.tmp / "server.log")
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", log, "-m", "fast", "-w", "-t", "60", "restart"
        )

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def url(self, name: str | None = None) -> str:
        """A new, empty database: ``postgresql+psycopg2://postgres@127.0.0.1:PORT/NAME``."""
        self._dbs += 1
        name = name or f"bench{self._dbs}_{int(time.time() * 1000) % 10**8}"
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", ADMIN, name)
        return f"postgresql+psycopg2://{ADMIN}@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A running PostgreSQL server for the session, or a skip that says why there is none."""
    bindir = _bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (no pg_ctl); .ci/run installs it")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        pytest.skip("psycopg2 is not installed; pip install -e '.[test]' installs it")
    server = PostgresServer(bindir)
    try:
        server.start()
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        shutil.rmtree(server.tmp, ignore_errors=True)
        pytest.skip(f"PostgreSQL could not start: {exc}")
    yield server
    server.stop()
