"""The rank-stability figure (taskloss.report.ranks): its matrix, its cells' shading and text, its PNG."""

import numpy as np
import pytest
from matplotlib.image import imread

from taskloss.errors import InputError
from taskloss.metrics.comparisons import LongTable, RankShare, rank_stability
from taskloss.report.ranks import percent, rank_stability_figure, share_matrix


def _shares() -> list[RankShare]:
    rows = [{"method": m, "subject": f"s{s}", "case": "c0", "psnr": s + 2.0 * (m == "b") + 0.3 * (m == "c") * s,
             "mae": s + (m == "a")} for m in "abc" for s in range(4)]
    return rank_stability(LongTable(rows), ["psnr", "mae"], lower_is_better=["mae"], resamples=500)


def test_the_matrix_holds_each_share_in_metric_and_method_order():
    shares = _shares()
    rows, columns, matrix = share_matrix(shares)
    assert rows == ["psnr (higher wins)", "mae (lower wins)"] and columns == ["a", "b", "c"]
    for share in shares:
        assert matrix[[r.split()[0] for r in rows].index(share.metric), columns.index(share.method)] == \
            share.share_first
    assert matrix.sum(axis=1) == pytest.approx([1.0, 1.0])
    # mae: a is worse by 1 everywhere; b and c tie in every resample and share the credit.
    assert matrix[1].tolist() == [0.0, 0.5, 0.5]
    missing = share_matrix(shares[:-1])[2]
    assert np.isnan(missing[1, 2]) and np.isfinite(missing[0]).all()


def test_the_figure_is_a_png_whose_cells_darken_with_the_share(tmp_path):
    shares = [RankShare("psnr", "higher", "a", 0.0, 100), RankShare("psnr", "higher", "b", 1.0, 100)]
    path = rank_stability_figure(tmp_path / "sub" / "rank_stability.png", shares)
    assert path == tmp_path / "sub" / "rank_stability.png"
    image = imread(path)
    height, width = image.shape[:2]
    assert (width, height) == (690, 258)  # max(4.6, 2.2 + 1 x 2 methods) x (1.3 + 0.42 x 1 metric) inches at 150 dpi
    row = image[int(height * 0.55), :, :3].mean(axis=1)  # through the cells
    left, right = row[int(width * 0.45)], row[int(width * 0.85)]
    assert left > 0.95 and right < 0.3  # share 0 is white, share 1 dark blue


def test_labels_and_bad_input():
    assert percent(0.0) == "0 %" and percent(0.001) == "<1 %" and percent(0.999) == ">99 %"
    with pytest.raises(InputError) as error:
        share_matrix([])
    assert str(error.value) == "rank-stability figure: no shares to draw; rank at least one metric"
