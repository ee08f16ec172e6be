"""The generator's options, and the cache key derived from them."""

from __future__ import annotations

import hashlib
import json

from pydantic import Field, model_validator

from bench.config import Section

# Bump when a change to the generator changes its output for the same options.
# v5: each tracklet's nuisance records (nuisances.json); every file v4 wrote is byte-identical.
GENERATOR_VERSION = 5
#: the options that set how much of each nuisance the data has (swept by suites/stress.yaml)
NUISANCE_OPTIONS = (
    "occlusion_rate",
    "misdetection_rate",
    "position_jitter",
    "scale_jitter",
    "clutter",
)


class GeneratorConfig(Section):
    """Everything that determines the generated files (and nothing else)."""

    seed: int = Field(0, description="generator seed (identities, cameras, every frame)")
    train_ids: int = Field(70, ge=4, description="training identities")
    test_ids: int = Field(110, ge=4, description="test identities")
    distractors: int = Field(20, ge=0, description="gallery-only tracklets of extra people")
    cameras: int = Field(4, ge=2, le=8, description="number of cameras")
    min_cameras: int = Field(2, ge=2, description="fewest cameras an identity appears in")
    max_cameras: int | None = Field(None, ge=2, description="most cameras (None = all)")
    max_tracklets_per_camera: int = Field(
        2, ge=1, description="tracklets of one identity in one camera: 1..this (tracker breaks)"
    )
    min_len: int = Field(8, ge=1, description="shortest tracklet, in frames")
    max_len: int = Field(32, ge=1, description="longest tracklet, in frames")
    height: int = Field(128, ge=32, description="frame height in pixels")
    width: int = Field(64, ge=16, description="frame width in pixels")
    occlusion_rate: float = Field(
        0.3, ge=0, le=1, description="fraction of tracklets with an occluder (box, pole, person)"
    )
    misdetection_rate: float = Field(
        0.06, ge=0, le=1, description="fraction of frames that are drifting or wrong-person crops"
    )
    polluted: bool = Field(False, description="STAL's random 25x25 (at 128x64) black box per frame")
    position_jitter: float = Field(
        1.0, ge=0, le=10, description="detector jitter of the crop's position, x each camera's std"
    )
    scale_jitter: float = Field(
        0.02, ge=0, le=1, description="std of the per-frame log scale of the crop (zoom jitter)"
    )
    clutter: float = Field(
        1.0,
        ge=0,
        le=10,
        description="background clutter: x the windows, doors and posters of a "
        "camera's scene (0 = bare wall and floor)",
    )
    # The estimation model (estimate.py): what a pose estimator and a human parser would give.
    kp_jitter: float = Field(
        1.0, ge=0, description="keypoint jitter, x the per-joint std calibrated to HRNet's PCKh"
    )
    kp_miss_rate: float = Field(0.02, ge=0, le=1, description="visible joints not detected")
    kp_miss_hidden: float = Field(0.3, ge=0, le=1, description="hidden joints not detected")
    kp_swap_rate: float = Field(
        0.03, ge=0, le=1, description="per frame and limb pair (arms, legs): left/right swapped"
    )
    mask_boundary: float = Field(
        3.0, ge=0, description="std of the smooth boundary displacement (pixels at 128 x 64)"
    )
    mask_confusion: float = Field(
        0.4, ge=0, le=1, description="fraction of a part's border band given to its neighbour"
    )
    mask_drop_rate: float = Field(
        0.3, ge=0, le=1, description="per frame and part: its thin pieces (limbs) dropped"
    )

    @model_validator(mode="after")
    def _check_ranges(self) -> GeneratorConfig:
        if self.min_len > self.max_len:
            raise ValueError(f"min_len ({self.min_len}) must be <= max_len ({self.max_len})")
        most = self.max_cameras if self.max_cameras is not None else self.cameras
        if not self.min_cameras <= most <= self.cameras:
            raise ValueError(
                f"need min_cameras <= max_cameras <= cameras, got {self.min_cameras}, "
                f"{self.max_cameras}, {self.cameras}"
            )
        return self

    @property
    def most_cameras(self) -> int:
        return self.max_cameras if self.max_cameras is not None else self.cameras

    def cache_key(self) -> str:
        """A folder name that changes whenever an option (or the generator version) does."""
        text = json.dumps(self.model_dump(), sort_keys=True)
        digest = hashlib.sha1(f"{GENERATOR_VERSION}:{text}".encode()).hexdigest()[:12]
        return f"v{GENERATOR_VERSION}-{digest}"

    @classmethod
    def from_options(cls, options: Section) -> GeneratorConfig:
        """The generator fields of a larger options model (e.g. a dataset's Options)."""
        return cls.model_validate(options.model_dump(include=set(cls.model_fields)))
