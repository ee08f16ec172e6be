"""A report's cost columns (each row's parameters, GFLOPs per clip, train step time and
inference speed, means over its runs) and the papers' cost claims beside what was measured."""

from __future__ import annotations

import pandas as pd

from bench.report.papers import cost_claims
from bench.report.render import Entry, Table

#: (metric, column header): what bench logs about a run's cost (bench/engine/cost.py)
COLUMNS = (
    ("cost.params_M", "params (M)"),
    ("cost.gflops_per_clip", "GFLOPs/clip"),
    ("time.step_s", "train s/step"),
    ("time.infer_clips_per_s", "infer clips/s"),
)
MEASURED = {"params": "cost.params_M", "gflops": "cost.gflops_per_clip"}
TIMES = ("time.step_s", "time.infer_clips_per_s")


def _present(df: pd.DataFrame) -> list[tuple[str, str]]:
    return [(m, h) for m, h in COLUMNS if f"metrics.{m}" in df and df[f"metrics.{m}"].notna().any()]


def _means(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return df.groupby(keys)[[f"metrics.{m}" for m, _ in _present(df)]].mean()


def _number(x: float | None) -> str | None:
    return None if x is None or pd.isna(x) else f"{x:.3g}"


def cost_columns(
    df: pd.DataFrame, rows: list[tuple[str, str]], keys: list[str]
) -> tuple[list[str], list[list[Entry]]]:
    """(headers, columns) of the cost columns the runs logged, one entry per row."""
    means = _means(df, keys)
    present = _present(df)
    columns = [[_number(means[f"metrics.{m}"].get(row)) for row in rows] for m, _ in present]
    return [h for _, h in present], columns


def cost_caption(df: pd.DataFrame) -> str:
    """What the cost columns are, and the machines that timed them."""
    present = {m for m, _ in _present(df)}
    if not present:
        return ""
    text = (
        "Cost: parameters in millions (all of them, classifiers included); GFLOPs of embedding "
        "one test clip of T frames at the input size (torch.utils.flop_counter, a multiply-add "
        "counts 2)"
    )
    if present & set(TIMES):
        machines = "; ".join(sorted(set(df.get("tags.device_name", pd.Series()).dropna())))
        text += (
            "; train s/step: wall time of a training step, data loading included (last epoch); "
            "infer clips/s: clips per second of the method's embedding, loading left out; "
            f"times measured on {machines or 'an unnamed machine'}"
        )
    return text + "."


def claims_table(
    df: pd.DataFrame, keys: list[str], reference: tuple[str, str] = ("baseline", "default")
) -> Table | None:
    """Each cost claim of a paper whose row ran, beside the row's measured cost and the
    reference row's (the change in %)."""
    rows = set(zip(df[keys[0]], df[keys[1]], strict=True))
    claims = [c for c in cost_claims() if (c.method, c.variant) in rows]
    if not claims:
        return None
    means = _means(df, keys)
    body = []
    for c in claims:
        measured = [
            _versus(means, MEASURED[m], (c.method, c.variant), reference) for m in c.measures
        ]
        body.append(
            [c.paper, f"{c.method}/{c.variant}", f"“{c.claim}”", c.source, *_by(c, measured)]
        )
    header = ["paper", "row", "claim", "source", "params (M)", "GFLOPs/clip"]
    table = Table(header, body)
    table.caption = (
        f"Measured here: the row's mean, then {'/'.join(reference)}'s and the change in %."
    )
    return table


def _by(claim, measured: list[str | None]) -> list[str | None]:
    """The measured entries in the table's measure columns (None where the claim is silent)."""
    found = dict(zip(claim.measures, measured, strict=True))
    return [found.get(m) for m in MEASURED]


def _versus(means: pd.DataFrame, metric: str, row, reference) -> str | None:
    column = f"metrics.{metric}"
    if column not in means or row not in means.index:
        return None
    value, ref = means[column].get(row), means[column].get(reference)
    if pd.isna(value):
        return None
    if ref is None or pd.isna(ref) or ref == 0:
        return f"{value:.3g}"
    return f"{value:.3g} vs {ref:.3g} ({100 * (value / ref - 1):+.1f} %)"
