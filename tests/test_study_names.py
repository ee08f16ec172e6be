"""What Optuna's and MLflow's own tools show: the study's objective is named val_mAP."""

import optuna

from bench.engine.tracking import client, experiment_id
from bench.tune.study import OBJECTIVE, TuneOptions, open_study


def test_the_study_names_its_objective(in_tmp):
    mlf = client()
    opts = TuneOptions("baseline", 1, "sqlite:///optuna.db", "names")
    open_study(mlf, experiment_id(mlf, "tune-names"), opts)
    study = optuna.load_study(study_name="names", storage="sqlite:///optuna.db")
    assert study.metric_names == [OBJECTIVE] == ["val_mAP"]
