"""The local executor: every cell in this process, one after another."""

from __future__ import annotations

from bench.engine.executors.worker import Context, Outcome, Progress, drain


def run(cells, context: Context, settings=None) -> list[Outcome]:
    progress = Progress(cells, "cells")
    progress.running(1)
    drain(cells, context, progress.end)
    return progress.close()
