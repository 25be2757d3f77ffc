"""``taskloss compare --mde``: mde.csv equals the library's design_mdes() for the data's design."""

import csv

import numpy as np
import pytest

from taskloss.metrics.comparisons import families_for, read_long_table
from taskloss.metrics.power import MDE_COLUMNS, design_mdes


@pytest.fixture
def results(tmp_path):
    rng = np.random.default_rng(4)
    path = tmp_path / "results.csv"
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["method", "subject", "case", "seed", "psnr", "mae"])
        for method, shift in [("l1", 0.0), ("perceptual", 0.5), ("mse", 0.0)]:
            for seed in range(2):
                for s in range(5):
                    for c in range(3):
                        writer.writerow([method, f"s{s}", f"c{c}", seed, 30 + shift + rng.normal(0, 0.4),
                                         0.05 + rng.normal(0, 0.01)])
    return path


def test_mde_csv_is_the_librarys_for_the_datas_design(tmp_path, results, taskloss_cli):
    out = tmp_path / "out"
    status, printed, error = taskloss_cli("compare", str(results), "--baseline", "l1", "--primary", "psnr",
                                  "--mde", "--out", str(out))
    assert status == 0, error
    with open(out / "mde.csv", newline="") as file:
        written = list(csv.DictReader(file))
    assert list(written[0]) == list(MDE_COLUMNS)
    expected = design_mdes(read_long_table(results), "l1", families_for(["psnr", "mae"], ["psnr"]))
    assert [(r["family"], r["metric"], r["method"], r["n_subjects"], r["n_seeds"]) for r in written] == [
        (e.family, e.metric, e.method, str(e.n_subjects), str(e.n_seeds)) for e in expected]
    assert [float(r["mde"]) for r in written] == pytest.approx([e.mde for e in expected], rel=1e-9)
    assert [float(r["alpha"]) for r in written] == pytest.approx([0.025] * 4)  # 2 tests per family
    assert {(r["n_subjects"], r["n_seeds"]) for r in written} == {("5", "2")}
    assert all(float(r["mde"]) > 0 for r in written)
    assert "minimal detectable effect" in printed and str(out / "mde.csv") in printed


def test_without_mde_no_mde_csv(tmp_path, results, taskloss_cli):
    out = tmp_path / "out"
    status, printed, error = taskloss_cli("compare", str(results), "--baseline", "l1", "--out", str(out))
    assert status == 0, error
    assert not (out / "mde.csv").exists() and "minimal detectable effect" not in printed
