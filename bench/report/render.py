"""One table object, rendered as Markdown, LaTeX (booktabs) or HTML.

An entry is plain text, a :class:`Value` (mean ± std over runs, maybe the best of its column)
or an :class:`Interval` (a difference to the reference row with its 95 % interval, marked when
significant, after the table's correction for many comparisons); ``None`` is a missing entry,
:data:`UNLIKE` a difference not computed because the rows were run otherwise.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

from tabulate import tabulate

MISSING = "–"
MARK = "†"
UNLIKE = "≠"


@dataclass(frozen=True)
class Value:
    mean: float
    std: float = math.nan
    n: int = 1
    best: bool = False


@dataclass(frozen=True)
class Interval:
    diff: float
    lo: float
    hi: float
    significant: bool


Entry = str | Value | Interval | None


@dataclass
class Table:
    header: list[str]
    rows: list[list[Entry]]
    caption: str = ""
    notes: list[str] = field(default_factory=list)


def _num(x: float, signed: bool = False) -> str:
    return f"{x:+.1f}" if signed else f"{x:.1f}"


def plain(entry: Entry) -> str:
    """The entry as text (Markdown adds bold around the best value)."""
    if entry is None or (isinstance(entry, Value) and math.isnan(entry.mean)):
        return MISSING
    if isinstance(entry, Value):
        return _num(entry.mean) + (f" ± {_num(entry.std)}" if entry.n > 1 else "")
    if isinstance(entry, Interval):
        text = f"{_num(entry.diff, True)} [{_num(entry.lo, True)}, {_num(entry.hi, True)}]"
        return text + (f" {MARK}" if entry.significant else "")
    return entry


def _bold(entry: Entry) -> bool:
    return isinstance(entry, Value) and entry.best and not math.isnan(entry.mean)


def to_markdown(table: Table) -> str:
    rows = [[f"**{plain(e)}**" if _bold(e) else plain(e) for e in row] for row in table.rows]
    text = tabulate(rows, headers=table.header, tablefmt="pipe", disable_numparse=True)
    return "\n\n".join([text, *([table.caption] if table.caption else []), *table.notes])


LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "→": r"$\to$",
    "Δ": r"$\Delta$",
    MARK: r"$^\dagger$",
    UNLIKE: r"$\neq$",
    "–": "--",
    "×": r"$\times$",
}


def latex_escape(text: str) -> str:
    return "".join(LATEX_ESCAPES.get(ch, ch) for ch in text)


def _latex(entry: Entry) -> str:
    if isinstance(entry, Value) and not math.isnan(entry.mean):
        text = f"{_num(entry.mean)}" + (rf" $\pm$ {_num(entry.std)}" if entry.n > 1 else "")
        return rf"\textbf{{{text}}}" if entry.best else text
    if isinstance(entry, Interval):
        text = f"${_num(entry.diff, True)}$ [${_num(entry.lo, True)}$, ${_num(entry.hi, True)}$]"
        return text + (r"$^\dagger$" if entry.significant else "")
    return latex_escape(plain(entry))


def to_latex(table: Table, label: str = "") -> str:
    """A ``table`` float with a booktabs ``tabular``; best values bold, intervals, \\pm."""
    spec = "ll" + "r" * (len(table.header) - 2)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(h) for h in table.header) + r" \\",
        r"\midrule",
        *(" & ".join(_latex(e) for e in row) + r" \\" for row in table.rows),
        r"\bottomrule",
        r"\end{tabular}",
    ]
    caption = " ".join([table.caption, *table.notes]).strip()
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines)


def to_html(table: Table) -> str:
    def cell(e: Entry) -> str:
        text = html.escape(plain(e))
        return f"<td><b>{text}</b></td>" if _bold(e) else f"<td>{text}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.header)
    body = "\n".join("<tr>" + "".join(cell(e) for e in row) + "</tr>" for row in table.rows)
    notes = "".join(f"<p>{html.escape(n)}</p>" for n in [table.caption, *table.notes] if n)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>\n{notes}"
