"""Test fault injection: a real ``kill -9`` of this process at a named point.

``reached(name)`` does nothing unless the environment variable ``BENCH_KILL_AT`` equals
``name``; then the process sends itself SIGKILL there (no handler, no cleanup, no flush), as
an OOM kill or a node failure would. tests/test_kill9.py kills a real ``bench run`` at each
point and checks that a rerun of the same command completes the cell exactly as an
uninterrupted run would. The points (docs/claims.md, "kill -9 at any point"):

- ``run_created``: the cell's MLflow run exists and is recorded in its claim;
- ``epoch{E}.step{S}``: before step S of epoch E (0-based), i.e. mid-epoch for S > 0;
- ``epoch_logged{E}``: epoch E's loss and lr are logged, its checkpoint not yet written;
- ``checkpoint{E}``: epoch E's checkpoint has just been written;
- ``evaluating``: the test set is scored, the sequence-length grid not yet;
- ``artifact_logged``: the first artifact is uploaded, the others not yet;
- ``before_finished``: everything is logged, the run not yet FINISHED;
- the ``pretrain:`` stage (:mod:`bench.engine.pretrain`; its trainer passes the epoch points
  above too): ``pretrain_trained`` (trained, ``backbone.pt`` not yet written),
  ``pretrain_saved`` (written, not yet logged) and ``pretrain_before_finished`` (logged, the
  stage's run not yet FINISHED); tests/test_pretrain.py kills there.
"""

from __future__ import annotations

import os
import signal

ENV = "BENCH_KILL_AT"


def reached(name: str) -> None:
    """SIGKILL this process if ``$BENCH_KILL_AT`` names this point."""
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
