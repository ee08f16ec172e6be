"""Nothing lost, nothing false, nothing executed (issue 11).

Sections:
1. Malformed inputs: each of many bad suites, patches and ``-o`` values gives one line
   ``Error: FILE: KEY: ...`` through the real CLI, before any MLflow store or data exists.
2. Fast errors: validating a suite imports neither torch nor MLflow.
3. Pickle: checkpoints and ``.npy`` files are never unpickled; bad files are named.
4. Non-finite training: a NaN loss or gradient fails the cell (or skips the step, counted).
5. Disks: unwritable folders are named before training; a full disk keeps the old file.
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
    ("what", "args"),
    [
        ("the working directory", []),
        ("the --workdir", ["--workdir", "{ro}/wd"]),
        ("the tracking store's folder", ["--tracking-uri", "sqlite:///{ro}/mlflow.db"]),
    ],
)
def test_an_unwritable_folder_is_named_before_training(
    in_tmp, mount_tmpfs, monkeypatch, what, args
):
    ro = mount_tmpfs(read_only=True)
    (in_tmp / S).write_text(yaml.safe_dump(SUITE))
    if what == "the working directory":
        monkeypatch.chdir(ro)
    args = [a.format(ro=ro) for a in args]
    result = run_cli(["run", str(in_tmp / S), *args])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith(f"Error: {ro}") and what in lines[0]
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
