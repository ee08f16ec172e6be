"""Writing the dataset to disk, in parallel, into a cache folder keyed by the options.

Layout under the dataset root (see docs/synthetic.md)::

    <root>/<key>/index.json                      options, statistics, identities, tracklets
    <root>/<key>/{train,test}/p<pid>_c<cam>_t<k>/frames/000000.png   RGB frames
                                                /masks/000000.png    part labels 0..4
                                                /keypoints.npy       (n_frames, 14, 3)
                                                /nuisances.json      what went wrong, per frame
                                                /estimated/masks/, estimated/keypoints.npy

``<key>`` = ``v<generator version>-<hash of the options>``. Generation writes into
``<root>/.<key>.partial`` under a file lock and renames it to ``<key>`` only once
``index.json`` is written, so an interrupted run is never mistaken for a finished one (its
partial folder is removed by the next run).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from bench.data.nuisances import Nuisances
from bench.data.synthetic.attributes import PALETTES, PARTS, sharing
from bench.data.synthetic.cameras import camera
from bench.data.synthetic.config import GENERATOR_VERSION, GeneratorConfig
from bench.data.synthetic.estimate import estimate_keypoints, estimate_mask
from bench.data.synthetic.plan import Plan, make_plan
from bench.data.synthetic.tracklet import TrackletScene, TrackletSpec
from bench.errors import DataError
from bench.files.lock import exclusive

INDEX = "index.json"
NUISANCES = "nuisances.json"


def frame_name(i: int) -> str:
    return f"{i:06d}.png"


ESTIMATED = "estimated"  # sub-folder of a tracklet holding the estimated annotations
ESTIMATION_STREAM = 13  # purpose id of the estimation model's random stream


def write_tracklet(cfg: GeneratorConfig, out: Path, spec: TrackletSpec) -> int:
    """Render and write one tracklet under ``out``, its exact annotations, its nuisance
    records and the estimated annotations (their own random stream, so the exact files do not
    depend on the estimation model); returns its number of frames."""
    folder = out / spec.path
    for sub in ("frames", "masks", f"{ESTIMATED}/masks"):
        (folder / sub).mkdir(parents=True)
    rng = np.random.default_rng([cfg.seed, ESTIMATION_STREAM, spec.index])
    exact, estimated, occluded = [], [], []
    scene = TrackletScene(cfg, spec)
    for i, frame in enumerate(scene.frames()):
        name = frame_name(i)
        Image.fromarray(frame.image).save(folder / "frames" / name, compress_level=1)
        Image.fromarray(frame.labels).save(folder / "masks" / name, compress_level=1)
        mask = estimate_mask(frame.labels, cfg, rng)
        Image.fromarray(mask).save(folder / ESTIMATED / "masks" / name, compress_level=1)
        exact.append(frame.keypoints)
        estimated.append(estimate_keypoints(frame.keypoints, cfg, rng))
        occluded.append(tuple(int(j) for j in np.flatnonzero(frame.occluded)))
    np.save(folder / "keypoints.npy", np.stack(exact).astype(np.float32))
    np.save(folder / ESTIMATED / "keypoints.npy", np.stack(estimated).astype(np.float32))
    records = Nuisances(
        scene.occluder.kind if scene.occluder is not None else None,
        tuple(bad.kind if bad is not None else "" for bad in scene.bad),
        tuple(occluded),
    )
    (folder / NUISANCES).write_text(records.to_json())
    return spec.n_frames


def _render_all(cfg: GeneratorConfig, out: Path, plan: Plan, workers: int, progress: bool):
    """Write every tracklet of the plan, in ``workers`` processes, with a frame progress bar."""
    total = sum(s.n_frames for s in plan.tracklets)
    bar = tqdm(total=total, unit="frame", desc="synthetic-video", disable=not progress)
    with bar:
        if workers <= 1 or multiprocessing.current_process().daemon:  # daemons cannot fork
            for spec in plan.tracklets:
                bar.update(write_tracklet(cfg, out, spec))
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            jobs = [pool.submit(write_tracklet, cfg, out, s) for s in plan.tracklets]
            for job in as_completed(jobs):
                bar.update(job.result())


def _index(cfg: GeneratorConfig, plan: Plan) -> dict:
    people = {"train": plan.train, "test": plan.test}
    return {
        "generator_version": GENERATOR_VERSION,
        "options": cfg.model_dump(),
        "sharing": {split: sharing(ids) for split, ids in people.items()},
        "palette_sizes": {part: len(PALETTES[part]) for part in PARTS},
        "cameras": [asdict(camera(cfg.seed, c)) for c in range(cfg.cameras)],
        "identities": [
            {"pid": i.pid, "split": split, **{p: list(i.value(p)) for p in PARTS}}
            for split, ids in (*people.items(), ("distractor", plan.distractors))
            for i in ids
        ],
        "tracklets": [
            {
                "path": s.path,
                "pid": s.identity.pid,
                "camid": s.camid,
                "role": s.role,
                "frames": s.n_frames,
            }
            for s in plan.tracklets
        ],
    }


def ensure_generated(
    cfg: GeneratorConfig, root: Path, workers: int = 2, progress: bool = True
) -> Path:
    """The finished cache folder for ``cfg`` under ``root``, generating it if needed."""
    final = Path(root) / cfg.cache_key()
    if (final / INDEX).is_file():
        return final
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the dataset root {final.parent}: {exc}") from exc
    with exclusive(final.parent / f".{final.name}.lock"):
        if (final / INDEX).is_file():  # another process finished it while we waited
            return final
        partial = final.parent / f".{final.name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        shutil.rmtree(final, ignore_errors=True)
        partial.mkdir()
        plan = make_plan(cfg)
        _render_all(cfg, partial, plan, workers, progress)
        (partial / INDEX).write_text(json.dumps(_index(cfg, plan), indent=1))
        os.replace(partial, final)
    return final


def read_index(folder: Path) -> dict:
    """The parsed ``index.json`` of a finished cache folder."""
    path = Path(folder) / INDEX
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path}: no finished synthetic dataset here ({exc}); call prepare() or run "
            f"`bench data make synthetic-video --root {Path(folder).parent}`"
        ) from exc
