"""The stress report: each method's gain over its own control, and its probes, against the level
of one nuisance at a time (suites/stress.yaml, docs/probes.md).

A sweep is found in the runs themselves, from the generator options every run logs
(``params.dataset.*``): among the synthetic datasets that share every other option, those that
differ from the generator's defaults in one nuisance option (``NUISANCE_OPTIONS``) are that
nuisance's levels, and one at the defaults is every nuisance's level of today. A nuisance with
two levels or more is a sweep; a suite without one (the main job) has no stress section.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.data.synthetic.config import NUISANCE_OPTIONS, GeneratorConfig
from bench.report.probes import probe_columns, probe_stats, probe_text
from bench.report.render import Table
from bench.report.training import CONTROL, interval

#: a point of a series: (level, value, interval low, interval high)
Point = tuple[float, float, float, float]


@dataclass(frozen=True)
class Sweep:
    """One nuisance's levels, ascending, each with the dataset (label) that has it."""

    nuisance: str
    levels: tuple[tuple[float, str], ...]
    today: float  # the generator's default level


def dataset_options(df: pd.DataFrame) -> pd.DataFrame:
    """One row per tested dataset (label): the dataset options its runs logged; runs of
    cross-dataset cells left out."""
    runs = df[df["tags.train_dataset"].isna()] if "tags.train_dataset" in df else df
    cols = [c for c in runs.columns if c.startswith("params.dataset.")]
    options = runs.groupby("tags.dataset")[cols].first()
    options.columns = [c.removeprefix("params.dataset.") for c in cols]
    return options


def find_sweeps(df: pd.DataFrame) -> list[Sweep]:
    """The nuisance sweeps among the runs' datasets (module docstring)."""
    options = dataset_options(df)
    nuisances = list(NUISANCE_OPTIONS)
    if not set(nuisances) <= set(options.columns):
        return []
    options = options[options[nuisances].notna().all(axis=1)]
    others = [c for c in options.columns if c not in (*nuisances, "root")]
    defaults = GeneratorConfig().model_dump()
    today = pd.Series({k: float(defaults[k]) for k in nuisances})
    sweeps = []
    for _, group in options.groupby(others, dropna=False, sort=False):
        levels = group[nuisances].astype(float)
        moved = levels.ne(today)
        at_today = list(group.index[~moved.any(axis=1)])[:1]
        for nuisance in nuisances:
            alone = list(group.index[moved[nuisance] & (moved.sum(axis=1) == 1)])
            points = sorted((float(levels.at[d, nuisance]), d) for d in [*at_today, *alone])
            if alone and len(points) >= 2:
                sweeps.append(Sweep(nuisance, tuple(points), float(defaults[nuisance])))
    return sweeps


def level_text(sweep: Sweep, level: float) -> str:
    return f"{level:g} (today)" if level == sweep.today else f"{level:g}"


def stress_table(sweeps: list[Sweep], gains: dict, df: pd.DataFrame, metrics: list[str]):
    """Per nuisance, level and method: its default row minus its own control (intervals as in
    the results table), and the probes of both rows; None without a sweep."""
    if not sweeps:
        return None
    stats = probe_stats(df) if probe_columns(df) else pd.DataFrame()
    body = []
    for sweep in sweeps:
        for level, ds in sweep.levels:
            for (d, method), to_control in gains.items():
                if d != ds:
                    continue
                probes = [probe_text(stats, (ds, method, v)) for v in ("default", CONTROL)]
                deltas = [interval(to_control.get(m)) for m in metrics]
                body.append([sweep.nuisance, level_text(sweep, level), method, *deltas, *probes])
    header = ["nuisance", "level", "method", *(f"Δ{m} to its control" for m in metrics)]
    table = Table([*header, "probes (default row)", "probes (control row)"], body)
    table.caption = (
        "One nuisance at a time (the others at today's level): each method's default row minus "
        "its own control (the row without its mechanism), in points, with its 95 % interval (a "
        "t interval over the paired seeds that adds the test identities' variance, "
        "docs/statistics.md); the probes, mean ± std over seeds "
        "(docs/probes.md). A method's paper predicts a gain that grows with the nuisance it "
        "targets, and a probe that moves as it says."
    )
    return table


def gain_series(sweep: Sweep, gains: dict, metric: str) -> dict[str, list[Point]]:
    """method -> (level, default minus control, interval) of ``metric`` along a sweep."""
    out: dict[str, list[Point]] = {}
    for level, ds in sweep.levels:
        for (d, method), to_control in sorted(gains.items()):
            diff = to_control.get(metric) if d == ds else None
            if diff is not None:
                out.setdefault(method, []).append((level, diff.diff, diff.lo, diff.hi))
    return out


def probe_series(sweep: Sweep, df: pd.DataFrame) -> dict[str, dict[str, list[Point]]]:
    """probe -> row label -> (level, mean, mean - std, mean + std) over seeds along a sweep."""
    if not probe_columns(df):
        return {}
    stats = probe_stats(df)
    out: dict[str, dict[str, list[Point]]] = {}
    for level, ds in sweep.levels:
        for key in stats.index:
            if key[0] != ds:
                continue
            label = key[1] if key[2] == "default" else f"{key[1]} ({key[2]})"
            for name in dict.fromkeys(c for c, _ in stats.columns):
                mean, std = stats.at[key, (name, "mean")], stats.at[key, (name, "std")]
                if pd.notna(mean):
                    std = 0.0 if pd.isna(std) else float(std)
                    point = (level, float(mean), float(mean) - std, float(mean) + std)
                    out.setdefault(name, {}).setdefault(label, []).append(point)
    return out
