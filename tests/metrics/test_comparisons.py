"""Subject- and seed-level comparisons (taskloss.metrics.comparisons) against scipy and Holm by hand."""

import numpy as np
import pytest
from scipy import stats

from taskloss.errors import DataError, InputError
from taskloss.metrics.comparisons import Family, LongTable, compare, families_for, ratio_analysis, subject_analysis


def _rows(effects: dict[str, float], n_subjects: int = 6, n_cases: int = 4, seed: int = 0) -> list[dict[str, object]]:
    """Clustered data: a subject effect shared by every method, image noise, a per-method shift."""
    rng = np.random.default_rng(seed)
    subject_effect = rng.normal(0, 1.0, n_subjects)
    rows = []
    for method, shift in effects.items():
        for s in range(n_subjects):
            for c in range(n_cases):
                rows.append({"method": method, "subject": f"s{s}", "case": f"c{c}",
                             "psnr": 30 + subject_effect[s] + shift + rng.normal(0, 0.5),
                             "ssim": 0.8 + 0.01 * subject_effect[s] + shift / 100 + rng.normal(0, 0.005)})
    return rows


def _holm_by_hand(p: list[float]) -> np.ndarray:
    """Holm (1979): sort, multiply the i-th smallest by (m - i), running maximum, cap at 1."""
    order = np.argsort(p)
    m = len(p)
    adjusted = np.empty(m)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (m - rank) * p[index])
        adjusted[index] = min(1.0, running)
    return adjusted


def test_one_seed_equals_scipys_one_sample_t_of_subject_means():
    rows = _rows({"a": 0.0, "b": 0.3})
    row, = compare(LongTable(rows), "a", [Family("primary", ("psnr",), ("b",))])
    table = {(r["method"], r["subject"], r["case"]): r["psnr"] for r in rows}
    diffs = np.array([[table["b", f"s{s}", f"c{c}"] - table["a", f"s{s}", f"c{c}"] for c in range(4)]
                      for s in range(6)]).mean(axis=1)
    test = stats.ttest_1samp(diffs, 0.0)
    interval = test.confidence_interval(0.95)
    assert row.n_subjects == 6 and row.n_seeds == 1
    assert row.difference == pytest.approx(diffs.mean(), abs=1e-12)
    assert row.p == pytest.approx(test.pvalue, rel=1e-9)
    assert (row.ci_low, row.ci_high) == pytest.approx((interval.low, interval.high), rel=1e-9)


def test_holm_within_a_family_equals_holm_by_hand_and_families_are_separate():
    rows = _rows({"a": 0.0, "b": 0.2, "c": 0.5, "d": -0.1})
    rows = compare(LongTable(rows), "a", families_for(["psnr", "ssim"], primary=["psnr"]))
    primary = [r for r in rows if r.family == "primary"]
    assert [r.metric for r in primary] == ["psnr"] * 3
    assert [r.p_adjusted for r in primary] == pytest.approx(_holm_by_hand([r.p for r in primary]), rel=1e-12)
    exploratory = [r for r in rows if r.family != "primary"]
    assert {r.family for r in exploratory} == {"exploratory:ssim"}
    assert [r.p_adjusted for r in exploratory] == pytest.approx(_holm_by_hand([r.p for r in exploratory]))


def test_several_seeds_add_the_seed_variance_and_a_seed_sign_flip_is_not_called():
    # 5 subjects x 3 seeds; seed 2 reverses the sign of a clear effect in seeds 0 and 1.
    x = np.array([[1.0, 1.1, -0.9], [1.2, 0.9, -1.0], [0.8, 1.0, -1.1], [1.1, 1.2, -0.8], [0.9, 1.0, -1.2]])
    result = subject_analysis(x)
    subject_means, seed_means = x.mean(axis=1), x.mean(axis=0)
    se = np.sqrt(subject_means.var(ddof=1) / 5 + seed_means.var(ddof=1) / 3)
    assert float(result.difference) == pytest.approx(x.mean())
    assert float(result.ci_high - result.ci_low) > 2 * 1.96 * se  # t quantile at Satterthwaite df > 1.96
    assert not bool(result.seeds_agree)


def test_no_effect_false_verdicts_near_alpha_where_a_per_image_test_is_not():
    # 600 data sets of 6 subjects x 12 images with no effect. A subject effect shared by both methods
    # cancels in the paired differences; what clusters them is the method x subject interaction (sd 0.3).
    rng = np.random.default_rng(7)
    sets, n_subjects, n_images = 600, 6, 12
    method_subject = rng.normal(0, 0.3, (sets, n_subjects, 1))
    diffs = method_subject + rng.normal(0, 0.5, (sets, n_subjects, n_images))
    result = subject_analysis(diffs.mean(axis=-1, keepdims=True))
    ours = float(np.mean(result.p < 0.05))
    per_image = float(np.mean([stats.wilcoxon(d.ravel()).pvalue < 0.05 for d in diffs]))
    se = np.sqrt(0.05 * 0.95 / sets)
    assert abs(ours - 0.05) < 4 * se
    assert per_image > 0.05 + 10 * se


def test_bad_tables_get_one_clear_error():
    rows = _rows({"a": 0.0, "b": 0.3})
    with pytest.raises(InputError, match="baseline"):
        compare(LongTable(rows), "zzz", families_for(["psnr"]))
    missing = [r for r in rows if not (r["method"] == "b" and r["case"] == "c0")]
    with pytest.raises(DataError):
        compare(LongTable(missing), "a", families_for(["psnr"]))
    bad = [dict(r) for r in rows]
    bad[3]["psnr"] = "high"
    with pytest.raises(DataError, match="psnr"):
        compare(LongTable(bad, source="r.csv"), "a", families_for(["psnr"]))
    one_subject = [r for r in rows if r["subject"] == "s0"]
    with pytest.raises((InputError, DataError), match="subject"):
        LongTable(one_subject)


def _ratio_sets(rng: np.random.Generator, sets: int, subjects: int, seeds: int, effect: float) -> list[tuple]:
    """SIS-like data sets as per-subject and seed sums (numerator, denominator, baseline numerator, baseline
    denominator): 2-6 ROI cases per subject, ground-truth Dice ~ U(0.6, 1) (the shared denominator), a
    method's Dice = truth x (quality + subject + run + case noise), noise independent of the truth, so the
    population ratios are the qualities 0.9 + effect and 0.9 and their difference is ``effect``."""
    data = []
    for _ in range(sets):
        sums = np.zeros((3, subjects, seeds))
        for s in range(subjects):
            truth = rng.uniform(0.6, 1.0, rng.integers(2, 7))
            v = rng.normal(0, 0.05)
            for k in range(seeds):
                w = rng.normal(0, 0.02)
                sums[0, s, k] = (truth * (0.9 + effect + v + w + rng.normal(0, 0.08, truth.size))).sum()
                sums[1, s, k] = (truth * (0.9 + rng.normal(0, 0.08, truth.size))).sum()
                sums[2, s, k] = truth.sum()
        data.append((sums[0], sums[2], sums[1], sums[2]))
    return data


@pytest.mark.parametrize("seeds", [1, 3])
def test_the_ratio_interval_covers_the_known_difference_of_ratios(seeds):
    # 1,000 simulated data sets of 6 subjects; docs/statistics.md measures 2,000 per design (0.934-0.972).
    effect, sets = -0.05, 1000
    results = [ratio_analysis(*d) for d in _ratio_sets(np.random.default_rng(11), sets, 6, seeds, effect)]
    covered = np.mean([float(r.ci_low) <= effect <= float(r.ci_high) for r in results])
    assert abs(covered - 0.95) < 4 * np.sqrt(0.95 * 0.05 / sets)
    assert np.mean([float(r.ci_high) < 0 for r in results]) > 0.2  # the effect is seen, not only covered
