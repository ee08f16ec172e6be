"""Which machine (CPU or GPU model, the runs' ``device_name`` tag) computed which rows: the
same config can give different numbers on two machines, so a table or a comparison says when
its rows were computed on more than one."""

from __future__ import annotations

import pandas as pd

MachineRows = dict[str, list[str]]  # device name -> the rows (and seeds) it computed


def machine_rows(runs: pd.DataFrame) -> MachineRows:
    """device name -> 'method/variant' of each row it ran, with the seeds when only some of the
    row's runs ran there (runs without the tag are left out)."""
    if "tags.device_name" not in runs:
        return {}
    runs = runs[runs["tags.device_name"].notna()]
    out: MachineRows = {}
    for (method, variant), rows in runs.groupby(["tags.method", "tags.variant"]):
        machines = rows.groupby("tags.device_name")["tags.seed"]
        for name, seeds in machines:
            label = f"{method}/{variant}"
            if len(machines) > 1:
                label += f" (seed {', '.join(sorted(set(seeds.astype(str)), key=_number))})"
            out.setdefault(name, []).append(label)
    return dict(sorted(out.items()))


def _number(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (0, text)


def describe(machines: MachineRows) -> str:
    """'run on NAME' for one machine; for several, each machine in brackets with its rows."""
    if len(machines) == 1:
        return f"run on {next(iter(machines))}"
    parts = [f"[{name}] {', '.join(rows)}" for name, rows in machines.items()]
    return f"run on {len(machines)} machines: " + "; ".join(parts)
