"""The synthetic data's estimation model, the `aux` switch and the per-camera query protocol."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from bench.config import DataConfig
from bench.data.base import Protocol, Split
from bench.data.build import build_dataset
from bench.data.cell_data import CellData
from bench.data.loader import train_loader
from bench.data.synthetic import GeneratorConfig, ensure_generated, load_tracklets
from bench.data.synthetic.agreement import part_iou, pckh
from bench.data.synthetic.estimate import PCKH, estimate_keypoints, estimate_mask
from bench.data.synthetic.load import roles_of
from bench.data.synthetic.plan import make_plan
from bench.engine.cell import RunOptions
from bench.engine.device import Placement
from bench.engine.record import cell_tags
from bench.errors import ConfigError
from bench.suite.load import load_suite

TINY = dict(train_ids=6, test_ids=6, distractors=2, cameras=3, min_len=4, max_len=6)
# sha256 over (path, bytes) of every exact mask PNG and keypoints.npy, sorted by path, as
# generator version 3 (before the estimation model) wrote them for these options.
EXACT_V3 = {
    (): "de1331c3edd64f1eb3487cfb3a0ca3d28d323735eb7fbc0a2d1105aa6d6bf014",
    (("polluted", True), ("test_ids", 4), ("train_ids", 4)): (
        "7d1fcbcdd90367ff53b5a6e9c978186ba4d0230669a613e763582fbbc6eaf8b6"
    ),
}
NO_NOISE = dict(
    kp_jitter=0.0,
    kp_miss_rate=0.0,
    kp_miss_hidden=0.0,
    kp_swap_rate=0.0,
    mask_boundary=0.0,
    mask_confusion=0.0,
    mask_drop_rate=0.0,
)


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("syn")
    return ensure_generated(GeneratorConfig(**TINY), root, workers=1, progress=False)


@pytest.fixture(scope="module")
def exact(made) -> tuple[np.ndarray, np.ndarray]:
    """All exact keypoints (N, 14, 3) and masks (N, H, W) of the tiny set."""
    tracks = load_tracklets(made, "exact")["train"]
    keypoints = np.concatenate([np.load(t.keypoints) for t in tracks])
    masks = np.stack([np.asarray(Image.open(m)) for t in tracks for m in t.masks])
    return keypoints, masks


def exact_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        exact_file = "masks" in path.parts or path.name == "keypoints.npy"
        if path.is_file() and exact_file and "estimated" not in path.parts:
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_exact_annotations_are_byte_identical_to_generator_v3(made, tmp_path):
    assert exact_digest(made) == EXACT_V3[()]
    for changes, expected in EXACT_V3.items():
        if changes:
            cfg = GeneratorConfig(**{**TINY, **dict(changes), "kp_jitter": 3.0})
            assert exact_digest(ensure_generated(cfg, tmp_path, 1, False)) == expected


def test_estimated_files_sit_beside_the_exact_ones_and_differ(made):
    estimated, exact_ = load_tracklets(made, "estimated"), load_tracklets(made, "exact")
    for a, b in zip(estimated["train"], exact_["train"], strict=True):
        assert a.frames == b.frames and a.keypoints != b.keypoints
        assert all("/estimated/masks/" in m for m in a.masks)
        assert np.load(a.keypoints).shape == np.load(b.keypoints).shape
    kp_a = np.concatenate([np.load(t.keypoints) for t in estimated["train"]])
    kp_b = np.concatenate([np.load(t.keypoints) for t in exact_["train"]])
    assert not np.array_equal(kp_a, kp_b)
    assert set(np.unique(kp_b[..., 2])) <= {0.0, 0.5, 1.0}
    assert len(np.unique(kp_a[..., 2])) > 10  # confidences, not visibility flags


def _estimate_all(exact, **changes):
    cfg = GeneratorConfig(**{**NO_NOISE, **changes})
    rng = np.random.default_rng(0)
    kp = np.stack([estimate_keypoints(k, cfg, rng) for k in exact[0]])
    masks = np.stack([estimate_mask(m, cfg, rng) for m in exact[1]])
    return kp, masks


def test_without_noise_the_estimate_is_the_exact_annotation(exact):
    kp, masks = _estimate_all(exact)
    inside = exact[0][..., 2] > 0
    np.testing.assert_allclose(kp[inside][:, :2], exact[0][inside][:, :2], atol=1e-4)
    assert (kp[~inside] == 0).all() and (kp[inside][:, 2] > 0).all()
    assert np.array_equal(masks, exact[1])


def test_keypoint_jitter_scales_the_error(exact):
    visible = exact[0][..., 2] >= 1
    errors = []
    for jitter in (1.0, 3.0):
        kp, _ = _estimate_all(exact, kp_jitter=jitter)
        errors.append(np.linalg.norm(kp[..., :2] - exact[0][..., :2], axis=-1)[visible].mean())
    assert errors[1] / errors[0] == pytest.approx(3.0, rel=0.15)


def test_miss_rates_drop_visible_and_hidden_joints(exact):
    visible, hidden = exact[0][..., 2] >= 1, exact[0][..., 2] == 0.5
    kp, _ = _estimate_all(exact, kp_miss_rate=1.0)
    assert (kp[visible] == 0).all() and (kp[hidden][:, 2] > 0).all()
    kp, _ = _estimate_all(exact, kp_miss_hidden=1.0)
    assert (kp[hidden] == 0).all() and (kp[visible][:, 2] > 0).all()
    kp, _ = _estimate_all(exact, kp_miss_rate=0.5)
    assert 0.4 < (kp[visible][:, 2] == 0).mean() < 0.6


def test_swap_rate_exchanges_left_and_right_limbs(exact):
    plain, _ = _estimate_all(exact)
    swapped, _ = _estimate_all(exact, kp_swap_rate=1.0)
    mirrored = plain[:, [0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10]]
    np.testing.assert_array_equal(swapped, mirrored)
    assert not np.array_equal(swapped, plain)


def test_mask_noises_do_what_they_say(exact):
    labels = exact[1]
    _, dropped = _estimate_all(exact, mask_drop_rate=1.0)
    changed = dropped != labels
    assert changed.any() and (dropped[changed] == 0).all()  # thin pieces become background
    _, confused = _estimate_all(exact, mask_confusion=1.0)
    changed = confused != labels
    assert changed.any() and (labels[changed] > 0).all() and (confused[changed] > 0).all()
    _, warped = _estimate_all(exact, mask_boundary=3.0)
    changed = warped != labels
    assert 0.02 < changed.mean() < 0.3  # boundaries move, bodies stay
    assert (
        part_iou(labels, warped)["mIoU"]
        > part_iou(labels, _estimate_all(exact, mask_boundary=6.0)[1])["mIoU"]
    )


def test_defaults_are_calibrated_to_the_published_figures(exact):
    """PCKh per joint type near HRNet-W32's on MPII; 4-part mIoU near 60 % (docs)."""
    reps = 8  # the same frames, several draws of the estimation model
    cfg, rng = GeneratorConfig(), np.random.default_rng(1)
    frames = np.concatenate([exact[0]] * reps)
    kp = np.stack([estimate_keypoints(k, cfg, rng) for k in frames])
    measured = pckh(frames, kp)
    for kind, published in PCKH.items():
        assert measured[kind] == pytest.approx(published, abs=4.0), kind
    masks = np.stack([estimate_mask(m, cfg, rng) for m in exact[1]])
    assert 52.0 < part_iou(exact[1], masks)["mIoU"] < 70.0


def test_estimation_options_change_only_the_estimated_files(made, tmp_path):
    """(Serial vs. parallel byte-identity of every file, estimated ones included, is
    test_synthetic's test_same_seed_gives_byte_identical_files_serial_or_parallel.)"""
    other = ensure_generated(GeneratorConfig(**TINY, kp_swap_rate=0.5), tmp_path, 1, False)
    assert other.name != made.name and exact_digest(other) == exact_digest(made)
    estimated = list(made.rglob("estimated/keypoints.npy"))
    assert estimated and any(
        (other / p.relative_to(made)).read_bytes() != p.read_bytes() for p in estimated
    )


def test_aux_option_reaches_the_training_batches(made):
    data = DataConfig(height=32, width=16, seq_len=2, p=2, k=2, flip=0.0, erasing=0.0)
    aux = frozenset({"part_masks", "keypoints"})
    batches = {}
    for kind in ("exact", "estimated"):
        dataset = build_dataset(
            "synthetic-video", {"root": str(made.parent), **TINY, "aux": kind}, None
        )
        dataset.prepare(progress=False)
        loader, sampler = train_loader(dataset.load_split(0).train, data, aux, seed=0)
        sampler.set_epoch(0)
        batches[kind] = next(iter(loader))
    exact_, estimated = batches["exact"], batches["estimated"]
    assert torch_equal(exact_["clips"], estimated["clips"])  # same frames, other annotations
    assert not torch_equal(exact_["keypoints"], estimated["keypoints"])
    assert not torch_equal(exact_["part_masks"], estimated["part_masks"])
    assert set(exact_["keypoints"][..., 2].unique().tolist()) <= {0.0, 0.5, 1.0}


def torch_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())


def test_aux_is_in_the_resolved_config_and_the_run_tags(tmp_path):
    suite = {
        "name": "aux",
        "datasets": [
            {"name": "synthetic-video", **TINY},
            {"name": "synthetic-video", "label": "exact-aux", **TINY, "aux": "exact"},
        ],
        "methods": ["baseline"],
        "seeds": [0],
        "defaults": {"data": {"p": 2, "k": 2}},
    }
    path = tmp_path / "aux.yaml"
    path.write_text(yaml.safe_dump(suite))
    cells = load_suite(path).cells
    assert [c.resolved()["dataset"]["aux"] for c in cells] == ["estimated", "exact"]
    data = CellData(Split([], [], [], Protocol(name="p"), 0), frozenset())
    where = Placement()
    tags = [cell_tags(c, RunOptions(), [], data, where)["aux"] for c in cells]
    assert tags == ["estimated", "exact"]
    assert cells[0].config_hash != cells[1].config_hash


def test_an_ablation_row_sets_aux_on_its_cells_and_both_sides_of_a_cross_entry(tmp_path):
    clean = {"name": "synthetic-video", **TINY}
    suite = {
        "name": "aux-rows",
        "datasets": [clean, {"train": clean, "test": {**clean, "seed": 1}, "label": "s0→s1"}],
        "methods": ["baseline", "stal"],
        "ablations": {"stal": [{"name": "exact-aux", "aux": "exact"}]},
        "seeds": [0],
        "defaults": {"data": {"p": 2, "k": 2}},
    }
    path = tmp_path / "aux.yaml"
    path.write_text(yaml.safe_dump(suite))
    cells = load_suite(path).cells
    rows = [(c.shown_dataset, c.method, c.variant, c.dataset_options["aux"]) for c in cells]
    assert rows == [
        ("synthetic-video", "baseline", "default", "estimated"),
        ("synthetic-video", "stal", "default", "estimated"),
        ("synthetic-video", "stal", "exact-aux", "exact"),
        ("s0→s1", "baseline", "default", "estimated"),
        ("s0→s1", "stal", "default", "estimated"),
        ("s0→s1", "stal", "exact-aux", "exact"),
    ]
    assert [c.train_side.options["aux"] for c in cells[3:]] == ["estimated"] * 2 + ["exact"]
    assert cells[2].method_config == cells[1].method_config  # aux is no method field
    assert cells[2].train_hash != cells[1].train_hash
    suite["datasets"] = ["mars"]
    path.write_text(yaml.safe_dump(suite))
    with pytest.raises(ConfigError, match=r"ablations.stal\[0\].*mars.aux.*real dataset"):
        load_suite(path)


def test_real_datasets_have_estimated_annotations_only():
    assert build_dataset("mars", {}, None).options.aux == "estimated"
    with pytest.raises(ConfigError, match="mars.aux.*real dataset"):
        build_dataset("mars", {"aux": "exact"}, None)


def _rows(cfg: GeneratorConfig) -> list[dict]:
    plan = make_plan(cfg)
    return [{"pid": s.identity.pid, "camid": s.camid, "role": s.role} for s in plan.tracklets]


def test_per_camera_protocol_queries_every_camera_of_a_test_identity(made):
    roles = load_tracklets(made)
    query, gallery = roles["query"], roles["gallery"]
    test = {t.pid for t in load_tracklets(made, queries="one")["query"]}
    pairs = {(t.pid, t.camid) for t in gallery if t.pid in test}
    assert sorted((t.pid, t.camid) for t in query) == sorted(pairs)  # one per (pid, camera)
    assert all("_t0/" in q.frames[0] for q in query)  # the first tracklet there
    assert set(query) <= set(gallery)  # MARS-like: the gallery holds the queries
    for q in query:
        assert any(g.pid == q.pid and g.camid != q.camid for g in gallery)
    one = load_tracklets(made, queries="one")
    assert set(one["query"]) <= set(query) and set(gallery) == set(one["query"] + one["gallery"])


def test_default_protocol_has_the_statistical_power_of_issue_12():
    rows = _rows(GeneratorConfig())
    roles = roles_of(rows, "per_camera")
    queries = [r for r, kinds in zip(rows, roles, strict=True) if "query" in kinds]
    assert len(queries) >= 300 and len({r["pid"] for r in queries}) >= 100
