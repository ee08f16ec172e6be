"""Identities as combinations of part attributes drawn from small palettes.

Every part (head, upper garment, lower garment, shoes, bag, body shape, skin) takes one value
from a short palette. Values are drawn with a skewed frequency (some garments are common) and
then repaired so that no value is held by a single identity: no single part identifies a
person, and the combination of all parts does (combinations are made unique by swapping part
values between identities, which keeps every value's count).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from bench.errors import ConfigError

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "black": (34, 34, 38),
    "white": (222, 222, 216),
    "grey": (128, 128, 132),
    "navy": (36, 44, 92),
    "blue": (58, 108, 188),
    "denim": (72, 96, 138),
    "red": (178, 40, 42),
    "green": (52, 118, 62),
    "yellow": (218, 186, 58),
    "brown": (108, 72, 44),
    "beige": (198, 178, 140),
    "khaki": (138, 128, 82),
    "pink": (218, 140, 168),
    "purple": (108, 60, 138),
    "orange": (222, 118, 40),
    "blond": (196, 164, 96),
    "auburn": (128, 58, 30),
}
SKIN_TONES: dict[str, RGB] = {
    "light": (236, 196, 170),
    "medium": (206, 156, 118),
    "tan": (170, 120, 84),
    "dark": (112, 76, 54),
}
# Body shapes: (width factor, leg-length factor).
BODY_SHAPES: dict[str, tuple[float, float]] = {
    "slim": (0.86, 1.04),
    "average": (1.0, 1.0),
    "broad": (1.2, 0.98),
    "stocky": (1.12, 0.9),
}

# Palettes: one tuple per value; see docs/synthetic.md for their meaning.
PALETTES: dict[str, tuple[tuple, ...]] = {
    "head": (  # (style, colour): short/long hair, cap, beanie
        ("short", "black"),
        ("short", "brown"),
        ("short", "blond"),
        ("short", "grey"),
        ("long", "black"),
        ("long", "brown"),
        ("long", "blond"),
        ("long", "auburn"),
        ("cap", "red"),
        ("cap", "navy"),
        ("cap", "white"),
        ("beanie", "black"),
    ),
    "upper": (  # (colour, pattern, second colour, sleeves)
        ("white", "solid", "white", "short"),
        ("black", "solid", "black", "long"),
        ("grey", "solid", "grey", "long"),
        ("navy", "solid", "navy", "short"),
        ("red", "solid", "red", "short"),
        ("green", "solid", "green", "long"),
        ("beige", "solid", "beige", "long"),
        ("purple", "solid", "purple", "short"),
        ("blue", "stripes", "white", "long"),
        ("red", "stripes", "navy", "long"),
        ("navy", "stripes", "white", "short"),
        ("yellow", "logo", "black", "short"),
        ("white", "logo", "red", "short"),
        ("black", "logo", "white", "long"),
        ("grey", "two-tone", "blue", "long"),
        ("orange", "two-tone", "grey", "short"),
    ),
    "lower": (  # (colour, kind)
        ("denim", "trousers"),
        ("black", "trousers"),
        ("grey", "trousers"),
        ("khaki", "trousers"),
        ("navy", "trousers"),
        ("brown", "trousers"),
        ("beige", "shorts"),
        ("black", "shorts"),
        ("denim", "shorts"),
        ("black", "skirt"),
        ("red", "skirt"),
        ("blue", "skirt"),
    ),
    "shoes": (("black",), ("white",), ("brown",), ("grey",), ("red",), ("blue",)),
    "bag": (  # (kind, colour)
        ("none", "black"),
        ("backpack", "black"),
        ("backpack", "red"),
        ("backpack", "blue"),
        ("shoulder", "brown"),
        ("shoulder", "black"),
        ("hand", "beige"),
        ("hand", "black"),
    ),
    "body": tuple((name,) for name in BODY_SHAPES),
    "skin": tuple((name,) for name in SKIN_TONES),
}
PARTS = tuple(PALETTES)


@dataclass(frozen=True)
class Identity:
    """One person: a palette index per part, a fine colour tint, and a personal gait."""

    pid: int
    parts: dict[str, int]
    tint: tuple[float, float, float]
    cadence: float  # walking cycles per frame
    arm_swing: float  # shoulder swing amplitude (radians)
    width: float  # personal width factor around the body shape's

    def value(self, part: str) -> tuple:
        return PALETTES[part][self.parts[part]]


def sample_identities(rng: np.random.Generator, pids: list[int]) -> list[Identity]:
    """Identities for ``pids`` whose every part value is shared and whose combination is not."""
    n = len(pids)
    columns = {part: _shared_values(rng, len(PALETTES[part]), n) for part in PARTS}
    _make_unique(rng, columns, n)
    return [
        Identity(pid, {part: int(columns[part][i]) for part in PARTS}, *_personal(rng))
        for i, pid in enumerate(pids)
    ]


def random_identity(rng: np.random.Generator, pid: int = -1) -> Identity:
    """A stranger (distractor, passer-by, wrong detection): parts drawn freely."""
    parts = {part: int(rng.integers(len(PALETTES[part]))) for part in PARTS}
    return Identity(pid, parts, *_personal(rng))


def _personal(rng: np.random.Generator) -> tuple:
    """tint, cadence, arm swing and width of one person."""
    tint = tuple(float(t) for t in rng.normal(0.0, 9.0, 3))
    return (
        tint,
        float(rng.uniform(0.07, 0.11)),
        float(rng.uniform(0.25, 0.6)),
        float(rng.normal(1.0, 0.04)),
    )


def _shared_values(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """n draws from a skewed distribution over ``size`` values, no value held exactly once."""
    weights = 1.0 / (1.0 + rng.permutation(size)) ** 0.7
    values = rng.choice(size, n, p=weights / weights.sum())
    if n < 2:
        return values
    while True:
        counts = Counter(values.tolist())
        single = [i for i, v in enumerate(values) if counts[v] == 1]
        if not single:
            return values
        if len(single) >= 2:  # pair two lone values (keeps rare values in use)
            values[single[0]] = values[single[1]]
        else:  # the last lone one joins a shared value
            shared = [v for v, c in counts.items() if c >= 2]
            values[single[0]] = shared[int(rng.integers(len(shared)))]


def _make_unique(rng: np.random.Generator, columns: dict[str, np.ndarray], n: int) -> None:
    """Swap part values between identities until all combinations differ (counts unchanged)."""
    for _ in range(100 * n + 100):
        rows = [tuple(r) for r in np.stack([columns[p] for p in PARTS], 1).tolist()]
        combos = Counter(rows)
        dup = [i for i in range(n) if combos[rows[i]] > 1]
        if not dup:
            return
        part = PARTS[int(rng.integers(len(PARTS)))]
        i, j = dup[0], int(rng.integers(n))
        columns[part][i], columns[part][j] = columns[part][j], columns[part][i]
    raise ConfigError("synthetic", f"cannot make {n} identities with distinct attribute sets")


def sharing(identities: list[Identity]) -> dict[str, float]:
    """Per part: the fraction of identities whose value is held by at least one other."""
    if not identities:
        return {part: 0.0 for part in PARTS}
    result = {}
    for part in PARTS:
        counts = Counter(ident.parts[part] for ident in identities)
        shared = sum(counts[ident.parts[part]] > 1 for ident in identities)
        result[part] = shared / len(identities)
    return result
