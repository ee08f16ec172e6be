"""Reading ``.npy`` annotation files safely: never unpickled, every problem names the file."""

from __future__ import annotations

import numpy as np

from bench.errors import DataError


def load_array(path: str, mmap: bool = False) -> np.ndarray:
    """A plain numeric array from ``path`` (``allow_pickle=False``), or a DataError naming it."""
    try:
        arr = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such .npy file") from exc
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(
            f"{path}: not a plain numeric .npy array (bench never unpickles files; write it "
            f"with numpy.save from a float array): {str(exc).splitlines()[0]}"
        ) from exc
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: expected a numeric array (got dtype {arr.dtype})")
    return arr


def check_keypoints(path: str, kp: np.ndarray, frames: int, frame_names=None) -> None:
    """A (frames, 14, 3) array of finite values, or a DataError naming the file and frame."""
    if kp.shape != (frames, 14, 3):
        raise DataError(
            f"{path}: keypoints have shape {kp.shape}; expected ({frames}, 14, 3) for its "
            f"{frames} frames"
        )
    bad = np.flatnonzero(~np.isfinite(kp).all(axis=(1, 2)))
    if bad.size:
        i = int(bad[0])
        frame = f" ({frame_names[i]})" if frame_names is not None else ""
        raise DataError(
            f"{path}: frame {i}{frame} has non-finite keypoints (NaN or inf; {bad.size} frames "
            "in all); expected finite x, y, visibility (mark a missing joint with visibility 0)"
        )
