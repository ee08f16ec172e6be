"""Paper-style tables and figures from the MLflow runs (pandas -> tabulate Markdown)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml
from tabulate import tabulate

from bench.atomic import write_text
from bench.plots import cmc_figure, heatmap_figure

METRICS = ("R1", "R5", "R10", "R20", "mAP")
KEYS = ["tags.method", "tags.variant"]


def load_runs(mlf, suite: str | None = None, dataset: str | None = None) -> pd.DataFrame:
    """Finished cell runs (not tuning trials) of one suite, or of every suite, as a frame."""
    import mlflow

    exps = [e for e in mlf.search_experiments() if e.name != "Default"]
    if suite is not None:
        exps = [e for e in exps if e.name == suite]
    if not exps:
        return pd.DataFrame()
    df = mlflow.search_runs(
        [e.experiment_id for e in exps],
        filter_string="attributes.status = 'FINISHED'",
        output_format="pandas",
    )
    if df.empty or "tags.config_hash" not in df:
        return pd.DataFrame()
    df = df[df["tags.config_hash"].notna()]
    if "tags.tune_study" in df:
        df = df[df["tags.tune_study"].isna()]
    if dataset is not None:
        df = df[df["tags.dataset"] == dataset]
    # the newest run of a config hash counts (a --force rerun replaces the old one)
    return df.sort_values("start_time").drop_duplicates("tags.config_hash", keep="last")


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds and splits: index (method, variant), columns (dataset, metric,
    'mean' | 'std' | 'n')."""
    cols = [f"metrics.{m}" for m in METRICS if f"metrics.{m}" in df]
    grouped = df.groupby([*KEYS, "tags.dataset"])[cols]
    stats = pd.concat(
        {"mean": grouped.mean(), "std": grouped.std(ddof=0), "n": grouped.count()}, axis=1
    )
    stats.columns = stats.columns.set_names(["stat", "metric"])
    stats.columns = stats.columns.set_levels(
        [c.removeprefix("metrics.") for c in stats.columns.levels[1]], level=1
    )
    wide = stats.unstack("tags.dataset")
    return wide.reorder_levels(["tags.dataset", "metric", "stat"], axis=1).sort_index(axis=1)


def _cell(mean: float, std: float, n: int, best: bool) -> str:
    if pd.isna(mean):
        return "–"
    text = f"{mean:.1f} ± {std:.1f}" if n > 1 else f"{mean:.1f}"
    return f"**{text}**" if best else text


def markdown_table(df: pd.DataFrame) -> str:
    """Rows = method / variant; columns = dataset x metric; mean ± std; best mean in bold."""
    wide = summary(df)
    datasets = list(dict.fromkeys(wide.columns.get_level_values(0)))
    header = ["method", "variant"]
    rows = [[m, v] for m, v in wide.index]
    for ds in datasets:
        for metric in [m for m in METRICS if (ds, m, "mean") in wide.columns]:
            means = wide[(ds, metric, "mean")]
            header.append(f"{ds} {metric}")
            for row, (key, mean) in zip(rows, means.items(), strict=True):
                best = mean == means.max()
                n = wide[(ds, metric, "n")][key]
                std = wide[(ds, metric, "std")][key]
                row.append(_cell(mean, std, 0 if pd.isna(n) else int(n), bool(best)))
    order = sorted(
        range(len(rows)),
        key=lambda i: (rows[i][0] != "baseline", rows[i][0], rows[i][1] != "default", rows[i][1]),
    )
    return tabulate(
        [rows[i] for i in order], headers=header, tablefmt="pipe", disable_numparse=True
    )


def _label(method: str, variant: str) -> str:
    return method if variant == "default" else f"{method} ({variant})"


def mean_cmc_curves(mlf, df: pd.DataFrame, dataset: str) -> dict[str, list[float]]:
    """Mean CMC curve per method / variant on a dataset, from the runs' cmc.yaml artifacts."""
    curves: dict[str, list[list[float]]] = {}
    for _, run in df[df["tags.dataset"] == dataset].iterrows():
        path = mlf.download_artifacts(run["run_id"], "cmc.yaml")
        curve = yaml.safe_load(Path(path).read_text())["cmc"]
        curves.setdefault(_label(run["tags.method"], run["tags.variant"]), []).append(curve)
    return {k: [sum(c) / len(c) for c in zip(*v, strict=True)] for k, v in curves.items()}


def seqlen_grids(df: pd.DataFrame) -> dict[tuple[str, str], dict[tuple[int, int], float]]:
    """Mean rank-1 by (probe, gallery) length for each dataset x method that ran the study
    (its default variant: one heat map per method keeps a report readable)."""
    cols = [c for c in df.columns if c.startswith("metrics.seqlen.R1.")]
    out: dict = {}
    for (ds, m, v), rows in df.groupby(["tags.dataset", *KEYS]):
        if v != "default":
            continue
        grid = {}
        for col in cols:
            value = rows[col].mean()
            if pd.notna(value):
                q, g = col.removeprefix("metrics.seqlen.R1.").split(".")
                grid[(_length(q[1:]), _length(g[1:]))] = float(value)
        if grid:
            out[(ds, _label(m, v))] = grid
    return out


def _length(text: str) -> int:
    return 0 if text == "all" else int(text)


def write_report(mlf, df: pd.DataFrame, name: str, out_dir: Path) -> Path:
    """reports/<name>.md with the table, protocols, CMC figures and sequence-length maps."""
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = name.replace("/", "-")
    lines = [f"# {name}", "", markdown_table(df), ""]
    n_seeds = df.groupby([*KEYS, "tags.dataset"]).size()
    lo, hi = n_seeds.min(), n_seeds.max()
    runs = f"{lo}" if lo == hi else f"{lo}–{hi}"
    lines.append(
        f"Mean ± std over seeds and splits ({runs} runs per entry); best mean per column in bold."
    )
    protocols = df.groupby("tags.dataset")["tags.protocol"].first()
    lines += ["", "Protocols: " + ", ".join(f"{d}: {p}" for d, p in protocols.items()), ""]
    for ds in protocols.index:
        fig = cmc_figure(
            mean_cmc_curves(mlf, df, ds),
            f"CMC on {ds}",
            out_dir / "figures" / f"{slug}-{ds}-cmc.png",
        )
        lines += [f"![CMC on {ds}](figures/{fig.name})", ""]
    for (ds, row), grid in seqlen_grids(df).items():
        fig = heatmap_figure(
            grid,
            f"{row} on {ds}",
            out_dir / "figures" / f"{slug}-{ds}-{row}-seqlen.png".replace(" ", ""),
        )
        lines += [f"![sequence lengths, {row} on {ds}](figures/{fig.name})", ""]
    path = out_dir / f"{slug}.md"
    write_text(path, "\n".join(lines) + _kept_reading(path))
    return path


READING = "\n## Reading"


def _kept_reading(path: Path) -> str:
    """A hand-written '## Reading' section of an existing report survives regeneration."""
    if not path.is_file():
        return ""
    text = path.read_text()
    return text[text.index(READING) :] if READING in text else ""
