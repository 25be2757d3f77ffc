"""Result tables in the source document's format: Markdown, CSV and LaTeX from one description.

A table has rows (methods) and columns (metrics). Each cell is a :class:`~taskloss.metrics.Summary`
of per-image values (shown as "mean ± sd"), or None (shown as a dash, e.g. MOS before a reader
study). Within each group of rows (e.g. all "p loss" rows), the best value of each column is bold,
where "best" follows the column's direction (lower MAE, higher SSIM, ...).
"""

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from taskloss.metrics.stats import Summary

DASH = "—"


@dataclass(frozen=True)
class Column:
    """A metric column.

    Attributes:
        key: the metric's name in per-image results (e.g. "psnr").
        label: the header (e.g. "PSNR").
        higher_is_better: direction used to pick the bold cell.
        digits: decimals shown.
        show_sd: show "mean ± sd" (True) or the mean alone.
    """

    key: str
    label: str
    higher_is_better: bool
    digits: int = 3
    show_sd: bool = True


@dataclass(frozen=True)
class Row:
    """A method's row.

    Attributes:
        label: the method's name as shown (e.g. "CRN - p loss").
        cells: Summary per column key; a missing key or None shows a dash.
        group: rows of the same group compete for bold; None never competes.
    """

    label: str
    cells: dict[str, Summary | None] = field(default_factory=dict)
    group: str | None = None


@dataclass(frozen=True)
class ResultTable:
    """Rows x columns of summaries, with a caption."""

    columns: Sequence[Column]
    rows: Sequence[Row]
    caption: str = ""
    first_header: str = "Method"

    def best(self) -> set[tuple[int, str]]:
        """(row index, column key) of the bold cells: the best mean per group and column."""
        bold: set[tuple[int, str]] = set()
        for column in self.columns:
            groups: dict[str, list[tuple[float, int]]] = {}
            for index, row in enumerate(self.rows):
                cell = row.cells.get(column.key)
                if row.group is not None and cell is not None and math.isfinite(cell.mean):
                    groups.setdefault(row.group, []).append((cell.mean, index))
            for members in groups.values():
                if len(members) > 1:
                    pick = max if column.higher_is_better else min
                    target = pick(mean for mean, _ in members)
                    bold.update((index, column.key) for mean, index in members if mean == target)
        return bold

    def _text(self, row: Row, column: Column) -> str:
        cell = row.cells.get(column.key)
        if cell is None:
            return DASH
        if math.isinf(cell.mean):
            return "∞" if cell.mean > 0 else "-∞"
        return cell.format(column.digits) if column.show_sd else f"{cell.mean:.{column.digits}f}"

    def markdown(self) -> str:
        """GitHub Markdown table, best cells in bold, caption below in bold-italic style."""
        bold = self.best()
        header = [self.first_header] + [f"{c.label} {_arrow(c)}" for c in self.columns]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for index, row in enumerate(self.rows):
            cells = [self._text(row, c) for c in self.columns]
            cells = [f"**{text}**" if (index, c.key) in bold else text
                     for text, c in zip(cells, self.columns, strict=True)]
            lines.append("| " + " | ".join([row.label, *cells]) + " |")
        if self.caption:
            lines += ["", f"*{self.caption}*"]
        return "\n".join(lines) + "\n"

    def latex(self) -> str:
        """A ``booktabs`` table environment; best cells in ``\\textbf``, ± as ``$\\pm$``."""
        bold = self.best()
        spec = "l" + "c" * len(self.columns)
        header = [_latex_escape(self.first_header)] + [_latex_escape(c.label) for c in self.columns]
        lines = ["\\begin{table}[t]", "\\centering", f"\\begin{{tabular}}{{{spec}}}", "\\toprule",
                 " & ".join(header) + " \\\\", "\\midrule"]
        previous_group = self.rows[0].group if self.rows else None
        for index, row in enumerate(self.rows):
            if row.group != previous_group:
                lines.append("\\midrule")
                previous_group = row.group
            cells = []
            for column in self.columns:
                text = self._text(row, column).replace("±", "$\\pm$").replace("∞", "$\\infty$")
                text = text.replace(DASH, "--")
                cells.append(f"\\textbf{{{text}}}" if (index, column.key) in bold else text)
            lines.append(" & ".join([_latex_escape(row.label), *cells]) + " \\\\")
        lines += ["\\bottomrule", "\\end{tabular}"]
        if self.caption:
            lines.append(f"\\caption{{{_latex_escape(self.caption)}}}")
        lines.append("\\end{table}")
        return "\n".join(lines) + "\n"

    def csv(self) -> str:
        """Machine-readable: one row per method, ``<key>_mean``, ``<key>_sd``, ``<key>_n``,
        ``<key>_ci_low``, ``<key>_ci_high`` per column (empty when the cell is missing)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow([self.first_header.lower(), "group"] + [
            f"{c.key}_{part}" for c in self.columns for part in ("mean", "sd", "n", "ci_low", "ci_high")])
        for row in self.rows:
            values: list[object] = [row.label, row.group or ""]
            for column in self.columns:
                cell = row.cells.get(column.key)
                values += ["", "", "", "", ""] if cell is None else [
                    repr(cell.mean), repr(cell.sd), cell.n, repr(cell.ci_low), repr(cell.ci_high)]
            writer.writerow(values)
        return buffer.getvalue()


def _arrow(column: Column) -> str:
    return "↑" if column.higher_is_better else "↓"


def _latex_escape(text: str) -> str:
    replacements = {"&": "\\&", "%": "\\%", "_": "\\_", "#": "\\#", "$": "\\$", "{": "\\{", "}": "\\}",
                    "↑": "$\\uparrow$", "↓": "$\\downarrow$", "ℓ": "$\\ell$"}
    return "".join(replacements.get(character, character) for character in text)
