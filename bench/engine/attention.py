"""What ``bench show attention`` looks at: a finished run's trained model on one test tracklet.

The run's cell is rebuilt from its ``config.yaml`` artifact (its data, the method with its
adapted config), its trained weights are its ``model.pt`` artifact (a test-time variant's: the
run it took them from, tag ``weights_from``), loaded with ``weights_only=True``. The tracklet
is one of the cell's test tracklets (queries first, then the gallery's others), by index or by
its folder's name.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from bench.config import SECTIONS, Defaults
from bench.data.base import Split, Tracklet
from bench.data.frames import FrameReader
from bench.data.nuisances import read_nuisances
from bench.data.transforms import normalize
from bench.engine.assemble import build_method, cell_data
from bench.engine.evaluator import _unique
from bench.engine.record import logged_weights
from bench.errors import BenchError, ConfigError
from bench.files.artifacts import artifact_yaml, has_artifact
from bench.method import Method
from bench.registry import method_config
from bench.report.attention import AttentionShot, Truth
from bench.suite.schema import Cell, TrainSide

DEFAULT_FRAMES = 8


def run_cell(mlf, run_id: str) -> Cell:
    """The cell a finished run ran, from its tags and its ``config.yaml`` artifact."""
    from mlflow.exceptions import MlflowException

    try:
        run = mlf.get_run(run_id)
        if not has_artifact(mlf, run_id, "config.yaml"):
            raise BenchError(f"RUN: run {run_id} has no config.yaml: not a finished bench cell")
        config = artifact_yaml(mlf, run_id, "config.yaml")
    except MlflowException as exc:
        raise BenchError(f"RUN: no run {run_id} in the MLflow store ({exc.message})") from exc
    fields = dict(config["method"])
    name, variant = fields.pop("name"), fields.pop("variant")
    dataset = dict(config["dataset"])
    side = None
    if "train_dataset" in config:
        source = dict(config["train_dataset"])
        aux = tuple(config["train_aux"]) if "train_aux" in config else None
        side = TrainSide(source.pop("name"), source, config["train_split"], aux)
    return Cell(
        run.data.tags.get("suite", ""),
        dataset.pop("name"),
        dataset,
        config["split"],
        name,
        variant,
        config["seed"],
        method_config(name).model_validate(fields),
        Defaults.model_validate({k: config[k] for k in SECTIONS if k in config}),
        run.data.tags.get("dataset", ""),
        side,
    )


def trained_method(mlf, run_id: str, cell: Cell, data) -> tuple[Method, frozenset[str]]:
    """The cell's method with the run's trained weights (no start weights are read)."""
    source = mlf.get_run(run_id).data.tags.get("weights_from", run_id)
    state = logged_weights(mlf, source)
    if state is None:
        raise BenchError(f"RUN: run {source} logged no trained weights (model.pt)")
    model = cell.sections.model.model_copy(update={"weights": None, "pretrained": False})
    bare = replace(cell, sections=cell.sections.model_copy(update={"model": model}))
    method, aux, _ = build_method(bare, data)
    method.load_state_dict(state)
    return method.eval(), aux


def folder_name(track: Tracklet) -> str:
    """The name of a tracklet's folder (a generated one's, above its ``frames/``)."""
    folder = Path(track.frames[0]).parent
    return folder.parent.name if folder.name == "frames" else folder.name


def pick_tracklet(split: Split, ident: str) -> tuple[int, Tracklet]:
    """A test tracklet by index (queries first, then the gallery's others) or folder name."""
    tracks = _unique(split)
    if ident.isdigit() and int(ident) < len(tracks):
        return int(ident), tracks[int(ident)]
    named = [(i, t) for i, t in enumerate(tracks) if ident in Path(t.frames[0]).parts]
    if len(named) == 1:
        return named[0]
    example = folder_name(tracks[0])
    raise ConfigError(
        "--tracklet",
        f"expected an index 0..{len(tracks) - 1} or one test tracklet's folder name such as "
        f"{example} (got {ident!r}: {len(named)} tracklets match)",
    )


def frame_window(n: int, start: int, count: int) -> list[int]:
    """``count`` consecutive frames of a tracklet of ``n`` from ``start`` (within the tracklet;
    repeated cyclically when it is shorter)."""
    if start >= n:
        raise ConfigError("--start", f"expected a frame index below {n} (got {start})")
    first = max(0, min(start, n - count))
    return [(first + k) % n for k in range(count)]


def truth_of(track: Tracklet, picks: list[int], reader: FrameReader) -> Truth | None:
    if track.exact is None:
        return None
    records = read_nuisances(track.exact.nuisances, len(track.frames))
    masks = torch.stack([reader.mask(track.exact.masks[i]) for i in picks]).numpy()
    kinds = [records.misdetection[i] for i in picks]
    return Truth(masks.astype(np.uint8), kinds, records.occluded[picks])


def attention_shot(
    mlf, run_id: str, tracklet: str, start: int, frames: int | None, data_root: str | None
) -> AttentionShot:
    """The trained model's attention over frames of one test tracklet, with its truth."""
    cell = run_cell(mlf, run_id)
    data = cell_data(cell, data_root)
    index, track = pick_tracklet(data.split, tracklet)
    method, aux = trained_method(mlf, run_id, cell, data)
    count = method.fixed_clip_len or min(frames or DEFAULT_FRAMES, len(track.frames))
    picks = frame_window(len(track.frames), start, count)
    reader = FrameReader(cell.sections.data.height, cell.sections.data.width, cache=False)
    sample = reader.clip(track, picks, aux)
    batch = {k: v[None] for k, v in sample.items()}
    with torch.no_grad():
        view = method.attention(normalize(sample["clips"])[None], batch)
    if view is None:
        raise BenchError(f"RUN: {cell.method} has no attention to draw")
    title = f"{cell.label} (run {run_id[:8]}), test tracklet {index}: {folder_name(track)}"
    images = sample["clips"].permute(0, 2, 3, 1).numpy()
    return AttentionShot(images, picks, view, truth_of(track, picks, reader), title)
