"""Comparison figures: input, every method, target; a zoomed crop; absolute-error maps.

One figure shows one or more cases (test images). Per case, three rows: the full images (the crop
outlined), the crop enlarged, and |method - target| on one colour scale shared by all methods of
that case (so a darker map really is a smaller error). :func:`tradeoff_figure` draws methods on two
metrics (e.g. PSNR against SIS) with confidence intervals, a sweep of a loss weight as a curve.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from scipy import ndimage


@dataclass(frozen=True)
class Case:
    """One test image and every method's output for it, all 2-D arrays of the same shape.

    Attributes:
        case_id: shown at the left of the case's rows.
        input: the network input (e.g. MR projection, zero-filled magnitude).
        outputs: method label -> output image, in column order.
        target: the reference image.
        crop: (row, column, size) of the square zoom window.
        input_has_error: also draw the input's error map (when input and target share a modality).
        display_range: intensity window (low, high) for images; default the target's min and max.
    """

    case_id: str
    input: np.ndarray
    outputs: dict[str, np.ndarray]
    target: np.ndarray
    crop: tuple[int, int, int]
    input_has_error: bool = False
    display_range: tuple[float, float] | None = None


def detail_crop(target: np.ndarray, size: int) -> tuple[int, int, int]:
    """The ``size`` x ``size`` window of ``target`` with the most fine detail (LoG energy).

    Returns:
        (row, column, size) of the window's top-left corner and its size.
    """
    size = min(size, *target.shape)
    energy = ndimage.gaussian_laplace(target.astype(np.float64), 1.0) ** 2
    window_sum = ndimage.uniform_filter(energy, size, mode="constant")
    half = size // 2
    valid = window_sum[half : target.shape[0] - size + half + 1, half : target.shape[1] - size + half + 1]
    row, column = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(row), int(column), size


def box_crop(mask: np.ndarray, size: int) -> tuple[int, int, int]:
    """A ``size`` x ``size`` window centred on the largest connected region of ``mask`` (e.g. the
    biggest lesion), shifted to stay inside the image; the image centre when ``mask`` is empty."""
    height, width = mask.shape
    size = min(size, height, width)
    regions, count = ndimage.label(mask)
    if count:
        largest = 1 + int(np.argmax(ndimage.sum_labels(mask, regions, range(1, count + 1))))
        rows, columns = np.nonzero(regions == largest)
        centre = ((rows.min() + rows.max()) // 2, (columns.min() + columns.max()) // 2)
    else:
        centre = (height // 2, width // 2)
    row = int(np.clip(centre[0] - size // 2, 0, height - size))
    column = int(np.clip(centre[1] - size // 2, 0, width - size))
    return row, column, size


def comparison_figure(path: Path, cases: Sequence[Case], input_label: str = "Input",
                      target_label: str = "Target", title: str | None = None) -> Path:
    """Draw the cases and save the figure as PNG (150 dpi) at ``path``.

    Returns:
        ``path``.
    """
    labels = [input_label, *cases[0].outputs, target_label]
    n_columns, n_rows = len(labels), 3 * len(cases)
    # matplotlib's object API (no pyplot): no global figure state, no GUI backend needed.
    figure = Figure(figsize=(1.9 * n_columns, 1.9 * n_rows))
    axes = figure.subplots(n_rows, n_columns, squeeze=False)
    for case_index, case in enumerate(cases):
        _draw_case(axes[3 * case_index : 3 * case_index + 3], case, labels, first=case_index == 0)
    if title:
        figure.suptitle(title, fontsize=11)
    # Leave room above the column titles for the figure title.
    figure.tight_layout(rect=(0, 0, 1, 1 - 0.35 / figure.get_figheight()) if title else None)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=150)
    return path


def _draw_case(axes: np.ndarray, case: Case, labels: list[str], first: bool) -> None:
    images = [case.input, *case.outputs.values(), case.target]
    low, high = case.display_range or (float(case.target.min()), float(case.target.max()))
    errors = [np.abs(image - case.target) for image in images[1:-1]]
    if case.input_has_error:
        errors.insert(0, np.abs(case.input - case.target))
    error_max = float(np.percentile(np.concatenate([e.ravel() for e in errors]), 99.5)) if errors else 1.0
    row, column, size = case.crop
    for index, (label, image) in enumerate(zip(labels, images, strict=True)):
        is_input = index == 0
        own_window = is_input and not case.input_has_error  # another modality: its own window
        window = (float(image.min()), float(image.max())) if own_window else (low, high)
        full, zoom, error = axes[0][index], axes[1][index], axes[2][index]
        full.imshow(image, cmap="gray", vmin=window[0], vmax=window[1])
        full.add_patch(Rectangle((column - 0.5, row - 0.5), size, size, fill=False, edgecolor="yellow",
                                 linewidth=0.8))
        zoom.imshow(image[row : row + size, column : column + size], cmap="gray", vmin=window[0],
                    vmax=window[1], interpolation="nearest")
        has_error = 0 < index < len(images) - 1 or (is_input and case.input_has_error)
        if has_error:
            error.imshow(np.abs(image - case.target), cmap="inferno", vmin=0, vmax=error_max)
        if first:
            full.set_title(label, fontsize=8)
        for axis in (full, zoom, error):
            axis.set_xticks([])
            axis.set_yticks([])
            if axis is error and not has_error:
                axis.axis("off")
    axes[0][0].set_ylabel(case.case_id, fontsize=7)
    axes[1][0].set_ylabel("zoom", fontsize=7)
    axes[2][0 if case.input_has_error else 1].set_ylabel(f"|error|, 0-{error_max:.2g}", fontsize=7)


@dataclass(frozen=True)
class TradeoffPoint:
    """One method in a trade-off figure: a value and its 95 % confidence interval on each axis.

    Attributes:
        label: the method's name (shown in the legend, or beside the point on a curve).
        x: (value, ci_low, ci_high) on the horizontal axis.
        y: (value, ci_low, ci_high) on the vertical axis.
        curve: points sharing a curve name are joined by a line, in the given order (e.g. the
            weights of a sweep); None draws a lone point.
    """

    label: str
    x: tuple[float, float, float]
    y: tuple[float, float, float]
    curve: str | None = None


def tradeoff_figure(path: Path, points: Sequence[TradeoffPoint], xlabel: str, ylabel: str,
                    title: str | None = None) -> Path:
    """Draw methods as points with confidence-interval error bars on two metrics; save as PNG.

    Points with infinite or NaN values are left out (e.g. the ground truth's infinite PSNR).

    Returns:
        ``path``.
    """
    figure = Figure(figsize=(6.4, 4.6))
    axis = figure.subplots()
    drawn = [p for p in points if np.isfinite([*p.x, *p.y]).all()]
    curves: dict[str, list[TradeoffPoint]] = {}
    for point in drawn:
        if point.curve is not None:
            curves.setdefault(point.curve, []).append(point)
            continue
        axis.errorbar(point.x[0], point.y[0], **_error_bars(point), fmt="o", capsize=3, label=point.label)
    for name, members in curves.items():
        bars = axis.errorbar([p.x[0] for p in members], [p.y[0] for p in members],
                             xerr=np.array([[p.x[0] - p.x[1], p.x[2] - p.x[0]] for p in members]).T,
                             yerr=np.array([[p.y[0] - p.y[1], p.y[2] - p.y[0]] for p in members]).T,
                             fmt="s-", capsize=3, label=name)
        for point in members:
            axis.annotate(point.label, (point.x[0], point.y[0]), textcoords="offset points", xytext=(5, 5),
                          fontsize=7, color=bars[0].get_color())
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="best")
    if title:
        axis.set_title(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=150)
    return path


def _error_bars(point: TradeoffPoint) -> dict[str, list[list[float]]]:
    return {"xerr": [[point.x[0] - point.x[1]], [point.x[2] - point.x[0]]],
            "yerr": [[point.y[0] - point.y[1]], [point.y[2] - point.y[0]]]}
