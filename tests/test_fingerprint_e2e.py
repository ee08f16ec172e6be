"""The code version in the cache keys, end to end: a user plugin (found through an entry point)
is edited between real ``bench run`` processes on one MLflow store.

A comment or docstring edit does not run its cell again; a code edit does (a second FINISHED
run, under another config hash, same config key); ``--reuse-stale`` reuses the finished run of
the old code instead, says so in its tags and on the command line; ``bench status`` shows the
cell as stale; the report counts the newest run of the config once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.test_parallel import tiny_suite

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = '''
"""A user's method: the baseline, its embedding scaled."""

from bench.registry import register_method
from methods.baseline import Baseline

SCALE = 1.0


@register_method("mine")
class Mine(Baseline):
    """The baseline under another name."""

    def embed(self, clips, aux):
        return {k: v * SCALE for k, v in super().embed(clips, aux).items()}
'''


def bench(folder: Path, *args: str) -> str:
    """A real `bench` process in ``folder`` that finds the plugin through its entry point."""
    path = os.pathsep.join([str(ROOT), str(folder / "plugins")])
    env = {**os.environ, "PYTHONPATH": path, "BENCH_CACHE_DIR": str(folder / "cache")}
    for key in ("MLFLOW_TRACKING_URI", "BENCH_CLAIMS_URI", "BENCH_DATA_ROOT"):
        env.pop(key, None)
    cmd = [sys.executable, "-c", "from bench.cli import main; main()", *args]
    proc = subprocess.run(
        cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Traceback" not in out, out[-3000:]
    return out


def install_plugin(folder: Path) -> Path:
    plugins = folder / "plugins"
    dist = plugins / "mine_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: mine-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[bench.methods]\nmine = mine_plugin\n")
    module = plugins / "mine_plugin.py"
    module.write_text(PLUGIN)
    return module


def finished(folder: Path) -> list:
    mlf = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    exp = mlf.get_experiment_by_name("tiny").experiment_id
    return mlf.search_runs([exp], "attributes.status = 'FINISHED'")


@pytest.mark.slow
def test_a_code_change_reruns_the_cell_and_reuse_stale_opts_out(tmp_path):
    module = install_plugin(tmp_path)
    spec = yaml.safe_load(tiny_suite(tmp_path, ablations=False).read_text())
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump({**spec, "methods": ["mine"]}))
    run = ["run", "tiny.yaml", "--no-report"]

    assert "finished" in bench(tmp_path, *run)
    (first,) = finished(tmp_path)

    # comments, docstrings and formatting are not code: the cell is not run again
    edited = PLUGIN.replace('"""The baseline under another name."""', '"""Edited."""')
    edited = edited.replace("SCALE = 1.0", "# a comment\nSCALE = (\n    1.0\n)  # and another")
    module.write_text(edited)
    out = bench(tmp_path, *run)
    assert "skipped" in out and "stale" not in out
    assert [r.info.run_id for r in finished(tmp_path)] == [first.info.run_id]

    # a code change: with --reuse-stale the finished run of the old code is reused, and says so
    module.write_text(edited.replace("1.0", "2.0"))
    out = bench(tmp_path, *run, "--reuse-stale")
    assert "1 of 1 cells has a finished run made by other code (stale): reused" in out
    assert "reused" in out and f"stale run {first.info.run_id[:8]}" in out
    (reused,) = finished(tmp_path)
    old_code = first.data.tags["code_fingerprint"]
    assert reused.info.run_id == first.info.run_id
    assert reused.data.tags["reused_stale"] == "true"
    assert reused.data.tags["reused_stale.code_fingerprint"] == old_code
    assert reused.data.tags["reused_stale.by_code"] != old_code
    status = bench(tmp_path, "status", "tiny.yaml")
    assert "stale" in status and first.info.run_id in status

    # without it the cell trains again: a second FINISHED run of the config, new hash and code
    out = bench(tmp_path, *run)
    assert "1 of 1 cells has a finished run made by other code (stale): run again" in out
    assert "finished" in out
    runs = finished(tmp_path)
    assert len(runs) == 2
    assert len({r.data.tags["config_hash"] for r in runs}) == 2
    assert len({r.data.tags["code_fingerprint"] for r in runs}) == 2
    assert len({r.data.tags["config_key"] for r in runs}) == 1

    # the report counts the config once: its newest run; config.yaml and params show the code
    from bench.engine.tracking import client
    from bench.report.table import load_runs

    mlf = client(f"sqlite:///{tmp_path / 'mlflow.db'}")
    newest = max(runs, key=lambda r: r.info.start_time)
    assert list(load_runs(mlf, "tiny")["run_id"]) == [newest.info.run_id]
    path = mlf.download_artifacts(newest.info.run_id, "config.yaml", str(tmp_path))
    config = yaml.safe_load(Path(path).read_text())
    assert config["code"]["fingerprint"] == newest.data.tags["code_fingerprint"]
    assert newest.data.params["code.method_version"] == "1"
