"""bench from Python: the commands as functions that return what they made.

    from bench import api
    api.run("suites/video.yaml")                 # the grid; one row per cell
    runs = api.results("video")                  # the finished runs as a DataFrame
    api.evaluate(runs.run_id[0], dataset="mars") # a trained method on another dataset
    emb = api.extract(runs.run_id[0], "emb.npz") # embeddings (bench.api.read_embeddings)

Each function validates its arguments as the command does and raises
:class:`bench.errors.BenchError` (one line, naming what was wrong) before any work;
docs/api.md walks through them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench import runner
from bench.eval.embeddings_file import Embeddings, read_embeddings

__all__ = [
    "Embeddings",
    "compare",
    "eval",
    "evaluate",
    "export",
    "extract",
    "read_embeddings",
    "report",
    "results",
    "run",
    "show_ranks",
]

#: the tags that say what a run is, as plain columns of :func:`results`
RUN_TAGS = ("suite", "dataset", "method", "variant", "seed", "split", "device_name", "trained_by")


def run(
    suite_file: str | Path,
    overrides: tuple[str, ...] = (),
    *,
    tracking_uri: str | None = None,
    workdir: str = ".bench",
    data_root: str | None = None,
    device: str | None = None,
    force: bool = False,
    jobs: str | None = None,
) -> pd.DataFrame:
    """``bench run`` (without the printed table): one row per cell, its status, run id and
    summary."""
    args = runner.RunArgs(
        str(suite_file),
        tuple(overrides),
        (),
        data_root,
        workdir,
        tracking_uri,
        device,
        force=force,
        no_report=True,
        jobs=jobs,
    )
    outcomes = runner.run(args) or []
    rows = [(o.label, o.status, o.run_id, o.summary) for o in outcomes]
    return pd.DataFrame(rows, columns=["cell", "status", "run_id", "summary"])


def results(
    suite: str | None = None, dataset: str | None = None, *, tracking_uri: str | None = None
) -> pd.DataFrame:
    """The finished runs (of a suite, or every suite; the newest of each cell) as a
    DataFrame: ``run_id``, the tags of :data:`RUN_TAGS` and every metric as plain columns
    (``R1``, ``mAP``, ``cost.params_M``, ...), then MLflow's other columns as it names them
    (``params.*``, ``tags.*``)."""
    from bench.engine.tracking import client
    from bench.report.table import load_runs

    df = load_runs(client(tracking_uri), suite, dataset)
    if df.empty:
        return df
    names = {f"tags.{t}": t for t in RUN_TAGS if f"tags.{t}" in df}
    names |= {c: c.removeprefix("metrics.") for c in df.columns if c.startswith("metrics.")}
    front = ["run_id", *names.values()]
    df = df.rename(columns=names)
    return df[front + [c for c in df.columns if c not in front]].reset_index(drop=True)


def report(
    suite: str | None = None,
    *,
    out: str | Path = "reports",
    formats: tuple[str, ...] = ("md",),
    reference: str | None = None,
    tracking_uri: str | None = None,
) -> Path:
    """``bench report``: tables and figures into ``out``; the folder."""
    args = runner.ReportArgs(
        suite_name=suite, out=str(out), formats=tuple(formats), reference=reference
    )
    runner.report(args, tracking_uri)
    return Path(out)


def compare(
    suite: str,
    a: str,
    b: str,
    *,
    allow_different: tuple[str, ...] = (),
    tracking_uri: str | None = None,
) -> pd.DataFrame:
    """``bench compare``: B - A per dataset and metric with its 95 % interval (a t interval
    over the paired seeds plus the test identities' variance) and p-value; refused when A and
    B were run otherwise in a setting ``allow_different`` does not name."""
    from bench.engine.tracking import client
    from bench.report.commands import compare_rows

    rows = compare_rows(client(tracking_uri), str(suite), a, b, tuple(allow_different)).rows
    header = ["dataset", "metric", "A", "B", "B - A", "95 % CI", "p", "queries", "ids", "seeds"]
    return pd.DataFrame(rows, columns=header)


def _source(run_id: str | None, weights, config, tracking_uri) -> runner.TrainedArgs:
    weights, config = (str(p) if p is not None else None for p in (weights, config))
    return runner.TrainedArgs(run=run_id, weights=weights, config=config, tracking_uri=tracking_uri)


def _target(dataset, options, split, data_root) -> runner.TargetArgs:
    texts = tuple(f"{k}={v}" for k, v in (options or {}).items())
    return runner.TargetArgs(dataset, texts, split, data_root)


def evaluate(
    run_id: str | None = None,
    *,
    dataset: str | None = None,
    options: dict | None = None,
    split: int | None = None,
    weights: str | Path | None = None,
    config: str | Path | None = None,
    experiment: str | None = None,
    data_root: str | None = None,
    device: str | None = None,
    tracking_uri: str | None = None,
) -> dict:
    """``bench eval``: the trained method of ``run_id`` (or ``weights`` + ``config``) tested
    on a split (its own by default), logged as a run; ``{'run_id', 'label', **metrics}``."""
    source = _source(run_id, weights, config, tracking_uri)
    target = _target(dataset, options, split, data_root)
    result = runner.evaluate(source, target, experiment, device)
    return {"run_id": result.run_id, "label": result.label, **result.metrics}


#: ``bench.api.eval``, the command's name (``evaluate`` does not hide Python's ``eval``)
eval = evaluate  # noqa: A001


def extract(
    run_id: str | None,
    out: str | Path,
    *,
    tracklets: str = "test",
    dataset: str | None = None,
    options: dict | None = None,
    split: int | None = None,
    weights: str | Path | None = None,
    config: str | Path | None = None,
    data_root: str | None = None,
    device: str | None = None,
    tracking_uri: str | None = None,
) -> Embeddings:
    """``bench extract``: the embeddings of a split's tracklets, written to ``out`` (.npz) and
    read back (:func:`read_embeddings`)."""
    source = _source(run_id, weights, config, tracking_uri)
    target = _target(dataset, options, split, data_root)
    return read_embeddings(runner.extract(source, target, tracklets, str(out), device))


def export(
    run_id: str,
    out: str | Path,
    *,
    fmt: str = "onnx",
    data_root: str | None = None,
    tracking_uri: str | None = None,
) -> Path:
    """``bench export``: the trained method's embedding model as ONNX (or TorchScript)."""
    source = _source(run_id, None, None, tracking_uri)
    return runner.export(source, fmt, str(out), None, data_root)


def show_ranks(
    *targets: str,
    top: int = 10,
    queries: int = 20,
    out: str | Path | None = None,
    data_root: str | None = None,
    tracking_uri: str | None = None,
) -> Path:
    """``bench show ranks RUN`` or ``SUITE A B``: the ranked lists' HTML page."""
    args = runner.RanksArgs(
        tuple(targets), top, queries, 4, None if out is None else str(out), data_root, tracking_uri
    )
    return runner.show_ranks(args)
