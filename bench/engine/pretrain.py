"""The ``pretrain:`` stage: our warm start of a suite's backbone, not the papers' ImageNet.

The papers insert their blocks into an ImageNet-pretrained ResNet (IAUnet zero-initialises its
residual BN for that reason); offline no ImageNet weights can be had, so the suite's
``defaults.model`` is trained before the cells on the frames of the **training** identities of
one of its datasets (its train split only: test identities are never used, which
:func:`training_tracklets` asserts), once per seed of the suite: the cells of seed s start from
the stage trained with seed s (:meth:`bench.suite.warmstart.PretrainSpec.for_cells_of`).

Objective (:class:`FrameReID`): every frame of a P x K batch of clips (flip and random erasing
as in the cells) goes through the backbone and a global average pool; a BN-neck and a
classifier over the training identities give frame-level identity cross-entropy with label
smoothing, plus ``lambda_triplet`` x the batch-hard triplet loss on the pooled frame features.
Adam, a few epochs without decay (:data:`bench.suite.warmstart.STAGE_TRAIN`). The training loop is
the cells' :class:`~bench.engine.trainer.Trainer` (progress bar, checkpoint per epoch, resume
after a kill, NaN guard).

Once per hash: the stage holds a file lock in ``WORKDIR/pretrain/<hash>/`` while it trains, so
concurrent ``bench run`` drivers train it once and the others then reuse it;
``backbone.pt`` (the backbone's state dict under timm's names, no classifier) is written
atomically; the stage's MLflow run (tag ``stage=pretrain``, no ``config_hash``: never a cell)
has the params, the per-epoch losses and the weights as an artifact. A second run finds the
file and its finished run and trains nothing.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from bench.data.base import Split, Tracklet
from bench.data.build import build_dataset
from bench.data.loader import train_loader
from bench.data.validation import carve_validation
from bench.engine import killpoints
from bench.engine.assemble import placement_tags, seed_everything
from bench.engine.device import Placement, place, resolve_device
from bench.engine.record import log_metrics, param
from bench.engine.tracking import environment_tags, flatten
from bench.engine.trainer import Trainer
from bench.errors import BenchError
from bench.files.atomic import atomic_path
from bench.files.lock import exclusive
from bench.losses import batch_hard_triplet, cross_entropy
from bench.method import Batch, Method
from bench.models.backbone import Backbone
from bench.models.heads import BNNeck, spatial_avg
from bench.suite.warmstart import WEIGHTS, PretrainSpec

log = logging.getLogger("bench")
STAGE_TAG = "stage"


class FrameReID(Method):
    """Frame-level re-ID head over the suite's backbone (the stage's training model).

    forward(batch): clips (B, T, C, H, W) -> ``feat`` (B*T, D) pooled frame features and
    ``logits`` (B*T, num_classes) through a BN-neck; loss: CE with label smoothing on every
    frame + ``lambda_triplet`` x batch-hard triplet on ``feat`` (each frame labelled with its
    clip's identity).
    """

    name = "pretrain"

    def __init__(self, spec: PretrainSpec, num_classes: int):
        super().__init__(spec.config, spec.model, spec.data, num_classes)
        self.backbone = Backbone(spec.model)
        self.neck = BNNeck(self.backbone.out_channels, num_classes)

    def forward(self, batch: Batch) -> dict[str, Any]:
        feat = spatial_avg(self.backbone(batch["clips"])).flatten(0, 1)
        _, logits = self.neck(feat)
        return {"feat": feat, "logits": logits}

    def loss(self, outputs: dict[str, Any], batch: Batch) -> dict[str, torch.Tensor]:
        cfg = self.config
        pids = batch["pids"].repeat_interleave(batch["clips"].shape[1])
        terms = {"ce": cross_entropy(outputs["logits"], pids, cfg.label_smoothing)}
        if cfg.lambda_triplet > 0:
            triplet = batch_hard_triplet(outputs["feat"], pids, cfg.triplet_margin)
            terms["triplet"] = cfg.lambda_triplet * triplet
        return terms


def training_tracklets(split: Split, where: str) -> list[Tracklet]:
    """The split's training tracklets, checked to share no identity with its test set."""
    test = {t.pid for t in (*split.query, *split.gallery)}
    leaked = sorted({t.pid for t in split.train} & test)
    if leaked:
        raise BenchError(
            f"{where}: training identities {leaked[:10]} are also test identities; the warm "
            "start trains on training identities only"
        )
    return list(split.train)


def warm_start_stage(suite, cells: list, mlf, exp_id: str, workdir: Path, data_root) -> None:
    """Run the suite's stages before its cells: each that some of ``cells`` start from, in
    the cells' order (one per seed)."""
    from bench.suite.warmstart import pretrain_specs

    stages = {spec.ref: spec for spec in pretrain_specs(suite, data_root).values()}
    for ref in dict.fromkeys(c.sections.model.weights for c in cells):
        if ref in stages:
            ensure_weights(stages[ref], mlf, exp_id, workdir, data_root)


def ensure_weights(
    spec: PretrainSpec, mlf, exp_id: str, workdir: Path, data_root: str | None, force=False
) -> Path:
    """The stage's ``backbone.pt``: cached, restored from its finished MLflow run, or trained
    (resuming from the stage's checkpoint after a kill); one process at a time per hash."""
    folder = spec.folder(workdir)
    weights = folder / WEIGHTS
    with exclusive(folder / ".lock"):
        done = None if force else finished_run(mlf, exp_id, spec)
        if done is not None and not weights.is_file():
            restore(mlf, done.info.run_id, weights)
        if done is not None:
            log.info("%s: cached (run %s), not trained again", spec.label, done.info.run_id)
            return weights
        if force:
            weights.unlink(missing_ok=True)
            (folder / "checkpoint.pt").unlink(missing_ok=True)
        run_id = open_run(mlf, exp_id, spec)
        try:
            if not weights.is_file():
                train_backbone(spec, mlf, run_id, folder, data_root)
            config = folder / "config.yaml"
            config.write_text(yaml.safe_dump(spec.resolved(), sort_keys=False))
            mlf.log_artifact(run_id, str(config))
            mlf.log_artifact(run_id, str(weights))
        except BaseException as exc:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            mlf.set_tag(run_id, "error", f"{type(exc).__name__}: {exc}"[:5000])
            mlf.set_terminated(run_id, status=status)
            raise
        killpoints.reached("pretrain_before_finished")
        mlf.set_terminated(run_id, status="FINISHED")
    return weights


def stage_runs(mlf, exp_id: str, spec: PretrainSpec) -> list:
    """The stage's runs of this hash, newest first."""
    return mlf.search_runs(
        [exp_id],
        filter_string=f"tags.{STAGE_TAG} = 'pretrain' and tags.pretrain_hash = '{spec.hash}'",
        order_by=["attributes.start_time DESC"],
    )


def finished_run(mlf, exp_id: str, spec: PretrainSpec):
    done = [r for r in stage_runs(mlf, exp_id, spec) if r.info.status == "FINISHED"]
    return done[0] if done else None


def restore(mlf, run_id: str, weights: Path) -> None:
    """Copy the weights artifact of a finished stage run into the cache (a new work dir)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = mlf.download_artifacts(run_id, WEIGHTS, tmp)
        with atomic_path(weights) as out:
            shutil.copyfile(path, out)
    log.info("warm start restored from run %s into %s", run_id, weights)


def open_run(mlf, exp_id: str, spec: PretrainSpec) -> str:
    """Adopt the newest RUNNING run of the hash (its process died: we hold the lock), closing
    any older one as KILLED; else a new run with the params and tags."""
    running = [r for r in stage_runs(mlf, exp_id, spec) if r.info.status == "RUNNING"]
    for run in running[1:]:
        mlf.set_terminated(run.info.run_id, status="KILLED")
    if running:
        return running[0].info.run_id
    run_id = mlf.create_run(exp_id, run_name=spec.label).info.run_id
    params = flatten(spec.resolved())
    mlf.log_batch(run_id, params=[param(k, v) for k, v in params.items()])
    tags = {
        STAGE_TAG: "pretrain",
        "pretrain_hash": spec.hash,
        "suite": spec.suite,
        "dataset": spec.dataset_label or spec.dataset,
        "seed": str(spec.seed),
        "mlflow.runName": spec.label,
        **environment_tags(),
    }
    for key, value in tags.items():
        mlf.set_tag(run_id, key, value)
    return run_id


def train_backbone(
    spec: PretrainSpec, mlf, run_id: str, folder: Path, data_root: str | None
) -> None:
    """Train :class:`FrameReID` on the training identities and write ``backbone.pt``."""
    dataset = build_dataset(spec.dataset, spec.dataset_options, data_root)
    dataset.prepare()
    split = dataset.load_split(spec.split)
    if spec.train.val_fraction > 0:  # a tune's stage: its validation ids left out
        split = carve_validation(split, spec.train.val_fraction, spec.holdout_seed)
    tracks = training_tracklets(split, spec.label)
    where = Placement(resolve_device(spec.device), spec.train.precision, spec.train.channels_last)
    seed_everything(spec.seed)
    num_classes = len({t.pid for t in tracks})
    net = place(FrameReID(spec, num_classes), where)
    for key, value in {**placement_tags(where), "pretrain_identities": str(num_classes)}.items():
        mlf.set_tag(run_id, key, value)
    loader, _ = train_loader(tracks, spec.data, frozenset(), spec.seed, where.device)
    start = time.perf_counter()
    Trainer(net, loader, spec.train, folder / "checkpoint.pt").fit(
        lambda epoch, logs: log_metrics(mlf, run_id, logs, step=epoch)
    )
    steps = min(len(loader), spec.train.max_steps_per_epoch or len(loader))
    log_metrics(mlf, run_id, {"time.train_s": time.perf_counter() - start, "steps": steps})
    killpoints.reached("pretrain_trained")
    with atomic_path(folder / WEIGHTS) as tmp:
        torch.save(net.backbone.timm_state_dict(), tmp)
    (folder / "checkpoint.pt").unlink(missing_ok=True)
    killpoints.reached("pretrain_saved")
