"""Deprecated path of :mod:`bench.eval.distance`, kept for plugins for one release."""

import warnings

from bench.eval.distance import METRICS, cosine, euclidean

__all__ = ["METRICS", "cosine", "euclidean"]

warnings.warn(
    "bench.distance moved to bench.eval.distance; the old path goes in the next release",
    DeprecationWarning,
    stacklevel=2,
)
