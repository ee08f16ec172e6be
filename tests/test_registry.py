"""Plugins: decorator registration and discovery through entry points."""

import sys
import textwrap

import pytest
from click.testing import CliRunner

from bench.cli import cli
from bench.errors import BenchError
from bench.registry import METHODS


def test_third_party_plugin_is_found_through_an_entry_point(tmp_path, monkeypatch):
    pkg = tmp_path / "thirdparty_reid.py"
    pkg.write_text(
        textwrap.dedent("""
        from bench.registry import METHODS
        import bench.registry as r
        from methods.baseline import Baseline

        @r.METHODS.register("my-method")
        class MyMethod(Baseline):
            pass
    """)
    )
    dist = tmp_path / "thirdparty_reid-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-reid\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[bench.methods]\nmy-method = thirdparty_reid\n")
    METHODS.names()  # built-ins registered before the registry is patched
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(METHODS, "_items", dict(METHODS._items))
    monkeypatch.setattr(METHODS, "_loaded", False)
    assert "my-method" not in METHODS._items
    assert "my-method" in METHODS.names() and "baseline" in METHODS.names()
    assert METHODS.get("my-method").__module__ == "thirdparty_reid"
    sys.modules.pop("thirdparty_reid", None)


def test_a_broken_entry_point_is_reported_by_name(tmp_path, monkeypatch):
    dist = tmp_path / "broken-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[bench.methods]\nbroken = no_such_module_xyz\n")
    METHODS.names()
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(METHODS, "_loaded", False)
    with pytest.raises(BenchError, match="broken = no_such_module_xyz"):
        METHODS.names()


def test_unknown_name_lists_known_ones():
    with pytest.raises(BenchError, match="unknown method 'x'; known: .*baseline"):
        METHODS.get("x")


def test_bench_list_shows_methods_fields_defaults_and_datasets():
    out = CliRunner().invoke(cli, ["list"]).output
    for name in ("baseline", "iaunet", "stal", "rgsa-rgtr", "synthetic-video", "mars"):
        assert name in out
    assert "triplet_margin: 0.3" in out


def test_a_plugin_written_against_the_old_distance_path_still_loads(monkeypatch):
    """bench.distance moved to bench.eval.distance; the old path re-exports it for one
    release, with a DeprecationWarning that names the new one."""
    import importlib

    from bench.eval import distance

    monkeypatch.delitem(sys.modules, "bench.distance", raising=False)
    with pytest.warns(DeprecationWarning, match="bench.eval.distance"):
        old = importlib.import_module("bench.distance")
    assert (old.cosine, old.euclidean, old.METRICS) == (
        distance.cosine,
        distance.euclidean,
        distance.METRICS,
    )


def test_the_plugin_api_keeps_its_import_paths():
    """What methods/*.py and third-party plugins import is where it was."""
    from bench.config import DataConfig, MethodConfig, ModelConfig  # noqa: F401
    from bench.errors import BenchError, ConfigError, DataError  # noqa: F401
    from bench.losses import batch_hard_triplet, cross_entropy, weighted_triplet  # noqa: F401
    from bench.method import Batch, Embedding, Method  # noqa: F401
    from bench.models.backbone import Backbone  # noqa: F401
    from bench.models.heads import BNNeck  # noqa: F401
    from bench.registry import register_dataset, register_method, register_method_config

    assert callable(register_method) and callable(register_method_config)
    assert callable(register_dataset)
