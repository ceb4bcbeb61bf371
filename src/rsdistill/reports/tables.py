"""A table is a list of column names and rows of cells; it renders to Markdown, CSV and LaTeX.

Cells may be marked bold (the best value of a column: ``**x**`` in Markdown, ``\\textbf{x}`` in
LaTeX, plain in CSV), and a table may carry notes (the settings that produced it), written below
the Markdown table and as ``%`` comments above the LaTeX one."""

from __future__ import annotations

import csv
import html
import io
import math
import re
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..io import atomic_write_text


@dataclass
class Table:
    columns: list[str]
    rows: list[list[object]] = field(default_factory=list)
    title: str = ""
    notes: list[str] = field(default_factory=list)
    # (row, column) positions rendered in bold
    bold: set[tuple[int, int]] = field(default_factory=set)

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"row has {len(cells)} cells, table has {len(self.columns)} columns")
        self.rows.append(list(cells))

    def bold_best(self, columns: list[str], rows: list[int] | None = None, lower: bool = False) -> None:
        """Mark, in each named column, the cell(s) with the highest leading number ("81.2 ± 0.4"
        reads as 81.2, "+1.30" as 1.3) among ``rows`` (default: all), or the lowest with ``lower``
        (times, memory); cells without a number (a dash, "failed") are never best."""
        for name in columns:
            c = self.columns.index(name)
            values = {r: _leading_number(self.rows[r][c]) for r in (range(len(self.rows)) if rows is None else rows)}
            values = {r: v for r, v in values.items() if v is not None}
            if values:
                best = (min if lower else max)(values.values())
                self.bold |= {(r, c) for r, v in values.items() if v == best}

    def _cells(self, wrap, esc=lambda s: s) -> list[list[str]]:
        return [[wrap(esc(_fmt(c))) if (i, j) in self.bold else esc(_fmt(c)) for j, c in enumerate(r)]
                for i, r in enumerate(self.rows)]

    def to_markdown(self) -> str:
        cells = self._cells(lambda s: f"**{s}**", markdown_escape)
        columns = [markdown_escape(c) for c in self.columns]
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(columns)]
        line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
        out = [f"**{markdown_escape(self.title)}**", ""] if self.title else []
        out += [line(columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        out += [line(r) for r in cells]
        if self.notes:
            out += [""] + self.notes
        return "\n".join(out) + "\n"

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        for r in self.rows:
            w.writerow([_fmt(c) for c in r])
        return buf.getvalue()

    def to_latex(self) -> str:
        esc = latex_escape
        out = [f"% {n}" for n in self.notes]
        out += ["\\begin{tabular}{l" + "r" * (len(self.columns) - 1) + "}", "\\hline",
                " & ".join(esc(c) for c in self.columns) + " \\\\", "\\hline"]
        cells = [[esc(_fmt(c)) for c in r] for r in self.rows]
        for i, j in self.bold:
            cells[i][j] = f"\\textbf{{{cells[i][j]}}}"
        out += [" & ".join(r) + " \\\\" for r in cells]
        out += ["\\hline", "\\end{tabular}"]
        return "\n".join(out) + "\n"

    def write(self, stem: Path, formats: tuple[str, ...] = ("md", "csv")) -> list[Path]:
        """Write ``stem.md``/``stem.csv``/``stem.tex``; returns the paths written."""
        render = {"md": self.to_markdown, "csv": self.to_csv, "tex": self.to_latex}
        paths = []
        for fmt in formats:
            p = stem.with_suffix(f".{fmt}")
            atomic_write_text(p, render[fmt]())
            paths.append(p)
        return paths


# Every character LaTeX treats specially in text, and ± (math mode).
_LATEX = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "$": r"\$", "&": r"\&", "#": r"\#",
          "^": r"\textasciicircum{}", "_": r"\_", "~": r"\textasciitilde{}", "%": r"\%", "±": r"$\pm$"}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX))


def latex_escape(s: str) -> str:
    """``s`` as LaTeX text: each special character in one pass (an escape is never escaped again)."""
    return _LATEX_RE.sub(lambda m: _LATEX[m.group()], s)


def markdown_escape(s: str) -> str:
    """``s`` as text of a Markdown table: HTML is shown, not rendered (a run's name or label is
    the user's text), and a ``|`` does not end the cell."""
    return html.escape(s, quote=False).replace("|", "\\|")


def _fmt(c: object) -> str:
    if c is None:
        return "—"
    if isinstance(c, float):
        return "—" if math.isnan(c) else f"{c:.2f}"
    return str(c)


_NUMBER = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)")


def _leading_number(c: object) -> float | None:
    if isinstance(c, (int, float)) and not isinstance(c, bool):
        return None if isinstance(c, float) and math.isnan(c) else float(c)
    m = _NUMBER.match(c) if isinstance(c, str) else None
    return float(m.group(1)) if m else None


def mean_std(values: list[float]) -> str:
    """"81.23 ± 0.45" over seeds ("81.23" for a single seed)."""
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"
