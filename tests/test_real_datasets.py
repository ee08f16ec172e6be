"""Real-dataset loaders against tiny trees in the official layouts (tests/fixtures)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from fixtures import real_layouts as fx

from bench.data.base import Tracklet
from bench.errors import DataError
from bench.registry import DATASETS


def load(name: str, root: Path, **options):
    cls = DATASETS.get(name)
    dataset = cls(cls.Options(root=str(root), **options))
    dataset.prepare()
    return dataset


def relative(root: Path, tracklets: list[Tracklet]) -> list[tuple]:
    """(root-relative frames, pid, camid) of loaded tracklets, checking every frame is real."""
    out = []
    for t in tracklets:
        assert all(os.path.isabs(f) and os.path.isfile(f) for f in t.frames)
        out.append((tuple(os.path.relpath(f, root) for f in t.frames), t.pid, t.camid))
    return out


def expected(tracks: list[fx.Track]) -> list[tuple]:
    return [(t.frames, t.pid, t.camid) for t in tracks]


def same_set(root: Path, tracklets: list[Tracklet], tracks: list[fx.Track]) -> bool:
    return sorted(relative(root, tracklets)) == sorted(expected(tracks))


def error_of(name: str, root: Path, **options) -> str:
    with pytest.raises(DataError) as info:
        load(name, root, **options)
    return str(info.value)


@pytest.fixture
def reversed_listing(monkeypatch):
    """Directory listings in reverse name order: loaders must not depend on listing order."""
    real = os.scandir

    class Listing:
        def __init__(self, path):
            with real(path) as entries:
                self.entries = sorted(entries, key=lambda e: e.name, reverse=True)

        def __enter__(self):
            return iter(self.entries)

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(os, "scandir", Listing)


# --- MARS ----------------------------------------------------------------------------------


def test_mars_official_protocol(tmp_path):
    tracks = fx.build_mars(tmp_path)
    split = load("mars", tmp_path).load_split(0)
    assert relative(tmp_path, split.train) == expected(tracks["train"])
    assert relative(tmp_path, split.query) == expected(tracks["query"])
    assert relative(tmp_path, split.gallery) == expected(tracks["test"])  # queries included
    assert {t.pid for t in split.train} == {1, 2}
    assert {t.camid for t in split.train} == {0, 1, 2}
    assert sum(len(t.frames) for t in split.train) == 12
    assert {t.pid for t in split.gallery} == {3, 4, 0, -1}
    assert (split.protocol.name, split.protocol.ap) == ("mars-official", "trapezoid")
    assert -1 in split.protocol.junk_pids


def test_mars_torchreid_protocol(tmp_path):
    tracks = fx.build_mars(tmp_path)
    split = load("mars", tmp_path, protocol="torchreid").load_split(0)
    rest = [t for i, t in enumerate(tracks["test"], 1) if i not in fx.MARS_QUERY_ROWS]
    assert relative(tmp_path, split.query) == expected(tracks["query"])
    assert relative(tmp_path, split.gallery) == expected([t for t in rest if t.pid != -1])
    assert len(split.gallery) == len(tracks["test"]) - 2 - 1
    assert (split.protocol.name, split.protocol.ap) == ("mars-torchreid", "mean")


def test_mars_frames_follow_the_frame_index_not_the_name_list(tmp_path):
    fx.build_mars(tmp_path)
    track = load("mars", tmp_path).load_split(0).train[2]
    names = [os.path.basename(f) for f in track.frames]
    assert names == ["0002C1T0001F998.jpg", "0002C1T0001F999.jpg", "0002C1T0001F1000.jpg"]
    listed = (tmp_path / "info/train_name.txt").read_text().split()
    assert [n for n in listed if n.startswith("0002C1")] != names
    assert sorted(names) != names


def test_mars_missing_file_is_named_alone(tmp_path):
    fx.build_mars(tmp_path)
    (tmp_path / "info/query_IDX.mat").unlink()
    message = error_of("mars", tmp_path)
    assert f"{tmp_path / 'info/query_IDX.mat'}: missing; expected variable query_IDX" in message
    assert message.count("\n  - ") == 1


@pytest.mark.parametrize(
    "content, complaint",
    [
        (
            {"tracks": np.ones((3, 4))},
            "has no variable 'track_train_info' (variables found: tracks)",
        ),
        ({"track_train_info": np.ones((3, 3))}, "has shape (3, 3); expected (n_tracks, 4)"),
        ({"track_train_info": np.full((1, 4), 0.5)}, "'track_train_info' must hold integers"),
        ({"track_train_info": np.array([[1, 99, 1, 1]])}, "do not span lines 1..12"),
        ({"track_train_info": np.array([[1, 3, 5, 1]])}, "disagree with the frame names"),
    ],
)
def test_mars_malformed_track_table(tmp_path, content, complaint):
    fx.build_mars(tmp_path)
    scipy.io.savemat(tmp_path / "info/tracks_train_info.mat", content)
    message = error_of("mars", tmp_path)
    assert f"{tmp_path / 'info/tracks_train_info.mat'}: " in message
    assert complaint in message


def test_mars_not_a_mat_file(tmp_path):
    fx.build_mars(tmp_path)
    (tmp_path / "info/tracks_test_info.mat").write_bytes(b"this is not MATLAB")
    message = error_of("mars", tmp_path)
    assert f"{tmp_path / 'info/tracks_test_info.mat'}: not a readable MATLAB .mat file" in message


@pytest.mark.parametrize("rows", [[[1, 99]], [[1, 1]], [[0]]])
def test_mars_bad_query_rows(tmp_path, rows):
    fx.build_mars(tmp_path)
    scipy.io.savemat(tmp_path / "info/query_IDX.mat", {"query_IDX": np.array(rows)})
    assert "must hold distinct rows 1..7 of track_test_info" in error_of("mars", tmp_path)


def test_mars_missing_frame_is_named(tmp_path):
    tracks = fx.build_mars(tmp_path)
    gone = tmp_path / tracks["test"][4].frames[1]
    gone.unlink()
    message = error_of("mars", tmp_path)
    assert f"frames listed in test_name.txt are missing: {gone}" in message


# --- iLIDS-VID -----------------------------------------------------------------------------


def test_ilids_official_splits(tmp_path, reversed_listing):
    pairs = fx.build_ilids(tmp_path)
    dataset = load("ilids-vid", tmp_path)
    assert dataset.num_splits() == 10
    persons = sorted(fx.ILIDS_PERSONS)
    for i, row in enumerate(fx.ILIDS_SPLITS):
        split = dataset.load_split(i)
        test = sorted(persons[j - 1] for j in row[:3])  # first half of ls_set = test
        train = sorted(set(persons) - set(test))
        assert relative(tmp_path, split.query) == expected([pairs[p][0] for p in test])
        assert relative(tmp_path, split.gallery) == expected([pairs[p][1] for p in test])
        assert same_set(tmp_path, split.train, [t for p in train for t in pairs[p]])
        assert split.protocol.report_map is False and split.index == i
    frames = [os.path.basename(f) for f in dataset.load_split(0).query[0].frames]
    assert frames == sorted(frames) and len(frames) > 1


def test_ilids_bad_split_table(tmp_path):
    fx.build_ilids(tmp_path)
    path = tmp_path / "train-test people splits/train_test_splits_ilidsvid.mat"
    scipy.io.savemat(path, {"ls_set": np.ones((10, 6))})
    assert "rows [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] of 'ls_set' are not permutations" in error_of(
        "ilids-vid", tmp_path
    )
    scipy.io.savemat(path, {"ls_set": fx.ILIDS_SPLITS[:, :5]})
    assert "has shape (10, 5); expected (n_splits, 6) for the 6 person folders" in error_of(
        "ilids-vid", tmp_path
    )


def test_split_index_out_of_range(tmp_path):
    fx.build_ilids(tmp_path)
    with pytest.raises(DataError, match="has splits 0..9; split 10 does not exist"):
        load("ilids-vid", tmp_path).load_split(10)


# --- PRID-2011 -----------------------------------------------------------------------------

PRID_ELIGIBLE = [1, 2, 4, 5, 6]  # persons <= 200 with >= 3 frames in both cameras


def check_prid_split(root, split, pairs, train, test):
    assert relative(root, split.query) == expected([pairs[p][0] for p in test])
    assert relative(root, split.gallery) == expected([pairs[p][1] for p in test])
    assert same_set(root, split.train, [t for p in train for t in pairs[p]])


def test_prid_generated_splits_are_seeded(tmp_path, reversed_listing):
    pairs = fx.build_prid(tmp_path)
    dataset = load("prid2011", tmp_path, min_frames=3)
    rng = np.random.RandomState(0)
    for i in range(10):
        perm = [PRID_ELIGIBLE[j] for j in rng.permutation(5)]
        split = dataset.load_split(i)
        check_prid_split(tmp_path, split, pairs, sorted(perm[2:]), sorted(perm[:2]))
        assert split.protocol.name == "prid2011/seed-0" and not split.protocol.report_map
    other = load("prid2011", tmp_path, min_frames=3, split_seed=1)
    assert [other.load_split(i).query for i in range(10)] != [
        dataset.load_split(i).query for i in range(10)
    ]


def test_prid_official_split_files(tmp_path):
    pairs = fx.build_prid(tmp_path)
    fx.write_prid_json(tmp_path / "splits_prid2011.json", [([1, 2, 5], [4, 6])])
    dataset = load("prid2011", tmp_path, min_frames=3)
    assert dataset.num_splits() == 1
    check_prid_split(tmp_path, dataset.load_split(0), pairs, [1, 2, 5], [4, 6])
    assert dataset.load_split(0).protocol.name == "prid2011/splits_prid2011.json"
    mat = tmp_path / "dvr" / "train_test_splits_prid.mat"
    mat.parent.mkdir()
    scipy.io.savemat(mat, {"ls_set": np.array([[5, 1, 2, 3, 4], [1, 2, 3, 4, 5]])})
    dataset = load("prid2011", tmp_path, min_frames=3, split_file="dvr/train_test_splits_prid.mat")
    check_prid_split(tmp_path, dataset.load_split(0), pairs, [2, 4, 5], [1, 6])
    assert dataset.load_split(1).protocol.name == "prid2011/train_test_splits_prid.mat"


def test_prid_split_file_must_match_the_persons(tmp_path):
    fx.build_prid(tmp_path)
    scipy.io.savemat(tmp_path / "train_test_splits_prid.mat", {"ls_set": np.ones((2, 178))})
    message = error_of("prid2011", tmp_path, min_frames=3)
    assert "expected (n_splits, 5) (5 persons 1..200 have >= 3 frames" in message
    fx.write_prid_json(tmp_path / "bad.json", [([1, 201], [4])])
    message = error_of("prid2011", tmp_path, min_frames=3, split_file="bad.json")
    assert "split 0 'train' names persons not used in both cameras: [201]" in message


def test_prid_default_needs_27_frames(tmp_path):
    fx.build_prid(tmp_path)
    assert "fewer than 2 persons 1..200 have >= 27 frames in both cameras" in error_of(
        "prid2011", tmp_path
    )


# --- DukeMTMC-VideoReID --------------------------------------------------------------------


def test_duke_video(tmp_path, reversed_listing):
    tracks = fx.build_duke_video(tmp_path)
    split = load("dukemtmc-videoreid", tmp_path).load_split(0)
    for part, loaded in (
        ("train", split.train),
        ("query", split.query),
        ("gallery", split.gallery),
    ):
        assert same_set(tmp_path, loaded, tracks[part])
    assert {t.camid for t in split.gallery} == {0, 1, 5, 6}
    assert sum(len(t.frames) for t in split.train) == 10
    late = next(t for t in split.train if t.camid == 1)  # a tracklet starting at F0002
    assert [f[-16:-11] for f in late.frames] == ["F0002", "F0003", "F0004"]


def test_duke_video_mixed_identity_is_named(tmp_path):
    fx.build_duke_video(tmp_path)
    folder = tmp_path / "query/0003/0001"
    fx.write_image(folder / "0004_C1_F0009_X30009.jpg")
    assert f"{folder}: all frames must show identity 0003 in one camera" in error_of(
        "dukemtmc-videoreid", tmp_path
    )


# --- image datasets ------------------------------------------------------------------------


def test_market1501(tmp_path):
    tracks = fx.build_market(tmp_path)
    dataset = load("market1501", tmp_path)
    split = dataset.load_split(0)
    assert not dataset.video
    assert same_set(tmp_path, split.train, tracks["bounding_box_train"])
    assert same_set(tmp_path, split.query, tracks["query"])
    assert same_set(tmp_path, split.gallery, tracks["bounding_box_test"])  # Thumbs.db ignored
    assert {t.pid for t in split.gallery} == {3, 5, 0, -1}
    assert {t.camid for t in split.gallery} == {1, 4, 0, 5}
    assert split.protocol.junk_pids == (-1,)


def test_market1501_bad_name(tmp_path):
    fx.build_market(tmp_path)
    fx.write_image(tmp_path / "query/img_0001.jpg")
    message = error_of("market1501", tmp_path)
    assert f"{tmp_path / 'query'}: names not like 0002_c1s1_000451_03.jpg: img_0001.jpg" in message


def test_dukemtmc_reid(tmp_path):
    tracks = fx.build_duke_image(tmp_path)
    split = load("dukemtmc-reid", tmp_path).load_split(0)
    assert same_set(tmp_path, split.train, tracks["bounding_box_train"])
    assert same_set(tmp_path, split.query, tracks["query"])
    assert same_set(tmp_path, split.gallery, tracks["bounding_box_test"])
    assert {t.camid for t in split.gallery} == {7, 1, 2}


@pytest.mark.parametrize("version", ["V1", "V2"])
def test_msmt17(tmp_path, version):
    lists = fx.build_msmt17(tmp_path, version)
    split = load("msmt17", tmp_path).load_split(0)
    assert same_set(tmp_path, split.train, lists["list_train.txt"] + lists["list_val.txt"])
    assert same_set(tmp_path, split.query, lists["list_query.txt"])
    assert same_set(tmp_path, split.gallery, lists["list_gallery.txt"])
    assert {t.camid for t in split.train} == {0, 2, 14, 6}
    only_train = load("msmt17", tmp_path, val_in_train=False).load_split(0)
    assert same_set(tmp_path, only_train.train, lists["list_train.txt"])


def test_msmt17_missing_image_and_bad_line(tmp_path):
    lists = fx.build_msmt17(tmp_path)
    gone = tmp_path / lists["list_gallery.txt"][1].frames[0]
    gone.unlink()
    assert f"images of list_gallery.txt missing: {gone}" in error_of("msmt17", tmp_path)
    with open(tmp_path / "list_query.txt", "a") as handle:
        handle.write("0001/broken.jpg\n")
    assert "list_query.txt: lines 3 are not like" in error_of("msmt17", tmp_path)


# --- every dataset: a missing root lists the whole layout ----------------------------------

LAYOUTS = {
    "mars": [
        "info/train_name.txt",
        "info/test_name.txt",
        "info/tracks_train_info.mat",
        "info/tracks_test_info.mat",
        "info/query_IDX.mat",
        "bbox_train/",
        "bbox_test/",
    ],
    "ilids-vid": [
        "i-LIDS-VID/sequences/cam1/",
        "i-LIDS-VID/sequences/cam2/",
        "train-test people splits/train_test_splits_ilidsvid.mat",
    ],
    "prid2011": ["multi_shot/cam_a/", "multi_shot/cam_b/"],
    "dukemtmc-videoreid": ["train/", "query/", "gallery/"],
    "market1501": ["bounding_box_train/", "query/", "bounding_box_test/"],
    "dukemtmc-reid": ["bounding_box_train/", "query/", "bounding_box_test/"],
    "msmt17": [
        "list_train.txt",
        "list_val.txt",
        "list_query.txt",
        "list_gallery.txt",
        "train/",
        "test/",
    ],
}


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_missing_root_lists_every_expected_path(tmp_path, name):
    root = tmp_path / "nowhere"
    message = error_of(name, root)
    assert f"dataset '{name}': the release at {root} (the folder does not exist)" in message
    for rel in LAYOUTS[name]:
        assert f"  - {root / rel}{'/' if rel.endswith('/') else ''}: missing; expected " in message
    assert message.count("\n  - ") == len(LAYOUTS[name])
    assert set(DATASETS.names()) >= set(LAYOUTS)


# --- auxiliary annotations -----------------------------------------------------------------


def test_aux_annotations_attach_and_are_checked(tmp_path):
    root = tmp_path / "MARS"
    tracks = fx.build_mars(root)
    fx.write_aux(tracks["train"] + tracks["test"], tmp_path / "masks", root / "kp")
    dataset = load("mars", root, masks=str(tmp_path / "masks"), keypoints="kp")
    assert dataset.available_aux() == {"part_masks", "keypoints"}
    for t in dataset.load_split(0).gallery:
        assert [os.path.relpath(m, tmp_path / "masks") for m in t.masks] == [
            os.path.splitext(os.path.relpath(f, root))[0] + ".png" for f in t.frames
        ]
        assert np.load(t.keypoints).shape == (len(t.frames), 14, 3)
    plain = load("mars", root).load_split(0).query[0]
    assert load("mars", root).available_aux() == frozenset()
    assert plain.masks is None and plain.keypoints is None
    gone = tmp_path / "masks" / (os.path.splitext(tracks["test"][3].frames[0])[0] + ".png")
    gone.unlink()
    np.save(root / f"kp/{tracks['train'][0].key}.npy", np.zeros((2, 14, 3)))
    message = error_of("mars", root, masks=str(tmp_path / "masks"), keypoints="kp")
    assert f"missing mask PNGs: {gone}" in message
    assert "has shape (2, 14, 3); expected (3, 14, 3) for 3 frames" in message


def test_corrupt_frame_is_named_by_the_reader(tmp_path):
    from bench.data.frames import FrameReader

    tracks = fx.build_duke_video(tmp_path)
    bad = tmp_path / tracks["query"][0].frames[0]
    bad.write_bytes(b"\xff\xd8 truncated")
    query = load("dukemtmc-videoreid", tmp_path).load_split(0).query
    with pytest.raises(DataError, match=str(bad)):
        FrameReader(8, 4).frame(next(t for t in query if t.pid == 3).frames[0])


# --- suites of the real benchmarks ---------------------------------------------------------

SUITES = {  # suite: (dataset folder under $BENCH_DATA_ROOT, fixture builder, methods)
    "mars": ("MARS", fx.build_mars, ["baseline", "iaunet", "stal", "rgsa-rgtr"]),
    "ilidsvid": ("iLIDS-VID", fx.build_ilids, ["baseline", "stal", "rgsa-rgtr"]),
    "prid": ("prid_2011", fx.build_prid, ["baseline", "stal", "rgsa-rgtr"]),
    "duke-video": ("DukeMTMC-VideoReID", fx.build_duke_video, ["baseline", "iaunet", "rgsa-rgtr"]),
    "market": ("Market-1501-v15.09.15", fx.build_market, ["baseline", "iaunet"]),
}
SUITE_DIR = Path(__file__).parent.parent / "suites"


@pytest.mark.parametrize("name", sorted(SUITES))
def test_suite_stops_at_once_without_data(tmp_path, monkeypatch, name):
    from bench.data.build import build_dataset
    from bench.suite.load import load_suite
    from bench.suite.schema import dataset_spec

    monkeypatch.setenv("BENCH_DATA_ROOT", str(tmp_path))
    with pytest.raises(DataError) as info:
        for spec in load_suite(SUITE_DIR / f"{name}.yaml").spec.datasets:
            build_dataset(*dataset_spec(spec), None).prepare()
    assert f"the release at {tmp_path / SUITES[name][0]} (the folder does not exist)" in str(
        info.value
    )


@pytest.mark.parametrize("name", sorted(SUITES))
def test_suite_has_the_papers_settings(tmp_path, monkeypatch, name):
    from bench.suite.load import load_suite

    folder, build, methods = SUITES[name]
    build(tmp_path / folder)
    monkeypatch.setenv("BENCH_DATA_ROOT", str(tmp_path))
    fixture_frames = ["datasets=[{name: prid2011, min_frames: 3}]"] if name == "prid" else []
    # the fixture trees have fewer identities than the papers' P (a check test_reliability tests)
    monkeypatch.setattr("bench.suite.checks.check_datasets", lambda *args: None)
    cells = load_suite(SUITE_DIR / f"{name}.yaml", fixture_frames).cells
    splits = 10 if name in ("ilidsvid", "prid") else 1
    assert len(cells) == splits * len(methods)
    assert sorted({c.method for c in cells}) == sorted(methods)
    for cell in cells:
        model, data = cell.sections.model, cell.sections.data
        assert (model.backbone, model.pretrained, model.last_stride) == ("resnet50", True, 1)
        assert (data.height, data.width) == (256, 128)
        assert data.seq_len == (
            1 if name == "market" else 8 if cell.method in ("stal", "rgsa-rgtr") else 4
        )
        if cell.method == "rgsa-rgtr":
            assert cell.sections.train.epochs == 375 and cell.sections.eval.clip_stride == 4
