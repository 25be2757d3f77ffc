import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from taskloss.errors import InputError
from taskloss.metrics import paired_wilcoxon, summarize


def test_summary_by_hand():
    summary = summarize([2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0])
    assert summary.n == 8
    assert summary.mean == 5.0
    assert summary.sd == pytest.approx(np.sqrt(32 / 7))  # sample sd, ddof = 1
    assert summary.median == 4.5
    assert summary.ci_low < 5.0 < summary.ci_high
    assert summary.format(2) == "5.00 ± 2.14"


def test_bootstrap_ci_is_seeded_and_matches_normal_theory():
    values = np.random.default_rng(1).normal(10.0, 2.0, size=400)
    first, again, other = summarize(values, seed=3), summarize(values, seed=3), summarize(values, seed=4)
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert (first.ci_low, first.ci_high) != (other.ci_low, other.ci_high)
    half_width = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert first.ci_low == pytest.approx(values.mean() - half_width, abs=0.05)
    assert first.ci_high == pytest.approx(values.mean() + half_width, abs=0.05)


def test_infinite_values_propagate():
    perfect = summarize(torch.full((5,), float("inf")))
    assert perfect.mean == np.inf and perfect.sd == 0.0 and perfect.ci_low == np.inf
    assert perfect.format() == "∞"
    mixed = summarize([30.0, np.inf])
    assert mixed.mean == np.inf and np.isnan(mixed.sd)


def test_nan_and_empty_are_errors():
    with pytest.raises(InputError, match="holds 1 NaN"):
        summarize([1.0, np.nan])
    with pytest.raises(InputError, match="is empty"):
        summarize([])


def test_wilcoxon_equals_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(30, 2, 25)
    b = a - rng.normal(0.5, 1, 25)
    result = paired_wilcoxon(torch.from_numpy(a), b)
    expected = scipy_stats.wilcoxon(a, b)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.statistic == expected.statistic
    assert result.median_difference == pytest.approx(np.median(a - b))
    assert result.n == 25


def test_wilcoxon_edge_cases():
    assert paired_wilcoxon([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]).p_value == 1.0
    with pytest.raises(InputError, match="same images for both methods"):
        paired_wilcoxon([1.0, 2.0], [1.0])
    with pytest.raises(InputError, match="not finite"):
        paired_wilcoxon([np.inf, 2.0], [1.0, 1.0])
