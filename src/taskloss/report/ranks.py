"""Rank-stability figure: how often each method ranks first on each metric under resampling.

The shares come from :func:`taskloss.metrics.comparisons.rank_stability` (bootstrap over subjects
and each method's seeds). The figure is a small table of cells, one row per metric and one column
per method, each cell shaded by its share (white 0 to dark 1, one scale for the whole figure) and
labelled with it in percent; the row label says whether the higher or the lower value wins.
"""

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from taskloss.errors import InputError
from taskloss.metrics.comparisons import RankShare


def share_matrix(shares: Sequence[RankShare]) -> tuple[list[str], list[str], np.ndarray]:
    """The shares as a (metrics, methods) array, in first-seen order; NaN where a pair is missing.

    Args:
        shares: :class:`RankShare` rows, e.g. the output of ``rank_stability``.

    Returns:
        (metric labels, methods, array (metrics, methods) of shares in [0, 1]); a metric label is
        the metric with its winning direction, e.g. ``psnr (higher wins)``.

    Raises:
        InputError: ``shares`` is empty.

    Examples:
        >>> rows, columns, matrix = share_matrix([RankShare("mae", "lower", "a", 0.25, 10),
        ...                                      RankShare("mae", "lower", "b", 0.75, 10)])
        >>> rows, columns, matrix.tolist()
        (['mae (lower wins)'], ['a', 'b'], [[0.25, 0.75]])
    """
    if not shares:
        raise InputError("rank-stability figure: no shares to draw; rank at least one metric")
    metrics = list(dict.fromkeys(s.metric for s in shares))
    methods = list(dict.fromkeys(s.method for s in shares))
    better = {s.metric: s.better for s in shares}
    matrix = np.full((len(metrics), len(methods)), np.nan)
    for s in shares:
        matrix[metrics.index(s.metric), methods.index(s.method)] = s.share_first
    return [f"{m} ({better[m]} wins)" for m in metrics], methods, matrix


def percent(share: float) -> str:
    """A share as the figure writes it: whole percent, ``<1 %`` / ``>99 %`` rather than a rounded 0 or 100 that
    did not happen, ``-`` for NaN.

    Examples:
        >>> [percent(x) for x in (0.0, 0.004, 0.5, 0.996, 1.0, float("nan"))]
        ['0 %', '<1 %', '50 %', '>99 %', '100 %', '-']
    """
    if np.isnan(share):
        return "-"
    if 0 < share < 0.005:
        return "<1 %"
    if 0.995 < share < 1:
        return ">99 %"
    return f"{100 * share:.0f} %"


def rank_stability_figure(path: Path, shares: Sequence[RankShare], title: str | None = None) -> Path:
    """Draw how often each method ranks first per metric and save it as PNG (150 dpi) at ``path``.

    Args:
        path: the PNG file (its folder is created).
        shares: :class:`RankShare` rows (every metric's shares sum to 1).
        title: the figure's title; default names the number of resamples.

    Returns:
        ``path``.
    """
    rows, columns, matrix = share_matrix(shares)
    figure = Figure(figsize=(max(4.6, 2.2 + 1.0 * len(columns)), 1.3 + 0.42 * len(rows)))  # room for the title
    axis = figure.subplots()
    axis.imshow(np.nan_to_num(matrix, nan=0.0), cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
    for (r, c), value in np.ndenumerate(matrix):
        axis.text(c, r, percent(value), ha="center", va="center", fontsize=8,
                  color="white" if value > 0.6 else "black")
    axis.set_xticks(range(len(columns)), columns, fontsize=8, rotation=30 if len(columns) > 4 else 0,
                    ha="right" if len(columns) > 4 else "center")
    axis.set_yticks(range(len(rows)), rows, fontsize=8)
    axis.tick_params(length=0)
    for side in axis.spines.values():
        side.set_visible(False)
    resamples = shares[0].resamples
    axis.set_title(title or f"share of {resamples:,} subject/seed resamples ranked first", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=150)
    return path
