"""A trained method found again, from its MLflow run or from a weights file and the config it
was trained with, tested on any dataset split, and rebuilt ready to embed.

A training run leaves ``config.yaml`` (the cell's resolved config) and ``model.pt`` (its state
dict; a test-time variant's run has none and names the run whose weights it used in its
``weights_from`` tag). :func:`cell_of_config` turns the config back into the :class:`Cell` it
came from; :func:`retarget` makes that cell one that is tested on another split while it is
still trained on its own training side (a cross-dataset cell, without retraining);
:func:`rebuild` builds the method as the cell built it and loads the weights. Everything read
from disk is read without unpickling (``yaml.safe_load``, ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
import yaml

from bench.config import Defaults
from bench.data.cell_data import CellData, DataRef
from bench.engine.assemble import build_method, cell_data
from bench.engine.device import Placement, place, resolve_device
from bench.errors import BenchError
from bench.files.artifacts import artifact_yaml, has_artifact, read_artifact
from bench.method import Method
from bench.registry import method_config
from bench.suite.schema import Cell, TrainSide

CONFIG = "config.yaml"
WEIGHTS = "model.pt"


@dataclass
class Trained:
    """A trained method: the cell it was trained as, its weights and where they came from."""

    cell: Cell
    state: dict[str, torch.Tensor]
    run_id: str | None = None  # the run that trained it (None: weights from a file)
    source: str = ""  # what the weights are, in words


def cell_of_config(cfg: dict, suite: str = "", label: str = "") -> Cell:
    """The cell a run's resolved config (``config.yaml``) describes."""
    try:
        dataset, method = dict(cfg["dataset"]), dict(cfg["method"])
        name, variant = method.pop("name"), method.pop("variant")
        sections = Defaults.model_validate({k: cfg[k] for k in Defaults.model_fields})
        side = None
        if "train_dataset" in cfg:
            train = dict(cfg["train_dataset"])
            aux = cfg.get("train_aux")
            side = TrainSide(train.pop("name"), train, int(cfg["train_split"]), aux and tuple(aux))
        return Cell(
            suite,
            dataset.pop("name"),
            dataset,
            int(cfg["split"]),
            name,
            variant,
            int(cfg["seed"]),
            method_config(name).model_validate(method),
            sections,
            label,
            side,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise BenchError(f"{CONFIG}: not a run's resolved config ({exc})") from exc


def from_files(weights: Path, config: Path) -> Trained:
    """A method from a state-dict file and the ``config.yaml`` of its training."""
    cfg = yaml.safe_load(Path(config).read_text())
    cell = cell_of_config(cfg if isinstance(cfg, dict) else {}, "files")
    return Trained(cell, load_state(weights), None, f"weights file {weights}")


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """A state dict saved with ``torch.save``, loaded without unpickling."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several kinds for a file that is not weights
        raise BenchError(f"{path}: not a state dict that loads with weights_only ({exc})") from exc
    if not isinstance(state, dict):
        raise BenchError(f"{path}: expected a state dict (got {type(state).__name__})")
    return state


def from_run(mlf, run_id: str) -> Trained:
    """A method from a finished MLflow run: its config, and its weights (or, for a test-time
    variant, those of the run named by its ``weights_from`` tag)."""
    run = mlf.get_run(run_id)
    if run.info.status != "FINISHED":
        raise BenchError(f"run {run_id}: {run.info.status}, not FINISHED: it has no trained model")
    tags = run.data.tags
    holder = tags.get("weights_from", run_id)
    if not has_artifact(mlf, holder, WEIGHTS):
        raise BenchError(
            f"run {run_id}: no {WEIGHTS} artifact (a tune trial, or a run that did not train)"
        )
    cfg = artifact_yaml(mlf, run_id, CONFIG)
    exp = mlf.get_experiment(run.info.experiment_id).name
    label = tags.get("dataset", "") if tags.get("dataset") != tags.get("dataset_name") else ""
    cell = cell_of_config(cfg, tags.get("suite", exp), label)
    state = read_artifact(mlf, holder, WEIGHTS, load_state)
    return Trained(cell, state, run_id, f"run {run_id} ({tags.get('mlflow.runName', '')})")


def retarget(cell: Cell, target: DataRef | None, suite: str) -> Cell:
    """The cell as an evaluation in experiment ``suite``: tested on ``target`` (None: its own
    test split), trained on what it was trained on."""
    if target is None or target == cell.tested_on:
        return replace(cell, suite=suite)
    trained = cell.trained_on()
    side = cell.train_side or TrainSide(trained.dataset, trained.options, trained.split)
    return replace(
        cell,
        suite=suite,
        dataset=target.dataset,
        dataset_options=target.options,
        split=target.split,
        dataset_label=changed_options(trained, target),
        train_side=side,
    )


def changed_options(trained: DataRef, target: DataRef) -> str:
    """A label for a test split of the training dataset under other options (its changed
    options, e.g. ``synthetic-video polluted=True``); empty for another dataset, whose cell
    is labelled ``train→test``."""
    if target.dataset != trained.dataset:
        return ""
    changed = {k: v for k, v in target.options.items() if trained.options.get(k) != v}
    shown = " ".join(f"{k}={v}" for k, v in sorted(changed.items()))
    split = f" split {target.split}" if target.split != trained.split else ""
    return f"{target.dataset} {shown}{split}".strip()


def rebuild(
    trained: Trained, cell: Cell, data_root: str | None, device: str | None = None
) -> tuple[Method, CellData, frozenset[str], list[str]]:
    """The method of ``cell`` (a :func:`retarget` of the trained cell) with the trained
    weights, on ``device`` (default: the cell's ``runtime.device``): (method, the cell's data,
    its auxiliary inputs, notes on fallbacks)."""
    data = cell_data(cell, data_root)
    # the weights come from the state dict: no warm start or download is needed to build it
    model = cell.sections.model.model_copy(update={"weights": None, "pretrained": False})
    built = replace(cell, sections=cell.sections.model_copy(update={"model": model}))
    method, aux, notes = build_method(built, data)
    try:
        method.load_state_dict(trained.state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise BenchError(
            f"{trained.source}: the weights do not fit {cell.method}: {first}"
        ) from exc
    where = placement_for(cell, device)
    place(method, where)
    method.eval()
    return method, data, aux, notes


def placement_for(cell: Cell, device: str | None) -> Placement:
    """Where an evaluation runs: ``device`` or the cell's own, at its training precision."""
    train = cell.sections.train
    return Placement(
        resolve_device(device or cell.sections.runtime.device), train.precision, train.channels_last
    )
