"""benchmarks/measures.py on a tiny size: every row it can make here is printed, with agreement."""

import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "measures.py"
sys.path.insert(0, str(SCRIPT.parent))
import measures  # noqa: E402  (a script folder, not a package)


def test_rows_without_piq(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["measures.py", "--batch", "1", "--size", "176", "--repeat", "1",
                                      "--rows", "12", "--features", "4"])
    measures.main()
    out = capsys.readouterr().out
    assert "no --piq folder: the HaarPSI and VSI rows are skipped" in out
    rows = {line.split(" | ")[0].strip("| ") + " / " + line.split(" | ")[2]: line.split(" | ")
            for line in out.splitlines() if line.startswith("| ") and " ms " not in line}
    assert set(rows) == {"SSIM / pytorch-msssim", "MS-SSIM / pytorch-msssim",
                         "MS-SSIM (style torchmetrics) / torchmetrics", "FID / torchmetrics 1.9.0",
                         "KID / torchmetrics 1.9.0"}
    for cells in rows.values():
        assert float(cells[-1].strip(" |")) < 1e-5  # float64 agreement with the reference
