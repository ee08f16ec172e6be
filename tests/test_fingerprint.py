"""The code fingerprint (bench.suite.fingerprint): code, not formatting; stable across calls and
processes; what it covers; and that the cell hashes carry it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.suite import fingerprint
from bench.suite.fingerprint import (
    BENCH,
    NOT_RESULT_CODE,
    code_fingerprint,
    harness_modules,
    plugin_fingerprint,
    plugin_modules,
    source_digest,
)

ROOT = Path(__file__).resolve().parents[1]
SOURCE = '''"""A module."""

import math


def area(r):
    """The area."""
    return math.pi * r**2


class Circle:
    """A circle."""

    def __init__(self, r):
        self.r = r
'''


def test_comments_docstrings_and_formatting_do_not_change_the_fingerprint():
    reformatted = (
        SOURCE.replace('"""The area."""', "'''Another docstring.'''  # and a comment")
        .replace("math.pi * r**2", "(\n        math.pi *   r ** 2\n    )")
        .replace('"""A module."""', "# a comment instead of a docstring")
        .replace('    """A circle."""\n\n', "")
    )
    assert reformatted != SOURCE
    assert source_digest(reformatted) == source_digest(SOURCE)


@pytest.mark.parametrize(
    "old, new",
    [
        ("math.pi * r**2", "math.pi * r**3"),
        ("self.r = r", "self.r = abs(r)"),
        ("import math", "import cmath as math"),
        ('    """The area."""\n', '    """The area."""\n    r = float(r)\n'),
        ("def area(r):", "def area(r, /):"),
    ],
)
def test_any_code_change_changes_the_fingerprint(old, new):
    assert source_digest(SOURCE.replace(old, new)) != source_digest(SOURCE)


def test_a_module_that_does_not_parse_is_fingerprinted_by_its_text():
    assert source_digest("def (") != source_digest("def ((")


def test_the_harness_covers_the_code_that_computes_results():
    included = set(harness_modules())
    for rel in (
        "engine/trainer.py",
        "engine/evaluator.py",
        "engine/optim.py",
        "engine/checkpoint.py",
        "engine/device.py",
        "engine/cell.py",
        "data/loader.py",
        "data/sampling.py",
        "data/datasets/synthetic.py",
        "data/synthetic/store.py",
        "models/backbone.py",
        "losses.py",
        "eval/metrics.py",
        "eval/distance.py",
        "eval/ranking.py",
        "method.py",
        "config.py",
    ):
        assert rel in included, rel
    for rel in (
        "engine/claims.py",
        "engine/executors/pool.py",
        "report/table.py",
        "cli/__init__.py",
    ):
        assert rel not in included, rel
    for entry in NOT_RESULT_CODE:  # no stale entry: each names a module or folder of bench
        assert (BENCH / entry).exists(), entry
    assert included == set(harness_modules())  # sorted, deterministic
    assert harness_modules() == sorted(harness_modules())


def test_a_method_covers_its_own_modules_and_its_version():
    from bench.method import Method
    from methods.baseline import Baseline
    from methods.iaunet import IAUnet

    modules = set(plugin_modules((Baseline, Baseline.Config)))
    assert {"methods.baseline", "methods.config.baseline"} <= modules
    assert not any("iaunet" in m or m.startswith("bench") for m in modules)
    assert "methods.iaunet" in plugin_modules((IAUnet,))

    def subclass(version: str) -> type:
        return type("Sub", (Baseline,), {"version": version, "__module__": "methods.baseline"})

    base = plugin_fingerprint(Baseline, Method)
    assert plugin_fingerprint(subclass("1"), Method) == base  # same code, same version
    assert plugin_fingerprint(subclass("2"), Method) != base
    assert plugin_fingerprint(IAUnet, Method) != base
    parts = code_fingerprint("baseline", "synthetic-video")
    assert parts["method"] == base and parts["method_version"] == "1"
    assert code_fingerprint("iaunet", "synthetic-video")["harness"] == parts["harness"]


PRINT = (
    "from bench.suite.fingerprint import code_fingerprint, harness_fingerprint; "
    "print(harness_fingerprint(), code_fingerprint('stal', 'synthetic-video')['fingerprint'])"
)


def in_process_fingerprints() -> str:
    stal = code_fingerprint("stal", "synthetic-video")["fingerprint"]
    return f"{fingerprint.harness_fingerprint()} {stal}"


def fresh_process(cache: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BENCH_CACHE_DIR": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", PRINT], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


@pytest.mark.slow
def test_stable_across_calls_processes_and_the_disk_cache(tmp_path):
    here = in_process_fingerprints()
    assert in_process_fingerprints() == here
    cold = fresh_process(tmp_path)  # analyses every module, fills the cache
    assert len(json.loads((tmp_path / "code-digests.json").read_text())) >= len(harness_modules())
    assert fresh_process(tmp_path) == cold == here  # from the cache


def test_a_damaged_disk_cache_is_computed_again(tmp_path, monkeypatch):
    expected = fingerprint.harness_fingerprint()
    cache = tmp_path / "code-digests.json"
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    for damage in ("{not json", json.dumps({"some": 7})):
        cache.write_text(damage)
        fingerprint._disk_cache.cache_clear()
        fingerprint._facts.cache_clear()
        assert fingerprint.harness_fingerprint.__wrapped__() == expected
    entries = json.loads(cache.read_text())
    assert len(entries) >= len(harness_modules())
    for key in entries:  # every entry damaged: each is analysed again
        entries[key] = [None]
    cache.write_text(json.dumps(entries))
    fingerprint._disk_cache.cache_clear()
    fingerprint._facts.cache_clear()
    assert fingerprint.harness_fingerprint.__wrapped__() == expected


def test_the_cell_hashes_carry_the_code(tmp_path, monkeypatch):
    from bench.suite.load import load_suite
    from tests.test_suite import BASE, write

    (cell,) = load_suite(write(tmp_path, BASE)).cells
    before = (cell.config_key, cell.config_hash, cell.train_hash)
    assert cell.resolved()["code"] == code_fingerprint(cell.method, cell.dataset)
    other = {**cell.code, "fingerprint": "0" * 16}
    monkeypatch.setattr("bench.suite.schema.code_fingerprint", lambda method, dataset: other)
    assert cell.config_key == before[0]  # the config alone
    assert cell.config_hash != before[1] and cell.train_hash != before[2]
    assert cell.resolved()["code"]["fingerprint"] == "0" * 16


def test_other_code_neither_skips_a_finished_cell_nor_reuses_its_weights(in_tmp, monkeypatch):
    import yaml

    from bench.engine import stale
    from bench.engine.cell import RunOptions, run_cell
    from bench.engine.tracking import client, experiment_id
    from bench.engine.trainer import Trainer
    from bench.suite.load import load_suite
    from tests.test_engine import SUITE

    spec = {**SUITE, "ablations": {"baseline": [{"name": "long-clips", "eval": {"clip_len": 4}}]}}
    spec["defaults"] = {**SUITE["defaults"], "train": {"epochs": 1, "max_steps_per_epoch": 1}}
    (in_tmp / "s.yaml").write_text(yaml.safe_dump(spec))
    default, long_clips = load_suite(in_tmp / "s.yaml").cells
    mlf = client()
    exp = experiment_id(mlf, "engine")
    first = run_cell(mlf, exp, default, RunOptions())
    old_hash = default.config_hash

    other = {**default.code, "fingerprint": "f" * 16}  # the code changed
    monkeypatch.setattr("bench.suite.schema.code_fingerprint", lambda method, dataset: other)
    assert default.config_hash != old_hash
    assert stale.count_stale(mlf, exp, [default, long_clips]) == 1
    reused = run_cell(mlf, exp, default, RunOptions(reuse_stale=True))
    assert (reused.status, reused.run_id) == ("reused", first.run_id)
    assert reused.metrics["mAP"] == first.metrics["mAP"] and first.run_id[:8] in reused.note
    assert mlf.get_run(first.run_id).data.tags["reused_stale.by_code"] == "f" * 16

    fits = []
    monkeypatch.setattr(Trainer, "fit", lambda self, hook=None: fits.append(1))
    shared = run_cell(mlf, exp, long_clips, RunOptions())  # same train config, other code
    assert fits == [1] and "weights_from" not in mlf.get_run(shared.run_id).data.tags
    again = run_cell(mlf, exp, default, RunOptions())  # runs again, on the new code's weights
    assert again.status == "finished" and again.run_id != first.run_id and fits == [1]
    assert stale.count_stale(mlf, exp, [default, long_clips]) == 0
    tags = mlf.get_run(again.run_id).data.tags
    assert tags["weights_from"] == shared.run_id
    assert (tags["code_fingerprint"], tags["config_key"]) == ("f" * 16, default.config_key)


FINGERPRINTS = (
    "from bench.suite.fingerprint import code_fingerprint; "
    "print(*(code_fingerprint(m, 'synthetic-video')['fingerprint'] "
    "for m in ('baseline', 'iaunet', 'stal', 'rgsa-rgtr')))"
)


def fingerprints_of(tree: Path, cache: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(tree), "BENCH_CACHE_DIR": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", FINGERPRINTS],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()


def move_module(tree: Path, old: str, new: str) -> None:
    """Move module ``old`` to ``new`` (dotted names) and rewrite every import naming it."""
    src, dst = (tree / Path(*name.split(".")).with_suffix(".py") for name in (old, new))
    dst.parent.mkdir(parents=True, exist_ok=True)
    src.rename(dst)
    for path in [*(tree / "bench").rglob("*.py"), *(tree / "methods").rglob("*.py")]:
        text = path.read_text()
        if old in text:
            path.write_text(text.replace(old, new))


def test_a_pure_move_changes_no_hash_and_a_real_change_does(tmp_path):
    tree = tmp_path / "copy"
    for top in ("bench", "methods"):
        shutil.copytree(ROOT / top, tree / top, ignore=shutil.ignore_patterns("__pycache__"))
    before = fingerprints_of(tree, tmp_path / "cache")
    assert before == fingerprints_of(ROOT, tmp_path / "cache")  # where the tree lives: nothing
    move_module(tree, "bench.eval.ranking", "bench.models.ranking_moved")
    move_module(tree, "bench.models.heads", "bench.data.heads_moved")  # methods import it
    assert fingerprints_of(tree, tmp_path / "cache") == before
    moved = tree / "bench" / "models" / "ranking_moved.py"
    moved.write_text(moved.read_text().replace("def match_ranks(", "def match_ranks(  # x\n"))
    assert fingerprints_of(tree, tmp_path / "cache") == before  # a comment: nothing
    text = moved.read_text()
    assert "ranks = torch.where(is_good, nearer + 1, 0)" in text
    moved.write_text(text.replace("nearer + 1, 0)", "nearer + 2, 0)"))  # a real change
    changed = fingerprints_of(tree, tmp_path / "cache").split()
    assert all(a != b for a, b in zip(changed, before.split(), strict=True))
