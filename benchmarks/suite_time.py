"""Wall time of `bench run SUITE` from a fresh working directory (the 10-minute budget).

    python benchmarks/suite_time.py [suites/video.yaml]

Runs the real CLI in a temporary directory (fresh data cache, MLflow store and checkpoints),
then prints the total and each cell's training and evaluation time from MLflow.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
from tabulate import tabulate


def main() -> None:
    suite = Path(sys.argv[1] if len(sys.argv) > 1 else "suites/video.yaml").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        subprocess.run(
            ["bench", "run", str(suite), "--no-report"],
            cwd=tmp,
            check=True,
            stderr=subprocess.DEVNULL,
        )
        total = time.perf_counter() - start
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        runs = mlflow.search_runs(search_all_experiments=True)
        rows = [
            {
                "cell": r["tags.mlflow.runName"],
                "train s": r["metrics.time.train_s"],
                "train+eval s": r["metrics.time.total_s"],
                "R1": r["metrics.R1"],
                "mAP": r.get("metrics.mAP"),
            }
            for _, r in runs.iterrows()
        ]
    print(tabulate(rows, headers="keys", floatfmt=".1f", tablefmt="pipe"))
    print(f"total wall time (incl. data generation): {total / 60:.1f} min")


if __name__ == "__main__":
    main()
