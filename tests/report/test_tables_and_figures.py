import csv
import io

import numpy as np
import pytest

from taskloss.metrics import summarize
from taskloss.report import Case, Column, ResultTable, Row, box_crop, comparison_figure, detail_crop

COLUMNS = (Column("mae", "MAE", higher_is_better=False), Column("psnr", "PSNR", higher_is_better=True, digits=2))


def _table() -> ResultTable:
    rows = [
        Row("UNet - p loss", {"mae": summarize([0.08, 0.10]), "psnr": summarize([27.0, 29.0])}, "p"),
        Row("CRN - p loss", {"mae": summarize([0.07, 0.07]), "psnr": summarize([28.0, 28.5])}, "p"),
        Row("UNet - ℓ1 loss", {"mae": summarize([0.06, 0.08]), "psnr": None}, "l1"),
        Row("ResNet - ℓ1 loss", {"mae": summarize([0.05, 0.05]), "psnr": summarize([30.0, 30.0])}, "l1"),
        Row("Ground truth", {"mae": summarize([0.0, 0.0]), "psnr": summarize([np.inf, np.inf])}),
    ]
    return ResultTable(COLUMNS, rows, "Test set.", first_header="Network - loss")


def test_best_per_group_follows_each_columns_direction():
    assert _table().best() == {(1, "mae"), (1, "psnr"), (3, "mae")}  # one psnr in group l1: no bold


def test_markdown_by_hand():
    lines = _table().markdown().splitlines()
    assert lines[0] == "| Network - loss | MAE ↓ | PSNR ↑ |"
    assert lines[2] == "| UNet - p loss | 0.090 ± 0.014 | 28.00 ± 1.41 |"
    assert lines[3] == "| CRN - p loss | **0.070 ± 0.000** | **28.25 ± 0.35** |"
    assert lines[4] == "| UNet - ℓ1 loss | 0.070 ± 0.014 | — |"
    assert lines[6] == "| Ground truth | 0.000 ± 0.000 | ∞ |"
    assert lines[-1] == "*Test set.*"


def test_latex_escapes_and_separates_groups():
    latex = _table().latex()
    assert "\\textbf{0.070 $\\pm$ 0.000}" in latex
    assert "UNet - $\\ell$1 loss" in latex
    assert "$\\infty$" in latex and "--" in latex
    assert latex.count("\\midrule") == 3  # header, p | l1, l1 | ground truth
    assert latex.strip().endswith("\\end{table}")


def test_csv_round_trips_full_precision():
    rows = list(csv.DictReader(io.StringIO(_table().csv())))
    assert rows[0]["network - loss"] == "UNet - p loss" and rows[0]["group"] == "p"
    assert float(rows[0]["mae_mean"]) == pytest.approx(0.09, abs=1e-15)
    assert rows[2]["psnr_mean"] == "" and rows[4]["psnr_mean"] == "inf"


def test_detail_crop_finds_the_textured_window():
    image = np.zeros((64, 64))
    image[40:56, 8:24] = np.random.default_rng(0).random((16, 16))
    row, column, size = detail_crop(image, 16)
    assert size == 16 and abs(row - 40) <= 2 and abs(column - 8) <= 2


def test_box_crop_centres_on_the_largest_region_and_stays_inside():
    mask = np.zeros((50, 60), bool)
    mask[2:6, 55:59] = True
    assert box_crop(mask, 20) == (0, 40, 20)
    mask[30:40, 10:20] = True  # a larger region elsewhere wins
    assert box_crop(mask, 20) == (24, 4, 20)
    assert box_crop(np.zeros((50, 60), bool), 20) == (15, 20, 20)


def test_comparison_figure_writes_a_png(tmp_path):
    rng = np.random.default_rng(1)
    target = rng.random((32, 32))
    case = Case("case-1", rng.random((32, 32)), {"A": target + 0.1, "B": target * 0.9}, target, (4, 4, 12))
    path = comparison_figure(tmp_path / "figure.png", [case, case], title="two cases")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    height, width = matplotlib.image.imread(path).shape[:2]
    assert width > height * 0.6  # 4 columns x 6 rows of panels


def test_tradeoff_figure_draws_finite_points_and_curves(tmp_path):
    from matplotlib.image import imread

    from taskloss.report import TradeoffPoint, tradeoff_figure

    points = [TradeoffPoint("Ground truth", (float("inf"), float("inf"), float("inf")), (1.0, 1.0, 1.0)),
              TradeoffPoint("RecNet", (30.0, 29.5, 30.5), (0.8, 0.7, 0.9)),
              TradeoffPoint("λ = 0", (30.0, 29.5, 30.5), (0.8, 0.7, 0.9), curve="sweep"),
              TradeoffPoint("λ = 1", (29.0, 28.4, 29.6), (0.9, 0.85, 0.95), curve="sweep")]
    path = tradeoff_figure(tmp_path / "tradeoff.png", points, "PSNR", "SIS", title="t")
    image = imread(path)
    assert image.shape[:2] == (690, 960)  # 6.4 x 4.6 inches at 150 dpi
    assert image[..., :3].std() > 0.05
