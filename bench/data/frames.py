"""Reading frames, part masks and keypoints from disk at the network's input size."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from bench.data.base import Tracklet
from bench.data.npy import check_keypoints, load_array
from bench.errors import DataError


def _open(path: str, mode: str) -> Image.Image:
    try:
        with Image.open(path) as img:
            return img.convert(mode)
    except FileNotFoundError as exc:
        raise DataError(f"missing frame file: {path}") from exc
    except OSError as exc:
        raise DataError(f"corrupt or unreadable image file: {path} ({exc})") from exc


class FrameReader:
    """Decodes frames to uint8 (3, H, W) tensors at (height, width), with an optional cache.

    The cache holds decoded, resized frames (about 3*H*W bytes each), so a small dataset is
    decoded once per process.
    """

    def __init__(self, height: int, width: int, cache: bool = True):
        self.size = (width, height)
        self.cache: dict[str, torch.Tensor] | None = {} if cache else None
        self.native: dict[str, tuple[int, int]] = {}

    def _load(self, path: str, mode: str, resample: Image.Resampling) -> torch.Tensor:
        if self.cache is not None and path in self.cache:
            return self.cache[path]
        img = _open(path, mode)
        self.native[path] = img.size
        arr = np.asarray(img.resize(self.size, resample))
        out = torch.from_numpy(arr.copy())
        out = out.permute(2, 0, 1) if out.dim() == 3 else out
        if self.cache is not None:
            self.cache[path] = out
        return out

    def frame(self, path: str) -> torch.Tensor:
        """uint8 (3, H, W)."""
        return self._load(path, "RGB", Image.Resampling.BILINEAR)

    def mask(self, path: str) -> torch.Tensor:
        """int64 (H, W) part labels 0..4 (nearest-neighbour resize keeps labels exact)."""
        mask = self._load(path, "L", Image.Resampling.NEAREST).long()
        if int(mask.max()) > 4:
            raise DataError(f"part mask {path} has label {int(mask.max())}; expected 0..4")
        return mask

    def keypoints(self, track: Tracklet, picks: list[int]) -> torch.Tensor:
        """float (T, 14, 3): joints of the picked frames, x and y scaled to the input size."""
        kp = load_array(track.keypoints)
        check_keypoints(track.keypoints, kp, len(track.frames), track.frames)
        out = torch.from_numpy(kp[picks].astype(np.float32))
        for t, i in enumerate(picks):
            nw, nh = self.native.get(track.frames[i]) or _open(track.frames[i], "RGB").size
            out[t, :, 0] *= self.size[0] / nw
            out[t, :, 1] *= self.size[1] / nh
        return out

    def clip(self, track: Tracklet, picks: list[int], aux: frozenset[str]) -> dict:
        """The frames ``picks`` of a tracklet: ``clips`` uint8 (T, 3, H, W) plus requested aux."""
        out = {"clips": torch.stack([self.frame(track.frames[i]) for i in picks])}
        if "part_masks" in aux:
            out["part_masks"] = torch.stack([self.mask(track.masks[i]) for i in picks])
        if "keypoints" in aux:
            out["keypoints"] = self.keypoints(track, picks)
        return out
