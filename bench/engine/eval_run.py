"""Evaluate a trained method on any split, as a run of its own: ``bench eval``.

The method is rebuilt as it was trained (:mod:`bench.engine.trained`) and tested with its own
test protocol (the ``eval`` section it was trained with, the method's ``eval_defaults``
included) on the split asked for, under that split's protocol. The run records what a cell's
run records (params, tags, metrics, per-query results, CMC curve, sequence-length heat map and
cost), tagged ``trained_by`` with the training run (or ``weights_file``), and never trains.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.data.cell_data import DataRef
from bench.engine import record
from bench.engine.cost import cost_metrics
from bench.engine.evaluator import score
from bench.engine.seqlen import sequence_length_study
from bench.engine.trained import Trained, placement_for, rebuild, retarget
from bench.engine.types import RunOptions


@dataclass
class EvalResult:
    run_id: str
    label: str
    metrics: dict[str, float]


def evaluate_trained(
    mlf,
    exp_id: str,
    trained: Trained,
    target: DataRef | None,
    experiment: str,
    data_root: str | None = None,
    device: str | None = None,
) -> EvalResult:
    """Test ``trained`` on ``target`` (None: its own test split) and log the evaluation as a
    run of experiment ``experiment`` (id ``exp_id``)."""
    cell = retarget(trained.cell, target, experiment)
    method, data, aux, notes = rebuild(trained, cell, data_root, device)
    source = {"trained_by": trained.run_id} if trained.run_id else {"weights_file": trained.source}
    opts = RunOptions(data_root=data_root, extra_tags=source)
    tags = record.cell_tags(cell, opts, notes, data, placement_for(cell, device))
    run_id = record.start_run(mlf, exp_id, cell)
    record.set_tags(mlf, run_id, tags)
    s = cell.sections
    with record.ending(mlf, run_id, None):
        result = score(method, data.split, s.data, s.eval, aux)
        study = sequence_length_study(method, data.split, s.data, s.eval, aux, cell.seed)
        metrics = {**record.final_metrics(result, study), **cost_metrics(method, s, aux)}
        record.log_metrics(mlf, run_id, metrics)
        record.log_artifacts(mlf, run_id, cell, data.split, result, None, study)
    return EvalResult(run_id, cell.label, metrics)
