"""What the ``bench`` commands do, kept apart from argument parsing (:mod:`bench.cli`).

Each command validates everything it was given before it does any work; torch, MLflow and the
executors are imported only after that, so a mistake is reported in well under a second.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import click
from pydantic import ValidationError
from tabulate import tabulate

from bench.config import RuntimeConfig
from bench.errors import BenchError, ConfigError
from bench.preflight import CLAIMS, STORAGE, TRACKING, check_run_paths, check_store, readable_uri
from bench.preflight.devices import check_ddp, check_devices
from bench.preflight.paths import check_writable
from bench.registry import DATASETS, METHODS, known_method
from bench.suite.checks import check_weights
from bench.suite.load import load_suite
from bench.suite.schema import Cell, Suite
from bench.suite.warmstart import is_ref, pretrain_spec

#: The Slurm settings ``bench run`` takes as flags (``launcher:`` keys).
SLURM_FLAGS = (
    "partition",
    "gpus_per_task",
    "cpus_per_task",
    "mem_gb",
    "time_min",
    "array_parallelism",
)


@dataclass
class SuiteArgs:
    """The suite a command works on: its file, patches, overrides and where its data is."""

    suite_file: str
    overrides: tuple[str, ...] = ()
    override_files: tuple[str, ...] = ()
    data_root: str | None = None
    workdir: str = ".bench"
    tracking_uri: str | None = None
    device: str | None = None

    def load(self) -> Suite:
        """The suite, validated with the overrides (``--device`` as defaults.runtime.device)."""
        overrides = self.overrides
        if self.data_root is not None and Path(self.data_root).is_file():
            raise ConfigError("--data-root", f"expected a folder (got '{self.data_root}', a file)")
        if self.device is not None:
            try:
                RuntimeConfig(device=self.device)
            except ValidationError as exc:
                raise ConfigError(
                    "--device", f"expected auto, cpu, cuda, cuda:N or mps (got {self.device!r})"
                ) from exc
            overrides = (*overrides, f"defaults.runtime.device={self.device}")
        return load_suite(self.suite_file, overrides, self.override_files, self.data_root)

    @property
    def changes(self) -> list[str]:
        """How the suite was changed on the command line (``-o``, ``-O``), as shown."""
        return [*self.overrides, *(f"-O {Path(f).name}" for f in self.override_files)]


@dataclass
class RunArgs(SuiteArgs):
    """``bench run``'s flags."""

    dry_run: bool = False
    force: bool = False
    reuse_stale: bool = False
    no_report: bool = False
    only: tuple[str, ...] = ()
    ddp: int = 1
    claims_uri: str | None = None
    jobs: str | None = None
    launcher: str | None = None
    lease_s: float = 60.0
    launcher_config: str | None = None
    sbatch: tuple[str, ...] = ()
    slurm: dict = field(default_factory=dict)  # SLURM_FLAGS given as flags
    report_dir: str | None = None


def run(args: RunArgs) -> None:
    """``bench run``: validate the suite, the flags, the devices, the stores and the paths,
    then run the grid (or print it)."""
    suite = args.load()
    unknown = set(args.only) - set(suite.spec.methods)
    if unknown:
        raise ConfigError("--method", f"not methods of this suite: {', '.join(sorted(unknown))}")
    cells = [c for c in suite.cells if not args.only or c.method in args.only]
    launch = _launch(args, suite)
    check_ddp(suite, cells, args.ddp)
    if args.dry_run:
        print_grid(suite, cells)
        return
    target = report_target(args, suite)
    check_devices(suite, cells, args.device, args.ddp, pretrain_spec(suite, args.data_root))
    _check_run_stores(args, launch, target)
    check_weights(suite, cells)
    if args.ddp > 1 and "WORLD_SIZE" not in os.environ:
        sys.exit(_spawn_ranks(args, suite.name))
    run_suite(suite, cells, args, launch, target)


def _check_run_stores(args: RunArgs, launch, target: ReportArgs | None) -> None:
    """The work dir, the report folder, the tracking store and the claims: writable, reachable
    (a Slurm array also needs a store every node reaches)."""
    from bench.engine.claims import claims_uri
    from bench.engine.executors.slurm import check_store as check_cluster_store
    from bench.engine.tracking import tracking_uri

    uri = tracking_uri(args.tracking_uri)
    if launch.executor == "slurm":
        check_cluster_store(uri)
    folders = [(Path(args.workdir), "the --workdir")]
    folders += [(Path(target.out), "the report folder")] if target else []
    check_run_paths(uri, *folders)
    check_store(claims_uri(uri, launch.claims_uri), CLAIMS, "write")


def _launch(args: RunArgs, suite: Suite):
    """The executor, workers and settings of a launch, from the suite and the flags; a flag
    that the chosen launcher would not use is refused."""
    from bench.engine.executors import Launch, launcher_settings, parse_jobs

    flags = {**args.slurm, "sbatch": args.sbatch}
    given = [f"--{k.replace('_', '-')}" for k, v in flags.items() if v]
    settings = launcher_settings(suite.spec.launcher, args.launcher_config, flags)
    jobs = parse_jobs(args.jobs) if args.jobs is not None else settings.jobs or 1
    launch = Launch(
        executor=args.launcher or ("local" if jobs == 1 else "pool"),
        jobs=jobs,
        launcher=settings,
        claims_uri=args.claims_uri,
        lease_s=args.lease_s,
    )
    if args.ddp > 1 and launch.executor != "local":
        raise ConfigError("--ddp", "trains one cell at a time in N processes: not with --jobs")
    if args.jobs is not None and launch.executor == "local" and jobs != 1:
        raise ConfigError(
            "--jobs",
            "--launcher local runs the cells one by one in this process; give "
            "--launcher pool for worker processes, or leave out --jobs",
        )
    if args.jobs is not None and launch.executor == "slurm":
        raise ConfigError(
            "--jobs",
            "--launcher slurm runs one array task per cell; --array-parallelism sets "
            "how many run at once",
        )
    if given and launch.executor != "slurm":
        raise ConfigError(
            given[0],
            f"a Slurm setting: only with --launcher slurm (got --launcher {launch.executor})",
        )
    return launch


def report_target(args: RunArgs, suite: Suite) -> ReportArgs | None:
    """Where ``bench run`` writes its report (None with ``--no-report``): the suite's own report
    in ``reports/``, or, for a run changed on the command line (``-o``, ``-O``, ``-m``), a
    report beside it named by the changes, never over the committed one; ``--report-dir DIR``
    writes into DIR, named as the suite. The report shows this launch's cells only."""
    if args.no_report:
        return None
    from bench.report.export import file_slug, slug_of

    changes = [*args.changes, *(f"-m {m}" for m in args.only)]
    title = f"{suite.name} ({', '.join(changes)})" if changes else suite.name
    name = slug_of(suite.name)
    if changes and not args.report_dir:
        name = f"{name}@{file_slug(', '.join(changes))}"
    return ReportArgs(
        suite_name=suite.name,
        table=True,
        reference=suite.spec.report.reference,
        out=args.report_dir or "reports",
        title=title,
        file_name=name,
        check_reference=False,  # the suite's: a run of some of its methods has no such row
    )


def _spawn_ranks(args: RunArgs, suite_name: str) -> int:
    """``bench run`` again in ``--ddp`` processes (the ranks of DDP), after creating the MLflow
    store and the experiment here, so that no rank runs migrations; their exit code."""
    from bench.engine import store
    from bench.engine.distributed import spawn

    uri, _ = store.prepare(args.tracking_uri, suite_name, args.claims_uri)
    argv = ["run", args.suite_file, "--tracking-uri", uri, "--workdir", args.workdir]
    argv += ["--lease-s", str(args.lease_s)]
    argv += [a for o in args.overrides for a in ("-o", o)]
    argv += [a for o in args.override_files for a in ("-O", o)]
    argv += [a for m in args.only for a in ("-m", m)]
    for flag in ("force", "reuse_stale", "no_report"):
        argv += [f"--{flag.replace('_', '-')}"] if getattr(args, flag) else []
    for key in ("data_root", "device", "claims_uri", "report_dir"):
        value = getattr(args, key)
        argv += [f"--{key.replace('_', '-')}", value] if value else []
    return spawn(args.ddp, argv)


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
    suite: Suite, cells: list[Cell], args: RunArgs, launch, target: ReportArgs | None
) -> None:
    """Run the grid with the launch's executor: finished cells are skipped, interrupted ones
    resume, each cell runs once however many workers run the grid; a failed cell does not
    stop the others, and the command fails at the end naming the failed cells. Cells with a
    finished run made by other code are counted in one line (and reused with
    ``--reuse-stale``, see :mod:`bench.engine.stale`). Under DDP every rank runs the grid in
    this process and rank 0 alone opens the MLflow store."""
    from bench.engine import distributed, executors, stale, store
    from bench.engine.pretrain import warm_start_stage
    from bench.engine.tracking import client
    from bench.engine.types import RunOptions

    lead, workdir = distributed.is_rank0(), Path(args.workdir).resolve()
    # the other ranks follow rank 0's decisions inside run_cell and never touch the store
    uri, exp_id = args.tracking_uri, ""
    if lead:
        uri, exp_id = store.prepare(uri, suite.name, launch.claims_uri)
        warm_start_stage(suite, cells, client(uri), exp_id, workdir, args.data_root)
    opts = RunOptions(
        workdir=workdir,
        data_root=args.data_root,
        force=args.force,
        reuse_stale=args.reuse_stale,
        claims_uri=launch.claims_uri,
        lease_s=launch.lease_s,
    )
    reference = suite.spec.report.reference
    if reference:
        opts.extra_tags["report_reference"] = reference
    stale_cells = stale.count_stale(client(uri), exp_id, cells) if lead and not args.force else 0
    if stale_cells:
        click.echo(stale.announce(stale_cells, len(cells), args.reuse_stale))
    outcomes = executors.execute(cells, executors.Context(uri, exp_id, opts), launch)
    failed = [o for o in outcomes if o.status == "failed"]
    if target is not None and lead and len(failed) < len(outcomes):
        target.cells = tuple(sorted({c.config_key for c in cells}))
        make_reports(target, uri)
    if failed:
        lines = "".join(f"\n  {o.label}: {o.error}" for o in failed)
        raise BenchError(f"{len(failed)} of {len(cells)} cells failed:{lines}")


def pretrain(args: SuiteArgs, force: bool) -> None:
    """``bench pretrain``: train (or find) the suite's warm start and say where it is."""
    suite = args.load()
    spec = pretrain_spec(suite, args.data_root)
    if spec is None:
        raise BenchError(
            f"{suite.path}: no pretrain: section (add one, or -o 'pretrain={{}}' for the defaults)"
        )
    check_devices(suite, [], args.device, stage=spec)
    check_weights(suite, [])
    check_run_paths(args.tracking_uri, (Path(args.workdir), "the --workdir"))
    from bench.engine import store
    from bench.engine.pretrain import ensure_weights
    from bench.engine.tracking import client

    uri, exp_id = store.prepare(args.tracking_uri, suite.name, with_claims=False)
    workdir = Path(args.workdir).resolve()
    path = ensure_weights(spec, client(uri), exp_id, workdir, args.data_root, force)
    click.echo(f"{spec.label}: {path}  (the cells use model.weights: {spec.ref})")


def status(args: SuiteArgs, claims_uri: str | None) -> None:
    """``bench status``: each cell of the grid, pending, running (where), finished or failed;
    reads the stores (read-only ones too) and creates nothing (no store yet: all pending)."""
    suite = args.load()
    from bench.engine.claims import claims_uri as default_claims
    from bench.engine.status import cell_states
    from bench.engine.tracking import client, tracking_uri

    uri = tracking_uri(args.tracking_uri)
    read = readable_uri(uri, TRACKING, "peek")
    claims = readable_uri(default_claims(uri, claims_uri), CLAIMS, "peek")
    rows = cell_states(client(read) if read else None, suite.name, suite.cells, claims)
    click.echo(tabulate(rows, headers=["#", "cell", "config hash", "state", "where / error"]))
    counts = Counter(row[3] for row in rows)
    click.echo(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))


@dataclass
class ReportArgs:
    """``bench report``'s flags."""

    table: bool = False
    suite_name: str | None = None
    dataset: str | None = None
    out: str = "reports"
    formats: tuple[str, ...] = ("md",)
    reference: str | None = None
    readme: str | None = None  # a README whose main-job table is copied from the report
    title: str | None = None  # the report's heading (default: the suite's name)
    file_name: str | None = None  # its file name without suffix (default: from the title)
    cells: tuple[str, ...] = ()  # only the runs of these config keys (default: all)
    check_reference: bool = True  # the reference must be a row with runs (a flag's must)


def report(args: ReportArgs, tracking_uri: str | None) -> None:
    """``bench report``: tables and figures from the MLflow runs, into ``--out``; with
    ``--readme``, the suite's table copied into that README too. Reads the store (a read-only
    one too); ``--suite``, ``--dataset`` and ``--reference`` are checked against its runs."""
    from bench.engine.tracking import tracking_uri as default_uri
    from bench.report.readme import check_readme
    from bench.report.table import check_row

    if args.readme and not args.suite_name:
        raise ConfigError("--readme", "copies one suite's table: give --suite too")
    if args.readme:
        check_readme(Path(args.readme))
    if args.reference:
        check_row("--reference", args.reference)
    check_writable(Path(args.out), "the --out folder")
    make_reports(args, readable_uri(default_uri(tracking_uri), TRACKING))
    if args.readme:
        from bench.report.export import slug_of
        from bench.report.readme import copy_table

        copy_table(Path(args.out) / f"{slug_of(args.suite_name)}.md", Path(args.readme))


def make_reports(args: ReportArgs, uri: str | None) -> None:
    from bench.engine.tracking import client
    from bench.report.commands import ReportScope, write_reports

    scope = ReportScope(args.suite_name, args.dataset, set(args.cells), args.title, args.file_name)
    write_reports(
        client(uri),
        scope,
        Path(args.out),
        args.table,
        args.formats,
        args.reference,
        args.check_reference,
    )


def compare(suite: str, a: str, b: str, n_boot: int, n_perm: int, uri: str | None) -> None:
    """``bench compare``: B - A per metric with its interval and p-value (reads the store, a
    read-only one too; creates nothing)."""
    from bench.engine.tracking import client, tracking_uri
    from bench.report.commands import experiment_name, print_comparison
    from bench.report.table import check_row

    name = experiment_name(suite)
    check_row("A", a)
    check_row("B", b)
    print_comparison(client(readable_uri(tracking_uri(uri), TRACKING)), name, a, b, n_boot, n_perm)


@dataclass
class TuneArgs(SuiteArgs):
    """``bench tune``'s flags (``suite_file``: the suite giving the dataset and settings)."""

    method: str = ""
    trials: int = 50
    storage: str = "sqlite:///optuna.db"
    study_name: str | None = None
    val_fraction: float = 0.25
    out: str = "reports/tune"
    workers: int = 1
    first_worker: int = 0
    seed: int = 0
    heartbeat_interval: int = 10
    grace_period: int = 30


def tune(args: TuneArgs) -> None:
    """``bench tune``: an Optuna study of the method on a validation split of training ids."""
    if not known_method(args.method):
        known = ", ".join(METHODS.names())
        raise ConfigError("METHOD", f"expected one of {known} (got '{args.method}')")
    if args.grace_period <= args.heartbeat_interval:
        raise ConfigError(
            "--grace-period",
            f"expected more than --heartbeat-interval ({args.heartbeat_interval} s): a live "
            f"trial's heartbeat may be that old (got {args.grace_period})",
        )
    suite = args.load()
    if args.method not in suite.spec.methods:
        suite.spec.methods.append(args.method)
    holdout = (args.val_fraction, args.seed)
    check_devices(suite, suite.cells, args.device, stage=pretrain_spec(suite, None, holdout))
    check_weights(suite, suite.cells)
    folders = [(Path(args.workdir), "the --workdir"), (Path(args.out), "the --out folder")]
    check_run_paths(args.tracking_uri, *folders)
    check_store(args.storage, STORAGE, "write")
    from bench.engine.tracking import client
    from bench.engine.types import RunOptions
    from bench.tune.admission import finished_trials
    from bench.tune.study import TuneOptions
    from bench.tune.study import tune as run_study
    from bench.tune.workers import Heartbeat

    scale = {k: getattr(args, k) for k in ("workers", "first_worker", "seed")}
    heartbeat = Heartbeat(args.heartbeat_interval, args.grace_period)
    opts = TuneOptions(
        args.method,
        args.trials,
        args.storage,
        args.study_name,
        args.val_fraction,
        out_dir=Path(args.out),
        heartbeat=heartbeat,
        **scale,
    )
    run_opts = RunOptions(workdir=Path(args.workdir).resolve(), data_root=args.data_root)
    study, path = run_study(client(args.tracking_uri), suite, opts, run_opts)
    best = study.best_trial
    click.echo(
        f"study '{opts.study_name}': {len(finished_trials(study))} trials, best #{best.number} "
        f"validation mAP {best.value:.2f} with {best.params}"
    )
    click.echo(f"wrote {path}  (use: bench run {args.suite_file} -O {path})")


def describe_plugins() -> str:
    """``bench list``: methods with every config field and default, and datasets."""
    lines = ["methods:"]
    for name in METHODS.names():
        cls = METHODS.get(name)
        lines.append(f"  {name}  ({cls.__module__}, version {cls.version})")
        for field_name, info in cls.Config.model_fields.items():
            desc = f"  # {info.description}" if info.description else ""
            lines.append(f"      {field_name}: {info.default!r}{desc}")
    lines.append("datasets:")
    for name in DATASETS.names():
        cls = DATASETS.get(name)
        kind = "video" if cls.video else "image"
        lines.append(f"  {name}  ({kind}, default folder '{cls.folder or name}')")
    return "\n".join(lines)


def data_make(name: str, root: str | None, options: dict, difficulty: bool) -> None:
    """``bench data make``: generate (synthetic) or validate (real) a dataset, say what it
    holds, and with ``difficulty`` score a colour-histogram nearest neighbour on it."""
    import time

    from bench.data.inspect import dataset_from_flags, describe, sharing

    dataset = dataset_from_flags(name, root, options, "make")
    if not dataset.root.exists():
        check_writable(dataset.root, "the dataset folder")
    start = time.perf_counter()
    dataset.prepare(progress=True)
    click.echo(f"{name}: ready in {time.perf_counter() - start:.1f} s at {dataset.root}")
    for index in dataset.split_indices()[:1]:
        split = dataset.load_split(index)
        click.echo(f"split {index}:\n{describe(split)}")
        for line in sharing(dataset):
            click.echo(line)
        if difficulty:
            from bench.eval.difficulty import histogram_baseline

            for person_only in (False, True):
                r = histogram_baseline(split, person_only)
                where = "person pixels" if person_only else "whole frames"
                click.echo(
                    f"colour histogram ({where}): R1 {r['R1']:.1f} R5 {r['R5']:.1f} "
                    f"mAP {r['mAP']:.1f} (chance R1 {r['chance']:.1f})"
                )


def data_show(
    name: str, root: str | None, options: dict, out: str | None, pairs: int, frames: int
) -> None:
    """``bench data show``: a contact sheet of query / gallery tracklets with their masks and
    keypoints."""
    from bench.data.inspect import dataset_from_flags
    from bench.data.synthetic.sheet import contact_sheet

    dataset = dataset_from_flags(name, root, options, "show")
    path = Path(out or f"reports/figures/{name}.png")
    check_writable(path.parent, "the --out folder")
    if not dataset.root.exists():
        check_writable(dataset.root, "the dataset folder")
    dataset.prepare(progress=True)
    split = dataset.load_split(dataset.split_indices()[0])
    path = contact_sheet(split, path, pairs, frames)
    click.echo(f"wrote {path}")
