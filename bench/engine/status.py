"""What ``bench status`` shows: each cell's state, from MLflow's finished runs and the claims
(``stale``: the cell's config has a finished run, made by other code; bench.engine.stale)."""

from __future__ import annotations

import time

from bench.engine import claims, stale
from bench.engine.tracking import runs_with_hash
from bench.suite.schema import Cell


def describe(row: dict | None, now: float) -> tuple[str, str]:
    """(state, where or error) of a cell without a finished run, from its claim row."""
    if row is None:
        return "pending", ""
    where = f"{row['host']} pid {row['pid']} {row['device']} ({row['worker']})"
    if row["state"] == "running" and not claims.takeable(row, now, launch_time=0.0):
        return "running", where
    if row["state"] == "running":
        return "pending", f"lease expired; was {where}"
    if row["state"] == "failed":
        return "failed", row["error"] or ""
    if row["state"] == "released":
        return "pending", "interrupted; resumes from its checkpoint"
    return "pending", "finished run deleted"


def stale_state(mlf, exp_id: str, cell: Cell) -> tuple[str, str] | None:
    """("stale", which run) of a pending cell with a finished run made by other code."""
    runs = stale.stale_runs(mlf, exp_id, cell)
    if not runs:
        return None
    code = stale.code_of(runs[0])
    return "stale", f"run {runs[0].info.run_id} by code {code}; reused only with --reuse-stale"


def cell_states(mlf, experiment: str, cells: list[Cell], claims_uri: str | None):
    """One row per cell: #, label, config hash, state, where / error. ``mlf`` None (no store
    yet) or an experiment not in it: every cell is pending; nothing is created."""
    exp = mlf.get_experiment_by_name(experiment) if mlf is not None else None
    exp_id = exp.experiment_id if exp is not None else None
    rows = claims.read_rows(claims_uri, exp_id) if claims_uri and exp_id else {}
    now, out = time.time(), []
    for i, cell in enumerate(cells):
        finished = runs_with_hash(mlf, exp_id, cell.config_hash, ("FINISHED",)) if exp_id else []
        if finished:
            state, detail = "finished", f"run {finished[0].info.run_id}"
        else:
            state, detail = describe(rows.get(cell.config_hash), now)
        if state == "pending" and exp_id:
            state, detail = stale_state(mlf, exp_id, cell) or (state, detail)
        out.append([i + 1, cell.label, cell.config_hash, state, detail])
    return out
