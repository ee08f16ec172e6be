"""The MLflow record of one cell: whether it ran already, its run (started or adopted), its
tags, metrics and artifacts, and how the run ends.

Rank 0 alone calls these under DDP. A run's params are the cell's resolved config; a resumed
run logs every (metric, step) once (:mod:`bench.engine.once`).
"""

from __future__ import annotations

import logging
import numbers
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from importlib.metadata import version
from pathlib import Path

import torch
import yaml

from bench.data.base import Split
from bench.data.cell_data import CellData
from bench.engine import claims, distributed, killpoints, once, stale
from bench.engine.assemble import placement_tags
from bench.engine.device import Placement
from bench.engine.seqlen import SeqLenStudy
from bench.engine.tracking import environment_tags, flatten, runs_with_hash
from bench.engine.trained import WEIGHTS, load_state
from bench.engine.types import CellResult, CellStopped, RunOptions
from bench.errors import BenchError
from bench.eval.per_query import PER_QUERY, write_per_query
from bench.files.artifacts import has_artifact, read_artifact
from bench.method import Method
from bench.report.figures import cmc_figure, heatmap_figure
from bench.suite.schema import Cell


def finished_run(mlf, exp_id: str, cell: Cell):
    """The newest FINISHED run of the cell's config hash, if any."""
    runs = runs_with_hash(mlf, exp_id, cell.config_hash, ("FINISHED",))
    return runs[0] if runs else None


def earlier_result(mlf, exp_id: str, cell: Cell, opts: RunOptions) -> CellResult | None:
    """The cell's finished run if any and not forced, else with ``reuse_stale`` a finished run
    of its config made by other code (:mod:`bench.engine.stale`)."""
    done = None if opts.force else finished_run(mlf, exp_id, cell)
    if done is not None:
        return CellResult(cell, done.info.run_id, "skipped", dict(done.data.metrics))
    reused = stale.reuse(mlf, exp_id, cell) if opts.reuse_stale and not opts.force else None
    if reused is None:
        return None
    run_id, metrics, note = reused
    return CellResult(cell, run_id, "reused", metrics, note=note)


def cell_tags(
    cell: Cell, opts: RunOptions, notes: list[str], data: CellData, where: Placement
) -> dict[str, str]:
    """Everything a cell's run is tagged with: what it is, where it ran, the code and the
    environment, a cross-dataset cell's two sides, and any auxiliary-input fallback."""
    tags = {
        "suite": cell.suite,
        "dataset": cell.shown_dataset,
        "dataset_name": cell.dataset_name,
        "split": str(cell.split),
        "method": cell.method,
        "variant": cell.variant,
        "seed": str(cell.seed),
        "config_hash": cell.config_hash,
        "config_key": cell.config_key,
        "code_fingerprint": cell.code["fingerprint"],
        "train_hash": cell.train_hash,
        "aux": str(cell.dataset_options.get("aux", "estimated")),
        "mlflow.runName": cell.run_name,
        "protocol": data.split.protocol.name,
        **data.tags,
        **placement_tags(where),
        **environment_tags(),
        **opts.extra_tags,
    }
    if opts.parent_run_id:
        tags["mlflow.parentRunId"] = opts.parent_run_id
    if notes:
        tags["aux_fallback"] = " | ".join(notes)
    return tags


def open_run(
    mlf, exp_id: str, cell: Cell, opts: RunOptions, tags: dict, claim: claims.Claim
) -> tuple[str, bool]:
    """(run id, resumed?): adopt the previous owner's run if it left a checkpoint, else start
    a run with the resolved config as params; other RUNNING runs of this hash are orphans (of
    dead workers, or of a create retried after its reply was lost) and closed as KILLED. The
    run is recorded in the claim and tagged."""
    resumed = not opts.force and claim.run_id is not None and claim.inherit_checkpoint()
    if resumed:
        run_id = claim.run_id
        mlf.update_run(run_id, status="RUNNING")
    else:  # tagged at once: a create retried after a lost reply leaves a run found below
        run_id = start_run(mlf, exp_id, cell)
    for run in runs_with_hash(mlf, exp_id, cell.config_hash, ("RUNNING",)):
        if run.info.run_id != run_id:
            mlf.set_terminated(run.info.run_id, status="KILLED")
    claim.set_run(run_id)
    set_tags(mlf, run_id, tags)
    return run_id, resumed


def start_run(mlf, exp_id: str, cell: Cell) -> str:
    """A new run of the cell, named by its label and tagged with its config hash at creation,
    with its resolved config as params."""
    hashed = {"config_hash": cell.config_hash}
    run_id = mlf.create_run(exp_id, run_name=cell.run_name, tags=hashed).info.run_id
    params = flatten(cell.resolved())
    mlf.log_batch(run_id, params=[param(k, v) for k, v in params.items()])
    return run_id


def set_tags(mlf, run_id: str, tags: dict[str, str]) -> None:
    for key, value in tags.items():
        mlf.set_tag(run_id, key, value)


def param(key: str, value: object):
    """An MLflow param (values cut to MLflow's length limit)."""
    from mlflow.entities import Param

    return Param(key, str(value)[:6000])


@contextmanager
def ending(mlf, run_id: str, claim: claims.Claim | None) -> Iterator[None]:
    """End the cell's run with the block: FINISHED, KILLED when stopped on purpose (Ctrl-C, a
    pruned trial), else FAILED with an ``error`` tag. A lost claim leaves the run to its new
    owner. Rank 0 writes; the other ranks only pass the exception on."""
    try:
        yield
        if claim is not None:
            claim.check()
    except claims.ClaimLost:
        raise
    except BaseException as exc:
        stopped = isinstance(exc, (KeyboardInterrupt, CellStopped))
        if distributed.is_rank0():
            if not stopped:
                mlf.set_tag(run_id, "error", error_message(exc))
            mlf.set_terminated(run_id, status="KILLED" if stopped else "FAILED")
        raise
    if distributed.is_rank0():
        killpoints.reached("before_finished")
        mlf.set_terminated(run_id, status="FINISHED")


def error_message(exc: BaseException) -> str:
    """The ``error`` tag of a failed run: the exception's message (its type if it has none)."""
    text = str(exc).strip() or type(exc).__name__
    return (text if isinstance(exc, BenchError) else f"{type(exc).__name__}: {text}")[:5000]


def log_metrics(mlf, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = once.unlogged(mlf, run_id, metrics, step or 0)  # a resumed run logs once
    items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()]
    mlf.log_batch(run_id, metrics=items)


def final_metrics(result: dict, study: SeqLenStudy | None) -> dict[str, float]:
    """The numbers of an evaluation (and of a sequence-length study) as MLflow metrics."""
    metrics = {k: float(v) for k, v in result.items() if isinstance(v, numbers.Real)}
    return metrics if study is None else {**metrics, **study.metrics()}


def log_artifacts(
    mlf, run_id: str, cell: Cell, split: Split, result: dict, model: Method | None, study
) -> None:
    """config.yaml, the CMC curve, the per-query results, the sequence-length heat map and,
    when the cell trained ``model``, its weights twice: ``model.pt`` (the state dict bench
    reads, ``weights_only``) and ``model/`` (an MLflow PyTorch model, :func:`pytorch_model`)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "config.yaml").write_text(yaml.safe_dump(cell.resolved(), sort_keys=False))
        (out / "cmc.yaml").write_text(yaml.safe_dump({"cmc": result["cmc"]}))
        write_per_query(out / PER_QUERY, result, split.query)
        cmc_figure({cell.label: result["cmc"]}, cell.label, out / "cmc.png")
        if study is not None:
            title = f"rank-1 by sequence length, mean of {study.draws} draws\n{cell.label}"
            heatmap_figure(study.mean, title, out / "seqlen.png")
            (out / "seqlen.yaml").write_text(yaml.safe_dump(study.rows(), sort_keys=False))
        if model is not None:
            torch.save(model.state_dict(), out / WEIGHTS)
            pytorch_model(model, out / MODEL_DIR)
        for path in sorted(out.iterdir()):  # one by one: a kill in between is tested
            if path.is_dir():
                mlf.log_artifacts(run_id, str(path), path.name)
            else:
                mlf.log_artifact(run_id, str(path))
            killpoints.reached("artifact_logged")


#: the MLflow PyTorch model of a run that trained: ``mlflow.pytorch.load_model(runs:/ID/model)``
MODEL_DIR = "model"


def pytorch_model(method: Method, path: Path) -> None:
    """Save a CPU copy of ``method`` (in eval mode) as an MLflow PyTorch model at ``path``:
    ``mlflow.pytorch.load_model`` returns it ready to embed (``model.embed(clips, {})``).
    MLflow's flavour pickles the whole module (and unpickles it on load); bench itself reads
    only ``model.pt``."""
    import mlflow.pytorch

    copy = deepcopy(method).cpu().eval()
    requirements = [f"{pkg}=={version(pkg)}" for pkg in ("torch", "timm")]
    quiet = logging.getLogger("mlflow.pytorch")  # its warning about pickle: docs/api.md says it
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        mlflow.pytorch.save_model(
            copy, str(path), pip_requirements=requirements, serialization_format="pickle"
        )
    finally:
        quiet.setLevel(level)


def trained_weights(mlf, exp_id: str, cell: Cell) -> tuple[str, dict] | None:
    """(run id, state dict) of a finished run that trained this cell's model already: same
    train hash, its own trained weights logged (a cell differing only at test time)."""
    runs = mlf.search_runs(
        [exp_id],
        filter_string=f"tags.train_hash = '{cell.train_hash}' and attributes.status = 'FINISHED'",
    )
    for run in runs:
        if "weights_from" in run.data.tags:
            continue
        state = logged_weights(mlf, run.info.run_id)
        if state is not None:
            return run.info.run_id, state
    return None


def logged_weights(mlf, run_id: str) -> dict | None:
    """The state dict a run logged as its ``model.pt`` artifact (never unpickled), or None."""
    if not has_artifact(mlf, run_id, WEIGHTS):
        return None
    return read_artifact(mlf, run_id, WEIGHTS, load_state)
