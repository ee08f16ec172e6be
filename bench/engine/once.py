"""Idempotent metric logging: a run resumed after a kill logs each (metric, step) once.

A kill between logging an epoch and writing its checkpoint makes the resumed run train and log
that epoch again; a kill after the final metrics were logged but before the run was FINISHED
makes the rerun score and log them again. :func:`unlogged` drops what the run's history holds
already, so that each step of each metric appears exactly once.
"""

from __future__ import annotations


def unlogged(mlf, run_id: str, metrics: dict[str, float], step: int) -> dict[str, float]:
    """The metrics that the run has not logged at ``step`` yet."""
    return {
        key: value
        for key, value in metrics.items()
        if all(m.step != step for m in mlf.get_metric_history(run_id, key))
    }
