"""Claims on real databases (SQLite and PostgreSQL): one winner, leases, heartbeats, takeover."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from bench.engine import claims


@pytest.fixture(params=["sqlite", "postgresql"])
def uri(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'claims.db'}"
    return request.getfixturevalue("postgres").url()


def take(uri: str, tmp_path: Path, lease_s: float = 30.0, launch_time: float | None = None):
    return claims.acquire(
        uri,
        "exp",
        "cellhash",
        "cell/label",
        lease_s=lease_s,
        launch_time=time.time() if launch_time is None else launch_time,
        workdir=tmp_path,
    )


def test_exactly_one_of_racing_workers_wins(uri, tmp_path):
    claims.store(uri)  # the table exists before the race, as the driver makes sure
    barrier, won = threading.Barrier(8), []

    def worker():
        barrier.wait()
        won.append(take(uri, tmp_path).won)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(won) == [False] * 7 + [True]


def as_foreign(uri: str, **values) -> None:
    """Make the row look owned by a live process of another host."""
    store = claims.store(uri)
    store.update(claims._key("exp", "cellhash"), {"host": "elsewhere", "pid": 1, **values})


def test_expired_lease_is_taken_over_with_the_previous_checkpoint(uri, tmp_path):
    first = take(uri, tmp_path, lease_s=1.0)
    first.set_run("run-1")
    first.checkpoint.parent.mkdir(parents=True)
    first.checkpoint.write_bytes(b"epoch 1")
    as_foreign(uri)
    assert not take(uri, tmp_path).won  # lease still valid
    time.sleep(1.2)
    second = take(uri, tmp_path)
    assert second.won and second.run_id == "run-1" and second.row["takings"] == 2
    assert second.checkpoint != first.checkpoint
    assert second.inherit_checkpoint() and second.checkpoint.read_bytes() == b"epoch 1"
    assert not take(uri, tmp_path).won  # now held by the second worker


def test_heartbeat_keeps_the_lease_and_notices_a_takeover(uri, tmp_path):
    first = take(uri, tmp_path, lease_s=0.8)
    first.start_heartbeat()
    time.sleep(1.5)  # longer than the lease: only the heartbeat keeps it
    as_foreign(uri)
    assert not take(uri, tmp_path).won
    # a takeover behind its back (as after a long stall): the heartbeat notices
    claims.store(uri).update(claims._key("exp", "cellhash"), {"token": "stolen"})
    time.sleep(0.5)
    assert first.lost.is_set()
    with pytest.raises(claims.ClaimLost):
        first.check()
    first.end("finished")  # does not overwrite the new owner's row
    assert claims.store(uri).get("exp", "cellhash")["state"] == "running"


def test_a_dead_local_owner_is_taken_over_at_once(uri, tmp_path):
    first = take(uri, tmp_path)
    proc = subprocess.Popen(["true"])
    proc.wait()  # a pid of this host that no longer runs
    claims.store(uri).update(claims._key("exp", "cellhash"), {"pid": proc.pid})
    second = take(uri, tmp_path)
    assert first.won and second.won


def test_ended_cells_rerun_only_in_a_later_launch(uri, tmp_path):
    launch = time.time()
    first = take(uri, tmp_path, launch_time=launch)
    first.end("failed", "RuntimeError: boom")
    again = take(uri, tmp_path, launch_time=launch)  # a worker of the same launch
    assert not again.won and again.state == "failed" and again.row["error"] == "RuntimeError: boom"
    later = take(uri, tmp_path)  # a new launch retries it
    assert later.won and later.row["error"] is None
    later.end("released")  # interrupted: anyone may take it at once
    assert take(uri, tmp_path, launch_time=launch).won


def test_claims_live_beside_the_tracking_store():
    assert claims.claims_uri("sqlite:////x/mlflow.db") == "sqlite:////x/mlflow-claims.db"
    pg = "postgresql+psycopg2://u@h:5432/db"
    assert claims.claims_uri(pg) == pg
    assert claims.claims_uri("http://h:5000", "postgresql://u@h/db") == "postgresql://u@h/db"
    with pytest.raises(claims.BenchError, match="--claims-uri"):
        claims.claims_uri("http://h:5000")
