"""What ``bench data`` shows of a dataset: what a split holds, how identities share their
parts' values (synthetic data), and a contact sheet of query and gallery tracklets."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from bench.data.base import ReIDDataset, Split
from bench.data.build import build_dataset


def dataset_from_flags(name: str, root: str | None, options: dict, command: str) -> ReIDDataset:
    """A dataset from ``bench data`` flags (``--root``, ``-o KEY=VALUE``)."""
    values = {**options, **({"root": root} if root is not None else {})}
    return build_dataset(name, values, None, f"bench data {command}")


def describe(split: Split) -> str:
    """One line per role: tracklets, identities, cameras and frames."""
    lines = []
    for role in ("train", "query", "gallery"):
        tracks = getattr(split, role)
        cams = Counter(t.camid for t in tracks)
        lines.append(
            f"  {role:8s} {len(tracks):5d} tracklets  {len({t.pid for t in tracks}):4d} ids  "
            f"{sum(len(t.frames) for t in tracks):6d} frames  cameras {dict(sorted(cams.items()))}"
        )
    return "\n".join(lines)


def sharing(dataset: ReIDDataset) -> list[str]:
    """For a synthetic dataset, per split: the share of identities sharing each part's value."""
    path = getattr(dataset, "path", None)
    if path is None or not (Path(path) / "index.json").is_file():
        return []
    from bench.data.synthetic import read_index

    lines = []
    for split, shares in read_index(path)["sharing"].items():
        parts = ", ".join(f"{p} {100 * v:.0f}%" for p, v in shares.items())
        lines.append(f"  {split} identities sharing each part's value: {parts}")
    return lines
