"""Paired rows with a known difference, drawn many times at once, for the coverage of the
intervals of bench.report.stats (tests/test_stats.py, benchmarks/interval_coverage.py).

Each repetition draws a test set of identities (each with its own ease and its own effect on
B - A), per-seed training effects of each row, and the hits at rank 1 of every query: B's and
A's hits share one uniform draw per query and seed (a query hard for one row is hard for the
other), so that a query's B - A is -1, 0 or 1. The true difference, over the population of
identities and seeds, is ``delta``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scenario:
    """Sizes of the variation: ``seed_sd`` of each seed's effect on B - A (hit probability),
    ``identity_width``: an identity's effect on B - A is uniform in +- this."""

    name: str
    seed_sd: float
    identity_width: float


SCENARIOS = (
    Scenario("seeds dominate", seed_sd=0.04, identity_width=0.0),
    Scenario("identities dominate", seed_sd=0.0, identity_width=0.25),
    Scenario("both", seed_sd=0.02, identity_width=0.2),
)
DELTA = 0.05  # B - A, as a fraction (5 points)


def draw(
    rng: np.random.Generator,
    scenario: Scenario,
    reps: int,
    seeds: int,
    n_ids: int = 60,
    delta: float = DELTA,
) -> tuple[np.ndarray, np.ndarray]:
    """-> (diff (reps, S, I): per-identity sums of B - A hits per seed, counts (I,): queries
    per identity, 1 to 8, the same in every repetition)."""
    counts = rng.integers(1, 9, size=n_ids)
    groups = np.repeat(np.arange(n_ids), counts)
    ease = rng.uniform(0.3, 0.6, size=(reps, 1, n_ids))
    effect = rng.uniform(-1, 1, size=(reps, 1, n_ids)) * scenario.identity_width
    # each row's training noise; their difference has sd seed_sd
    noise_a, noise_b = rng.normal(0, scenario.seed_sd / np.sqrt(2), size=(2, reps, seeds, 1))
    p_a = np.clip(ease + noise_a, 0, 1)[..., groups]
    p_b = np.clip(ease + delta + effect + noise_b, 0, 1)[..., groups]
    u = rng.uniform(size=(reps, seeds, len(groups)))
    per_query = (u < p_b).astype(float) - (u < p_a)
    onehot = np.zeros((len(groups), n_ids))
    onehot[np.arange(len(groups)), groups] = 1.0
    return per_query @ onehot, counts.astype(float)


def covered(lo: np.ndarray, hi: np.ndarray, truth: float = DELTA) -> np.ndarray:
    """Whether each interval holds the true difference."""
    return (lo <= truth) & (hi >= truth)
