"""Where the time of `bench run SUITE` goes, from a fresh working directory (the main job's
10-minute budget).

    python benchmarks/suite_time.py [suites/video.yaml]

Runs the real CLI in a temporary directory (fresh data cache, MLflow store and checkpoints):
`bench data make` for each of the suite's datasets, then `bench run --no-report`, then
`bench report`, each timed; then reads the runs from MLflow and prints, per method and
variant, the mean seconds of a cell's training (its validation included), validation and
test, and the warm-start stage's time when the suite has one.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import yaml
from tabulate import tabulate


def timed(cmd: list[str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def data_commands(suite: Path) -> list[list[str]]:
    """`bench data make` for each plain dataset entry (name and options) of the suite."""
    out = []
    for entry in yaml.safe_load(suite.read_text())["datasets"]:
        if isinstance(entry, str):
            entry = {"name": entry}
        if "name" not in entry:
            continue  # a cross-dataset entry: its sides are made by the run
        options = [
            a for k, v in entry.items() if k not in ("name", "label") for a in ("-o", f"{k}={v}")
        ]
        out.append(["bench", "data", "make", entry["name"], *options])
    return out


def per_row(runs) -> list[dict]:
    cells = runs[runs["tags.stage"].isna()] if "tags.stage" in runs else runs
    rows = []
    for (method, variant), group in cells.groupby(["tags.method", "tags.variant"]):
        rows.append(
            {
                "method": method,
                "variant": variant,
                "cells": len(group),
                "train s": group["metrics.time.train_s"].mean(),
                "of it validation s": group.get("metrics.time.validation_s", 0).mean(),
                "test s": group.get("metrics.time.test_s", 0).mean(),
                "R1": group["metrics.R1"].mean(),
            }
        )
    return rows


def main() -> None:
    suite = Path(sys.argv[1] if len(sys.argv) > 1 else "suites/video.yaml").resolve()
    name = yaml.safe_load(suite.read_text())["name"]
    with tempfile.TemporaryDirectory() as tmp:
        phases = {"data": sum(timed(cmd, tmp) for cmd in data_commands(suite))}
        phases["run (stage + cells)"] = timed(["bench", "run", str(suite), "--no-report"], tmp)
        phases["report"] = timed(["bench", "report", "--suite", name], tmp)
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        runs = mlflow.search_runs(search_all_experiments=True)
    stage = runs[runs["tags.stage"].notna()] if "tags.stage" in runs else runs.iloc[:0]
    if len(stage):
        phases["of the run: warm-start stage"] = stage["metrics.time.train_s"].sum()
    print(tabulate(per_row(runs), headers="keys", floatfmt=".1f", tablefmt="pipe"))
    print()
    print(tabulate(phases.items(), headers=["phase", "wall s"], floatfmt=".1f", tablefmt="pipe"))
    print(f"total wall time: {sum(v for k, v in phases.items() if 'of the' not in k) / 60:.1f} min")


if __name__ == "__main__":
    main()
