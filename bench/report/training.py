"""Whether a suite's cells trained, and what each mechanism did against its own control.

- **Validation curves**: every cell that holds identities out of its training split
  (``train.val_fraction``) logs ``val.mAP`` after each epoch; the report draws the mean curve
  of each row over its seeds, and marks a cell *not converged* when its curve still rises over
  the last quarter of training by more than :data:`TOLERANCE` mAP points (the least-squares
  slope over the last quarter's epochs, and the epoch before them, times their span).
- **Gates**: where each method's zero-initialised gates ended (``diag.gate.*``, mean |value|),
  so that a block that stayed near the identity is seen as such.
- **Controls**: a row ``METHOD/control`` differs from ``METHOD/default`` only in its mechanism
  (IAUnet without its blocks, STAL's global branch alone, RGSA-RGTR with average pooling):
  each method's difference to it, with its interval, beside its difference to the reference.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.report.alike import differing
from bench.report.render import UNLIKE, Interval, Table, Value
from bench.report.stats import compare, corrected, correction_text
from bench.suite.schema import Row

#: mAP points a curve may still rise over its last quarter and count as converged.
TOLERANCE = 1.0
#: The variant name of a method's own control row.
CONTROL = "control"
GATE_PREFIX = "metrics.diag.gate."


def val_curves(mlf, df: pd.DataFrame) -> dict[str, list[float]]:
    """run id -> its ``val.mAP`` after each epoch (epoch order), for runs that logged one."""
    out = {}
    for run_id in df["run_id"]:
        history = sorted(mlf.get_metric_history(run_id, "val.mAP"), key=lambda m: m.step)
        if history:
            out[run_id] = [m.value for m in history]
    return out


def rise(curve: list[float]) -> float:
    """How much a curve still rises over its last quarter (see the module docstring)."""
    if len(curve) < 2:
        return 0.0
    span = max(1, math.ceil(len(curve) / 4))
    tail = np.asarray(curve[-span - 1 :], dtype=float)
    slope = np.polyfit(np.arange(len(tail)), tail, 1)[0]
    return float(slope * (len(tail) - 1))


def not_converged(curve: list[float], tolerance: float = TOLERANCE) -> bool:
    return rise(curve) > tolerance


def mean_curves(df: pd.DataFrame, curves: dict[str, list[float]], dataset: str):
    """label -> the mean validation curve of a row over its seeds (the epochs all have)."""
    out: dict[str, list[float]] = {}
    runs = df[(df["tags.dataset"] == dataset) & df["run_id"].isin(list(curves))]
    for (m, v), rows in runs.groupby(["tags.method", "tags.variant"]):
        series = [curves[r] for r in rows["run_id"]]
        n = min(len(s) for s in series)
        out[m if v == "default" else f"{m} ({v})"] = list(np.mean([s[:n] for s in series], 0))
    return out


def training_table(df: pd.DataFrame, curves: dict[str, list[float]]) -> Table | None:
    """Per dataset and row: the last validation mAP, how many cells did not converge, and
    where the gates ended."""
    gate_cols = sorted(c for c in df.columns if c.startswith(GATE_PREFIX))
    if not curves and not gate_cols:
        return None
    body = []
    for (ds, m, v), rows in df.groupby(["tags.dataset", "tags.method", "tags.variant"]):
        series = [curves[r] for r in rows["run_id"] if r in curves]
        last = [s[-1] for s in series]
        flagged = sum(not_converged(s) for s in series)
        body.append(
            [
                ds,
                m,
                v,
                Value(np.mean(last), np.std(last, ddof=1) if len(last) > 1 else None, len(last))
                if last
                else None,
                f"{flagged} of {len(series)}" if series else None,
                _gates(rows, gate_cols),
            ]
        )
    header = ["dataset", "method", "variant", "val mAP, last epoch", "not converged", "gates"]
    table = Table(header, body)
    table.caption = (
        f"Validation: mAP on the identities held out of each cell's training split, after the "
        f"last epoch (mean ± std over seeds). Not converged: cells whose validation curve still "
        f"rises over the last quarter of training by more than {TOLERANCE:g} mAP point "
        "(least-squares slope over those epochs times their span). Gates: mean |value| of each "
        "zero-initialised gate or residual scale at the end of training, mean over seeds (they "
        "start at 0: a gate near 0 leaves its block near the identity)."
    )
    return table


def _gates(rows: pd.DataFrame, gate_cols: list[str]) -> str | None:
    present = [c for c in gate_cols if rows[c].notna().any()]
    if not present:
        return None
    return ", ".join(f"{c.removeprefix(GATE_PREFIX)} {rows[c].mean():.2f}" for c in present)


def unlike_controls(df: pd.DataFrame) -> dict[tuple[str, str], list]:
    """(dataset, method) -> the settings in which a method's default and control rows were run
    otherwise (:func:`bench.report.alike.differing`), for the methods where they were."""
    out = {}
    for ds, runs in df.groupby("tags.dataset"):
        rows = set(zip(runs["tags.method"], runs["tags.variant"], strict=True))
        for method in sorted({m for m, v in rows if v == CONTROL and (m, "default") in rows}):
            settings = differing(runs, (method, CONTROL), (method, "default"))
            if settings:
                out[(ds, method)] = settings
    return out


def to_controls(sets: dict, metrics: list[str], unlike: dict) -> dict:
    """(dataset, method, metric) -> each method's default row - its control, for the methods
    whose two rows were run alike (not in ``unlike``), corrected together."""
    out = {}
    for ds, method, variant in sorted(sets):
        control = sets.get((ds, method, CONTROL))
        if variant != "default" or control is None or (ds, method) in unlike:
            continue
        for d in compare(control, sets[(ds, method, variant)], metrics):
            out[(ds, method, d.metric)] = d
    return corrected(out)


def control_table(
    sets: dict, diffs: dict, reference: Row, metrics: list[str], unlike: dict | None = None
) -> Table | None:
    """Each method's difference to its own control (``METHOD/control``) with its interval,
    beside its difference to the reference row (``diffs``: the results table's). ``unlike``:
    (dataset, method) -> the settings its default and control rows differ in (no Δ)."""
    unlike = unlike or {}
    own = to_controls(sets, metrics, unlike)
    body = []
    for ds, method, variant in sorted(sets):
        if variant != "default" or (ds, method, CONTROL) not in sets:
            continue
        row = [ds, method]
        for metric in metrics:
            d = UNLIKE if (ds, method) in unlike else interval(own.get((ds, method, metric)))
            row += [d, interval(diffs.get((ds, method, variant, metric)))]
        body.append(row)
    if not body:
        return None
    ref = "/".join(reference)
    header = ["dataset", "method"]
    for metric in metrics:
        header += [f"Δ{metric} to its control", f"Δ{metric} to {ref}"]
    table = Table(header, body)
    table.caption = (
        "Each method (its default row) against its own control, the row that differs from it "
        "only in its mechanism (METHOD/control, same losses, neck, distance, data, schedule and "
        "start), and against the reference row; intervals as in the results table. "
        f"† to the control: after the {correction_text(len(own))} to the controls; "
        "† to the reference: as in the results table."
    )
    if unlike:
        rows = "; ".join(
            f"{ds} {m}: {', '.join(str(s) for s in settings)}"
            for (ds, m), settings in sorted(unlike.items())
        )
        table.notes.append(
            f"{UNLIKE}: no Δ to the control, their runs differ in more than the method's config "
            f"(the control's value vs the default row's): {rows}."
        )
    return table


def control_differences(sets: dict, metrics: list[str], unlike: dict | None = None) -> dict:
    """(dataset, method) -> metric -> the method's default row minus its own control, for the
    methods that have both and ran them alike (:func:`to_controls`, corrected together)."""
    out: dict = {}
    for (ds, method, metric), d in to_controls(sets, metrics, unlike or {}).items():
        out.setdefault((ds, method), {})[metric] = d
    return out


def interval(d) -> Interval | None:
    """A difference as a table entry, marked when it is discovered after the correction."""
    return None if d is None else Interval(d.diff, d.lo, d.hi, d.discovered)
