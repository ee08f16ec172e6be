"""The devices a command runs on and its ``--ddp``, checked before any work.

- ``--ddp N`` (:func:`check_ddp`, no torch needed, so before a dry run too): every cell's
  ``data.p`` splits evenly over the N ranks (each takes P / N identities of a batch).
- Devices (:func:`check_devices`): each distinct ``runtime.device`` of the cells and of the
  ``pretrain:`` stage is on this machine (CUDA or MPS available, the GPU index visible, N GPUs
  for N ranks on CUDA), and ``train.sync_bn`` under DDP runs on CUDA.

Errors name ``--device`` when the flag set the device, else the suite's key path.
"""

from __future__ import annotations

from bench.errors import ConfigError
from bench.suite.checks import key_path
from bench.suite.schema import Cell, Suite
from bench.suite.warmstart import PretrainSpec


def check_ddp(suite: Suite, cells: list[Cell], ddp: int) -> None:
    if ddp == 1:
        return
    for cell in cells:
        p = cell.sections.data.p
        if p % ddp:
            raise ConfigError(
                f"{suite.path}: {key_path(suite, cell, 'data', 'p')}",
                f"expected a multiple of --ddp {ddp}: each of the {ddp} ranks takes p / {ddp} "
                f"identities of every batch (got {p})",
            )


def _where(suite: Suite, cell: Cell | None, flag: str | None, section: str, key: str) -> str:
    path = key_path(suite, cell, section, key) if cell else f"defaults.{section}.{key}"
    return flag if flag and path == f"defaults.{section}.{key}" else f"{suite.path}: {path}"


def check_devices(
    suite: Suite,
    cells: list[Cell],
    flag: str | None = None,
    ddp: int = 1,
    stage: PretrainSpec | None = None,
) -> None:
    """``flag``: the ``--device`` given (it set ``defaults.runtime.device``)."""
    import torch

    from bench.engine.device import device_problem

    wanted: dict[str, Cell | None] = {}
    for cell in cells:
        wanted.setdefault(cell.sections.runtime.device, cell)
    if stage is not None:
        wanted.setdefault(stage.device, None)
    for spec, cell in wanted.items():
        problem = device_problem(spec, ddp if cell is not None else 1)
        if problem is not None:
            where = _where(suite, cell, flag and "--device", "runtime", "device")
            raise ConfigError(where, f"expected a device of this machine: {problem} (got '{spec}')")
    for cell in cells if ddp > 1 else []:
        device = cell.sections.runtime.device
        on_cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
        if on_cpu and cell.sections.train.sync_bn:
            raise ConfigError(
                f"{suite.path}: {key_path(suite, cell, 'train', 'sync_bn')}",
                f"expected false with --ddp {ddp} on the CPU: torch's SyncBatchNorm runs on "
                "CUDA devices only (got true)",
            )
