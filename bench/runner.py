"""What the ``bench`` commands do, kept apart from argument parsing (:mod:`bench.cli`).

Each command validates everything it was given before it does any work; torch, MLflow and the
executors are imported only after that, so a mistake is reported in well under a second.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
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
from bench.suite.warmstart import is_ref, pretrain_spec, pretrain_specs

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


def run(args: RunArgs) -> list | None:
    """``bench run``: validate the suite, the flags, the devices, the stores and the paths,
    then run the grid (or print it); the cells' outcomes
    (:class:`bench.engine.executors.worker.Outcome`)."""
    suite = args.load()
    unknown = set(args.only) - set(suite.spec.methods)
    if unknown:
        raise ConfigError("--method", f"not methods of this suite: {', '.join(sorted(unknown))}")
    cells = [c for c in suite.cells if not args.only or c.method in args.only]
    launch = _launch(args, suite)
    check_ddp(suite, cells, args.ddp)
    if args.dry_run:
        print_grid(suite, cells)
        return None
    target = report_target(args, suite)
    check_devices(suite, cells, args.device, args.ddp, pretrain_spec(suite, args.data_root))
    _check_run_stores(args, launch, target)
    check_weights(suite, cells)
    if args.ddp > 1 and "WORLD_SIZE" not in os.environ:
        sys.exit(_spawn_ranks(args, suite.name))
    return run_suite(suite, cells, args, launch, target)


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
        command=run_command(args) if changes or args.report_dir else None,
        suite_name=suite.name,
        table=True,
        reference=suite.spec.report.reference,
        out=args.report_dir or "reports",
        title=title,
        file_name=name,
        check_reference=False,  # the suite's: a run of some of its methods has no such row
    )


def run_command(args: RunArgs) -> str:
    """The ``bench run`` command line of a launch changed on the command line, quoted for a
    shell: its report's reproduce line (it writes that report itself)."""
    flags = [("-o", o) for o in args.overrides] + [("-O", f) for f in args.override_files]
    flags += [("-m", m) for m in args.only]
    flags += [("--report-dir", args.report_dir)] if args.report_dir else []
    shown = [f"{flag} {shlex.quote(value)}" for flag, value in flags]
    return " ".join(["bench run", shlex.quote(suite_file_tag(args.suite_file)), *shown])


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
    warm = [c.sections.model.weights for c in cells if is_ref(c.sections.model.weights)]
    if warm:
        stages = len(set(warm))
        click.echo(
            f"warm start (pretrain: stages, one per seed, run first): {len(warm)} cells start "
            f"from {stages} stage{'s' * (stages > 1)}"
        )
    click.echo(
        tabulate(
            rows, headers=["#", "dataset", "split", "method", "variant", "seed", "config hash"]
        )
    )


def run_suite(
    suite: Suite, cells: list[Cell], args: RunArgs, launch, target: ReportArgs | None
) -> list:
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
    opts.extra_tags["suite_file"] = suite_file_tag(suite.path)
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
    return outcomes


def suite_file_tag(path: str) -> str:
    """The suite file as its runs name it (the report's command reruns it): relative to the
    working directory where it lies below it, in POSIX form. A tag, in no hash."""
    file = Path(path)
    if file.is_absolute() and file.is_relative_to(Path.cwd()):
        file = file.relative_to(Path.cwd())
    return file.as_posix()


def pretrain(args: SuiteArgs, force: bool) -> None:
    """``bench pretrain``: train (or find) the suite's warm start, the stage of each of its
    seeds, and say where each is and which seeds' cells start from it."""
    suite = args.load()
    specs = pretrain_specs(suite, args.data_root)
    if not specs:
        raise BenchError(
            f"{suite.path}: no pretrain: section (add one, or -o 'pretrain={{}}' for the defaults)"
        )
    check_devices(suite, [], args.device, stage=next(iter(specs.values())))
    check_weights(suite, [])
    check_run_paths(args.tracking_uri, (Path(args.workdir), "the --workdir"))
    from bench.engine import store
    from bench.engine.pretrain import ensure_weights
    from bench.engine.tracking import client

    uri, exp_id = store.prepare(args.tracking_uri, suite.name, with_claims=False)
    workdir = Path(args.workdir).resolve()
    seeds: dict[str, list[str]] = {}
    for seed, spec in specs.items():
        seeds.setdefault(spec.ref, []).append(str(seed))
    for spec in {spec.ref: spec for spec in specs.values()}.values():
        path = ensure_weights(spec, client(uri), exp_id, workdir, args.data_root, force)
        shown = ", ".join(seeds[spec.ref])
        click.echo(f"{spec.label}: {path}  (seeds {shown}: model.weights: {spec.ref})")


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
    readme: str | None = None  # a README whose main-job table and claims counts are refreshed
    command: str | None = None  # the reproduce line's command (default: from the runs' tags)
    title: str | None = None  # the report's heading (default: the suite's name)
    file_name: str | None = None  # its file name without suffix (default: from the title)
    cells: tuple[str, ...] = ()  # only the runs of these config keys (default: all)
    check_reference: bool = True  # the reference must be a row with runs (a flag's must)


def report(args: ReportArgs, tracking_uri: str | None) -> None:
    """``bench report``: tables and figures from the MLflow runs, into ``--out``; with
    ``--readme``, that README's main-job table (if it is this suite's) and claims counts too.
    Reads the store (a read-only one too); ``--suite``, ``--dataset`` and ``--reference`` are
    checked against its runs."""
    from bench.engine.tracking import tracking_uri as default_uri
    from bench.report.readme import check_readme
    from bench.report.table import check_row

    if args.readme and not args.suite_name:
        raise ConfigError("--readme", "follows one suite's report: give --suite too")
    if args.readme:
        check_readme(Path(args.readme))
    if args.reference:
        check_row("--reference", args.reference)
    check_writable(Path(args.out), "the --out folder")
    make_reports(args, readable_uri(default_uri(tracking_uri), TRACKING))
    if args.readme:
        from bench.report.export import slug_of
        from bench.report.readme import update_readme

        out = Path(args.out)
        update_readme(Path(args.readme), out, out / f"{slug_of(args.suite_name)}.md")


def make_reports(args: ReportArgs, uri: str | None) -> None:
    from bench.engine.tracking import client
    from bench.report.commands import ReportScope, write_reports

    scope = ReportScope(
        args.suite_name, args.dataset, set(args.cells), args.title, args.file_name, args.command
    )
    write_reports(
        client(uri),
        scope,
        Path(args.out),
        args.table,
        args.formats,
        args.reference,
        args.check_reference,
    )


def compare(suite: str, a: str, b: str, allow_different: tuple[str, ...], uri: str | None) -> None:
    """``bench compare``: B - A per metric with its interval and p-value, for rows run alike
    (or differing only in the ``allow_different`` settings); reads the store, a read-only one
    too, and creates nothing."""
    from bench.engine.tracking import client, tracking_uri
    from bench.report.commands import experiment_name, print_comparison
    from bench.report.table import check_row

    suite = experiment_name(suite)  # the suite file validated before the store is read
    check_row("A", a)
    check_row("B", b)
    print_comparison(
        client(readable_uri(tracking_uri(uri), TRACKING)), suite, a, b, allow_different
    )


def claims(suite: str, uri: str | None) -> None:
    """``bench claims``: the papers' claims on the suite's rows, each with bench's difference,
    its interval and a verdict (bench/report/papers/claims.yaml)."""
    from bench.engine.tracking import client, tracking_uri
    from bench.report.commands import print_claims

    print_claims(client(readable_uri(tracking_uri(uri), TRACKING)), suite)


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


def show_attention(
    run_id: str,
    tracklet: str,
    start: int,
    frames: int | None,
    out: str | None,
    data_root: str | None,
    uri: str | None,
) -> None:
    """``bench show attention``: a finished run's attention over frames of one test tracklet,
    beside the exact masks and nuisances of generated data, as one PNG."""
    path = Path(out or f"reports/figures/attention-{run_id[:8]}-{tracklet}.png")
    check_run_paths(uri, (path.parent, "the --out folder"))
    from bench.engine.attention import attention_shot
    from bench.engine.tracking import client
    from bench.report.attention import attention_figure

    shot = attention_shot(client(uri), run_id, tracklet, start, frames, data_root)
    click.echo(f"wrote {attention_figure(shot, path)}")


# ---- trained methods: bench eval, extract, export, show ranks ----------------------------

RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class TrainedArgs:
    """Which trained method a command works on: an MLflow run id, a suite's cell (its finished
    run), or a weights file with the ``config.yaml`` of its training."""

    run: str | None = None
    suite_file: str | None = None
    cell: str | None = None
    weights: str | None = None
    config: str | None = None
    overrides: tuple[str, ...] = ()
    tracking_uri: str | None = None

    def check(self) -> None:
        """Exactly one source, each complete, the run id well-formed."""
        given = [
            name
            for name, present in (
                ("RUN", self.run),
                ("--suite/--cell", self.suite_file or self.cell),
                ("--weights/--config", self.weights or self.config),
            )
            if present
        ]
        if len(given) != 1:
            got = f" (got {' and '.join(given)})" if given else ""
            raise ConfigError(
                "RUN",
                f"give one of: a run id, --suite FILE --cell LABEL, --weights FILE "
                f"--config FILE{got}",
            )
        if self.run and not RUN_ID.match(self.run):
            raise ConfigError("RUN", f"expected an MLflow run id, 32 hex digits (got {self.run!r})")
        for flag, a, b in (
            ("--suite", self.suite_file, self.cell),
            ("--weights", self.weights, self.config),
        ):
            if (a is None) != (b is None):
                pair = (
                    "--suite FILE --cell LABEL"
                    if flag == "--suite"
                    else "--weights FILE --config FILE"
                )
                raise ConfigError(flag, f"expected both of {pair}")
        self.suite_cell()  # the suite validates and names the cell

    def suite_cell(self) -> tuple[Suite, Cell] | None:
        """The suite and its cell named by ``--suite``/``--cell`` (validated), if given."""
        if self.suite_file is None:
            return None
        suite = load_suite(self.suite_file, self.overrides)
        cells = {c.label: c for c in suite.cells}
        if self.cell not in cells:
            shown = ", ".join(list(cells)[:6]) + (", ..." if len(cells) > 6 else "")
            raise ConfigError("--cell", f"not a cell of {self.suite_file} (cells: {shown})")
        return suite, cells[self.cell]

    def run_id(self, mlf) -> str | None:
        """The run id of the source: given, or the newest finished run of the suite's cell."""
        found = self.suite_cell()
        if found is None:
            return self.run
        from bench.engine.record import finished_run
        from bench.engine.tracking import experiment_id

        suite, cell = found
        run = finished_run(mlf, experiment_id(mlf, suite.name), cell)
        if run is None:
            raise BenchError(
                f"{self.cell}: no finished run in the MLflow store; run `bench run "
                f"{self.suite_file}` first"
            )
        return run.info.run_id

    def load(self, mlf):
        """The trained method (:class:`bench.engine.trained.Trained`)."""
        from bench.engine import trained

        run_id = self.run_id(mlf)
        if run_id is None:
            return trained.from_files(Path(self.weights), Path(self.config))
        return trained.from_run(mlf, checked_run(mlf, run_id))


def checked_run(mlf, run_id: str) -> str:
    """``run_id``, after checking that the store has it."""
    from mlflow.exceptions import MlflowException

    try:
        mlf.get_run(run_id)
    except MlflowException:
        raise ConfigError(
            "RUN", f"no run {run_id} in the MLflow store {mlf.tracking_uri}"
        ) from None
    return run_id


@dataclass
class TargetArgs:
    """The split a command tests on: a dataset (default: the trained cell's test dataset), its
    options (``-d KEY=VALUE``, over the trained cell's when the dataset is the same) and a split
    index; where the data is."""

    dataset: str | None = None
    options: tuple[str, ...] = ()
    split: int | None = None
    data_root: str | None = None

    def parsed(self) -> dict:
        from bench.suite.load import parse_override

        return dict(parse_override(text) for text in self.options)

    def check(self) -> None:
        """The dataset is registered and its options validate (before any work)."""
        if self.dataset is not None:
            from bench.data.build import build_dataset

            build_dataset(self.dataset, self.parsed(), self.data_root, "--dataset")
        elif self.options or self.split is not None:
            self.parsed()

    def resolve(self, cell: Cell):
        """The DataRef tested on, or None for the trained cell's own test split."""
        from bench.data.build import build_dataset
        from bench.data.cell_data import DataRef

        if self.dataset is None and not self.options and self.split is None:
            return None
        name = self.dataset or cell.dataset
        base = cell.dataset_options if name == cell.dataset else {}
        options = {**base, **self.parsed()}
        dataset = build_dataset(name, options, self.data_root, "--dataset")
        split = cell.split if self.split is None and name == cell.dataset else self.split or 0
        if split >= dataset.num_splits():
            raise ConfigError(
                "--split", f"{name} has splits 0..{dataset.num_splits() - 1} (got {split})"
            )
        return DataRef(name, options, split)


def check_device(device: str | None) -> None:
    """``--device`` as ``runtime.device`` accepts it."""
    if device is None:
        return
    from pydantic import ValidationError

    from bench.config import RuntimeConfig

    try:
        RuntimeConfig(device=device)
    except ValidationError:
        raise ConfigError(
            "--device", f"expected auto, cpu, cuda, cuda:N or mps (got {device!r})"
        ) from None


def evaluate(source: TrainedArgs, target: TargetArgs, experiment: str | None, device: str | None):
    """``bench eval``: test a trained method on a split (its own by default) and log the
    evaluation as a run linked to its training (tag ``trained_by``)."""
    source.check()
    target.check()
    check_device(device)
    check_run_paths(source.tracking_uri)
    from bench.engine import store
    from bench.engine.eval_run import evaluate_trained
    from bench.engine.tracking import client

    mlf = client(source.tracking_uri)
    trained = source.load(mlf)
    ref = target.resolve(trained.cell)
    name = experiment or f"{trained.cell.suite or 'files'}-eval"
    _, exp_id = store.prepare(source.tracking_uri, name)
    result = evaluate_trained(mlf, exp_id, trained, ref, name, target.data_root, device)
    shown = "  ".join(
        f"{k} {result.metrics[k]:.1f}" for k in ("R1", "R5", "mAP", "mINP") if k in result.metrics
    )
    click.echo(f"{result.label}: {shown}")
    click.echo(f"logged run {result.run_id} in experiment '{name}' (trained by {trained.source})")
    return result


def extract(
    source: TrainedArgs, target: TargetArgs, tracklets: str, out: str, device: str | None
) -> Path:
    """``bench extract``: write the embeddings of a split's tracklets to an ``.npz`` file."""
    source.check()
    target.check()
    check_device(device)
    if not out.endswith(".npz"):
        raise ConfigError("--out", f"expected a .npz file (got {out!r})")
    check_writable(Path(out).parent, "the --out folder")
    from bench.engine.extraction import extract_to_file
    from bench.engine.tracking import client

    mlf = client(source.tracking_uri)
    trained = source.load(mlf)
    ref = target.resolve(trained.cell)
    path, n = extract_to_file(trained, ref, tracklets, Path(out), target.data_root, device)
    click.echo(
        f"wrote {path}: {n} tracklets ({trained.cell.method}; read it with "
        "bench.api.read_embeddings)"
    )
    return path


@dataclass
class RanksArgs:
    """``bench show ranks``'s arguments and flags."""

    targets: tuple[str, ...] = ()
    top: int = 10
    queries: int = 20
    frames: int = 4
    out: str | None = None
    data_root: str | None = None
    tracking_uri: str | None = None


def show_ranks(args: RanksArgs) -> Path:
    """``bench show ranks RUN`` (the worst queries first) or ``SUITE A B`` (the queries where
    rows A and B differ most): PNGs and an HTML page."""
    if len(args.targets) not in (1, 3):
        raise ConfigError("ARGS", f"expected RUN, or SUITE A B (got {len(args.targets)} arguments)")
    if len(args.targets) == 1 and not RUN_ID.match(args.targets[0]):
        raise ConfigError(
            "RUN", f"expected an MLflow run id, 32 hex digits (got {args.targets[0]!r})"
        )
    slug = "-".join(t.replace("/", "_") for t in args.targets).removesuffix(".yaml")
    out = Path(args.out or f"reports/ranks/{Path(slug).name}")
    check_writable(out, "the --out folder")
    from bench.engine.tracking import client
    from bench.report import ranks

    mlf = client(args.tracking_uri)
    draw = (args.queries, args.top, args.frames)
    if len(args.targets) == 1:
        lists = ranks.run_lists(mlf, checked_run(mlf, args.targets[0]), args.data_root)
        page = ranks.draw_worst(lists, out, *draw)
    else:
        run_a, run_b, shared = ranks.paired_runs(mlf, *args.targets)
        a, b = (ranks.run_lists(mlf, r, args.data_root) for r in (run_a, run_b))
        page = ranks.draw_differences(a, b, out, *draw)
        click.echo(f"A: run {run_a}, B: run {run_b} ({shared})")
    click.echo(f"wrote {page}")
    return page


def export(
    source: TrainedArgs, fmt: str, out: str, device: str | None, data_root: str | None = None
) -> Path:
    """``bench export``: the trained method's embedding model as ONNX (or TorchScript). The
    method is rebuilt as its cell built it, from the data it trained on (``data_root``)."""
    source.check()
    check_device(device)
    if fmt not in ("onnx", "torchscript"):
        raise ConfigError("--format", f"expected onnx or torchscript (got {fmt!r})")
    suffix = {"onnx": ".onnx", "torchscript": ".pt"}[fmt]
    if not out.endswith(suffix):
        raise ConfigError("--out", f"expected a {suffix} file for --format {fmt} (got {out!r})")
    if fmt == "onnx":
        missing = [m for m in ("onnx", "onnxscript") if importlib.util.find_spec(m) is None]
        if missing:
            raise BenchError(
                f"--format onnx needs {' and '.join(missing)}: pip install 'bench[export]'"
            )
    check_writable(Path(out).parent, "the --out folder")
    from bench.engine.export import export as write_model
    from bench.engine.tracking import client
    from bench.engine.trained import rebuild

    mlf = client(source.tracking_uri)
    trained = source.load(mlf)
    cell = trained.cell
    method, _, aux, _ = rebuild(trained, cell, data_root, device or "cpu")
    labels = {
        "method": cell.method,
        "variant": cell.variant,
        "trained_by": trained.run_id or trained.source,
    }
    path = write_model(method, cell.sections, aux, fmt, Path(out), labels)
    click.echo(f"wrote {path} ({fmt}: clips in, the {cell.method} embedding out; docs/api.md)")
    return path
