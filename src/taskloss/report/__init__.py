"""Reports: result tables (Markdown, CSV, LaTeX) and comparison figures."""

from taskloss.report.figures import (
    Case,
    TradeoffPoint,
    box_crop,
    comparison_figure,
    detail_crop,
    tradeoff_figure,
)
from taskloss.report.tables import Column, ResultTable, Row

__all__ = [
    "Case",
    "Column",
    "ResultTable",
    "Row",
    "TradeoffPoint",
    "box_crop",
    "comparison_figure",
    "detail_crop",
    "tradeoff_figure",
]
