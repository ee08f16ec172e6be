"""Worker processes that stop with their driver: Ctrl-C (or an error) in the driver ends them
within seconds, their cells left resumable.

:func:`interruptible` is each worker's first call: its first SIGINT raises KeyboardInterrupt
(the cell's claim is ``released`` and its run KILLED on the way out, so the next launch resumes
it from its checkpoint) and any later one is ignored, so that a second Ctrl-C, or the driver's
own SIGINT after the terminal's, cannot cut that clean-up short. :func:`stop_processes` is the
driver's: SIGINT to the workers still running, then SIGTERM and SIGKILL to any that have not
ended within the grace period (a claim left ``running`` by a killed worker is taken over at
once on the same host: its pid is gone).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from multiprocessing.process import BaseProcess

GRACE_S = 10.0


def _interrupt_once(signum, frame) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def interruptible() -> None:
    """In a worker process: the first SIGINT interrupts, later ones are ignored."""
    signal.signal(signal.SIGINT, _interrupt_once)


def stop_processes(procs: Iterable[BaseProcess], grace_s: float = GRACE_S) -> None:
    """Interrupt the processes still running; terminate, then kill, those that outlive
    ``grace_s`` seconds."""
    alive = [p for p in procs if p.is_alive()]
    for proc in alive:
        os.kill(proc.pid, signal.SIGINT)
    deadline = time.monotonic() + grace_s
    for proc in alive:
        proc.join(max(0.0, deadline - time.monotonic()))
    for stop in ("terminate", "kill"):
        for proc in alive:
            if proc.is_alive():
                getattr(proc, stop)()
                proc.join(2.0)
