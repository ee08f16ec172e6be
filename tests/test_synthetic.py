"""The synthetic pedestrian-video dataset: determinism, cache, layout, annotations, protocol."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bench.data.base import Split, Tracklet
from bench.data.build import build_dataset
from bench.data.synthetic import GeneratorConfig, ensure_generated, load_tracklets, read_index
from bench.data.synthetic import store as store_module
from bench.data.synthetic.attributes import PARTS, sample_identities, sharing
from bench.errors import BenchError, ConfigError
from bench.eval.difficulty import chance_rank1
from bench.registry import DATASETS

TINY = dict(train_ids=6, test_ids=6, distractors=2, cameras=3, min_len=4, max_len=6)


def tiny(**changes) -> GeneratorConfig:
    return GeneratorConfig(**{**TINY, **changes})


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    return ensure_generated(tiny(), tmp_path_factory.mktemp("syn"), workers=1, progress=False)


@pytest.fixture(scope="module")
def roles(made) -> dict[str, list[Tracklet]]:
    return load_tracklets(made, "exact", "one")


def files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_same_seed_gives_byte_identical_files_serial_or_parallel(made, tmp_path):
    again = ensure_generated(tiny(), tmp_path, workers=2, progress=False)
    assert again.name == made.name
    a, b = files(made), files(again)
    assert a.keys() == b.keys() and len(a) > 100
    assert all(a[k] == b[k] for k in a)
    other = files(ensure_generated(tiny(seed=1), tmp_path, workers=1, progress=False))
    assert other["index.json"] != a["index.json"]


def test_cache_is_reused_and_invalidated_by_an_option(made, monkeypatch):
    def boom(*args):
        raise AssertionError("regenerated a finished cache")

    monkeypatch.setattr(store_module, "write_tracklet", boom)
    assert ensure_generated(tiny(), made.parent, workers=1, progress=False) == made
    with pytest.raises(AssertionError, match="regenerated"):
        ensure_generated(tiny(occlusion_rate=0.9), made.parent, workers=1, progress=False)
    assert tiny(occlusion_rate=0.9).cache_key() != made.name


def test_interrupted_generation_is_not_taken_for_a_finished_one(tmp_path, monkeypatch):
    real, calls = store_module.write_tracklet, []

    def dies_on_third(cfg, out, spec):
        calls.append(spec.index)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(cfg, out, spec)

    monkeypatch.setattr(store_module, "write_tracklet", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        ensure_generated(tiny(), tmp_path, workers=1, progress=False)
    key = tiny().cache_key()
    assert not (tmp_path / key).exists() and (tmp_path / f".{key}.partial").is_dir()
    monkeypatch.setattr(store_module, "write_tracklet", real)
    done = ensure_generated(tiny(), tmp_path, workers=1, progress=False)
    assert (done / "index.json").is_file() and not (tmp_path / f".{key}.partial").exists()
    assert len(load_tracklets(done, queries="one")["query"]) == TINY["test_ids"]


def test_counts_cameras_and_query_gallery(made, roles):
    cfg = tiny()
    train, query, gallery = roles["train"], roles["query"], roles["gallery"]
    assert {t.pid for t in train} == set(range(cfg.train_ids))
    assert sorted(t.pid for t in query) == list(range(cfg.train_ids, cfg.train_ids + cfg.test_ids))
    distractors = {t.pid for t in gallery} - {t.pid for t in query}
    assert len(distractors) == cfg.distractors
    cams = defaultdict(set)
    for t in train + query + gallery:
        assert cfg.min_len <= len(t.frames) <= cfg.max_len
        assert 0 <= t.camid < cfg.cameras
        cams[t.pid].add(t.camid)
    assert all(len(cams[p]) >= 2 for p in range(cfg.train_ids + cfg.test_ids))
    for q in query:  # every query has a true match in another camera
        assert any(g.pid == q.pid and g.camid != q.camid for g in gallery)
    index = read_index(made)
    assert sum(r["frames"] for r in index["tracklets"]) == sum(
        len(t.frames) for t in train + query + gallery
    )


def test_frames_are_ordered_by_index_and_files_exist(roles):
    for t in roles["train"] + roles["gallery"]:
        numbers = [int(Path(f).stem) for f in t.frames]
        assert numbers == list(range(len(t.frames)))
        assert [Path(m).stem for m in t.masks] == [Path(f).stem for f in t.frames]
        assert all(Path(f).is_file() for f in t.frames + t.masks)


def test_every_part_value_is_shared_and_combinations_are_unique():
    ids = sample_identities(np.random.default_rng(0), list(range(70)))
    shares = sharing(ids)
    assert set(shares) == set(PARTS) and min(shares.values()) >= 0.9
    combos = {tuple(i.parts[p] for p in PARTS) for i in ids}
    assert len(combos) == len(ids)
    few = sample_identities(np.random.default_rng(1), list(range(6)))
    assert min(sharing(few).values()) >= 0.9
    assert len({tuple(i.parts[p] for p in PARTS) for i in few}) == 6


def test_index_reports_sharing_of_its_identities(made):
    index = read_index(made)
    for split in ("train", "test"):
        rows = [r for r in index["identities"] if r["split"] == split]
        for part in PARTS:
            values = [json.dumps(r[part]) for r in rows]
            shared = sum(values.count(v) > 1 for v in values) / len(values)
            assert index["sharing"][split][part] == pytest.approx(shared)
            assert shared >= 0.9


def _frame_data(t: Tracklet):
    keypoints = np.load(t.keypoints)
    assert keypoints.shape == (len(t.frames), 14, 3)
    for i, (f, m) in enumerate(zip(t.frames, t.masks, strict=True)):
        yield np.asarray(Image.open(f)), np.asarray(Image.open(m)), keypoints[i]


def test_masks_and_keypoints_match_the_drawn_person(roles):
    checked = 0
    for t in roles["train"] + roles["query"]:
        for image, labels, kp in _frame_data(t):
            assert image.shape == (128, 64, 3) and labels.shape == (128, 64)
            assert labels.max() <= 4
            vis = kp[:, 2] >= 1
            x, y = kp[vis, 0], kp[vis, 1]
            assert ((x >= 0) & (x < 64) & (y >= 0) & (y < 128)).all()
            xi, yi = np.clip(x.astype(int), 0, 63), np.clip(y.astype(int), 0, 127)
            for a, b in zip(xi, yi, strict=True):  # a visible joint lies on the person
                assert labels[max(0, b - 2) : b + 3, max(0, a - 2) : a + 3].max() > 0
            rows = {k: np.nonzero((labels == k).any(1))[0] for k in (1, 4)}
            if len(rows[1]) and len(rows[4]):
                assert rows[1].mean() < rows[4].mean()  # head above shoes
                checked += 1
            assert kp[0, 1] < kp[10, 1] and kp[0, 1] < kp[13, 1]  # head top above ankles
    assert checked > 20


def _has_black_square(image: np.ndarray, side: int) -> bool:
    black = (image.sum(-1) == 0).astype(np.int64)
    s = np.pad(black.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    windows = s[side:, side:] - s[:-side, side:] - s[side:, :-side] + s[:-side, :-side]
    return bool((windows == side * side).any())


def test_polluted_frames_carry_the_black_box_and_clean_ones_do_not(tmp_path, roles):
    folder = ensure_generated(tiny(polluted=True, train_ids=4, test_ids=4), tmp_path, 1, False)
    polluted = load_tracklets(folder)
    for t in polluted["train"] + polluted["gallery"]:
        for image, _, _ in _frame_data(t):
            assert _has_black_square(image, 25)
    clean = [im for t in roles["train"][:5] for im, _, _ in _frame_data(t)]
    assert not any(_has_black_square(im, 25) for im in clean)


def test_datasets_are_registered_with_protocol_and_aux(made):
    video = build_dataset("synthetic-video", {"root": str(made.parent), **TINY}, None)
    video.prepare(progress=False)
    assert video.path == made and video.available_aux() == {"part_masks", "keypoints"}
    split = video.load_split(0)
    assert split.protocol.name == "synthetic-per-camera" and split.protocol.ap == "mean"
    image = build_dataset("synthetic-image", {"root": str(made.parent), **TINY}, None)
    assert not image.video and DATASETS.get("synthetic-image") is type(image)
    image.prepare(progress=False)
    images = image.load_split(0)
    assert all(len(t.frames) == 1 for t in images.train + images.query + images.gallery)
    assert len(images.query) == len(split.query)
    assert len(images.train) == sum(min(4, len(t.frames)) for t in split.train)
    one = images.gallery[0]
    source = next(t for t in split.gallery if t.frames[0].rsplit("/", 2)[0] in one.frames[0])
    i = source.frames.index(one.frames[0])
    np.testing.assert_array_equal(np.load(one.keypoints)[0], np.load(source.keypoints)[i])


def test_bad_options_fail_with_the_key():
    with pytest.raises(ConfigError, match="min_len"):
        build_dataset("synthetic-video", {"min_len": 9, "max_len": 4}, None)
    with pytest.raises(ConfigError, match="colour"):
        build_dataset("synthetic-video", {"colour": 1}, None)
    with pytest.raises(BenchError, match="own annotations"):
        build_dataset("synthetic-video", {"keypoints": "/somewhere"}, None)


def test_chance_rank1_is_matches_over_valid_gallery_items():
    def t(pid, cam):
        return Tracklet(("f.png",), pid, cam)

    split = Split([], [t(1, 0), t(2, 0)], [t(1, 0), t(1, 1), t(2, 1), t(2, 2), t(3, 0)])
    # query 1: valid = 4 (its cam-0 match removed), 1 true -> 1/4; query 2: 5 valid, 2 true
    assert chance_rank1(split) == pytest.approx(100 * (1 / 4 + 2 / 5) / 2)


def test_cli_make_and_show(made, tmp_path):
    from bench.cli.data import data

    opts = [x for k, v in TINY.items() for x in ("-o", f"{k}={v}")]
    runner = CliRunner()
    make = ["make", "synthetic-video", "--root", str(made.parent), "--difficulty", *opts]
    result = runner.invoke(data, make)
    assert result.exit_code == 0, result.output
    queries = len(load_tracklets(made)["query"])
    assert re.search(rf"query\s+{queries} tracklets", result.output)
    assert "sharing" in result.output and "colour histogram (person pixels): R1" in result.output
    out = tmp_path / "sheet.png"
    args = ["show", "synthetic-video", "--root", str(made.parent), "--out", str(out), *opts]
    result = runner.invoke(data, [*args, "--pairs", "2", "--frames", "3"])
    assert result.exit_code == 0, result.output
    sheet = Image.open(out)
    assert sheet.width >= 3 * 2 * 64 * 2 and sheet.height >= 4 * 128 * 2


def test_loading_before_generation_names_the_folder_and_the_fix(tmp_path):
    video = build_dataset("synthetic-video", {"root": str(tmp_path), **TINY}, None)
    with pytest.raises(BenchError, match="bench data make synthetic-video"):
        video.load_split(0)
