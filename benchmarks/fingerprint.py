"""What the code fingerprint (bench.suite.fingerprint) adds to a ``bench`` process.

In fresh processes (``--repeat`` of each), with an empty disk cache (``cold``: every module is
parsed) and with a filled one (``warm``: what every run after the first sees): the time to
fingerprint the four methods' cells once their modules are imported, beside the time to import
them (which ``bench run`` pays anyway), and the whole ``bench run suites/video.yaml --dry-run``
(which prints every cell's config hash). Medians are printed.

    python benchmarks/fingerprint.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import time
t0 = time.perf_counter()
from bench.registry import DATASETS, METHODS
import bench.data.base, bench.method
METHODS.names(); DATASETS.names()
t1 = time.perf_counter()
from bench.suite.fingerprint import code_fingerprint
for m in ("baseline", "iaunet", "stal", "rgsa-rgtr"):
    code_fingerprint(m, "synthetic-video")
print(t1 - t0, time.perf_counter() - t1)
"""


def probe(cache: Path) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_CACHE_DIR": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    imports, fingerprint = out.stdout.split()
    return float(imports), float(fingerprint)


def dry_run(cache: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_CACHE_DIR": str(cache)}
    code = "from bench.cli import main; main()"
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", code, "run", "suites/video.yaml", "--dry-run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cold, warm, imports, runs = [], [], [], []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            cold.append(probe(Path(tmp))[1])
            imported, fingerprinted = probe(Path(tmp))
            imports.append(imported)
            warm.append(fingerprinted)
            runs.append(dry_run(Path(tmp)))
    med = statistics.median
    print(f"imports of the methods and datasets: {med(imports):.2f} s")
    print(f"fingerprints of 4 methods, cold cache: {med(cold):.3f} s")
    print(f"fingerprints of 4 methods, warm cache: {med(warm):.3f} s")
    print(
        f"bench run suites/video.yaml --dry-run (warm): {med(runs):.2f} s; the fingerprint is "
        f"{100 * med(warm) / med(runs):.1f} % of it warm, {100 * med(cold) / med(runs):.1f} % cold"
    )


if __name__ == "__main__":
    main()
