"""Reports: result tables (Markdown, CSV, LaTeX), comparison figures and the rank-stability figure."""

from taskloss.report.figures import (
    Case,
    TradeoffPoint,
    box_crop,
    comparison_figure,
    detail_crop,
    tradeoff_figure,
)
from taskloss.report.ranks import rank_stability_figure
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
    "rank_stability_figure",
    "tradeoff_figure",
]
