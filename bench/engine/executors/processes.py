"""Worker processes that stop with their driver: Ctrl-C, SIGTERM
(:func:`terminated_as_interrupted`) or an error in the driver ends them within seconds, their
cells left resumable.

:func:`interruptible` is each worker's first call: its first SIGINT or SIGTERM raises
KeyboardInterrupt (the cell's claim is ``released`` and its run KILLED on the way out, so the
next launch resumes it from its checkpoint) and any later one is ignored, so that a second
Ctrl-C, or the driver's own SIGINT after the terminal's, cannot cut that clean-up short.
:func:`stop_processes` is the driver's: SIGINT to the workers still running, then SIGTERM and
SIGKILL to any that have not ended within the grace period (a claim left ``running`` by a
killed worker is taken over at once on the same host: its pid is gone).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from multiprocessing.process import BaseProcess

GRACE_S = 10.0


#: The signals that stop a worker or a driver as Ctrl-C does (SIGTERM: `kill`, a scheduler).
STOPS = (signal.SIGINT, signal.SIGTERM)


def _interrupt_once(signum, frame) -> None:
    for stop in STOPS:
        signal.signal(stop, signal.SIG_IGN)
    raise KeyboardInterrupt


def interruptible() -> None:
    """In a worker process: the first SIGINT or SIGTERM interrupts, later ones are ignored."""
    for stop in STOPS:
        signal.signal(stop, _interrupt_once)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


@contextmanager
def terminated_as_interrupted() -> Iterator[None]:
    """In a driver (main thread only): SIGTERM stops it as Ctrl-C does, so that its workers
    are stopped with it instead of running on (Python's default ends it on the spot)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


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
