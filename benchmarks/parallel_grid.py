"""Wall time of a grid of 8 tiny cells with 1, 2 and 4 workers, and the claims' overhead.

    python benchmarks/parallel_grid.py [--workers 1,2,4] [--steps 4]

Each worker count runs the real CLI (`bench run GRID --jobs N`; 1 = the local executor) in a
fresh working directory on one shared, already generated dataset, so the figures are the grid's
wall time from process start to exit. The overhead of a claim is timed on the same kind of
store (SQLite beside mlflow.db): acquire + record the run + end, plus the heartbeats a cell of
the measured length makes, divided by the mean cell time (training + evaluation, from MLflow).
"""

from __future__ import annotations

import argparse
import copy
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient
from tabulate import tabulate

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.engine import claims  # noqa: E402
from bench.suite.schema import build_dataset  # noqa: E402
from tests.test_cli_e2e import TINY  # noqa: E402


def grid(folder: Path, steps: int) -> Path:
    """TINY with 4 seeds x 2 variants = 8 cells."""
    spec = copy.deepcopy(TINY)
    spec["seeds"] = [0, 1, 2, 3]
    spec["defaults"]["train"].update(epochs=1, max_steps_per_epoch=steps)
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run_grid(folder: Path, suite: Path, data: Path, workers: int) -> tuple[float, list[float]]:
    """(wall seconds, each cell's train+eval seconds) of `bench run` with N workers."""
    folder.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_DATA_ROOT": str(data)}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-c", "from bench.cli import main; main()", "run", str(suite)]
    cmd += ["--no-report", "--jobs", str(workers)]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=folder, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - start
    mlf = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = mlf.search_runs([mlf.get_experiment_by_name("tiny").experiment_id])
    assert len(runs) == 8 and all(r.info.status == "FINISHED" for r in runs)
    return wall, [r.data.metrics["time.total_s"] for r in runs]


def claim_cost(folder: Path, cells: int = 8, lease_s: float = 60.0) -> tuple[float, float]:
    """(seconds of acquire + set_run + end per cell, seconds of one heartbeat renewal)."""
    uri = f"sqlite:///{folder / 'mlflow-claims.db'}"
    claims.store(uri)
    start = time.perf_counter()
    for i in range(cells):
        claim = claims.acquire(
            uri, "1", f"cell{i}", f"cell {i}", lease_s=lease_s, launch_time=time.time(),
            workdir=folder,
        )  # fmt: skip
        claim.set_run(f"run{i}")
        claim.end("finished")
    per_cell = (time.perf_counter() - start) / cells
    claim = claims.acquire(
        uri, "1", "beat", "beat", lease_s=lease_s, launch_time=time.time(), workdir=folder
    )
    start = time.perf_counter()
    for _ in range(20):
        claim.store.update(claim._mine(), {"lease_expires": time.time() + lease_s})
    return per_cell, (time.perf_counter() - start) / 20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--steps", type=int, default=4, help="training steps per cell")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        suite = grid(tmp, args.steps)
        options = {k: v for k, v in TINY["datasets"][0].items() if k != "name"}
        build_dataset("synthetic-video", options, str(tmp / "data")).prepare(progress=False)
        rows, walls, cell_means = [], [], []
        for n in counts:
            wall, times = run_grid(tmp / f"w{n}", suite, tmp / "data", n)
            walls.append(wall)
            cell_means.append(sum(times) / len(times))
            rows.append([n, f"{wall:.1f}", f"{walls[0] / wall:.2f}x", f"{cell_means[-1]:.2f}"])
        per_cell, beat = claim_cost(tmp)
    cell_s = cell_means[0]  # a cell's time with the fewest workers (least contention)
    overhead = per_cell + beat * cell_s / (60.0 / 4)
    cores = len(os.sched_getaffinity(0))
    print(f"grid of 8 tiny cells (TINY suite, 32x16, 1 epoch x {args.steps} steps), {cores} cores")
    print(tabulate(rows, headers=["workers", "wall s", "speedup", "mean cell s (train+eval)"]))
    print(
        f"claim overhead per cell: {overhead * 1000:.1f} ms (acquire+run+end "
        f"{per_cell * 1000:.1f} ms, one heartbeat {beat * 1000:.1f} ms every 15 s) = "
        f"{100 * overhead / cell_s:.2f} % of a mean cell ({cell_s:.2f} s)"
    )


if __name__ == "__main__":
    main()
