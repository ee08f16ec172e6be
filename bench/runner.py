"""What the CLI commands do, kept apart from argument parsing."""

from __future__ import annotations

from pathlib import Path

import click
from tabulate import tabulate
from tqdm.auto import tqdm

from bench.engine import distributed
from bench.engine.cell import RunOptions, run_cell
from bench.registry import DATASETS, METHODS
from bench.suite import Cell, Suite, load_suite
from bench.tracking import client, experiment_id


def print_grid(suite: Suite, cells: list[Cell]) -> None:
    rows = [
        [i + 1, c.dataset, c.split, c.method, c.variant, c.seed, c.config_hash]
        for i, c in enumerate(cells)
    ]
    click.echo(f"suite '{suite.name}' ({suite.path}): {len(cells)} cells")
    click.echo(
        tabulate(
            rows, headers=["#", "dataset", "split", "method", "variant", "seed", "config hash"]
        )
    )


def run_suite(
    suite: Suite,
    cells: list[Cell],
    uri: str | None,
    workdir: Path,
    data_root: str | None,
    force: bool,
    report: bool = True,
) -> None:
    """Run the grid cell by cell; finished cells are skipped, interrupted ones resume.
    Under DDP every rank runs the grid and rank 0 alone opens the MLflow store."""
    lead = distributed.is_rank0()
    mlf = client(uri) if lead else None
    exp_id = experiment_id(mlf, suite.name) if lead else None
    opts = RunOptions(workdir=workdir, data_root=data_root, force=force)
    reference = suite.spec.report.reference
    if reference:
        opts.extra_tags["report_reference"] = reference
    bar = tqdm(cells, desc=f"suite {suite.name}", unit="cell", dynamic_ncols=True, disable=not lead)
    for cell in bar:
        bar.set_postfix_str(cell.label)
        result = run_cell(mlf, exp_id, cell, opts)
        if not lead:
            continue
        m = result.metrics
        summary = f"R1 {m.get('R1', float('nan')):.1f}"
        if "mAP" in m:
            summary += f"  mAP {m['mAP']:.1f}"
        tqdm.write(f"{result.status:>8}  {cell.label}  {summary}")
    if report and lead:
        make_reports(uri, suite.name, None, Path("reports"), True, reference=reference)


def make_reports(
    uri: str | None,
    suite: str | None,
    dataset: str | None,
    out: Path,
    print_table: bool,
    formats: tuple[str, ...] = ("md",),
    reference: str | None = None,
) -> None:
    from bench.reporting import write_reports

    write_reports(client(uri), suite, dataset, out, print_table, formats, reference)


def run_tune(
    method: str,
    trials: int,
    suite_file: str,
    overrides,
    override_files,
    data_root: str | None,
    workdir: Path,
    uri: str | None,
    storage: str,
    study_name: str | None,
    val_fraction: float,
    out: Path,
    **scale,
) -> None:
    """``scale``: TuneOptions' workers, first_worker, seed and heartbeat."""
    from bench.tune import TuneOptions, tune
    from bench.tune_admission import finished_trials

    METHODS.get(method)
    suite = load_suite(suite_file, overrides, override_files)
    if method not in suite.spec.methods:
        suite.spec.methods.append(method)
    opts = TuneOptions(method, trials, storage, study_name, val_fraction, out_dir=out, **scale)
    study, path = tune(client(uri), suite, opts, RunOptions(workdir=workdir, data_root=data_root))
    best = study.best_trial
    click.echo(
        f"study '{opts.study_name}': {len(finished_trials(study))} trials, best #{best.number} "
        f"validation mAP {best.value:.2f} with {best.params}"
    )
    click.echo(f"wrote {path}  (use: bench run {suite_file} -O {path})")


def describe_plugins() -> str:
    lines = ["methods:"]
    for name in METHODS.names():
        cls = METHODS.get(name)
        lines.append(f"  {name}  ({cls.__module__})")
        for field, info in cls.Config.model_fields.items():
            desc = f"  # {info.description}" if info.description else ""
            lines.append(f"      {field}: {info.default!r}{desc}")
    lines.append("datasets:")
    for name in DATASETS.names():
        cls = DATASETS.get(name)
        kind = "video" if cls.video else "image"
        lines.append(f"  {name}  ({kind}, default folder '{cls.folder or name}')")
    return "\n".join(lines)
