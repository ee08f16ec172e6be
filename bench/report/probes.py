"""The probes of a suite's runs (``probe.*``, docs/probes.md): mean and std over seeds per
dataset and row, as a table and as series for the stress figures."""

from __future__ import annotations

import pandas as pd

from bench.report.render import Table

PREFIX = "metrics.probe."


def probe_columns(df: pd.DataFrame) -> list[str]:
    """The runs' probe metrics (their names without ``metrics.probe.``), sorted."""
    return sorted(c.removeprefix(PREFIX) for c in df.columns if c.startswith(PREFIX))


def probe_stats(df: pd.DataFrame) -> pd.DataFrame:
    """Index (dataset, method, variant); columns (probe, 'mean' | 'std' | 'n') over seeds."""
    cols = [PREFIX + name for name in probe_columns(df)]
    grouped = df.groupby(["tags.dataset", "tags.method", "tags.variant"])[cols]
    stats = pd.concat({"mean": grouped.mean(), "std": grouped.std(ddof=1), "n": grouped.count()})
    stats = stats.unstack(0)
    stats.columns = pd.MultiIndex.from_tuples(
        [(c.removeprefix(PREFIX), stat) for c, stat in stats.columns]
    )
    return stats


def probe_text(stats: pd.DataFrame, key: tuple[str, str, str]) -> str | None:
    """'name mean ± std, ...' of one (dataset, method, variant), or None without probes."""
    if key not in stats.index:
        return None
    row = stats.loc[key]
    parts = []
    for name in dict.fromkeys(c for c, _ in stats.columns):
        if row[(name, "n")] > 0:
            std = f" ± {row[(name, 'std')]:.3f}" if row[(name, "n")] > 1 else ""
            parts.append(f"{name} {row[(name, 'mean')]:.3f}{std}")
    return ", ".join(parts) or None


def probe_table(df: pd.DataFrame) -> Table | None:
    """Per dataset and row: its probes, mean ± std over seeds."""
    if not probe_columns(df):
        return None
    stats = probe_stats(df)
    body = [[*key, text] for key in stats.index if (text := probe_text(stats, key))]
    if not body:
        return None
    table = Table(["dataset", "method", "variant", "probes (mean ± std over seeds)"], body)
    table.caption = (
        "What each mechanism does, measured against the generator's exact truth on a sample of "
        "test tracklets (synthetic data only; docs/probes.md says what each probe measures)."
    )
    return table
