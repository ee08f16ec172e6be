"""`bench tune` through the real CLI for every shipped method, on a tiny synthetic suite."""

import optuna
import pytest
import yaml
from click.testing import CliRunner
from test_cli_e2e import TINY

from bench.cli import cli
from bench.registry import METHODS


@pytest.mark.parametrize("method", ["iaunet", "stal", "rgsa-rgtr"])
def test_tune_searches_the_plugins_space(in_tmp, method):
    suite = {**TINY, "methods": [method], "ablations": {}, "seeds": [0]}
    (in_tmp / "tiny.yaml").write_text(yaml.safe_dump(suite))
    result = CliRunner().invoke(
        cli, ["tune", method, "--trials", "2", "--suite", "tiny.yaml"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name=f"{method}-synthetic-video", storage="sqlite:///optuna.db")
    assert len(study.trials) == 2
    assert all(t.state.is_finished() for t in study.trials)
    best = yaml.safe_load(
        (in_tmp / "reports" / "tune" / f"{method}-synthetic-video.yaml").read_text()
    )["method_config"][method]
    fields = set(METHODS.get(method).Config.model_fields)
    assert fields & set(best), "the search space tunes none of the method's own fields"
    assert "lr" in best["train"]
