"""The method's probes on the test split: what its mechanism does, against the exact truth.

They run in every cell whose test data has exact annotations (generated data), on a bounded
sample of test tracklets (:data:`PROBE_TRACKLETS`, one clip each: bench/data/probe_clips.py),
and are logged as ``probe.<name>`` beside R1 and mAP. Elsewhere they are skipped with a reason
(a run tag ``probes``). docs/probes.md says what each method's probes measure.
"""

from __future__ import annotations

import logging
import math

import torch

from bench.config import DataConfig, EvalConfig
from bench.data.base import Split
from bench.data.probe_clips import probe_loader
from bench.engine.device import autocast, placement_of, to_device
from bench.engine.evaluator import _unique
from bench.method import Method
from bench.models.probes import ProbeBatch

log = logging.getLogger("bench")

#: test tracklets probed per cell (one clip each): the probes stay a small part of a cell
PROBE_TRACKLETS = 32
NO_TRUTH = "the test data has no exact annotations (probes run on generated video data)"


def probe_batches(loader, aux: frozenset[str], device: torch.device):
    """The loader's batches as :class:`ProbeBatch` on ``device``."""
    for raw in loader:
        batch = to_device(raw, device)
        yield ProbeBatch(
            clips=batch["clips"],
            aux={k: batch[k] for k in aux if k in batch},
            masks=batch["exact_masks"],
            keypoints=batch["exact_keypoints"],
            misdetected=batch["misdetected"],
            occluded=batch["occluded"],
        )


def run_probes(
    method: Method, split: Split, data: DataConfig, ev: EvalConfig, aux: frozenset[str]
) -> tuple[dict[str, float], str | None]:
    """(``probe.<name>`` metrics, why there are none, or None) of ``method`` on the test split."""
    declared = type(method).probe_names
    if not declared:
        return {}, None
    tracks = [t for t in _unique(split) if t.exact is not None]
    if not tracks:
        return {}, NO_TRUTH
    length = method.fixed_clip_len or ev.clip_len or data.seq_len
    loader = probe_loader(tracks, data, length, aux, PROBE_TRACKLETS, ev.batch_size)
    where = placement_of(method)
    method.eval()
    with torch.no_grad(), autocast(where):
        values = method.probes(probe_batches(loader, aux, where.device))
    unknown = set(values) - set(declared)
    if unknown:
        raise ValueError(f"{method.name}: probes {sorted(unknown)} are not in its probe_names")
    metrics = {f"probe.{k}": float(v) for k, v in values.items() if math.isfinite(float(v))}
    if metrics:
        return metrics, None
    return {}, (
        "no probe is defined for this config on this data (a control without the mechanism, or "
        "no nuisance to contrast)"
    )
