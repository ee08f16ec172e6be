"""Time from starting ``bench`` to its first line: a bad suite's error, and ``bench --help``.

Each command runs as a fresh process (what a user types), ``--repeat`` times; the median and the
range are printed. The target (issue 11): a suite error within 3 s on a quiet 2-core machine.

    python benchmarks/startup.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

BAD_SUITE = """name: startup
datasets: [synthetic-video]
methods: [baseline, iaunet, stal, rgsa-rgtr]
defaults:
  train: {epochs: many}
"""


def time_to_first_line(args: list[str], cwd: Path) -> tuple[float, str]:
    """Seconds until the process writes its first line (stdout or stderr), and that line."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        ["bench", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - start
    proc.communicate()
    return elapsed, line.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "bad.yaml").write_text(BAD_SUITE)
        for label, command in (("bad suite", ["run", "bad.yaml"]), ("--help", ["--help"])):
            times, line = [], ""
            for _ in range(args.repeat):
                seconds, line = time_to_first_line(command, folder)
                times.append(seconds)
            print(
                f"{label:<10} (bench {' '.join(command)}): median {statistics.median(times):.2f} s "
                f"(min {min(times):.2f}, max {max(times):.2f}, n={len(times)})  first line: "
                f"{line[:90]}"
            )
        leftovers = sorted(p.name for p in folder.iterdir() if p.name != "bad.yaml")
        print(f"files created by the failing run: {leftovers or 'none'}")


if __name__ == "__main__":
    main()
