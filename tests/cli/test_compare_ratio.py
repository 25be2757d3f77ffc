"""``taskloss compare --ratio``: SIS-style ratio metrics from any long CSV, worked by hand; bad specs are one line."""

import csv
import math

import pytest

# Per subject (sums over its cases): ground-truth Dice D = 1, 2, 3; net's Dice N = 0.6, 1.0, 2.0; ref's 0.8, 1.8, 2.8.
# SIS(net) = 3.6 / 6 = 0.6, SIS(ref) = 5.4 / 6 = 0.9: difference -0.3. Delta-method contributions per subject,
# (N - 0.6 D) / mean(D) - (N_ref - 0.9 D) / mean(D) with mean(D) = 2: +0.05, -0.1, +0.05, so the subject values are
# -0.25, -0.4, -0.25: mean -0.3, sample variance 0.0075, standard error sqrt(0.0075 / 3) = 0.05, t = -6 on 2 df.
# For 2 df the t distribution has F(t) = 1/2 + t / (2 sqrt(2 + t^2)): two-sided p = 1 - 6 / sqrt(38) and the 0.975
# quantile is q = 0.95 sqrt(2 / (1 - 0.95^2)).
ROWS = [  # method, subject, case, dice, dice_truth; case c9 of s1 has no region (both cells empty): left out
    ("net", "s1", "c0", 0.3, 0.5), ("net", "s1", "c1", 0.3, 0.5), ("net", "s1", "c9", "", ""),
    ("net", "s2", "c0", 0.5, 1.0), ("net", "s2", "c1", 0.5, 1.0),
    ("net", "s3", "c0", 0.6, 1.0), ("net", "s3", "c1", 0.7, 1.0), ("net", "s3", "c2", 0.7, 1.0),
    ("ref", "s1", "c0", 0.4, 0.5), ("ref", "s1", "c1", 0.4, 0.5), ("ref", "s1", "c9", "", ""),
    ("ref", "s2", "c0", 0.9, 1.0), ("ref", "s2", "c1", 0.9, 1.0),
    ("ref", "s3", "c0", 0.9, 1.0), ("ref", "s3", "c1", 0.9, 1.0), ("ref", "s3", "c2", 1.0, 1.0),
]
Q = 0.95 * math.sqrt(2 / (1 - 0.95**2))




@pytest.fixture
def results(tmp_path):
    path = tmp_path / "results.csv"
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["method", "subject", "case", "dice", "dice_truth"])
        writer.writerows(ROWS)
    return path


def _read(path):
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def test_a_ratio_is_compared_like_a_metric_with_the_hand_worked_interval(tmp_path, results, taskloss_cli):
    out = tmp_path / "out"
    status, _, error = taskloss_cli("compare", str(results), "--baseline", "ref", "--ratio", "sis=dice/dice_truth",
                         "--primary", "sis", "--out", str(out))
    assert status == 0, error
    rows = _read(out / "comparisons.csv")
    assert [(r["family"], r["metric"]) for r in rows] == [("primary", "sis"), ("exploratory:dice", "dice")]
    sis = rows[0]
    assert (sis["method"], sis["baseline"], sis["n_subjects"], sis["n_seeds"]) == ("net", "ref", "3", "1")
    assert float(sis["difference"]) == pytest.approx(-0.3, abs=1e-9)
    assert (float(sis["ci_low"]), float(sis["ci_high"])) == pytest.approx((-0.3 - 0.05 * Q, -0.3 + 0.05 * Q),
                                                                          abs=1e-8)
    assert float(sis["p"]) == pytest.approx(1 - 6 / math.sqrt(38), rel=1e-7)
    assert float(sis["p_adjusted"]) == float(sis["p"])  # a family of one
    assert sis["verdict"] == "lower"
    shares = {(r["metric"], r["method"]): float(r["share_first"]) for r in _read(out / "rank_stability.csv")}
    assert shares["sis", "ref"] == 1.0 and shares["sis", "net"] == 0.0  # ref's ratio is higher in every subject
    assert "dice_truth" not in {r["metric"] for r in rows}  # a denominator is not compared by default


@pytest.mark.parametrize(("specs", "message"), [
    (["sis"], "--ratio 'sis': not NAME=NUMERATOR/DENOMINATOR; write e.g. --ratio sis=dice/dice_truth "
              "(two metric columns)"),
    (["sis=dice"], "--ratio 'sis=dice': not NAME=NUMERATOR/DENOMINATOR; write e.g. --ratio sis=dice/dice_truth "
                   "(two metric columns)"),
    (["sis=dice/dice_truth/2"], "--ratio 'sis=dice/dice_truth/2': not NAME=NUMERATOR/DENOMINATOR; write e.g. "
                                "--ratio sis=dice/dice_truth (two metric columns)"),
    (["dice=dice/dice_truth"], "--ratio 'dice=dice/dice_truth': the name dice is already a metric column; give "
                               "the ratio another name"),
    (["sis=dice/dice_truth", "sis=dice/dice_truth"], "--ratio 'sis=dice/dice_truth': the name sis is already a "
                                                     "ratio; give the ratio another name"),
    (["sis=dice/truth"], "--ratio 'sis=dice/truth': denominator truth is not a column of {results} (metrics: "
                         "dice, dice_truth); name one of those"),
    (["sis=dice/dice"], "--ratio 'sis=dice/dice': numerator and denominator are the same column; name two columns"),
])
def test_bad_ratio_specs_are_one_exact_line_and_write_nothing(tmp_path, results, specs, message, taskloss_cli):
    out = tmp_path / "out"
    options = [part for spec in specs for part in ("--ratio", spec)]
    status, _, error = taskloss_cli("compare", str(results), "--baseline", "ref", *options, "--out", str(out))
    assert (status, error) == (2, f"taskloss: error: {message.format(results=results)}\n")
    assert not out.exists()


def test_a_denominator_summing_to_zero_is_one_line(tmp_path, results, taskloss_cli):
    zero = [(m, s, c, d, 0.0 if t != "" else t) for m, s, c, d, t in ROWS]
    with open(results, "w", newline="") as file:
        csv.writer(file).writerows([("method", "subject", "case", "dice", "dice_truth"), *zero])
    out = tmp_path / "out"
    status, _, error = taskloss_cli("compare", str(results), "--baseline", "ref", "--ratio", "sis=dice/dice_truth",
                         "--out", str(out))
    assert (status, error) == (2, f"taskloss: error: ratio sis: column dice_truth of method net sums to 0 or less "
                                  f"over the paired cases of some seed in {results}; a ratio needs a positive "
                                  "denominator\n")
    assert not out.exists()
