"""How to reproduce a report, in one line at its top: the command, the commit, the machine and
the wall time, read from its runs (the tags ``suite_file``, ``git_commit`` and
``device_name``, MLflow's start and end times, the metric ``time.total_s``)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

#: How many hex digits of a commit a report shows.
SHORT = 7


@dataclass(frozen=True)
class Provenance:
    """What ran a suite's runs: ``command`` reproduces them (None when the runs do not name
    their suite file), ``wall_s`` from the first run's start to the last run's end,
    ``cell_s`` the cells' own time (``time.total_s``) summed."""

    suite: str
    command: str | None
    commits: list[str]
    machines: list[str]
    cells: int
    wall_s: float | None
    cell_s: float | None


def tag_values(df: pd.DataFrame, column: str) -> list[str]:
    """The distinct values of a tag, the newest run's first."""
    if column not in df:
        return []
    ordered = df.sort_values("start_time", ascending=False) if "start_time" in df else df
    return list(dict.fromkeys(ordered[column].dropna().astype(str)))


def provenance(df: pd.DataFrame, suite: str, command: str | None = None) -> Provenance:
    """The provenance of one suite's runs (``df``: bench.report.table.load_runs' frame);
    ``command``: what made them, when not the suite file as the runs name it."""
    files = tag_values(df, "tags.suite_file")
    if command is None and files:
        command = f"bench run {files[0]} && bench report --suite {suite}"
    wall = None
    if {"start_time", "end_time"} <= set(df.columns) and df["end_time"].notna().any():
        wall = (df["end_time"].max() - df["start_time"].min()).total_seconds()
    cell = df["metrics.time.total_s"].sum() if "metrics.time.total_s" in df else None
    return Provenance(
        suite,
        command,
        [c[:SHORT] for c in tag_values(df, "tags.git_commit")],
        tag_values(df, "tags.device_name"),
        len(df),
        wall,
        cell,
    )


def duration(seconds: float) -> str:
    """4000 -> '1 h 6 min 40 s'; 75 -> '1 min 15 s'."""
    s = round(seconds)
    parts = [(s // 3600, "h"), (s % 3600 // 60, "min"), (s % 60, "s")]
    shown = [f"{n} {unit}" for n, unit in parts if n]
    return " ".join(shown) or "0 s"


def provenance_line(p: Provenance) -> str:
    """'Reproduce: `COMMAND` (commit C, on MACHINE; N cells in W wall time, ...).'"""
    command = (
        f"`{p.command}`"
        if p.command
        else (f"`bench report --suite {p.suite}` (the runs do not name their suite file)")
    )
    commits = ", ".join(p.commits) or "unknown"
    machines = " and ".join(p.machines) or "an unnamed machine"
    facts = [f"commit{'s' * (len(p.commits) > 1)} {commits}", f"on {machines}"]
    if p.wall_s is not None:
        cells = f"{p.cells} cell{'s' * (p.cells != 1)} in {duration(p.wall_s)} of wall time"
        cells += " (the first run's start to the last run's end"
        cells += f"; {duration(p.cell_s)} of cell time)" if p.cell_s else ")"
        facts.append(cells)
    return f"Reproduce: {command} — {'; '.join(facts)}."
