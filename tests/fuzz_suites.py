"""Malformed suites and overrides generated from the schema itself (issue 25), for
``tests/test_fuzzed_suites.py`` and ``benchmarks/fuzz_suites.py``.

A valid base suite holds every kind of node a suite has (plain and cross-dataset entries with
dataset options, method configs, ablations, every ``defaults`` section with ``eval.rerank``,
``report``, ``launcher``, ``pretrain`` with its patches). :func:`nodes` walks it with the
pydantic model that validates each node, read from the schema (``SuiteFile``, the sections of
``bench.config``, the registered method configs and dataset options). A case applies one to
three mutations, each invalid at its field by construction (the field's own type adapter
rejects the value): a value of the wrong type, a number or length out of range, an unknown key
at any depth, or a required key removed; as edits of the file or as ``-o KEY=VALUE``.
:func:`outcome` runs a case through the real CLI and says what, if anything, went wrong.
"""

from __future__ import annotations

import atexit
import copy
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, get_args, get_origin

import annotated_types as at
import yaml
from hypothesis import strategies as st
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from bench.config import (
    SECTIONS,
    DataConfig,
    Defaults,
    LauncherConfig,
    PretrainConfig,
    RerankConfig,
    TrainConfig,
)
from bench.registry import DATASETS, known_method, method_config
from bench.suite.schema import CrossSpec, DatasetSpec, ReportSpec, SuiteFile

SYNTH = {"name": "synthetic-video", "train_ids": 6, "test_ids": 4, "distractors": 2}
SYNTH.update(cameras=2, min_len=4, max_len=6, height=32, width=16)
BASE = {
    "name": "fuzz",
    "description": "a valid suite with every kind of node",
    "datasets": [
        dict(SYNTH),
        {"label": "cross", "train": dict(SYNTH), "test": {**SYNTH, "seed": 1}},
    ],
    "methods": ["baseline"],
    "method_config": {"baseline": {"triplet_margin": 0.3, "data": {"seq_len": 2}}},
    "ablations": {"baseline": [{"name": "ce-only", "triplet": "none", "train": {"lr": 0.001}}]},
    "seeds": [0],
    "defaults": {
        "model": {"backbone": "resnet18", "last_stride": 1},
        "data": {"height": 32, "width": 16, "seq_len": 2, "p": 2, "k": 2},
        "train": {"epochs": 1, "max_steps_per_epoch": 1},
        "eval": {"batch_size": 8, "rerank": {"k1": 4, "k2": 2, "lambda": 0.3}},
        "runtime": {"device": "cpu"},
    },
    "report": {"reference": "baseline/default"},
    "launcher": {"jobs": 1, "cluster": "local"},
    "pretrain": {"dataset": "synthetic-video", "data": {"p": 2}, "train": {"epochs": 1}},
}
SUITE_FILE = "suite.yaml"
#: Values tried as a wrong type; a field keeps those its own type adapter rejects.
WRONG = ["x1", 7, -3, 2.5, True, None, [1, "a"], {"k": 1}, "", 10**12]
UNKNOWN = ["colour", "epoch", "zz_extra", "Name", "lr_"]
#: The commands that load a suite, as argv after ``bench`` (the suite file appended / given).
COMMANDS = (("run",), ("status",), ("pretrain",), ("tune", "baseline", "--suite"))

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Node:
    """A mapping of the suite at ``path`` and the fields its validating model knows."""

    path: Path_
    fields: dict[str, FieldInfo]
    required: frozenset[str] = frozenset()


def _fields(model: type[BaseModel]) -> dict[str, FieldInfo]:
    return {(f.alias or name): f for name, f in model.model_fields.items()}


def _model_of(info: FieldInfo) -> type[BaseModel] | None:
    """The model a field holds (through ``X | None``), if it holds one."""
    kinds = [info.annotation, *get_args(info.annotation)]
    return next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)), None)


def _required(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(k for k, f in _fields(model).items() if f.is_required())


def _model_nodes(tree: dict, path: Path_, model: type[BaseModel]) -> list[Node]:
    out = [Node(path, _fields(model), _required(model))]
    for key, info in _fields(model).items():
        inner = _model_of(info)
        if inner is not None and isinstance(tree.get(key), dict) and inner is not DatasetSpec:
            out += _model_nodes(tree[key], (*path, key), inner)
    return out


def _override_nodes(tree: dict, path: Path_, method: str, named: bool) -> list[Node]:
    """A method_config entry or an ablation: the method's fields and section patches."""
    fields = {**_fields(method_config(method)), **{s: Defaults.model_fields[s] for s in SECTIONS}}
    if named:
        fields["name"] = FieldInfo(annotation=str)
    out = [Node(path, fields, frozenset({"name"}) if named else frozenset())]
    for section in SECTIONS:
        if isinstance(tree.get(section), dict):
            model = _model_of(Defaults.model_fields[section])
            out.append(Node((*path, section), _fields(model)))
    return out


def _dataset_nodes(entry: Any, path: Path_) -> list[Node]:
    if not isinstance(entry, dict):
        return []
    if "name" not in entry and {"train", "test"} & set(entry):  # a cross-dataset entry
        out = [Node(path, _fields(CrossSpec), _required(CrossSpec))]
        for role in ("train", "test"):
            out += _dataset_nodes(entry.get(role), (*path, role))
        return out
    name = entry.get("name")
    options = DATASETS.get(name).Options if isinstance(name, str) and name in DATASETS else None
    fields = {**_fields(DatasetSpec), **(_fields(options) if options else {})}
    return [Node(path, fields, frozenset({"name"}))]


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _items(value: Any) -> list:
    return value if isinstance(value, list) else []


def nodes(suite: dict) -> list[Node]:
    """Every mapping of ``suite`` that a model validates, with that model's fields (after
    earlier mutations, whatever is still a mapping where one belongs)."""
    out = [Node((), _fields(SuiteFile), _required(SuiteFile))]
    for key, model in (
        ("defaults", Defaults),
        ("report", ReportSpec),
        ("launcher", LauncherConfig),
    ):
        if isinstance(suite.get(key), dict):
            out += _model_nodes(suite[key], (key,), model)
    pretrain = suite.get("pretrain")
    if isinstance(pretrain, dict):
        out.append(Node(("pretrain",), _fields(PretrainConfig)))
        for key, model in (("data", DataConfig), ("train", TrainConfig)):
            if isinstance(pretrain.get(key), dict):
                out.append(Node(("pretrain", key), _fields(model)))
    evaluation = _mapping(_mapping(suite.get("defaults")).get("eval"))
    if isinstance(evaluation.get("rerank"), dict):
        out.append(Node(("defaults", "eval", "rerank"), _fields(RerankConfig)))
    for method, override in _mapping(suite.get("method_config")).items():
        if isinstance(override, dict) and known_method(method):
            out += _override_nodes(override, ("method_config", method), method, named=False)
    for method, variants in _mapping(suite.get("ablations")).items():
        for i, variant in enumerate(_items(variants)):
            if isinstance(variant, dict) and known_method(method):
                out += _override_nodes(variant, ("ablations", method, i), method, named=True)
    for i, entry in enumerate(_items(suite.get("datasets"))):
        out += _dataset_nodes(entry, ("datasets", i))
    return list({n.path: n for n in out}.values())


_ADAPTERS: dict[int, TypeAdapter] = {}


def _adapter(info: FieldInfo) -> TypeAdapter:
    if id(info) not in _ADAPTERS:
        kind = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        _ADAPTERS[id(info)] = TypeAdapter(kind)
    return _ADAPTERS[id(info)]


def rejected(info: FieldInfo, value: Any) -> bool:
    """True if the field's own type and constraints refuse ``value``."""
    try:
        _adapter(info).validate_python(value)
    except ValidationError:
        return True
    return False


def out_of_range(info: FieldInfo) -> list[Any]:
    """Values just past each bound the field declares (numbers and lengths)."""
    out = []
    for meta in info.metadata:
        if isinstance(meta, at.Ge):
            out.append(meta.ge - 1)
        elif isinstance(meta, at.Gt):
            out.append(meta.gt)
        elif isinstance(meta, at.Le):
            out.append(meta.le + 1)
        elif isinstance(meta, at.Lt):
            out.append(meta.lt)
        elif isinstance(meta, at.MinLen) and meta.min_length > 0:
            out.append([] if get_origin(info.annotation) is list else "")
        elif isinstance(meta, at.MaxLen):
            out.append([0] * (meta.max_length + 1))
    return [v for v in out if rejected(info, v)]


def _at(tree: Any, path: Path_) -> Any:
    for key in path:
        tree = tree[key]
    return tree


@dataclass
class Case:
    """A suite file's content, the CLI arguments, and what was changed."""

    suite: dict
    command: tuple[str, ...]
    overrides: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # the keys each mutation touched

    def argv(self) -> list[str]:
        args = [*self.command, SUITE_FILE]
        return [*args, *(a for o in self.overrides for a in ("-o", o))]


def dotted(path: Path_) -> str:
    return ".".join(str(p) for p in path)


def flow(value: Any) -> str:
    """A value as one line of YAML (what ``-o KEY=VALUE`` parses)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return text.removesuffix("...").strip()


@st.composite
def mutation(draw, suite: dict, as_override: bool) -> tuple[Path_, Any, str] | None:
    """(path, new value or DELETE, the key it names) of one invalid change of ``suite``."""
    node = draw(st.sampled_from(nodes(suite)))
    kinds = ["unknown", "wrong", "range"] + ([] if as_override else ["missing"])
    kind = draw(st.sampled_from(kinds))
    present = _at(suite, node.path)
    if kind == "unknown":
        key = draw(st.sampled_from([k for k in UNKNOWN if k not in node.fields]))
        return (*node.path, key), draw(st.sampled_from([1, "x", [1]])), key
    if kind == "missing":
        keys = sorted(k for k in node.required if k in present)
        if not keys:
            return None
        key = draw(st.sampled_from(keys))
        return (*node.path, key), DELETE, key
    key = draw(st.sampled_from(sorted(node.fields)))
    info = node.fields[key]
    values = [v for v in WRONG if rejected(info, v)] if kind == "wrong" else out_of_range(info)
    if not values:
        return None
    return (*node.path, key), draw(st.sampled_from(values)), key


DELETE = object()


@st.composite
def cases(draw) -> Case:
    """One to three invalid changes of the base suite, in the file or as ``-o``, through one
    of the commands that load a suite."""
    suite = copy.deepcopy(BASE)
    command = draw(st.sampled_from(COMMANDS))
    as_override = draw(st.booleans())
    case = Case(suite, command)
    for _ in range(draw(st.integers(1, 3))):
        change = draw(mutation(suite, as_override))
        if change is None:
            continue
        path, value, key = change
        case.changed.append(key)
        if as_override:
            case.overrides.append(f"{dotted(path)}={flow(value)}")
            continue
        parent = _at(suite, path[:-1])
        if value is DELETE:
            del parent[path[-1]]
        else:
            parent[path[-1]] = copy.deepcopy(value)  # never a shared (or module) object
    if not case.changed:  # no change applied: remove a required key instead
        del case.suite["name"]
        case.changed.append("name")
    return case


class ReachedWork(BaseException):
    """Raised where a command would start work: the case got past validation."""


#: What a command calls first once validation has passed, replaced by ReachedWork.
WORK = (
    ("bench.runner", "run_suite"),
    ("bench.engine.store", "prepare"),
    ("bench.engine.status", "cell_states"),
    ("bench.tune.study", "tune"),
    ("bench.report.commands", "write"),
    ("bench.report.commands", "compare"),
)


def outcome(case: Case, invoke) -> str | None:
    """None if the case ends in one ``Error:`` line naming the file (or ``-o``) and, for a
    single change, the key, with no traceback and nothing created; else what went wrong.
    ``invoke(argv)`` runs the CLI (click's CliRunner) in the current directory."""
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            Path(SUITE_FILE).write_text(yaml.safe_dump(case.suite, sort_keys=False))
            try:
                result = invoke(case.argv())
            except ReachedWork:  # not an Exception: neither bench nor click catches it
                return "validation passed"
            left = sorted(p.name for p in Path(tmp).iterdir() if p.name != SUITE_FILE)
        finally:
            os.chdir(cwd)
    return problem(case, result, left)


def problem(case: Case, result, left: list[str]) -> str | None:
    """What is wrong with a malformed case's CLI result (None: one clean error line)."""
    if not isinstance(result.exception, SystemExit) or result.exit_code != 1:
        return f"exception {type(result.exception).__name__}: {result.exception}"
    lines = result.output.strip().splitlines()
    if "Traceback" in result.output:
        return "traceback"
    if len(lines) != 1:
        return f"{len(lines)} lines"
    if not lines[0].startswith((f"Error: {SUITE_FILE}", "Error: -o ")):
        return f"not naming the file: {lines[0]}"
    if len(case.changed) == 1 and case.changed[0] not in lines[0]:
        return f"not naming the key {case.changed[0]!r}: {lines[0]}"
    if left:
        return f"created {left}"
    return None


# ---- flags: malformed values of every command's options, from click's own types -------------

#: Each command's valid arguments, run in a folder holding the base suite and a store with
#: finished runs of it (:func:`fixture_store`).
COMMAND_ARGV = {
    "run": ["run", SUITE_FILE],
    "status": ["status", SUITE_FILE],
    "pretrain": ["pretrain", SUITE_FILE],
    "tune": ["tune", "baseline", "--suite", SUITE_FILE],
    "report": ["report", "--suite", "fuzz"],
    "compare": ["compare", "fuzz", "baseline/default", "baseline/ce-only"],
}
URIS = [
    "nosuch://host/x",
    "sqlite://",
    "sqlite:///adir",
    "sqlite:///afile",
    "sqlite:////proc/no/mlflow.db",
    "postgresql://u@127.0.0.1:1/x",
    "postgresql+nosuch://u@h/x",
    "mysql://u@127.0.0.1:1/x",
]
#: Bad values of free-text options (click's own types give the rest): each a list of argv.
BAD_TEXT = {
    "tracking_uri": [*URIS, "http://127.0.0.1:1"],
    "claims_uri": [*URIS, "http://127.0.0.1:1"],
    "storage": [*URIS, "optuna.db"],
    "device": ["gpu", "cuda:99", "tpu", ""],
    "reference": ["nosuch", "a/b/c", "baseline/nosuch", "a b"],
    "suite_name": ["nosuch"],
    "dataset": ["nosuch"],
    "jobs": ["0", "x", "-2", "1.5"],
    "sbatch": ["noequals", "=x"],
    "partition": ["gpu"],
    "data_root": ["afile"],
    "only": ["nosuch"],
    "ddp": ["3"],
    "grace_period": ["5"],
    "heartbeat_interval": ["60"],
    "launcher_config": ["afile"],
    "readme": ["readme.md"],
    "suite": ["nosuch", "nosuch.yaml"],
    "a": ["a/b/c", "nosuch"],
    "b": ["a/b/c", "baseline/nosuch"],
    "method": ["nosuch"],
}
#: Combinations of valid values that do not go together.
COMBOS = [
    ("run", ["--jobs", "2", "--launcher", "local"], "--jobs"),
    ("run", ["--jobs", "2", "--launcher", "slurm"], "--jobs"),
    ("run", ["--ddp", "2", "--jobs", "2"], "--ddp"),
    ("run", ["--cpus-per-task", "2"], "--cpus-per-task"),
    ("tune", ["--heartbeat-interval", "30", "--grace-period", "30"], "--grace-period"),
]
FIXTURES = ("afile", "adir", "readme.md", "mlflow.db", "mlflow-claims.db")


def typed_bad(param) -> list[str]:
    """Values click's own type of ``param`` refuses."""
    import click

    kind, out = param.type, []
    if isinstance(kind, click.IntRange | click.FloatRange) and kind.min is not None:
        out.append(str(kind.min if kind.min_open else kind.min - 1))
    if isinstance(kind, click.IntRange | click.FloatRange):
        out.append("many")
    if isinstance(kind, click.Choice):
        out.append("nope")
    if isinstance(kind, click.Path):
        if kind.exists:
            out.append("missing.yaml")
        if not kind.file_okay:
            out.append("afile")
        if not kind.dir_okay:
            out.append("adir")
    return out


def bad_values(command: str) -> list[tuple[list[str], str]]:
    """(argv after the command's valid ones, or in place of an argument; what it names)."""
    from click import Argument

    from bench.cli import cli

    out = []
    for param in cli.commands[command].params:
        if getattr(param, "is_flag", False) or param.name in ("overrides", "override_files"):
            continue
        for value in typed_bad(param) + BAD_TEXT.get(param.name, []):
            if isinstance(param, Argument):
                out.append(([f"@{param.name}", value], value))
            else:
                out.append(([max(param.opts, key=len), value], max(param.opts, key=len)))
    return out + [(argv, named) for cmd, argv, named in COMBOS if cmd == command]


@dataclass
class FlagCase:
    """One command with one malformed option, argument or combination."""

    command: str
    bad: list[str]
    named: str  # the flag (or the value) the error line must name

    def argv(self) -> list[str]:
        argv = list(COMMAND_ARGV[self.command])
        if self.bad[0].startswith("@"):  # an argument replaced
            names = [p.name for p in _arguments(self.command)]
            position = _argument_positions(self.command)[names.index(self.bad[0][1:])]
            argv[position] = self.bad[1]
            return argv
        return argv + self.bad


def _arguments(command: str) -> list:
    from click import Argument

    from bench.cli import cli

    return [p for p in cli.commands[command].params if isinstance(p, Argument)]


def _argument_positions(command: str) -> list[int]:
    """Where each argument of the command sits in COMMAND_ARGV (after flags it holds)."""
    argv = COMMAND_ARGV[command]
    positions, i = [], 1
    while i < len(argv):
        if argv[i].startswith("--"):
            i += 2
            continue
        positions.append(i)
        i += 1
    return positions


@st.composite
def flag_cases(draw) -> FlagCase:
    command = draw(st.sampled_from(sorted(COMMAND_ARGV)))
    bad, named = draw(st.sampled_from(bad_values(command)))
    return FlagCase(command, bad, named)


_STORE: dict[str, Path] = {}


def fixture_store() -> Path:
    """A folder with an MLflow store holding finished runs of the base suite (made once)."""
    if "folder" not in _STORE:
        from bench.engine import store
        from bench.engine.tracking import client

        folder = Path(tempfile.mkdtemp(prefix="bench-fuzz-store-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
        _, exp_id = store.prepare(uri, BASE["name"])
        mlf = client(uri)
        for i, variant in enumerate(("default", "ce-only")):
            tags = {"suite": "fuzz", "method": "baseline", "variant": variant, "seed": "0"}
            tags.update(dataset="synthetic-video", split="0", protocol="fuzz")
            tags.update(config_hash=f"{i:016d}", config_key=f"{i:016d}")
            run = mlf.create_run(exp_id, tags=tags).info.run_id
            for metric in ("R1", "mAP"):
                mlf.log_metric(run, metric, 50.0 + i)
            mlf.set_terminated(run, "FINISHED")
        _STORE["folder"] = folder
    return _STORE["folder"]


def flag_outcome(case: FlagCase, invoke) -> str | None:
    """None if the case ends in one ``Error:`` line naming the flag (or the bad value), with
    no traceback and nothing created; else what went wrong."""
    store = fixture_store()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            Path(SUITE_FILE).write_text(yaml.safe_dump(BASE, sort_keys=False))
            for name in FIXTURES[3:]:  # with their write-ahead logs: the runs may be there
                for part in (name, f"{name}-wal"):
                    if (store / part).exists():
                        shutil.copyfile(store / part, part)
            Path("afile").write_text("plain text\n")
            Path("adir").mkdir()
            Path("readme.md").write_text("# a README without table markers\n")
            try:
                result = invoke(case.argv())
            except ReachedWork:
                return "validation passed"
            left = sorted(
                p.name
                for p in Path(tmp).iterdir()
                if p.name.removesuffix("-wal").removesuffix("-shm") not in (SUITE_FILE, *FIXTURES)
            )
        finally:
            os.chdir(cwd)
    return flag_problem(case, result, left)


def flag_problem(case: FlagCase, result, left: list[str]) -> str | None:
    if not isinstance(result.exception, SystemExit) or result.exit_code not in (1, 2):
        return f"exception {type(result.exception).__name__}: {result.exception}"
    lines = result.output.strip().splitlines()
    if "Traceback" in result.output:
        return "traceback"
    if len(lines) != 1:
        return f"{len(lines)} lines"
    if not lines[0].startswith("Error: "):
        return f"not an error line: {lines[0]}"
    if case.named not in lines[0]:
        return f"not naming {case.named!r}: {lines[0]}"
    if left:
        return f"created {left}"
    return None
