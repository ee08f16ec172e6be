"""Nothing lost, nothing false, nothing executed (issues 11 and 25).

Sections:
1. Malformed inputs: each of many bad suites, patches and ``-o`` values gives one line
   ``Error: FILE: KEY: ...`` through the real CLI, before any MLflow store or data exists
   (``tests/test_fuzzed_suites.py`` generates many more from the schema).
2. Fast errors: validating a suite imports neither torch nor MLflow.
3. Pickle: checkpoints and ``.npy`` files are never unpickled; bad files are named.
4. Non-finite training: a NaN loss or gradient fails the cell (or skips the step, counted).
5. Disks: unwritable folders are named before training; a full disk keeps the old file.
6. Devices and DDP: an absent device, ``--ddp`` against ``data.p`` and the GPUs, and the
   ``pretrain:`` stage's model and device, all refused before any cell, store or run.
7. Stores: every URI of every command checked before any work (scheme, driver, an SQLite file
   that is a database and can itself be written, a server that answers within seconds);
   ``report``, ``compare`` and ``status`` read a read-only store; a library error that gets
   past the checks is one line naming the store (``--debug`` shows the traceback).
8. Flags: ``--reference``, ``--dataset`` and ``--suite`` against the runs there, flags a
   launcher would ignore, ``bench tune``'s heartbeat against its grace period, click's own
   errors as one line.
9. Reports: a run with ``-o``, ``-O`` or ``-m`` writes beside the suite's report, never over
   it; a kept ``## Reading`` over changed numbers is marked as written for an earlier table.
10. Grids that end: ``--force`` with 2 and 4 workers, Ctrl-C in the driver (the workers stop,
    their cells resumable), a PostgreSQL server restarted between and during cells.
"""

from __future__ import annotations

import copy
import errno
import os
import pickle
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from fixtures import real_layouts as fx
from test_cli_e2e import TINY

from bench.cli import cli
from bench.errors import BenchError, DataError

SUITE = {  # the end-to-end TINY suite: one variant, one seed, two steps
    **{k: v for k, v in TINY.items() if k != "ablations"},
    "seeds": [0],
    "defaults": {**TINY["defaults"], "train": {"epochs": 1, "max_steps_per_epoch": 2}},
}


def patched(path: str, value) -> dict:
    """SUITE with ``a.b.c`` (list items as integers) set to ``value``."""
    suite = copy.deepcopy(SUITE)
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    node = suite
    for key in keys[:-1]:
        node = node[key] if isinstance(key, int) else node.setdefault(key, {})
    node[keys[-1]] = value
    return suite


def run_cli(args: list[str], env: dict | None = None):
    return CliRunner(env=env).invoke(cli, args)


# ---------------------------------------------------------------------------------------------
# 1. Malformed inputs
# ---------------------------------------------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefg", "bcdefgh", strict=True)
)

#: (id, suite file content: a dict to dump or raw text/bytes, extra CLI args, where, key)
#: ``where`` must appear in the message (the file, or the ``-o`` option); ``key`` after it.
S = "suite.yaml"
CASES = [
    # strict YAML
    ("dup-root-key", yaml.safe_dump(SUITE) + "name: other\n", [], S, "duplicate key 'name'"),
    ("dup-nested-key", "name: t\ndefaults: {data: {p: 2, p: 3}}\n", [], S, "duplicate key 'p'"),
    ("alias-bomb", BOMB, [], S, "alias"),
    ("not-utf8", b"name: caf\xe9\n", [], S, "not UTF-8"),
    ("unclosed", "name: [unclosed\n", [], S, "not valid YAML"),
    ("python-tag", "name: !!python/object/apply:os.system ['echo x']\n", [], S, "python/object"),
    ("top-level-list", "- a\n- b\n", [], S, "mapping at the top level"),
    ("empty-file", "", [], S, "mapping at the top level"),
    ("tab-indent", "name: t\ndefaults:\n\tdata: 1\n", [], S, "not valid YAML"),
    # name
    ("name-empty", patched("name", ""), [], S, "name: String should have at least 1"),
    ("name-missing", {k: v for k, v in SUITE.items() if k != "name"}, [], S, "name: Field req"),
    ("name-int", patched("name", 3), [], S, "name: Input should be a valid string"),
    ("name-slash", patched("name", "a/b"), [], S, "name: String should match"),
    # seeds
    ("seed-bool", patched("seeds", [True]), [], S, "seeds[0]: Input should be a valid integer"),
    ("seed-negative", patched("seeds", [-1]), [], S, "seeds[0]: Input should be greater"),
    ("seed-2**32", patched("seeds", [2**32]), [], S, "seeds[0]: Input should be less"),
    ("seed-duplicate", patched("seeds", [0, 0]), [], S, "seeds: Value error, expected distinct"),
    ("seed-float", patched("seeds", [1.5]), [], S, "seeds[0]: Input should be a valid integer"),
    ("seed-string", patched("seeds", "0"), [], S, "seeds: Input should be a valid list"),
    ("seeds-empty", patched("seeds", []), [], S, "seeds: List should have at least 1"),
    # methods
    ("method-duplicate", patched("methods", ["baseline"] * 2), [], S, "methods: Value error"),
    ("method-unknown", patched("methods", ["nope"]), [], S, "methods[0]: unknown method 'nope'"),
    ("methods-empty", patched("methods", []), [], S, "methods: List should have at least 1"),
    ("methods-string", patched("methods", "baseline"), [], S, "methods: Input should be a valid"),
    # datasets
    ("dataset-unknown", patched("datasets", ["nope"]), [], S, "datasets[0]: unknown dataset"),
    ("datasets-empty", patched("datasets", []), [], S, "datasets: List should have at least 1"),
    ("dataset-twice", patched("datasets", ["synthetic-video"] * 2), [], S, "datasets[1]: expected"),
    ("dataset-key", patched("datasets.0.colour", 1), [], S, "colour: unknown key"),
    ("splits-out-of-range", patched("datasets.0.splits", [5]), [], S, "datasets[0].splits"),
    ("splits-duplicate", patched("datasets.0.splits", [0, 0]), [], S, "datasets[0].splits"),
    ("splits-negative", patched("datasets.0.splits", [-1]), [], S, "datasets[0].splits"),
    ("dataset-ids", patched("datasets.0.train_ids", 2), [], S, "train_ids: Input should be"),
    # sizes
    ("height-1e9", patched("defaults.data.height", 1e9), [], S, "data.height: Input should be"),
    ("height-0", patched("defaults.data.height", 0), [], S, "data.height: Input should be"),
    ("height-1", patched("defaults.data.height", 1), [], S, "data.height: expected at least"),
    ("width-8", patched("defaults.data.width", 8), [], S, "data.width: expected at least 16"),
    ("height-text", patched("defaults.data.height", "tall"), [], S, "data.height: Input should"),
    ("height-bool", patched("defaults.data.height", True), [], S, "data.height: Input should"),
    ("seq-len-0", patched("defaults.data.seq_len", 0), [], S, "data.seq_len: Input should be"),
    ("seq-len-huge", patched("defaults.data.seq_len", 10**5), [], S, "data.seq_len: Input should"),
    ("draws-0", patched("defaults.eval.seq_length_draws", 0), [], S, "seq_length_draws: Input"),
    ("seq-lengths-neg", patched("defaults.eval.seq_lengths", [4, -1]), [], S, "seq_lengths[1]: "),
    ("p-vs-ids", patched("defaults.data.p", 100), [], S, "defaults.data.p: expected at most 6"),
    ("p-1", patched("defaults.data.p", 1), [], S, "data.p: Input should be greater"),
    ("k-huge", patched("defaults.data.k", 10**6), [], S, "data.k: Input should be less"),
    ("epochs-negative", patched("defaults.train.epochs", -1), [], S, "train.epochs: Input should"),
    ("epochs-huge", patched("defaults.train.epochs", 10**9), [], S, "train.epochs: Input should"),
    (
        "p-in-ablation",
        patched("ablations", {"baseline": [{"name": "big", "data": {"p": 50}}]}),
        [],
        S,
        "ablations.baseline[0].data.p: expected at most 6",
    ),
    (
        "p-after-validation",
        patched("defaults.train.val_fraction", 0.5),
        ["-o", "data.p=4"],
        S,
        "defaults.data.p: expected at most 3 identities per batch",
    ),
    # model
    ("backbone-unknown", patched("defaults.model.backbone", "resnet99"), [], S, "model.backbone"),
    (
        "kwargs-stages",
        patched("defaults.model.kwargs", {"channels": [16, 32]}),
        [],
        S,
        "model.kwargs: backbone 'resnet18' with model.kwargs",
    ),
    ("kwargs-unknown", patched("defaults.model.kwargs", {"foo": 1}), [], S, "model.kwargs: timm"),
    ("last-stride-3", patched("defaults.model.last_stride", 3), [], S, "model.last_stride"),
    ("weights-missing", patched("defaults.model.weights", "/no.pth"), [], S, "model.weights: no"),
    ("pretrained-int", patched("defaults.model.pretrained", 2), [], S, "model.pretrained: Input"),
    # train / eval
    ("optimizer", patched("defaults.train.optimizer", "rmsprop"), [], S, "train.optimizer: Input"),
    ("lr-negative", patched("defaults.train.lr", -1), [], S, "train.lr: Input should be greater"),
    ("lr-text", patched("defaults.train.lr", "fast"), [], S, "train.lr: Input should be"),
    ("on-nonfinite", patched("defaults.train.on_nonfinite", "x"), [], S, "train.on_nonfinite"),
    ("skips-negative", patched("defaults.train.max_skipped_steps", -1), [], S, "max_skipped"),
    ("train-typo", patched("defaults.train.epoch", 1), [], S, "train.epoch: unknown key"),
    ("eval-batch-0", patched("defaults.eval.batch_size", 0), [], S, "eval.batch_size: Input"),
    ("eval-clip-0", patched("defaults.eval.clip_len", 0), [], S, "eval.clip_len: Input"),
    (
        "rerank-k2",
        patched("defaults.eval.rerank", {"k1": 4, "k2": 6}),
        [],
        S,
        "defaults.eval.rerank: Value error, k2 must be at most k1 + 1 = 5",
    ),
    ("rerank-lambda", patched("defaults.eval.rerank", {"lambda": 1.5}), [], S, "rerank.lambda"),
    ("rerank-lambda-neg", patched("defaults.eval.rerank", {"lambda": -0.1}), [], S, "lambda: "),
    ("rerank-form", patched("defaults.eval.rerank", {"form": "paper"}), [], S, "rerank.form: "),
    # ablations and method_config
    (
        "ablation-field",
        patched("ablations", {"baseline": [{"name": "x", "margn": 1}]}),
        [],
        S,
        "ablations.baseline[0]: margn: unknown key",
    ),
    (
        "ablation-no-name",
        patched("ablations", {"baseline": [{"triplet": "none"}]}),
        [],
        S,
        "ablations.baseline[0].name",
    ),
    (
        "ablation-default",
        patched("ablations", {"baseline": [{"name": "default"}]}),
        [],
        S,
        "ablations.baseline[0].name",
    ),
    ("ablation-not-list", patched("ablations", {"baseline": 3}), [], S, "ablations.baseline"),
    ("config-other", patched("method_config", {"stal": {}}), [], S, "method_config.stal"),
    (
        "config-literal",
        patched("method_config", {"baseline": {"triplet": "semi"}}),
        [],
        S,
        "method_config.baseline: triplet: Input should be",
    ),
    # -o and -O
    ("o-unclosed", SUITE, ["-o", "seeds=[0"], "-o seeds=[0", "not valid YAML"),
    ("o-python-tag", SUITE, ["-o", "name=!!python/name:os.system"], "-o name=", "python/name"),
    ("o-no-equals", SUITE, ["-o", "seeds"], "-o seeds", "expected KEY=VALUE"),
    ("o-bad-yaml", SUITE, ["-o", "data.p=a: b: c"], "-o data.p=", "not valid YAML"),
    ("o-bool-seed", SUITE, ["-o", "seeds=[true]"], S, "seeds[0]: Input should be a valid integer"),
    ("o-not-mapping", SUITE, ["-o", "data=3"], S, "defaults.data: Input should be a valid"),
    ("o-through-scalar", SUITE, ["-o", "name.x=3"], "-o name.x", "'name' is not a mapping"),
    ("o-float-epochs", SUITE, ["-o", "train.epochs=1e9"], S, "train.epochs: Input should be"),
    ("O-duplicate", SUITE, ["-O", "patch-dup.yaml"], "patch-dup.yaml", "duplicate key 'seeds'"),
    ("O-not-utf8", SUITE, ["-O", "patch-latin1.yaml"], "patch-latin1.yaml", "not UTF-8"),
    ("O-list", SUITE, ["-O", "patch-list.yaml"], "patch-list.yaml", "mapping at the top level"),
    ("O-bomb", SUITE, ["-O", "patch-bomb.yaml"], "patch-bomb.yaml", "alias"),
]
PATCHES = {
    "patch-dup.yaml": b"seeds: [0]\nseeds: [1]\n",
    "patch-latin1.yaml": b"name: \xff\xfe\n",
    "patch-list.yaml": b"- 1\n",
    "patch-bomb.yaml": BOMB.encode(),
}


def test_the_catalogue_is_large():
    assert len(CASES) >= 60 and len({c[0] for c in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("content", "args", "where", "key"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_malformed_input_is_one_line_before_any_work(
    in_tmp, monkeypatch, content, args, where, key
):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    if isinstance(content, dict):
        content = yaml.safe_dump(content)
    (in_tmp / S).write_bytes(content if isinstance(content, bytes) else content.encode())
    for name, data in PATCHES.items():
        (in_tmp / name).write_bytes(data)
    result = run_cli(["run", S, *args])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert len(lines) == 1, result.output
    line = lines[0]
    assert line.startswith(f"Error: {where}") and key in line.split(where, 1)[1], line
    assert "Traceback" not in result.output
    assert not (in_tmp / "mlflow.db").exists() and not (in_tmp / "mlruns").exists()
    assert not (in_tmp / "data").exists() and not (in_tmp / ".bench").exists()


@pytest.mark.parametrize(
    ("name", "folder", "build"),
    [("mars", "MARS", fx.build_mars), ("ilids-vid", "iLIDS-VID", fx.build_ilids)],
)
def test_p_and_splits_are_checked_against_a_real_release_index(
    in_tmp, monkeypatch, name, folder, build
):
    """From the release's index and split files: no frame is decoded to know the sizes."""
    from PIL import Image

    from bench.data.build import build_dataset
    from bench.errors import ConfigError
    from bench.suite.load import load_suite

    build(in_tmp / folder)
    dataset = build_dataset(name, {}, str(in_tmp))
    ids = dataset.train_identities(0)
    assert ids == len({t.pid for t in dataset.load_split(0).train})

    def no_decoding(*args, **kwargs):
        raise AssertionError("a frame was decoded")

    monkeypatch.setattr(Image, "open", no_decoding)
    suite = {**SUITE, "datasets": [name]}
    (in_tmp / S).write_text(yaml.safe_dump(suite))
    with pytest.raises(ConfigError, match=f"defaults.data.p: expected at most {ids} identities"):
        load_suite(S, [f"data.p={ids + 1}"], data_root=str(in_tmp))
    load_suite(S, [f"data.p={ids}"], data_root=str(in_tmp))
    n = dataset.num_splits()
    with pytest.raises(ConfigError, match=r"datasets\[0\].splits: expected distinct split"):
        load_suite(S, [f"datasets=[{{name: {name}, splits: [{n}]}}]"], data_root=str(in_tmp))


def test_offline_pretrained_names_the_local_weights_option(in_tmp, monkeypatch):
    """No hub retries: with the hub unreachable, validation fails at once (no download)."""
    from bench.models import backbone

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(backbone, "pretrained_cached", lambda name: False)
    attempts = []

    def unreachable(host="huggingface.co", timeout=3.0):
        attempts.append(timeout)
        return False

    monkeypatch.setattr(backbone, "hub_reachable", unreachable)
    (in_tmp / S).write_text(yaml.safe_dump(patched("defaults.model.pretrained", True)))
    result = run_cli(["run", S])
    assert result.exit_code == 1
    assert "defaults.model.pretrained: could not load pretrained weights" in result.output
    assert "model.weights" in result.output
    assert attempts == [3.0]  # one probe with a short timeout, no retries
    assert not (in_tmp / "mlflow.db").exists()


# ---------------------------------------------------------------------------------------------
# 2. Fast errors: validation does not import torch or MLflow
# ---------------------------------------------------------------------------------------------


def test_a_suite_error_needs_neither_torch_nor_mlflow(tmp_path):
    (tmp_path / S).write_text(yaml.safe_dump(patched("defaults.train.epochs", "many")))
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom bench.cli import cli\n"
        f"r = CliRunner().invoke(cli, ['run', {S!r}])\n"
        "print(r.output.strip())\n"
        "print(sorted(m for m in ('torch', 'timm', 'mlflow', 'scipy') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout.splitlines()
    assert out[0].startswith(f"Error: {S}: defaults.train.epochs")
    assert out[1] == "[]"


def test_method_configs_registered_apart_are_the_methods_configs():
    from bench.registry import METHOD_CONFIGS, METHODS, method_config

    assert METHOD_CONFIGS.names() == METHODS.names()
    for name in METHODS.names():
        assert method_config(name) is METHODS.get(name).Config


def test_a_third_party_method_without_a_separate_config_still_validates(monkeypatch):
    from bench.config import MethodConfig
    from bench.method import Method
    from bench.registry import METHODS, known_method, method_config

    class OwnConfig(MethodConfig):
        alpha: float = 1.0

    class ThirdParty(Method):
        Config = OwnConfig

    METHODS.names()  # load the built-ins first
    monkeypatch.setitem(METHODS._items, "third-party", ThirdParty)
    assert known_method("third-party") and method_config("third-party") is OwnConfig
    assert not known_method("nope")


# ---------------------------------------------------------------------------------------------
# 3. Pickle: nothing from disk is unpickled
# ---------------------------------------------------------------------------------------------


class _Payload:
    """Unpickling this runs a shell command (what a crafted checkpoint would do)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_crafted_checkpoint_is_refused_not_run(tmp_path):
    from bench.engine import checkpoint

    marker = tmp_path / "pwned"
    path = tmp_path / "checkpoint.pt"
    torch.save({"epoch": 1, "evil": _Payload(marker)}, path)
    with pytest.raises(DataError, match=f"{path}: not a checkpoint bench can load safely"):
        checkpoint.load(path)
    assert not marker.exists()


def test_the_trainers_checkpoint_loads_weights_only(tmp_path):
    from bench.config import TrainConfig
    from bench.engine.trainer import Trainer

    model = torch.nn.Linear(3, 2)
    cfg = TrainConfig(epochs=4, optimizer="sgd", scheduler="step", step_size=1, warmup_epochs=1)
    trainer = Trainer(model, None, cfg, tmp_path / "checkpoint.pt")
    model(torch.ones(1, 3)).sum().backward()
    trainer.optimizer.step()
    trainer.scheduler.step()
    trainer.guard.skipped = 2
    trainer._save(2)
    again = Trainer(torch.nn.Linear(3, 2), None, cfg, tmp_path / "checkpoint.pt")
    assert again.resume() == 2 and again.guard.skipped == 2
    assert torch.equal(again.method.weight, model.weight)
    assert (
        again.optimizer.state_dict()["state"].keys()
        == trainer.optimizer.state_dict()["state"].keys()
    )


def test_a_pickled_or_garbage_npy_is_named_not_unpickled(tmp_path):
    from bench.data.npy import load_array

    marker = tmp_path / "pwned"
    pickled = tmp_path / "pickled.npy"
    np.save(pickled, np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    garbage = tmp_path / "garbage.npy"
    garbage.write_bytes(os.urandom(200))
    for path in (pickled, garbage):
        with pytest.raises(DataError) as err:
            load_array(str(path))
        message = str(err.value)
        assert message.startswith(f"{path}: not a plain numeric .npy array")
        assert "\n" not in message
    assert not marker.exists()


def test_nan_keypoints_name_the_file_and_frame(tmp_path):
    from PIL import Image

    from bench.data.base import Tracklet
    from bench.data.frames import FrameReader

    frames = []
    for i in range(3):
        frames.append(str(tmp_path / f"f{i}.png"))
        Image.fromarray(np.zeros((32, 16, 3), np.uint8)).save(frames[-1])
    kp = np.ones((3, 14, 3), np.float32)
    kp[1, 5, 0] = np.nan
    np.save(tmp_path / "kp.npy", kp)
    track = Tracklet(tuple(frames), 0, 0, None, str(tmp_path / "kp.npy"))
    with pytest.raises(DataError, match=r"kp.npy: frame 1 \(.*f1.png\) has non-finite"):
        FrameReader(32, 16).keypoints(track, [0, 1])


def test_the_annotation_check_names_a_garbage_keypoint_file(tmp_path):
    from bench.data.aux_annotations import AuxFolders

    (tmp_path / "kp").mkdir()
    (tmp_path / "kp" / "t1.npy").write_bytes(b"\x93NUMPY garbage")
    problems = AuxFolders(keypoints=str(tmp_path / "kp")).check([("t1", ["a.png"])])
    assert problems and problems[0][0].endswith("t1.npy") and "numeric .npy" in problems[0][1]


# ---------------------------------------------------------------------------------------------
# 4. Non-finite training
# ---------------------------------------------------------------------------------------------


class _Loader(list):
    """A list of batches with the sampler hook the trainer calls."""

    class sampler:  # noqa: N801
        @staticmethod
        def set_epoch(epoch):
            pass


class _Regression(torch.nn.Module):
    """loss = mean((w x - y)^2); ``sqrt`` makes a finite loss with an infinite gradient."""

    def __init__(self, sqrt: bool = False):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(3))
        self.sqrt = sqrt

    def forward(self, batch):
        return (self.w * batch["x"]).sum(-1)

    def loss(self, out, batch):
        err = ((out - batch["y"]) ** 2).mean()
        if self.sqrt:
            err = torch.sqrt(err * batch["scale"])
        return {"mse": err, "reg": 0.01 * self.w.square().sum()}


def _batches(bad_step: int, sqrt: bool = False) -> _Loader:
    out = _Loader()
    for step in range(4):
        x = torch.ones(2, 3)
        if step == bad_step and not sqrt:
            x[0, 0] = float("nan")
        scale = torch.tensor(0.0 if step == bad_step else 1.0)
        out.append({"x": x, "y": torch.zeros(2), "scale": scale})
    return out


def _trainer(tmp_path, sqrt=False, bad_step=1, **train):
    from bench.config import TrainConfig
    from bench.engine.trainer import Trainer

    cfg = TrainConfig(epochs=1, lr=0.01, weight_decay=0, scheduler="none", **train)
    return Trainer(_Regression(sqrt), _batches(bad_step, sqrt), cfg, tmp_path / "ck.pt")


def test_a_nan_loss_stops_the_cell_at_that_step_with_advice(tmp_path):
    from bench.engine.finite import NonFiniteError

    trainer = _trainer(tmp_path)
    with pytest.raises(NonFiniteError) as err:
        trainer.fit()
    message = str(err.value)
    assert "epoch 1, step 2: non-finite loss" in message
    assert "mse=nan" in message and "reg=" in message
    assert "train.lr" in message and "skip_step" in message and "grad_clip" in message
    assert not (tmp_path / "ck.pt").exists()  # the epoch never finished


def test_a_nonfinite_gradient_of_a_finite_loss_stops_it_too(tmp_path):
    from bench.engine.finite import NonFiniteError

    with pytest.raises(NonFiniteError, match="epoch 1, step 3: non-finite gradient"):
        _trainer(tmp_path, sqrt=True, bad_step=2).fit()


def test_skip_step_skips_counts_and_is_bounded(tmp_path):
    from bench.engine.finite import NonFiniteError

    trainer = _trainer(tmp_path, on_nonfinite="skip_step", max_skipped_steps=1)
    logs = []
    trainer.fit(lambda epoch, values: logs.append(values))
    assert logs[0]["train.skipped_steps"] == 1
    assert np.isfinite(logs[0]["loss/total"])  # the mean of the 3 steps that were taken
    assert torch.isfinite(trainer.method.w).all()
    with pytest.raises(NonFiniteError, match="limit of 0 skipped steps is reached"):
        _trainer(tmp_path / "b", on_nonfinite="skip_step", max_skipped_steps=0).fit()


@pytest.mark.slow
def test_a_diverging_cell_is_failed_with_an_error_tag_and_no_metrics(in_tmp, monkeypatch):
    """Through the real CLI: the loss turns NaN at step 2; the run is FAILED with a tag."""
    from methods.baseline import Baseline

    original, calls = Baseline.loss, []

    def diverging(self, outputs, batch):
        terms = original(self, outputs, batch)
        calls.append(1)
        return {k: v * float("nan") for k, v in terms.items()} if len(calls) == 2 else terms

    monkeypatch.setattr(Baseline, "loss", diverging)
    (in_tmp / S).write_text(yaml.safe_dump(SUITE))
    result = run_cli(["run", S, "--no-report"])
    assert result.exit_code != 0
    from bench.engine.tracking import client

    mlf = client(None)
    (run,) = mlf.search_runs([mlf.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == "FAILED"
    assert "epoch 1, step 2: non-finite loss" in run.data.tags["error"]
    assert "R1" not in run.data.metrics and "mAP" not in run.data.metrics


# ---------------------------------------------------------------------------------------------
# 5. Disks and paths
# ---------------------------------------------------------------------------------------------


def _full_disk_write(real):
    """A torch.save that writes half the file, then finds the disk full."""

    def save(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    return save


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    from bench.engine import checkpoint
    from bench.files.atomic import DiskFullError

    path = tmp_path / "cell" / "checkpoint.pt"
    checkpoint.save(path, {"epoch": 1, "w": torch.ones(3)})
    monkeypatch.setattr(torch, "save", _full_disk_write(torch.save))
    with pytest.raises(DiskFullError, match="the disk is full.*the previous checkpoint is kept"):
        checkpoint.save(path, {"epoch": 2, "w": torch.zeros(3)})
    monkeypatch.undo()
    assert checkpoint.load(path)["epoch"] == 1
    assert os.listdir(path.parent) == ["checkpoint.pt"]  # no partial file left


@pytest.fixture
def mount_tmpfs(tmp_path):
    """mount(size, read_only) -> a fresh tmpfs folder; skipped where mounting is not allowed."""
    mounted = []

    def mount(size: str = "1m", read_only: bool = False) -> Path:
        point = tmp_path / f"mnt-{uuid.uuid4().hex[:6]}"
        point.mkdir()
        opts = f"size={size}" + (",ro" if read_only else "")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(point)],
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "--lazy", str(point)], check=False)


def test_a_really_full_disk_keeps_the_previous_checkpoint(mount_tmpfs):
    from bench.engine import checkpoint
    from bench.files.atomic import DiskFullError

    disk = mount_tmpfs("1m")
    path = disk / "checkpoint.pt"
    checkpoint.save(path, {"epoch": 1, "w": torch.ones(1000)})
    with pytest.raises(DiskFullError, match=f"{path}: the disk is full"):
        checkpoint.save(path, {"epoch": 2, "w": torch.ones(1_000_000)})  # 4 MB > 1 MB
    assert checkpoint.load(path)["epoch"] == 1
    assert os.listdir(disk) == ["checkpoint.pt"]
    checkpoint.save(path, {"epoch": 2, "w": torch.ones(1000)})  # the space came back
    assert checkpoint.load(path)["epoch"] == 2


def test_atomic_text_write_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    from bench.files import atomic

    path = tmp_path / "report.md"
    atomic.write_text(path, "old")

    def failing_replace(src, dst):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError):
        atomic.write_text(path, "new")
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["report.md"]


@pytest.mark.parametrize(
    ("what", "args", "flag"),
    [
        ("the working directory", [], ""),
        ("the --workdir", ["--workdir", "{ro}/wd"], ""),
        (
            "the MLflow tracking store's folder",
            ["--tracking-uri", "sqlite:///{ro}/mlflow.db"],
            "--tracking-uri: ",
        ),
    ],
)
def test_an_unwritable_folder_is_named_before_training(
    in_tmp, mount_tmpfs, monkeypatch, what, args, flag
):
    ro = mount_tmpfs(read_only=True)
    (in_tmp / S).write_text(yaml.safe_dump(SUITE))
    if what == "the working directory":
        monkeypatch.chdir(ro)
    args = [a.format(ro=ro) for a in args]
    result = run_cli(["run", str(in_tmp / S), *args])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: {flag}{ro}") and what in lines[0]
    assert "Read-only file system" in lines[0]
    assert not (in_tmp / "data").exists() and not (in_tmp / "mlflow.db").exists()


def test_an_unwritable_report_or_artifact_folder_is_named(in_tmp, monkeypatch):
    """Without root: the probe file in that folder fails as it would on a read-only disk."""
    import tempfile

    from bench.preflight import check_run_paths

    real = tempfile.mkstemp
    blocked = {str(in_tmp / "reports"), str(in_tmp / "mlruns")}

    def mkstemp(*args, dir=None, **kwargs):  # noqa: A002
        if str(dir) in blocked:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    (in_tmp / "mlruns").mkdir()
    with pytest.raises(BenchError, match=r"mlruns: the MLflow artifact root is not writable"):
        check_run_paths(None)
    (in_tmp / "mlruns").rmdir()
    (in_tmp / "reports").mkdir()
    with pytest.raises(BenchError, match=r"reports: the report folder is not writable"):
        check_run_paths(None, (in_tmp / "reports", "the report folder"))
    assert sorted(p.name for p in in_tmp.iterdir()) == ["reports"]


def test_payload_is_really_dangerous(tmp_path):
    """The crafted payload of the pickle tests does run a command when unpickled unsafely."""
    marker = tmp_path / "pwned"
    pickle.loads(pickle.dumps(_Payload(marker)))
    assert marker.exists()


# ---------------------------------------------------------------------------------------------
# 6. Devices and DDP: checked before any work, for every command that runs cells
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def gpus(monkeypatch):
    """gpus(n): this machine shows n CUDA devices to torch (0: no CUDA), and no MPS."""

    def show(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)

    show(0)
    return show


def nothing_made(folder: Path) -> bool:
    """No store, run, data, work dir or report was made in ``folder``."""
    made = {"mlflow.db", "mlruns", "data", ".bench", "reports", "optuna.db", "mlflow-claims.db"}
    return not made & {p.name for p in folder.iterdir()}


def one_error(result) -> str:
    """The single ``Error:`` line of a refused command (asserted: no traceback)."""
    lines = result.output.strip().splitlines()
    assert result.exit_code in (1, 2) and isinstance(result.exception, SystemExit), result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


STAGE = {"pretrain": {"train": {"epochs": 1}}}


@pytest.mark.parametrize(
    ("suite", "args", "shown", "n_gpus"),
    [
        (SUITE, ["--device", "cuda"], "Error: --device: expected a device of this machine: "
         "CUDA is not available on this machine (got 'cuda')", 0),
        (SUITE, ["--device", "mps"], "Error: --device: expected a device of this machine: MPS "
         "is not available", 0),
        (SUITE, ["--device", "gpu"], "Error: --device: expected auto, cpu, cuda, cuda:N or mps "
         "(got 'gpu')", 0),
        (patched("defaults.runtime.device", "cuda"), [], f"Error: {S}: defaults.runtime.device:"
         " expected a device of this machine: CUDA is not available", 0),
        (patched("ablations", {"baseline": [{"name": "m", "runtime": {"device": "mps"}}]}), [],
         f"Error: {S}: ablations.baseline[0].runtime.device: expected a device", 0),
        (SUITE, ["--device", "cuda:3"], "Error: --device: expected a device of this machine: "
         "GPU 3 requested, 1 visible (got 'cuda:3')", 1),
        (SUITE, ["--device", "cuda", "--ddp", "2"], "Error: --device: expected a device of this"
         " machine: --ddp 2 needs 2 GPUs, 1 visible", 1),
        (SUITE, ["--device", "cuda:0", "--ddp", "2"], "puts each rank on its own GPU", 2),
        (patched("defaults.data.p", 3), ["--ddp", "2"], f"Error: {S}: defaults.data.p: expected"
         " a multiple of --ddp 2: each of the 2 ranks takes p / 2 identities of every batch "
         "(got 3)", 0),
        (patched("defaults.train.sync_bn", True), ["--ddp", "2", "--device", "cpu"],
         f"Error: {S}: defaults.train.sync_bn: expected false with --ddp 2 on the CPU", 0),
        (SUITE, ["--ddp", "2", "--jobs", "2"], "Error: --ddp: trains one cell at a time", 0),
        ({**SUITE, **STAGE}, ["--device", "cuda"], "Error: --device: expected a device", 0),
    ],
)  # fmt: skip
def test_devices_and_ddp_are_checked_before_any_cell(in_tmp, gpus, suite, args, shown, n_gpus):
    gpus(n_gpus)
    (in_tmp / S).write_text(yaml.safe_dump(suite))
    line = one_error(run_cli(["run", S, *args]))
    assert line.startswith(shown) or shown in line, line
    assert nothing_made(in_tmp)


@pytest.mark.parametrize("command", [["pretrain", S], ["tune", "baseline", "--suite", S]])
def test_pretrain_and_tune_check_the_device_before_any_run(in_tmp, gpus, command):
    (in_tmp / S).write_text(yaml.safe_dump({**SUITE, **STAGE}))
    line = one_error(run_cli([*command, "--device", "cuda"]))
    assert line.startswith("Error: --device: expected a device of this machine: CUDA")
    assert nothing_made(in_tmp)  # no FAILED stage run, no store


def test_the_pretrain_stage_is_checked_like_a_cell(in_tmp):
    """A stage patch that trains at a size the backbone cannot take, and stage weights that do
    not exist (its cells start from the stage's output, so only the stage reads them)."""
    small = {**SUITE, "pretrain": {"data": {"height": 8}}}
    (in_tmp / S).write_text(yaml.safe_dump(small))
    line = one_error(run_cli(["run", S, "--dry-run"]))
    assert line.startswith(f"Error: {S}: pretrain.data.height: expected at least 16 pixels")
    assert "pretrain: stage" in line
    missing = patched("defaults.model.weights", "/no/such.pth")
    (in_tmp / S).write_text(yaml.safe_dump({**missing, **STAGE}))
    for command in (["run", S], ["pretrain", S]):
        line = one_error(run_cli(command))
        assert line.startswith(f"Error: {S}: defaults.model.weights: no such file")
    assert nothing_made(in_tmp)


# ---------------------------------------------------------------------------------------------
# 7. Stores: every URI checked before any work (scheme, driver, writable, reachable)
# ---------------------------------------------------------------------------------------------

COMMANDS = {
    "run": ["run", S],
    "status": ["status", S],
    "pretrain": ["pretrain", S],
    "tune": ["tune", "baseline", "--suite", S],
    "report": ["report"],
    "compare": ["compare", "tiny", "baseline/default", "baseline/ce-only"],
}
BAD_URIS = [
    ("nosuch://host/db", "expected a URI with one of the schemes"),
    ("postgresql+psycopg2://u@127.0.0.1:1/db", "cannot reach"),
    ("mysql://u@127.0.0.1:1/db", "the database driver 'MySQLdb'"),
    ("sqlite:///afolder", "is a folder; expected an SQLite file"),
    ("sqlite:///notadb.txt", "is not an SQLite database"),
    ("http://127.0.0.1:1", "cannot reach the MLflow tracking store at http://127.0.0.1:1"),
]


def _store_case(in_tmp):
    (in_tmp / S).write_text(yaml.safe_dump({**SUITE, **STAGE}))
    (in_tmp / "afolder").mkdir()
    (in_tmp / "notadb.txt").write_text("not a database\n")


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize(("uri", "said"), BAD_URIS, ids=[u for u, _ in BAD_URIS])
def test_a_bad_tracking_uri_is_one_line_for_every_command(in_tmp, command, uri, said):
    _store_case(in_tmp)
    line = one_error(run_cli([*COMMANDS[command], "--tracking-uri", uri]))
    assert line.startswith("Error: --tracking-uri: ") and said in line, line
    assert nothing_made(in_tmp)


@pytest.mark.parametrize(
    ("command", "flag", "uri", "said"),
    [
        ("run", "--claims-uri", "http://host/x", "expected a URI with one of the schemes sqlite"),
        ("status", "--claims-uri", "sqlite:///afolder", "is a folder"),
        ("run", "--claims-uri", "postgresql+psycopg2://u@127.0.0.1:1/db", "cannot reach"),
        ("tune", "--storage", "optuna.db", "expected a URI with one of the schemes"),
        ("tune", "--storage", "sqlite:///notadb.txt", "is not an SQLite database"),
        ("tune", "--storage", "postgresql+nosuch://u@h/db", "unknown database driver"),
        ("run", "--tracking-uri", "http://127.0.0.1:1", "cannot reach"),  # before --claims-uri
    ],
)
def test_claims_and_optuna_uris_are_checked_too(in_tmp, command, flag, uri, said):
    _store_case(in_tmp)
    line = one_error(run_cli([*COMMANDS[command], flag, uri]))
    assert line.startswith("Error: --") and said in line, line
    assert nothing_made(in_tmp)


def test_an_unreachable_server_is_refused_within_seconds(in_tmp, monkeypatch):
    """A server that never answers (a listening socket that accepts nothing) costs the
    preflight's timeout, not MLflow's minutes of retries."""
    import socket
    import time

    from bench.preflight import stores

    monkeypatch.setattr(stores, "TIMEOUT_S", 1)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    port = silent.getsockname()[1]
    _store_case(in_tmp)
    start = time.monotonic()
    line = one_error(run_cli(["status", S, "--tracking-uri", f"http://127.0.0.1:{port}"]))
    silent.close()
    assert time.monotonic() - start < 10
    assert line.startswith("Error: --tracking-uri: cannot reach") and "within 1 s" in line


def store_with_runs(folder: Path, shift: float = 0.0) -> str:
    """An MLflow store in ``folder`` (the working directory) with finished runs of suite 'tiny'
    (two variants x two seeds, per-query results): what report, compare and status read, made
    without training. ``shift`` moves every result (a changed table)."""
    from bench.engine import store
    from bench.engine.tracking import client

    uri = f"sqlite:///{folder / 'mlflow.db'}"
    _, exp_id = store.prepare(uri, "tiny")
    mlf = client(uri)
    rng = np.random.default_rng(0)
    for variant in ("default", "ce-only"):
        for seed in (0, 1):
            key = f"{variant}-{seed}-{shift}"
            tags = {"suite": "tiny", "method": "baseline", "variant": variant, "seed": str(seed)}
            tags.update(dataset="synthetic-video", split="0", protocol="p", config_key=key)
            run = mlf.create_run(exp_id, tags={**tags, "config_hash": key}).info.run_id
            first = rng.integers(1, 4, 8)
            csv = "query,pid,camid,first,ap\n" + "".join(
                f"{i},{i},0,{f},{1 / f}\n" for i, f in enumerate(first)
            )
            cmc = [float(np.mean(first <= r)) for r in range(1, 21)]
            for name, text in (("per_query.csv", csv), ("cmc.yaml", yaml.safe_dump({"cmc": cmc}))):
                (folder / name).write_text(text)
                mlf.log_artifact(run, str(folder / name))
                (folder / name).unlink()
            mlf.log_metric(run, "R1", 100 * float(np.mean(first == 1)) + shift)
            mlf.log_metric(run, "mAP", 100 * float(np.mean(1 / first)) + shift)
            mlf.set_terminated(run, "FINISHED")
    return uri


def store_made_apart(folder: Path) -> None:
    """:func:`store_with_runs` in a process of its own: no connection or cached MLflow store
    of it is left in this one."""
    code = "from pathlib import Path; from test_reliability import store_with_runs; "
    code += "store_with_runs(Path.cwd())"
    root = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": f"{root.parent}:{root}"}
    subprocess.run([sys.executable, "-c", code], cwd=folder, env=env, check=True, timeout=300)


def remount_read_only(point: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(point)], check=True)


def test_read_only_commands_work_on_a_read_only_store(in_tmp, mount_tmpfs, monkeypatch):
    """report, compare and status read a store whose folder is read-only (SQLite must write
    beside a WAL database even to read it: they read a private snapshot) and create nothing."""
    disk = mount_tmpfs("64m")
    monkeypatch.chdir(disk)
    store_made_apart(disk)
    (disk / S).write_text(yaml.safe_dump(SUITE))
    before = sorted(p.name for p in disk.iterdir())
    remount_read_only(disk)
    out = in_tmp / "out"
    report = run_cli(["report", "--suite", "tiny", "--out", str(out)])
    assert report.exit_code == 0, report.output
    assert "| baseline | ce-only" in (out / "tiny.md").read_text()
    compare = run_cli(["compare", "tiny", "baseline/default", "baseline/ce-only"])
    assert compare.exit_code == 0 and "B - A" in compare.output, compare.output
    status = run_cli(["status", S])
    assert status.exit_code == 0 and "pending" in status.output, status.output
    assert sorted(p.name for p in disk.iterdir()) == before


def test_a_read_only_store_file_is_refused_before_any_cell(in_tmp, monkeypatch):
    """mlflow.db itself read-only (a read-only bind mount; its folder stays writable): the
    commands that write say so in one line, before any cell; the ones that read work."""
    store_with_runs(in_tmp)
    (in_tmp / S).write_text(yaml.safe_dump(SUITE))
    db = in_tmp / "mlflow.db"
    done = subprocess.run(["mount", "--bind", str(db), str(db)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here (needs root): {done.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(db)], check=True)
        for command in (["run", S], ["pretrain", S], ["tune", "baseline", "--suite", S]):
            suite = {**SUITE, **STAGE} if command[0] == "pretrain" else SUITE
            (in_tmp / S).write_text(yaml.safe_dump(suite))
            line = one_error(run_cli(command))
            assert line == (
                f"Error: --tracking-uri: {db}: the MLflow tracking store is not writable "
                "(Read-only file system)"
            )
        assert not (in_tmp / ".bench").exists() and not (in_tmp / "data").exists()
        report = run_cli(["report", "--suite", "tiny", "--out", str(in_tmp / "out")])
        assert report.exit_code == 0, report.output
    finally:
        subprocess.run(["umount", str(db)], check=False)


def test_status_on_a_fresh_folder_creates_nothing(in_tmp):
    (in_tmp / S).write_text(yaml.safe_dump(SUITE))
    result = run_cli(["status", S])
    assert result.exit_code == 0 and "1 pending" in result.output, result.output
    assert nothing_made(in_tmp)


def test_a_library_error_is_one_line_naming_the_store_and_debug_shows_it(in_tmp):
    """A store that passes the checks but that MLflow refuses (its schema from an unknown
    MLflow version) ends in one line; ``bench --debug`` shows the traceback instead."""
    import sqlite3

    store_made_apart(in_tmp)
    with sqlite3.connect(in_tmp / "mlflow.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00dfeed'")
    (in_tmp / S).write_text(yaml.safe_dump(SUITE))
    line = one_error(run_cli(["status", S]))
    assert line.startswith("Error: MLflow: Detected out-of-date database schema"), line
    assert "check the tracking store (--tracking-uri)" in line and "--debug" in line
    debug = CliRunner().invoke(cli, ["--debug", "status", S])
    assert debug.exit_code == 1 and type(debug.exception).__name__ == "MlflowException"


def test_explain_names_the_database_url_and_the_file():
    import sqlalchemy as sa

    from bench.engine.database import label_errors
    from bench.errors import explain

    label_errors()
    engine = sa.create_engine("postgresql+psycopg2://bench:secret@127.0.0.1:1/db")
    with pytest.raises(sa.exc.OperationalError) as err:
        engine.connect()
    line = explain(err.value)
    assert (
        line.startswith("postgresql+psycopg2://bench:***@127.0.0.1:1/db: ") and "secret" not in line
    )
    assert "(psycopg2.OperationalError); check that it is reachable" in line
    try:
        open("/proc/no/such/file")  # noqa: SIM115
    except OSError as exc:
        assert explain(exc).startswith("/proc/no/such/file: No such file or directory; check")
    assert explain(KeyError("x")).startswith("internal error: KeyError: 'x'; this is a bug")


# ---------------------------------------------------------------------------------------------
# 8. Flags: each checked against what it names, before anything is written
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--reference", "nosuch"], "Error: --reference: expected a row of suite 'tiny': "
         "baseline/ce-only, baseline/default (got 'nosuch')"),
        (["--reference", "baseline/nosuch"], "Error: --reference: expected a row of suite"),
        (["--reference", "a/b/c"], "Error: --reference: expected METHOD or METHOD/VARIANT "
         "(got 'a/b/c')"),
        (["--dataset", "nosuch"], "Error: --dataset: expected a dataset with finished runs of "
         "suite 'tiny': synthetic-video (got 'nosuch')"),
        (["--suite", "nosuch"], "Error: --suite: expected one of the suites in the MLflow "
         "store: tiny (got 'nosuch')"),
        (["--readme", "README.md"], "Error: --readme: README.md: expected the lines"),
        (["--out", "afile"], "Error: --out: Directory 'afile' is a file"),
    ],
)  # fmt: skip
def test_report_flags_are_checked_against_the_runs(in_tmp, args, shown):
    store_with_runs(in_tmp)
    (in_tmp / "README.md").write_text("# no table markers\n")
    (in_tmp / "afile").write_text("x\n")
    suite = [] if "--suite" in args else ["--suite", "tiny"]
    line = one_error(run_cli(["report", *suite, *args]))
    assert line.startswith(shown) or shown in line, line
    assert not (in_tmp / "reports").exists()


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["nosuch.yaml", "baseline", "baseline/ce-only"], "Error: SUITE: expected a suite file"),
        (["nosuch", "baseline", "baseline/ce-only"], "Error: SUITE: expected one of the suites"),
        (["tiny", "a/b/c", "baseline"], "Error: A: expected METHOD or METHOD/VARIANT"),
        (["tiny", "baseline", "baseline/nosuch"], "Error: B: expected a row of suite 'tiny'"),
    ],
)
def test_compare_checks_its_arguments(in_tmp, args, shown):
    store_with_runs(in_tmp)
    assert one_error(run_cli(["compare", *args])).startswith(shown)


def test_compare_and_report_never_create_a_store(in_tmp):
    (in_tmp / S).write_text(yaml.safe_dump(patched("seeds", "x")))
    line = one_error(run_cli(["compare", S, "baseline", "baseline/ce-only"]))
    assert line.startswith(f"Error: {S}: seeds")
    (in_tmp / S).write_text(yaml.safe_dump(SUITE))
    for command in (["compare", S, "baseline", "baseline/ce-only"], ["report"]):
        line = one_error(run_cli(command))
        assert line.startswith("Error: --tracking-uri: ") and "does not exist" in line
    assert nothing_made(in_tmp)


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--jobs", "2", "--launcher", "local"], "Error: --jobs: --launcher local runs"),
        (["--jobs", "2", "--launcher", "slurm"], "Error: --jobs: --launcher slurm runs"),
        (["--partition", "gpu"], "Error: --partition: a Slurm setting: only with --launcher"),
        (["--sbatch", "qos=high", "--jobs", "2"], "Error: --sbatch: a Slurm setting"),
        (["--jobs", "x"], "Error: --jobs: expected a positive number or 'auto' (got 'x')"),
        (["--ddp", "0"], "Error: --ddp: 0 is not in the range x>=1 ("),
        (["--nope"], "Error: --nope: no such option; did you mean --force? ("),
        (["-m", "nosuch"], "Error: --method: not methods of this suite: nosuch"),
        (["--data-root", "afile"], "Error: --data-root: expected a folder"),
    ],
)
def test_run_flags_that_would_be_ignored_or_wrong_are_refused(in_tmp, args, shown):
    (in_tmp / S).write_text(yaml.safe_dump(SUITE))
    (in_tmp / "afile").write_text("x\n")
    assert one_error(run_cli(["run", S, *args])).startswith(shown)
    assert nothing_made(in_tmp)


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (["--grace-period", "5"], "Error: --grace-period: expected more than "
         "--heartbeat-interval (10 s)"),
        (["--heartbeat-interval", "30"], "Error: --grace-period: expected more than"),
        (["--storage", "optuna.db"], "Error: --storage: expected a URI"),
    ],
)  # fmt: skip
def test_tune_flags_are_checked(in_tmp, args, shown):
    (in_tmp / S).write_text(yaml.safe_dump(SUITE))
    assert one_error(run_cli(["tune", "baseline", "--suite", S, *args])).startswith(shown)
    assert one_error(run_cli(["tune", "nope", "--suite", S])).startswith("Error: METHOD:")
    assert nothing_made(in_tmp)


# ---------------------------------------------------------------------------------------------
# 9. Reports: a changed run never overwrites the suite's report; a stale reading is marked
# ---------------------------------------------------------------------------------------------


def test_a_reading_over_changed_numbers_is_marked_once(in_tmp):
    store_with_runs(in_tmp)
    assert run_cli(["report", "--suite", "tiny"]).exit_code == 0
    page = in_tmp / "reports" / "tiny.md"
    page.write_text(page.read_text() + "\n## Reading\n\nHand-written.\n")
    assert run_cli(["report", "--suite", "tiny"]).exit_code == 0
    assert "Written for an earlier table" not in page.read_text()  # same numbers: no mark
    store_with_runs(in_tmp, shift=5.0)  # newer runs of the cells: the table changes
    for _ in range(2):
        assert run_cli(["report", "--suite", "tiny"]).exit_code == 0
        text = page.read_text()
        assert text.count("Written for an earlier table") == 1 and "Hand-written." in text
    reading = text[text.index("## Reading") :]
    assert reading.index("Written for an earlier") < reading.index("Hand-written.")


@pytest.mark.parametrize(
    ("changes", "file", "title", "command"),
    [
        ({}, "reports/tiny.md", "tiny", ""),
        ({"overrides": ("train.epochs=2",)}, "reports/tiny@train.epochs=2.md",
         "tiny (train.epochs=2)", "bench run suite.yaml -o train.epochs=2"),
        ({"only": ("baseline",)}, "reports/tiny@-m_baseline.md", "tiny (-m baseline)",
         "bench run suite.yaml -m baseline"),
        ({"overrides": ("seeds=[0, 3]",), "report_dir": "mine"}, "mine/tiny.md",
         "tiny (seeds=[0, 3])", "bench run suite.yaml -o 'seeds=[0, 3]' --report-dir mine"),
    ],
)  # fmt: skip
def test_where_a_run_writes_its_report(in_tmp, changes, file, title, command):
    """The suite's own configuration writes reports/SUITE.md; a run changed on the command
    line writes beside it, named by its changes, or into --report-dir."""
    from bench.runner import RunArgs, report_target

    (in_tmp / S).write_text(yaml.safe_dump(SUITE))
    args = RunArgs(S, **changes)
    target = report_target(args, args.load())
    assert (Path(target.out) / f"{target.file_name}.md").as_posix() == file
    assert target.title == title
    assert target.command == (command or None)


@pytest.mark.slow
def test_a_run_with_overrides_leaves_the_committed_report_alone(in_tmp):
    (in_tmp / S).write_text(yaml.safe_dump(SUITE))
    committed = in_tmp / "reports" / "tiny.md"
    committed.parent.mkdir()
    committed.write_text("# tiny\n\n| committed table |\n\n## Reading\n\nThe committed reading.\n")
    result = run_cli(["run", S, "-o", "train.lr=0.001"])
    assert result.exit_code == 0, result.output
    assert committed.read_text().startswith("# tiny\n\n| committed table |")
    beside = in_tmp / "reports" / "tiny@train.lr=0.001.md"
    assert (
        beside.read_text().startswith("# tiny (train.lr=0.001)\n")
        and f"wrote {beside.relative_to(in_tmp)}" in result.output
    )
    # its reproduce line is the command that made it, overrides included
    assert "Reproduce: `bench run suite.yaml -o train.lr=0.001` — commit" in beside.read_text()


# ---------------------------------------------------------------------------------------------
# 10. Grids that end: --force with several workers, Ctrl-C, a database restarted mid-grid
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("jobs", [2, 4])
def test_force_with_several_workers_ends_when_its_cells_do(tmp_path, jobs):
    """With --force nothing is skipped and a cell finished by one worker of the launch is not
    taken again; the other workers count it as ended elsewhere instead of waiting for it."""
    from tests.test_parallel import assert_each_cell_finished_once, bench, finish, tiny_suite

    tiny_suite(tmp_path)
    args = ["run", "tiny.yaml", "--no-report", "--force", "--jobs", str(jobs)]
    (out,) = finish([bench(tmp_path, *args)], timeout=400)
    assert "done 2 running 0 failed 0 left 0" in out
    assert_each_cell_finished_once(f"sqlite:///{tmp_path / 'mlflow.db'}", cells=2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"  # not a zombie


class _Clock:
    """A fake ``time`` whose sleeps pass at once and are recorded."""

    def __init__(self):
        self.now, self.waits = 0.0, []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds


def _failing(*errors):
    """A call that raises ``errors`` in turn, then answers."""
    left = list(errors)

    def call():
        if left:
            raise left.pop(0)
        return "answer"

    return call


def test_a_lost_connection_is_retried_with_back_off_and_other_errors_are_not(monkeypatch):
    import sqlalchemy as sa

    from bench.engine import database

    clock = _Clock()
    monkeypatch.setattr(database, "time", clock)
    lost = sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    assert database.retrying(_failing(lost, lost, lost), "test")() == "answer"
    assert clock.waits == [0.5, 1.0, 2.0]
    wrong = sa.exc.OperationalError("SELECT 1", {}, Exception("no such table: runs"))
    with pytest.raises(sa.exc.OperationalError, match="no such table"):
        database.retrying(_failing(wrong), "test")()  # not retried
    with pytest.raises(sa.exc.OperationalError, match="server closed"):
        database.retrying(_failing(*[lost] * 100), "test", budget_s=20.0)()
    assert clock.waits[3:] == [0.5, 1.0, 2.0, 4.0, 8.0]  # then past the budget: raised as it came


def finished_once(tracking_uri: str, cells: int) -> None:
    """Each cell of 'tiny' has exactly one FINISHED run, and no run is left RUNNING (a run
    interrupted before its first checkpoint stays KILLED beside its rerun)."""
    from mlflow.tracking import MlflowClient

    mlf = MlflowClient(tracking_uri)
    runs = mlf.search_runs([mlf.get_experiment_by_name("tiny").experiment_id])
    by_hash: dict[str, list[str]] = {}
    for run in runs:
        by_hash.setdefault(run.data.tags["config_hash"], []).append(run.info.status)
    assert len(by_hash) == cells, by_hash
    assert all(s.count("FINISHED") == 1 and "RUNNING" not in s for s in by_hash.values()), by_hash


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM"])
def test_ctrl_c_in_the_driver_stops_the_workers_and_leaves_cells_resumable(tmp_path, stop):
    """SIGINT to the driver alone (as an IDE or `kill -INT` sends it), or SIGTERM (`kill`, a
    scheduler): the workers stop within seconds, their claims released and their runs KILLED;
    the next launch resumes."""
    import signal

    import sqlalchemy as sa

    from tests.test_parallel import bench, claim_row, finish, tiny_suite, wait_for

    tiny_suite(tmp_path, epochs=12)
    driver = bench(tmp_path, "run", "tiny.yaml", "--no-report", "--jobs", "2")
    claims_db = tmp_path / "mlflow-claims.db"

    def training():
        row = claim_row(claims_db)
        folder = tmp_path / ".bench" / "cells" / row["cell_hash"] / row["token"] if row else None
        return row if folder is not None and (folder / "checkpoint.pt").is_file() else None

    row = wait_for(training, 400, "a cell's first checkpoint")
    driver.send_signal(getattr(signal, stop))
    out, _ = driver.communicate(timeout=30)
    assert driver.returncode != 0 and "Traceback" not in out, out[-3000:]
    wait_for(lambda: not _alive(row["pid"]), 5, "the worker to stop")
    engine = sa.create_engine(f"sqlite:///{claims_db}", poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        states = {r[0] for r in conn.execute(sa.text("SELECT state FROM bench_claims"))}
    assert states == {"released"}, states
    (out,) = finish([bench(tmp_path, "run", "tiny.yaml", "--no-report")])
    assert "resumed" in out
    finished_once(f"sqlite:///{tmp_path / 'mlflow.db'}", cells=2)


@pytest.mark.slow
def test_a_postgresql_restart_mid_grid_costs_retries_not_cells(postgres, tmp_path):
    """`pg_ctl restart` while cells train and again between them: the workers reconnect with
    back-off; every cell finishes exactly once, no run is left RUNNING, no claim is lost."""
    import threading

    import sqlalchemy as sa

    from tests.test_parallel import bench, finish, tiny_suite, wait_for

    db = postgres.url()
    tiny_suite(tmp_path, epochs=4, seeds=[0, 1])
    args = ["run", "tiny.yaml", "--no-report", "--jobs", "2", "--tracking-uri", db]
    engine = sa.create_engine(db, poolclass=sa.pool.NullPool)

    def states() -> list[str]:
        try:
            with engine.connect() as conn:
                return [r[0] for r in conn.execute(sa.text("SELECT state FROM bench_claims"))]
        except sa.exc.SQLAlchemyError:
            return []

    restarts = []

    def restart_when(predicate, what) -> None:
        wait_for(predicate, 400, what)
        postgres.restart()
        restarts.append(what)

    def restarter() -> None:
        restart_when(lambda: "running" in states(), "during a cell")
        restart_when(lambda: "finished" in states(), "between cells")

    thread = threading.Thread(target=restarter, daemon=True)
    driver = bench(tmp_path, *args)
    thread.start()
    (out,) = finish([driver])
    thread.join(60)
    assert restarts == ["during a cell", "between cells"]
    finished_once(db, cells=4)
    assert states() == ["finished"] * 4
    engine.dispose()
