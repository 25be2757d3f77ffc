"""``taskloss compare``: the written table equals the library's comparisons; bad input is one line, nothing written."""

import csv

import numpy as np
import pytest

from taskloss.metrics.comparisons import COMPARISON_COLUMNS, compare, families_for, read_long_table


@pytest.fixture
def results(tmp_path):
    rng = np.random.default_rng(3)
    path = tmp_path / "results.csv"
    subjects = rng.normal(0, 1, 6)  # shared by every method: it cancels in the paired differences
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["method", "subject", "case", "psnr", "mae"])
        for method, shift in [("l1", 0.0), ("perceptual", 1.0), ("mse", 0.0)]:
            for s in range(6):
                for c in range(5):
                    writer.writerow([method, f"s{s}", f"c{c}", 30 + subjects[s] + shift + rng.normal(0, 0.3),
                                     0.05 + rng.normal(0, 0.01)])
    return path


def test_writes_the_librarys_comparisons_and_rank_stability(tmp_path, results, taskloss_cli):
    out = tmp_path / "out"
    status, _, error = taskloss_cli("compare", str(results), "--baseline", "l1", "--primary", "psnr",
                         "--lower-is-better", "mae", "--out", str(out))
    assert status == 0, error
    with open(out / "comparisons.csv", newline="") as file:
        written = list(csv.DictReader(file))
    assert list(written[0]) == list(COMPARISON_COLUMNS)
    expected = compare(read_long_table(results), "l1", families_for(["psnr", "mae"], ["psnr"]))
    assert [(r["family"], r["metric"], r["method"], r["verdict"]) for r in written] == [
        (e.family, e.metric, e.method, e.verdict) for e in expected]
    assert [float(r["p_adjusted"]) for r in written] == pytest.approx([e.p_adjusted for e in expected], rel=1e-8)
    perceptual = next(r for r in written if r["metric"] == "psnr" and r["method"] == "perceptual")
    assert perceptual["verdict"] == "higher" and perceptual["n_subjects"] == "6"
    with open(out / "rank_stability.csv", newline="") as file:
        shares = [r for r in csv.DictReader(file) if r["metric"] == "psnr"]
    assert sum(float(r["share_first"]) for r in shares) == pytest.approx(1.0)
    assert (out / "rank_stability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_method_restricts_the_families_and_so_holm(tmp_path, results, taskloss_cli):
    """With --method perceptual, the primary family holds one test: its adjusted p is its raw p."""
    out = tmp_path / "out"
    status, _, error = taskloss_cli("compare", str(results), "--baseline", "l1", "--method", "perceptual",
                                    "--primary", "psnr", "--out", str(out))
    assert status == 0, error
    with open(out / "comparisons.csv", newline="") as file:
        written = list(csv.DictReader(file))
    assert [(r["family"], r["metric"], r["method"]) for r in written] == [
        ("primary", "psnr", "perceptual"), ("exploratory:mae", "mae", "perceptual")]
    assert all(r["p"] == r["p_adjusted"] for r in written)
    # Rank stability ranks the same methods: the baseline and perceptual, not mse.
    with open(out / "rank_stability.csv", newline="") as file:
        shares = list(csv.DictReader(file))
    assert {r["method"] for r in shares} == {"l1", "perceptual"}
    psnr = {r["method"]: float(r["share_first"]) for r in shares if r["metric"] == "psnr"}
    assert psnr["perceptual"] > 0.99 and sum(psnr.values()) == pytest.approx(1.0)  # +1 dB on every subject


@pytest.mark.parametrize(("args", "message"), [
    (["--baseline", "zz"], "baseline 'zz' is not a method of"),
    (["--baseline", "l1", "--method", "vgg"], "method 'vgg' is not a method of"),
    (["--baseline", "l1", "--metric", "ssim"], "metric ssim is not a column of"),
    (["--baseline", "l1", "--smallest-effect", "psnr"], "--smallest-effect 'psnr': not NAME=VALUE with a number"),
    (["--baseline", "l1", "--metric", "psnr", "--lower-is-better", "mae"],
     "lower-is-better metric mae is not among the metrics ranked (psnr); name a ranked metric"),
])
def test_bad_options_exit_2_and_write_nothing(tmp_path, results, args, message, taskloss_cli):
    out = tmp_path / "out"
    status, _, error = taskloss_cli("compare", str(results), *args, "--out", str(out))
    assert status == 2
    assert error.startswith("taskloss: error: ") and message in error and error.count("\n") == 1
    assert not out.exists()


def test_a_non_numeric_cell_names_the_file_line_and_column(tmp_path, results, taskloss_cli):
    lines = results.read_text().splitlines()
    lines[4] = lines[4].rsplit(",", 1)[0] + ",bad"
    results.write_text("\n".join(lines) + "\n")
    status, _, error = taskloss_cli("compare", str(results), "--baseline", "l1", "--out", str(tmp_path / "out"))
    assert status == 2 and str(results) in error and "line 5" in error and "mae" in error
