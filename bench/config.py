"""The typed sections of a resolved cell config: model, data, train and eval.

Every section is a pydantic model that forbids unknown keys, so a typo in a suite is an error
that names the key. Method configs derive from :class:`MethodConfig`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """Base of every config section: strict about keys, documented fields."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


#: ``Field(..., json_schema_extra=TEST_TIME)`` marks a method field that acts only at test time:
#: cells that differ only in such fields (and in ``eval``) share one trained model.
TEST_TIME = {"test_time": True}


class MethodConfig(Section):
    """Base of a method plugin's config (the paper's defaults and its ablation switches)."""

    @classmethod
    def test_time_fields(cls) -> set[str]:
        return {k for k, f in cls.model_fields.items() if f.json_schema_extra == TEST_TIME}


class ModelConfig(Section):
    backbone: str = Field("resnet18", description="timm model name of a CNN with stages")
    pretrained: bool = Field(False, description="load timm's ImageNet weights")
    weights: str | None = Field(None, description="local weight file for the backbone")
    last_stride: int = Field(1, description="stride of the last stage (1 = re-ID convention)")
    kwargs: dict = Field(default_factory=dict, description="extra timm create_model kwargs")


class DataConfig(Section):
    height: int = Field(256, gt=0, description="input height in pixels")
    width: int = Field(128, gt=0, description="input width in pixels")
    seq_len: int = Field(4, ge=1, description="T, frames per training clip")
    sampling: Literal["random", "stride", "chunks"] = Field(
        "random", description="how a training clip picks its T frames"
    )
    stride: int = Field(8, ge=1, description="frame stride for sampling: stride")
    p: int = Field(8, ge=2, description="identities per batch (P)")
    k: int = Field(4, ge=2, description="tracklets per identity per batch (K)")
    flip: float = Field(0.5, ge=0, le=1, description="probability of a clip-level h-flip")
    erasing: float = Field(0.5, ge=0, le=1, description="probability of clip-level erasing")
    workers: int = Field(0, ge=0, description="DataLoader worker processes")
    cache_frames: bool = Field(True, description="keep decoded, resized frames in memory")


class TrainConfig(Section):
    epochs: int = Field(8, ge=0)
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = Field(3e-4, gt=0)
    weight_decay: float = Field(5e-4, ge=0)
    momentum: float = Field(0.9, ge=0, description="SGD momentum")
    scheduler: Literal["none", "step", "multistep"] = "step"
    step_size: int = Field(40, ge=1, description="epochs between decays (step)")
    milestones: list[int] = Field(default_factory=lambda: [40, 80], description="multistep")
    gamma: float = Field(0.1, gt=0, description="decay factor")
    warmup_epochs: int = Field(0, ge=0, description="linear warm-up epochs")
    max_steps_per_epoch: int | None = Field(None, ge=1, description="cap batches per epoch")
    val_fraction: float = Field(0.0, ge=0, lt=1, description="training ids held out (tune)")


class EvalConfig(Section):
    clip_len: int | None = Field(None, ge=1, description="frames per test clip (None = seq_len)")
    clip_stride: int | None = Field(None, ge=1, description="clip stride (None = clip_len)")
    clip_norm: bool = Field(False, description="L2-normalise clip features before averaging")
    max_frames: int | None = Field(None, ge=1, description="cap frames per tracklet")
    batch_size: int = Field(32, ge=1, description="clips per inference batch")
    seq_lengths: list[int] = Field(
        default_factory=list, description="sequence-length study: probe x gallery lengths"
    )


class Defaults(Section):
    """Shared settings of every cell; a method or variant override may patch any of them."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)


SECTIONS = tuple(Defaults.model_fields)


class LauncherConfig(Section):
    """Where ``bench run --launcher slurm`` runs a grid: a submitit job array, one task per
    cell (the suite's ``launcher:`` section, ``--launcher-config FILE`` and flags, in order)."""

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
