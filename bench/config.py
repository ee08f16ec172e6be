"""The typed sections of a resolved cell config: model, data, train and eval.

Every section is a pydantic model that forbids unknown keys, so a typo in a suite is an error
that names the key. Method configs derive from :class:`MethodConfig`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator


class Section(BaseModel):
    """Base of every config section: strict about keys, documented fields."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


#: Upper bounds of sizes (a typo such as ``height: 1e9`` fails validation, not the machine).
MAX_SIDE, MAX_FRAMES, MAX_BATCH, MAX_EPOCHS = 4096, 1024, 4096, 100_000

#: ``Field(..., json_schema_extra=TEST_TIME)`` marks a method field that acts only at test time:
#: cells that differ only in such fields (and in ``eval``) share one trained model.
TEST_TIME = {"test_time": True}


class MethodConfig(Section):
    """Base of a method plugin's config (the paper's defaults and its ablation switches)."""

    @classmethod
    def test_time_fields(cls) -> set[str]:
        return {k for k, f in cls.model_fields.items() if f.json_schema_extra == TEST_TIME}

    def eval_defaults(self, data: DataConfig) -> dict[str, Any]:
        """``eval`` settings this method tests with unless a suite sets them explicitly (its
        own test protocol); applied by :func:`bench.suite.schema.resolve_eval`."""
        return {}


class ModelConfig(Section):
    backbone: str = Field("resnet18", description="timm model name of a CNN with stages")
    pretrained: bool = Field(False, description="load timm's ImageNet weights")
    weights: str | None = Field(
        None,
        description="the backbone's weights: a file (timm or torchvision layout), a named source "
        "(imagenet:mobilenetv2_100; bench/models/weights.py) or a warm start (pretrain:<hash>)",
    )
    last_stride: Literal[1, 2] = Field(1, description="stride of the last stage (1 = re-ID)")
    frozen_stages: int = Field(
        0,
        ge=0,
        le=4,
        description="the stem and stages 1..N keep their (pretrained) weights and BatchNorm "
        "statistics: never trained, no gradient (0 = the whole backbone trains)",
    )
    feature_head: Literal["keep", "drop"] = Field(
        "keep",
        description="the pretrained layers between the last stage and the classifier "
        "(MobileNetV2's 1x1 conv to 1280 channels): kept as the end of stage 4, or dropped",
    )
    kwargs: dict = Field(default_factory=dict, description="extra timm create_model kwargs")


class DataConfig(Section):
    height: StrictInt = Field(256, gt=0, le=MAX_SIDE, description="input height in pixels")
    width: StrictInt = Field(128, gt=0, le=MAX_SIDE, description="input width in pixels")
    seq_len: StrictInt = Field(4, ge=1, le=MAX_FRAMES, description="T, frames per clip")
    sampling: Literal["random", "stride", "chunks"] = Field(
        "random", description="how a training clip picks its T frames"
    )
    stride: int = Field(8, ge=1, le=MAX_FRAMES, description="frame stride for sampling: stride")
    p: StrictInt = Field(8, ge=2, le=MAX_BATCH, description="identities per batch (P)")
    k: StrictInt = Field(4, ge=2, le=MAX_BATCH, description="tracklets per identity (K)")
    flip: float = Field(0.5, ge=0, le=1, description="probability of a clip-level h-flip")
    erasing: float = Field(0.5, ge=0, le=1, description="probability of clip-level erasing")
    workers: int | None = Field(
        None,
        ge=0,
        le=256,
        description="DataLoader workers (None: min(8, CPUs) on a GPU, 0 on the CPU)",
    )
    cache_frames: bool = Field(True, description="keep decoded, resized frames in memory")
    crop: float = Field(0.0, ge=0, le=1, description="probability of a clip-level random crop")
    crop_pad: int = Field(10, ge=0, description="random crop: pixels padded on each side")


class TrainConfig(Section):
    epochs: StrictInt = Field(8, ge=0, le=MAX_EPOCHS)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    momentum: float = Field(0.9, ge=0, description="SGD momentum")
    scheduler: Literal["none", "step", "multistep"] = "step"
    step_size: int = Field(40, ge=1, description="epochs between decays (step)")
    milestones: list[int] = Field(default_factory=lambda: [40, 80], description="multistep")
    gamma: float = Field(0.1, gt=0, description="decay factor")
    warmup_epochs: int = Field(0, ge=0, description="linear warm-up epochs")
    new_lr_mult: float = Field(
        1.0,
        gt=0,
        description="lr of the modules a method adds (blocks, necks, heads, part networks) as a "
        "multiple of lr; the backbone's pretrained parameters train at lr",
    )
    freeze_backbone_epochs: int = Field(
        0,
        ge=0,
        description="first epochs that train only the added modules (the backbone's "
        "parameters frozen; its BatchNorm statistics keep adapting)",
    )
    max_steps_per_epoch: int | None = Field(None, ge=1, description="cap batches per epoch")
    val_fraction: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="training ids held out, and scored after every epoch (val.mAP, val.R1)",
    )
    val_frames: int | None = Field(
        16, ge=1, description="frames of each validation tracklet scored (its first; None = all)"
    )
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="autocast dtype of training and evaluation (fp16 uses a GradScaler)"
    )
    channels_last: bool = Field(False, description="channels-last frames and weights")
    compile: bool = Field(False, description="torch.compile the method's modules")
    mining: Literal["local", "global"] = Field(
        "local", description="DDP: loss per rank's batch, or over the batch of all ranks"
    )
    sync_bn: bool = Field(False, description="DDP: SyncBatchNorm over all ranks")
    on_nonfinite: Literal["fail", "skip_step"] = Field(
        "fail", description="a NaN/inf loss or gradient: fail the cell, or skip that step"
    )
    max_skipped_steps: int = Field(10, ge=0, le=10_000, description="skip_step: most skips")
    grad_clip: float | None = Field(None, gt=0, description="clip the gradient norm to this")


class RerankConfig(Section):
    """k-reciprocal re-ranking (Zhong et al., CVPR 2017; :mod:`bench.eval.rerank`)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    k1: int = Field(20, ge=1, description="k of the k-reciprocal neighbours R(p, k1)")
    k2: int = Field(
        6, ge=1, description="neighbours averaged by the local query expansion (at most k1 + 1)"
    )
    lambda_: float = Field(
        0.3, ge=0, le=1, alias="lambda", description="d* = (1 - lambda) d_Jaccard + lambda d"
    )
    form: Literal["published", "literal"] = Field(
        "published",
        description="published: the authors' code, as torchreid and fast-reid (squared distances "
        "over each row's max, rows of V summing to 1, expansion at > 2/3); literal: the paper's "
        "equations as written (docs/methods.md)",
    )

    @model_validator(mode="after")
    def _k2_within_the_neighbour_lists(self) -> RerankConfig:
        if self.k2 > self.k1 + 1:
            raise ValueError(
                f"k2 must be at most k1 + 1 = {self.k1 + 1}: the query expansion averages "
                f"the k2 nearest of the k1 + 1 items each neighbour list holds (got k2={self.k2})"
            )
        return self


class EvalConfig(Section):
    clip_len: int | None = Field(
        None, ge=1, le=MAX_FRAMES, description="frames per test clip (None = seq_len)"
    )
    clip_stride: int | None = Field(None, ge=1, description="clip stride (None = clip_len)")
    clip_norm: bool = Field(False, description="L2-normalise clip features before averaging")
    max_frames: int | None = Field(None, ge=1, description="cap frames per tracklet")
    batch_size: int = Field(32, ge=1, le=65536, description="clips per inference batch")
    seq_lengths: list[Annotated[int, Field(ge=0, le=MAX_FRAMES)]] = Field(
        default_factory=list,
        description="sequence-length study: probe x gallery lengths L, each tracklet reduced to "
        "L random frames (0 = all frames; bench.engine.seqlen)",
    )
    seq_length_draws: int = Field(
        5, ge=1, le=1000, description="random draws of the L frames averaged by the study"
    )
    chunk_size: int | None = Field(
        None, ge=1, description="queries ranked per chunk (None = sized from free memory)"
    )
    rerank: RerankConfig | None = Field(
        None, description="also report k-reciprocal re-ranked metrics (rerank.*); None = off"
    )


class RuntimeConfig(Section):
    """Where a cell runs; none of it is part of the config hash."""

    device: str = Field(
        "auto",
        pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description="auto (first visible GPU, else the CPU) | cpu | cuda | cuda:N | mps",
    )


class Defaults(Section):
    """Shared settings of every cell; a method or variant override may patch any of them."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)


SECTIONS = tuple(Defaults.model_fields)


class LauncherConfig(Section):
    """How ``bench run`` fans out a grid: ``jobs`` (the default of ``--jobs``), and where
    ``--launcher slurm`` runs it, a submitit job array of one task per cell (the suite's
    ``launcher:`` section, ``--launcher-config FILE`` and flags, in order)."""

    jobs: Annotated[StrictInt, Field(ge=1)] | Literal["auto"] | None = Field(
        None, description="worker processes on this machine when --jobs is not given"
    )
    cluster: Literal["slurm", "local"] = Field(
        "slurm", description="slurm, or local: submitit's LocalExecutor (same code path, tests)"
    )
    partition: str | None = Field(None, description="Slurm partition")
    gpus_per_task: int = Field(0, ge=0, description="GPUs of each task (one cell)")
    cpus_per_task: int = Field(4, ge=1, description="CPU cores of each task")
    mem_gb: float | None = Field(None, gt=0, description="memory of each task")
    time_min: int = Field(240, ge=1, description="time limit of each task, minutes")
    array_parallelism: int = Field(64, ge=1, description="tasks of the array running at once")
    sbatch: dict[str, str] = Field(
        default_factory=dict, description="extra sbatch options, e.g. {qos: high, account: me}"
    )


class PretrainConfig(Section):
    """A suite's ``pretrain:`` stage (:mod:`bench.engine.pretrain`): our warm start of the
    backbone, not the papers' ImageNet weights. ``defaults.model`` is trained on the frames of
    the *training* identities of one of the suite's datasets, once per seed; the cells then
    start from their seed's stage through ``model.weights``. ``data`` / ``train`` patch the
    suite's ``defaults.data`` / ``defaults.train`` (after the stage's own training defaults: 8
    epochs, lr 1e-3, no decay)."""

    dataset: str | None = Field(
        None, description="label or name of one of the suite's datasets (default: its first)"
    )
    seed: int | None = Field(
        None,
        ge=0,
        lt=2**32,
        description="None: one stage per seed of the suite, trained with that seed, and the cells "
        "of seed s start from the stage of seed s (the spread over seeds includes the start); "
        "a number: one stage with that seed, shared by every cell",
    )
    label_smoothing: float = Field(0.1, ge=0, lt=1, description="of the frame-level CE")
    triplet_margin: float = Field(0.3, ge=0, description="batch-hard triplet on frame features")
    lambda_triplet: float = Field(1.0, ge=0, description="weight of the triplet term (0 = off)")
    data: dict = Field(default_factory=dict, description="patch over defaults.data")
    train: dict = Field(default_factory=dict, description="patch over defaults.train")
