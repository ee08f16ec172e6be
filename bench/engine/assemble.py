"""What a claimed cell is made of before it trains: its data (resolved once, cross-dataset or
not), its method (config adapted to the data, weights, seed) and where it runs."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import numpy as np
import torch

from bench.data.cell_data import CellData, load_cell_data
from bench.engine import distributed
from bench.engine.device import Placement, device_name, resolve_device
from bench.method import Method
from bench.registry import METHODS
from bench.suite.schema import Cell
from bench.suite.warmstart import resolve_weights

log = logging.getLogger("bench")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def placement(cell: Cell) -> Placement:
    """Device (``runtime.device``; this rank's GPU under DDP), precision and memory format."""
    train = cell.sections.train
    device = resolve_device(cell.sections.runtime.device, distributed.local_rank())
    return Placement(device, train.precision, train.channels_last)


def placement_tags(where: Placement) -> dict[str, str]:
    return {
        "device": str(where.device),
        "device_name": device_name(where.device),
        "world_size": str(distributed.world()),
    }


def cell_data(cell: Cell, data_root: str | None) -> CellData:
    """The cell's data, loaded (or generated) once: a validation split carved out of the
    training identities when ``train.val_fraction`` asks for one."""
    train = cell.trained_on() if cell.train_side is not None else None
    val = cell.sections.train.val_fraction
    return load_cell_data(cell.tested_on, train, cell.label, data_root, val, cell.seed)


def build_method(
    cell: Cell, data: CellData, workdir: Path = Path(".")
) -> tuple[Method, frozenset[str], list[str]]:
    """The method of a cell with its config adapted to the data: (method, the auxiliary inputs
    it uses, notes on what it fell back to). A ``pretrain:`` warm start in ``model.weights`` is
    looked up under ``workdir``."""
    cls = METHODS.get(cell.method)
    config, notes = cls.adapt_config(cell.method_config, data.available)
    for note in notes:
        log.warning("%s: %s", cell.label, note)
    aux = cls.aux_inputs(config) & data.available
    seed_everything(cell.seed)
    num_classes = len({t.pid for t in data.split.train})
    model = resolve_weights(cell.sections.model, workdir)
    return cls(config, model, cell.sections.data, num_classes), aux, notes
