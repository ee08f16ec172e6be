"""Caption lines a report derives from its runs' tags."""

from __future__ import annotations

import pandas as pd


def aux_caption(df: pd.DataFrame) -> str:
    """Which auxiliary inputs (estimated or exact part masks / keypoints) the runs of each
    dataset received, from their ``aux`` tags; '' when no run carries one."""
    if "tags.aux" not in df:
        return ""
    runs = df.dropna(subset=["tags.aux"])
    if runs.empty:
        return ""
    kinds = runs.groupby("tags.dataset")["tags.aux"].agg(lambda s: " and ".join(sorted(set(s))))
    shown = ", ".join(f"{dataset}: {kind}" for dataset, kind in kinds.items())
    return f"Auxiliary inputs (part masks, keypoints): {shown}."
