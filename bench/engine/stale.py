"""Stale runs: FINISHED runs of a cell's config that other code made.

A cell's config hash covers its config and its code (:mod:`bench.suite.fingerprint`), so after a
change to the code that computes it, its finished run no longer counts and the cell runs again.
Each run is tagged with ``config_hash`` (config and code), ``config_key`` (the config alone) and
``code_fingerprint``; a run made before code fingerprints has no ``config_key``, and its
``config_hash`` was the config alone, so it is found by that. ``bench run`` says how many cells
have such a run; with ``--reuse-stale`` it reuses them instead, and tags the reused run with
``reused_stale=true``, ``reused_stale.code_fingerprint`` (the code that made it) and
``reused_stale.by_code`` (the code that reused it).
"""

from __future__ import annotations

from bench.suite.schema import Cell

UNKNOWN_CODE = "unknown"  # a run from before code fingerprints


def finished_runs(mlf, exp_id: str, where: str = "") -> list:
    """Every FINISHED run of the experiment matching ``where`` (a filter), newest first."""
    query = " and ".join(["attributes.status = 'FINISHED'", *([where] if where else [])])
    runs, token = [], None
    while True:
        page = mlf.search_runs(
            [exp_id], query, order_by=["attributes.start_time DESC"], page_token=token
        )
        runs += page
        token = page.token
        if not token:
            return runs


def stale_runs(mlf, exp_id: str, cell: Cell) -> list:
    """FINISHED runs of the cell's config made by other code, newest first."""
    key = cell.config_key
    runs = {
        run.info.run_id: run
        for tag in ("config_key", "config_hash")
        for run in finished_runs(mlf, exp_id, f"tags.{tag} = '{key}'")
        if run.data.tags.get("config_hash") != cell.config_hash
    }
    return sorted(runs.values(), key=lambda r: r.info.start_time, reverse=True)


def count_stale(mlf, exp_id: str, cells: list[Cell]) -> int:
    """How many of the cells have a stale finished run and no finished run of their own."""
    tags = [run.data.tags for run in finished_runs(mlf, exp_id)]
    current = {t.get("config_hash") for t in tags}
    keys = {t.get("config_key", t.get("config_hash")) for t in tags}
    return sum(c.config_hash not in current and c.config_key in keys for c in cells)


def announce(count: int, of: int, reuse: bool) -> str:
    """The line ``bench run`` prints when cells have stale finished runs."""
    has = "has" if count == 1 else "have"
    then = "reused (--reuse-stale)" if reuse else "run again (--reuse-stale reuses them)"
    return f"{count} of {of} cells {has} a finished run made by other code (stale): {then}"


def code_of(run) -> str:
    return run.data.tags.get("code_fingerprint", UNKNOWN_CODE)


def reuse(mlf, exp_id: str, cell: Cell) -> tuple[str, dict[str, float], str] | None:
    """(run id, metrics, note) of the newest stale run of the cell, tagged as reused; None if
    there is none."""
    runs = stale_runs(mlf, exp_id, cell)
    if not runs:
        return None
    run, now = runs[0], cell.code["fingerprint"]
    tags = {
        "reused_stale": "true",
        "reused_stale.code_fingerprint": code_of(run),
        "reused_stale.by_code": now,
    }
    for key, value in tags.items():
        mlf.set_tag(run.info.run_id, key, value)
    note = f"stale run {run.info.run_id[:8]} (code {code_of(run)}, now {now})"
    return run.info.run_id, dict(run.data.metrics), note
