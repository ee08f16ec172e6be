"""How often the 95 % interval of B - A covers the true difference: the intervals of
bench.report.stats against the earlier paired cluster bootstrap (identities and seeds drawn
with replacement, 2.5 / 97.5 percentiles), on the simulation of tests/stats_simulation.py,
for 3 and 5 seeds.

    python benchmarks/interval_coverage.py [--reps 2000] [--boot 2000]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/ beside bench/

from bench.report.stats import interval, split_spread  # noqa: E402
from tests.stats_simulation import SCENARIOS, covered, draw  # noqa: E402


def percentile_bootstrap(diff: np.ndarray, counts: np.ndarray, n_boot: int, rng) -> np.ndarray:
    """The earlier interval: (reps, 2) percentiles of B - A over resamples of the identities
    and of the seeds (one resample shared by the repetitions, each repetition's own data)."""
    reps, n_seeds, n_ids = diff.shape
    w_ids = rng.multinomial(n_ids, np.full(n_ids, 1 / n_ids), size=n_boot).astype(float)
    w_seeds = rng.multinomial(n_seeds, np.full(n_seeds, 1 / n_seeds), size=n_boot) / n_seeds
    out = np.empty((reps, 2))
    for r in range(reps):
        per_seed = (w_ids @ diff[r].T) / (w_ids @ counts)[:, None]  # (n_boot, S)
        out[r] = np.percentile((per_seed * w_seeds).sum(1), [2.5, 97.5])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=2000)
    parser.add_argument("--boot", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'scenario':22} {'seeds':>5} {'old':>7} {'new':>7} {'new width / old':>16}")
    for scenario in SCENARIOS:
        for seeds in (3, 5):
            diff, counts = draw(rng, scenario, args.reps, seeds)
            old = percentile_bootstrap(diff, counts, args.boot, rng)
            lo, hi = interval(split_spread(diff, counts))
            cover_old = covered(old[:, 0], old[:, 1]).mean()
            cover_new = covered(lo, hi).mean()
            ratio = np.median((hi - lo) / (old[:, 1] - old[:, 0]))
            print(f"{scenario.name:22} {seeds:5d} {cover_old:7.1%} {cover_new:7.1%} {ratio:16.2f}")


if __name__ == "__main__":
    main()
