"""What MLflow's and Optuna's own UIs show: run names that say what a run is, a saved view of
the run list with R1, mAP and the cost as columns, and the study's objective named val_mAP."""

import json

import optuna
import yaml

from bench.engine.tracking import VIEW_KEY, VIEW_TAG_PREFIX, client, experiment_id
from bench.suite.load import load_suite
from bench.tune.study import OBJECTIVE, TuneOptions, open_study


def test_the_study_names_its_objective(in_tmp):
    mlf = client()
    opts = TuneOptions("baseline", 1, "sqlite:///optuna.db", "names")
    open_study(mlf, experiment_id(mlf, "tune-names"), opts)
    study = optuna.load_study(study_name="names", storage="sqlite:///optuna.db")
    assert study.metric_names == [OBJECTIVE] == ["val_mAP"]


def test_a_new_experiment_offers_the_saved_view_of_accuracy_and_cost(in_tmp):
    mlf = client()
    exp = mlf.get_experiment(experiment_id(mlf, "views"))
    view = json.loads(exp.tags[f"{VIEW_TAG_PREFIX}{VIEW_KEY}"])
    assert view["name"] and isinstance(view["createdAt"], int)
    state = json.loads(view["state"])
    for column in ("metrics.`R1`", "metrics.`mAP`", "metrics.`cost.gflops_per_clip`"):
        assert column in state["selectedColumns"]
    assert "tags.`method`" in state["selectedColumns"] and state["orderByKey"] == "metrics.`mAP`"


def test_run_names_say_method_variant_seed_then_dataset(in_tmp):
    suite = {"name": "n", "datasets": ["fixture-video"], "methods": ["baseline"], "seeds": [3]}
    (in_tmp / "s.yaml").write_text(yaml.safe_dump(suite))
    (cell,) = load_suite(in_tmp / "s.yaml").cells
    assert cell.run_name == "baseline/default/seed3 (fixture-video)"
