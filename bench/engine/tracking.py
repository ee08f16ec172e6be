"""MLflow as the record of results: one experiment per suite, one run per cell.

Default store: ``sqlite:///mlflow.db`` in the working directory (what ``mlflow ui`` opens
without arguments), artifacts in ``./mlruns``; ``--tracking-uri`` or ``$MLFLOW_TRACKING_URI``
select any other store.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

DEFAULT_DB = "mlflow.db"
PACKAGES = ("bench", "torch", "torchvision", "timm", "mlflow", "optuna")
UNFINISHED = ("RUNNING", "FAILED", "KILLED", "SCHEDULED")


def tracking_uri(explicit: str | None = None) -> str:
    """The explicit URI, else $MLFLOW_TRACKING_URI, else ./mlflow.db (as an absolute path, so
    that the store does not move with the working directory)."""
    default = f"sqlite:///{Path.cwd() / DEFAULT_DB}"
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or default


def client(uri: str | None = None):
    """An MlflowClient on the store whose creation and calls retry a lost database
    (:class:`bench.engine.database.RetryingClient`): a worker that starts while a PostgreSQL
    server restarts waits for it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from bench.engine.database import RetryingClient, label_errors, retrying

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # MLflow logs each database error with its traceback; bench retries it or says it in a line
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    label_errors()
    uri = tracking_uri(uri)
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)  # for the fluent API (mlflow.search_runs)
    if before is None:  # MLflow also exports it: a later command would inherit this store
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    connect = retrying(MlflowClient, f"MLflow store ({uri})")  # it connects at once
    return RetryingClient(connect(uri))


def experiment_id(mlf, name: str) -> str:
    """The id of the experiment ``name``, created (with bench's saved view) if needed."""
    exp = mlf.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    exp_id = mlf.create_experiment(name)
    mlf.set_experiment_tag(exp_id, f"{VIEW_TAG_PREFIX}{VIEW_KEY}", saved_view())
    mlf.set_experiment_tag(exp_id, "mlflow.experimentKind", "custom_model_development")
    return exp_id


#: The MLflow UI keeps a run list's columns in the browser; a client can only offer a saved
#: view: an experiment tag ``mlflow.sharedViewState.<key>`` that the UI's "Views" menu lists and
#: ``#/experiments/<id>/runs?viewStateShareKey=<key>`` opens.
VIEW_TAG_PREFIX = "mlflow.sharedViewState."
VIEW_KEY = "bench"
VIEW_NAME = "bench: accuracy and cost"
VIEW_METRICS = (
    "R1",
    "R5",
    "mAP",
    "mINP",
    "cost.params_M",
    "cost.gflops_per_clip",
    "time.infer_clips_per_s",
)
VIEW_TAGS = ("method", "variant", "seed", "dataset")


def saved_view(created_ms: int | None = None) -> str:
    """The saved view's tag value: R1, mAP and the cost as columns, best mAP first."""
    now = created_ms or int(time.time() * 1000)
    columns = [f"metrics.`{m}`" for m in VIEW_METRICS] + [f"tags.`{t}`" for t in VIEW_TAGS]
    state = {
        "selectedColumns": ["attributes.`Duration`", *columns],
        "orderByKey": "metrics.`mAP`",
        "orderByAsc": False,
        "runsHiddenMode": "SHOW_ALL",
    }
    view = {"name": VIEW_NAME, "createdAt": now, "updatedAt": now, "state": json.dumps(state)}
    return json.dumps(view)


def runs_with_hash(mlf, exp_id: str, config_hash: str, statuses: tuple[str, ...]):
    """Runs of the experiment with this config hash and one of ``statuses``, newest first."""
    runs = mlf.search_runs(
        [exp_id],
        filter_string=f"tags.config_hash = '{config_hash}'",
        order_by=["attributes.start_time DESC"],
    )
    return [r for r in runs if r.info.status in statuses]


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'a': {'b': 1}} -> {'a.b': 1}."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def environment_tags() -> dict[str, str]:
    tags = {"git_commit": git_commit(), "python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            tags[f"version.{pkg}"] = version(pkg)
        except PackageNotFoundError:
            tags[f"version.{pkg}"] = "not installed"
    return tags
