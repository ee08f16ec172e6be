"""The synthetic generator's nuisances as options, and its records of what went wrong."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench.data.build import build_dataset
from bench.data.nuisances import read_nuisances
from bench.data.synthetic import GeneratorConfig, ensure_generated, load_tracklets
from bench.data.synthetic.cameras import background
from bench.data.synthetic.plan import make_plan
from bench.data.synthetic.tracklet import TrackletScene
from bench.errors import ConfigError, DataError

TINY = dict(train_ids=6, test_ids=6, distractors=2, cameras=3, min_len=4, max_len=6)
# sha256 over (path, bytes) of every file but index.json, sorted by path, as generator
# version 4 (before the nuisance options and records) wrote them for these options.
ALL_FILES_V4 = {
    (): "035d42cdbfe5500855b7d6618e25dea100c4703c54d42db4449442605dc43821",
    (("polluted", True), ("test_ids", 4), ("train_ids", 4)): (
        "4110d0314a21ace563739c9e3b45e650a5c47a9b2ca6b7a5f96d94795600d8b9"
    ),
}
NEW_FILES = ("index.json", "nuisances.json")


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("syn")
    return ensure_generated(GeneratorConfig(**TINY), root, workers=1, progress=False)


def v4_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name not in NEW_FILES:
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_the_default_data_is_byte_identical_to_generator_v4(made, tmp_path):
    assert v4_digest(made) == ALL_FILES_V4[()]
    changes = dict(next(k for k in ALL_FILES_V4 if k))
    polluted = ensure_generated(GeneratorConfig(**{**TINY, **changes}), tmp_path, 1, False)
    assert v4_digest(polluted) == ALL_FILES_V4[tuple(sorted(changes.items()))]
    assert made.name.startswith("v5-")  # the records are new: the cache key's version moved


@pytest.mark.parametrize(
    ("key", "bad"),
    [
        ("occlusion_rate", 1.5),
        ("misdetection_rate", -0.1),
        ("position_jitter", -1),
        ("scale_jitter", 2),
        ("clutter", -1),
        ("clutter", "much"),
    ],
)
def test_nuisance_options_are_validated_with_their_key(key, bad):
    with pytest.raises(ConfigError, match=rf"suite: dataset synthetic-video: {key}: .*got"):
        build_dataset("synthetic-video", {key: bad}, None)


def test_every_nuisance_option_is_in_the_cache_key():
    keys = {GeneratorConfig(**TINY).cache_key()}
    for key, value in [
        ("occlusion_rate", 0.8),
        ("misdetection_rate", 0.25),
        ("position_jitter", 3.0),
        ("scale_jitter", 0.1),
        ("clutter", 3.0),
    ]:
        keys.add(GeneratorConfig(**TINY, **{key: value}).cache_key())
    assert len(keys) == 6


def scenes(**changes) -> list[TrackletScene]:
    cfg = GeneratorConfig(**{**TINY, **changes})
    return [TrackletScene(cfg, spec) for spec in make_plan(cfg).tracklets[:12]]


def person_boxes(scene: TrackletScene) -> np.ndarray:
    """(n_frames, 2): the centre x and the height of the person's mask in each frame."""
    out = []
    for frame in scene.frames():
        ys, xs = np.nonzero(frame.labels)
        out.append((xs.mean(), ys.max() - ys.min()))
    return np.array(out)


def test_position_and_scale_jitter_move_and_resize_the_crop():
    calm = dict(misdetection_rate=0.0, occlusion_rate=0.0, position_jitter=0.0, scale_jitter=0.0)

    def spread(column: int, **changes) -> float:
        return float(np.mean([person_boxes(s)[:, column].std() for s in scenes(**changes)]))

    assert spread(0, **{**calm, "position_jitter": 4.0}) > 3 * spread(0, **calm)
    assert spread(1, **{**calm, "scale_jitter": 0.15}) > 3 * spread(1, **calm)


def test_clutter_fills_the_scene_and_its_default_is_the_old_scene():
    bare, busy = (background(0, 1, 128, 64, 6, clutter) for clutter in (0.0, 3.0))
    assert bare.std() < busy.std()
    wall = bare[:40].astype(float)  # above any horizon: one colour and sensor noise
    assert wall.std(axis=(0, 1)).max() < 10
    np.testing.assert_array_equal(background(0, 1, 128, 64, 6, 1.0), background(0, 1, 128, 64, 6))


def test_records_name_the_misdetected_frames_and_the_occluded_joints(made):
    cfg = GeneratorConfig(**TINY)
    specs = {s.path: s for s in make_plan(cfg).tracklets}
    covered = total = occluders = 0
    for t in load_tracklets(made, "estimated")["train"]:
        records = read_nuisances(t.exact.nuisances, len(t.frames))
        scene = TrackletScene(cfg, specs[str(Path(t.frames[0]).parents[1].relative_to(made))])
        assert records.misdetection == tuple(b.kind if b else "" for b in scene.bad)
        assert records.occluder == (scene.occluder.kind if scene.occluder else None)
        occluders += scene.occluder is not None
        keypoints = np.load(t.exact.keypoints)
        for i, joints in enumerate(records.occluded_joints):
            mask = np.asarray(Image.open(t.exact.masks[i]))
            for j in joints:
                x, y, visibility = keypoints[i, j]
                assert visibility == 0.5  # an occluded joint is hidden
                total += 1
                covered += mask[min(int(round(y)), 127), min(int(round(x)), 63)] == 0
        if scene.occluder is None:
            assert not any(records.occluded_joints)
    assert occluders and total > 20 and covered / total > 0.95  # on the occluder's pixels


def test_without_nuisances_nothing_is_recorded_and_the_black_box_is():
    for scene in scenes(occlusion_rate=0.0, misdetection_rate=0.0):
        assert scene.occluder is None and not any(scene.bad)
        assert not any(f.occluded.any() for f in scene.frames())
    boxed = [f for s in scenes(occlusion_rate=0.0, polluted=True) for f in s.frames()]
    assert any(f.occluded.any() for f in boxed)
    for frame in boxed:
        assert (frame.keypoints[frame.occluded, 2] == 0.5).all()


def test_exact_annotations_come_with_every_aux_and_are_checked(made, tmp_path):
    for aux in ("estimated", "exact"):
        t = load_tracklets(made, aux)["query"][0]
        assert t.exact.masks[0].endswith("masks/000000.png") and "estimated" not in t.exact.masks[0]
        assert Path(t.exact.nuisances).is_file()
    with pytest.raises(DataError, match="expected 3"):
        read_nuisances(t.exact.nuisances, 3)
    (tmp_path / "n.json").write_text("{}")
    with pytest.raises(DataError, match="unreadable"):
        read_nuisances(str(tmp_path / "n.json"), 3)
    with pytest.raises(DataError, match="no nuisance records"):
        read_nuisances(str(tmp_path / "none.json"), 3)
