"""Reports: result tables (Markdown, CSV, LaTeX) and comparison figures."""

from taskloss.report.figures import Case, box_crop, comparison_figure, detail_crop
from taskloss.report.tables import Column, ResultTable, Row

__all__ = ["Case", "Column", "ResultTable", "Row", "box_crop", "comparison_figure", "detail_crop"]
