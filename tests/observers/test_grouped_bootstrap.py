"""The bootstrap over subjects (taskloss.observers.grouped_bootstrap) against a loop that copies the drawn
subjects' scores and scores them with scipy's Mann-Whitney and the module's d'."""

import numpy as np
import pytest
from scipy import stats

from taskloss.errors import InputError
from taskloss.observers import dprime, group_draws, grouped_bootstrap


def scores(seed=0, subjects=6, per_subject=5):
    rng = np.random.default_rng(seed)
    groups = np.repeat([f"s{i:02d}" for i in range(subjects)], per_subject)
    offsets = rng.normal(0.0, 0.5, subjects).repeat(per_subject)  # subject effects: scores cluster
    present = 1.0 + offsets + rng.normal(size=groups.size)
    absent = offsets + rng.normal(size=groups.size)
    return present, absent, groups


def test_each_resample_equals_the_statistics_of_the_copied_subjects():
    present, absent, groups = scores()
    counts = group_draws(6, resamples=25, seed=3)
    auc, snr = grouped_bootstrap(present, absent, groups, groups, counts=counts)
    names = np.unique(groups)
    for b in range(25):
        drawn = np.concatenate([np.flatnonzero(groups == name) for name, c in zip(names, counts[b], strict=True)
                                for _ in range(c)])
        p, a = present[drawn], absent[drawn]
        assert auc[b] == pytest.approx(stats.mannwhitneyu(p, a).statistic / (p.size * a.size), abs=1e-12)
        assert snr[b] == pytest.approx(dprime(p, a)[0], abs=1e-12)


def test_drawing_every_subject_once_gives_the_whole_set_and_draws_are_seeded():
    present, absent, groups = scores(1)
    auc, snr = grouped_bootstrap(present, absent, groups, groups, counts=np.ones((1, 6), dtype=int))
    assert auc[0] == pytest.approx(stats.mannwhitneyu(present, absent).statistic / present.size ** 2)
    assert snr[0] == pytest.approx(dprime(present, absent)[0])
    assert np.array_equal(group_draws(6, 10, seed=2), group_draws(6, 10, seed=2))
    assert (group_draws(6, 10, seed=2).sum(axis=1) == 6).all()


def test_clustered_scores_spread_more_over_subjects_than_over_images():
    """When the signal's visibility varies by subject, resampling subjects is wider than the normal-theory
    interval over images, which treats the 100 images per class as independent."""
    rng = np.random.default_rng(2)
    groups = np.repeat(np.arange(10), 10)
    present = 1.0 + rng.normal(0.0, 0.7, 10).repeat(10) + rng.normal(size=100)
    absent = rng.normal(size=100)
    _, snr = grouped_bootstrap(present, absent, groups, groups, resamples=2000)
    low, high = np.percentile(snr, [2.5, 97.5])
    _, (image_low, image_high) = dprime(present, absent)
    assert high - low > image_high - image_low


def test_a_class_missing_from_a_resample_is_nan_and_bad_groups_are_refused():
    present, absent = np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0])
    auc, _ = grouped_bootstrap(present, absent, ["a", "a", "a"], ["b", "b", "b"], counts=np.array([[2, 0], [1, 1]]))
    assert np.isnan(auc[0]) and auc[1] == pytest.approx(stats.mannwhitneyu(present, absent).statistic / 9)
    with pytest.raises(InputError, match=r"groups_present has shape \(2,\) and groups_absent \(3,\); give one group"):
        grouped_bootstrap(present, absent, ["a", "a"], ["b", "b", "b"])
    with pytest.raises(InputError, match=r"counts has 3 groups but the scores have 2"):
        grouped_bootstrap(present, absent, ["a"] * 3, ["b"] * 3, counts=np.ones((1, 3), dtype=int))
