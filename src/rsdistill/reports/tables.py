"""A table is a list of column names and rows of cells; it renders to Markdown, CSV and LaTeX."""

from __future__ import annotations

import csv
import io
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..io import atomic_write_text


@dataclass
class Table:
    columns: list[str]
    rows: list[list[object]] = field(default_factory=list)
    title: str = ""

    def add(self, *cells: object) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"row has {len(cells)} cells, table has {len(self.columns)} columns")
        self.rows.append(list(cells))

    def to_markdown(self) -> str:
        cells = [[_fmt(c) for c in r] for r in self.rows]
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(self.columns)]
        line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
        out = [f"**{self.title}**", ""] if self.title else []
        out += [line(self.columns), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        out += [line(r) for r in cells]
        return "\n".join(out) + "\n"

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(self.columns)
        for r in self.rows:
            w.writerow([_fmt(c) for c in r])
        return buf.getvalue()

    def to_latex(self) -> str:
        esc = lambda s: s.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("%", "\\%").replace("&", "\\&").replace("±", "$\\pm$")  # noqa: E731
        out = ["\\begin{tabular}{l" + "r" * (len(self.columns) - 1) + "}", "\\hline",
               " & ".join(esc(c) for c in self.columns) + " \\\\", "\\hline"]
        out += [" & ".join(esc(_fmt(c)) for c in r) + " \\\\" for r in self.rows]
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


def _fmt(c: object) -> str:
    if c is None:
        return "—"
    if isinstance(c, float):
        return "—" if math.isnan(c) else f"{c:.2f}"
    return str(c)


def mean_std(values: list[float]) -> str:
    """"81.23 ± 0.45" over seeds ("81.23" for a single seed)."""
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"
