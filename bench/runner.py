"""What the CLI commands do, kept apart from argument parsing."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from tabulate import tabulate

from bench.engine import distributed
from bench.engine.cell import RunOptions
from bench.engine.executors import Launch
from bench.engine.executors.slurm import check_store
from bench.engine.tracking import client, tracking_uri
from bench.errors import BenchError
from bench.registry import DATASETS, METHODS
from bench.suite.schema import Cell, Suite, load_suite
from bench.suite.warmstart import is_ref


def print_grid(suite: Suite, cells: list[Cell]) -> None:
    rows = [
        [i + 1, c.shown_dataset, c.split, c.method, c.variant, c.seed, c.config_hash]
        for i, c in enumerate(cells)
    ]
    click.echo(f"suite '{suite.name}' ({suite.path}): {len(cells)} cells")
    warm = sum(is_ref(c.sections.model.weights) for c in cells)
    if warm:
        click.echo(f"warm start (pretrain: stage, runs first): {warm} cells start from it")
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
    launch: Launch | None = None,
    reuse_stale: bool = False,
) -> None:
    """Run the grid with the launch's executor: finished cells are skipped, interrupted ones
    resume, each cell runs once however many workers run the grid; a failed cell does not
    stop the others, and the command fails at the end naming the failed cells. Cells with a
    finished run made by other code are counted in one line (and reused with ``reuse_stale``,
    see bench.engine.stale). Under DDP every rank runs the grid in this process and rank 0
    alone opens the MLflow store."""
    from bench.engine import executors, stale, store
    from bench.engine.pretrain import warm_start_stage

    launch = launch or Launch()
    if launch.executor == "slurm":
        check_store(tracking_uri(uri))
    lead = distributed.is_rank0()
    # the other ranks follow rank 0's decisions inside run_cell and never touch the store
    uri, exp_id = store.prepare(uri, suite.name, launch.claims_uri) if lead else (uri, "")
    if lead:  # the suite's pretrain: stage, once, before any cell (other ranks wait in run_cell)
        warm_start_stage(suite, cells, client(uri), exp_id, workdir.resolve(), data_root)
    opts = RunOptions(
        workdir=workdir.resolve(),
        data_root=data_root,
        force=force,
        reuse_stale=reuse_stale,
        claims_uri=launch.claims_uri,
        lease_s=launch.lease_s,
    )
    reference = suite.spec.report.reference
    if reference:
        opts.extra_tags["report_reference"] = reference
    stale_cells = stale.count_stale(client(uri), exp_id, cells) if lead and not force else 0
    if stale_cells:
        click.echo(stale.announce(stale_cells, len(cells), reuse_stale))
    outcomes = executors.execute(cells, executors.Context(uri, exp_id, opts), launch)
    failed = [o for o in outcomes if o.status == "failed"]
    if report and lead and len(failed) < len(outcomes):
        make_reports(uri, suite.name, None, Path("reports"), True, reference=reference)
    if failed:
        lines = "".join(f"\n  {o.label}: {o.error}" for o in failed)
        raise BenchError(f"{len(failed)} of {len(cells)} cells failed:{lines}")


def run_pretrain(suite: Suite, uri: str | None, workdir: Path, data_root, force: bool) -> None:
    """``bench pretrain``: train (or find) the suite's warm start and say where it is."""
    from bench.engine import store
    from bench.engine.pretrain import ensure_weights
    from bench.suite.warmstart import pretrain_spec

    spec = pretrain_spec(suite, data_root)
    if spec is None:
        raise BenchError(
            f"{suite.path}: no pretrain: section (add one, or -o 'pretrain={{}}' for the defaults)"
        )
    uri, exp_id = store.prepare(uri, suite.name, None)
    path = ensure_weights(spec, client(uri), exp_id, workdir.resolve(), data_root, force)
    click.echo(f"{spec.label}: {path}  (the cells use model.weights: {spec.ref})")


def show_status(suite: Suite, cells: list[Cell], uri: str | None, claims_uri: str | None) -> None:
    """Each cell of the grid: pending, running (where), finished or failed (with its error)."""
    from bench.engine import store
    from bench.engine.status import cell_states

    uri, exp_id = store.prepare(uri, suite.name, claims_uri)
    rows = cell_states(client(uri), exp_id, cells, uri, claims_uri)
    click.echo(tabulate(rows, headers=["#", "cell", "config hash", "state", "where / error"]))
    counts = Counter(row[3] for row in rows)
    click.echo(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))


def make_reports(
    uri: str | None,
    suite: str | None,
    dataset: str | None,
    out: Path,
    print_table: bool,
    formats: tuple[str, ...] = ("md",),
    reference: str | None = None,
) -> None:
    from bench.report.commands import write_reports

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
    from bench.tune.admission import finished_trials
    from bench.tune.study import TuneOptions, tune

    METHODS.get(method)
    suite = load_suite(suite_file, overrides, override_files)
    if method not in suite.spec.methods:
        suite.spec.methods.append(method)
    opts = TuneOptions(method, trials, storage, study_name, val_fraction, out_dir=out, **scale)
    run = RunOptions(workdir=workdir.resolve(), data_root=data_root)
    study, path = tune(client(uri), suite, opts, run)
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
        lines.append(f"  {name}  ({cls.__module__}, version {cls.version})")
        for field, info in cls.Config.model_fields.items():
            desc = f"  # {info.description}" if info.description else ""
            lines.append(f"      {field}: {info.default!r}{desc}")
    lines.append("datasets:")
    for name in DATASETS.names():
        cls = DATASETS.get(name)
        kind = "video" if cls.video else "image"
        lines.append(f"  {name}  ({kind}, default folder '{cls.folder or name}')")
    return "\n".join(lines)
