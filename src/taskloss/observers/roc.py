"""Figures of merit of an observer's scores: AUC with DeLong's interval, d' with its normal-theory interval.

- AUC is the Mann-Whitney statistic ``U / (n_present n_absent)`` (:func:`scipy.stats.mannwhitneyu`),
  the probability that a signal-present image scores above a signal-absent one, ties counting 1/2:
  nonparametric, the area under the empirical ROC curve.
- Its interval is DeLong, DeLong & Clarke-Pearson (Biometrics 44(3), 1988): the variance
  ``var(V10) / n_present + var(V01) / n_absent`` of the structural components, computed from
  midranks as Sun & Xu (IEEE Signal Process. Lett. 21(11), 2014) show, then
  ``AUC +- z sqrt(var)`` clipped to [0, 1]. Written here because neither scipy nor scikit-learn
  has DeLong's variance.
- d' (the detectability SNR) is ``(mean_p - mean_a) / sqrt((var_p + var_a) / 2)`` (sample variances),
  as the LCD-CT toolbox computes it; its interval is ``d' +- z se`` with the large-sample standard
  error of a standardised mean difference, ``se^2 = (n_p + n_a) / (n_p n_a) + d'^2 / (2 (n_p + n_a))``
  (Hedges & Olkin, Statistical Methods for Meta-Analysis, 1985, ch. 5), exact for Gaussian scores
  as n grows.

Both intervals cover the sampling of the scored images; they do not include the variability of a
template estimated from finitely many training images (see :func:`taskloss.observers.detectability`).
"""

import math

import numpy as np
from scipy import stats

from taskloss.errors import InputError


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be in (0, 1), got {confidence}; e.g. 0.95 for a 95 % interval")
    return float(stats.norm.ppf(0.5 + confidence / 2))


def auc_delong(present: np.ndarray, absent: np.ndarray, confidence: float = 0.95) -> tuple[float, tuple[float, float]]:
    """Mann-Whitney AUC of scores and its DeLong confidence interval.

    Args:
        present: scores of signal-present images (n_p,), n_p >= 2.
        absent: scores of signal-absent images (n_a,), n_a >= 2.
        confidence: coverage of the interval, in (0, 1).

    Returns:
        ``(auc, (low, high))``, all in [0, 1].

    Examples:
        >>> auc, (low, high) = auc_delong(np.array([2.0, 3.0, 1.5]), np.array([0.0, 1.0, 2.0]))
        >>> round(auc, 4), low < auc < high
        (0.8333, True)
    """
    present, absent = np.asarray(present, np.float64), np.asarray(absent, np.float64)
    n_p, n_a = present.size, absent.size
    if n_p < 2 or n_a < 2:
        raise InputError(f"AUC needs at least 2 scores per class, got {n_p} present and {n_a} absent")
    auc = float(stats.mannwhitneyu(present, absent, method="asymptotic").statistic) / (n_p * n_a)
    ranks = stats.rankdata(np.concatenate([present, absent]))
    v10 = (ranks[:n_p] - stats.rankdata(present)) / n_a  # per present image: share of absent below it
    v01 = 1.0 - (ranks[n_p:] - stats.rankdata(absent)) / n_p  # per absent image: share of present above it
    se = math.sqrt(np.var(v10, ddof=1) / n_p + np.var(v01, ddof=1) / n_a)
    z = _z(confidence)
    return auc, (max(0.0, auc - z * se), min(1.0, auc + z * se))


def dprime(present: np.ndarray, absent: np.ndarray, confidence: float = 0.95) -> tuple[float, tuple[float, float]]:
    """Detectability index d' of scores and its normal-theory confidence interval.

    Args:
        present: scores of signal-present images (n_p,), n_p >= 2.
        absent: scores of signal-absent images (n_a,), n_a >= 2.
        confidence: coverage of the interval, in (0, 1).

    Returns:
        ``(d', (low, high))``; d' is negative when absent images score higher.

    Raises:
        InputError: fewer than 2 scores per class, or scores with no spread in either class.

    Examples:
        >>> d, (low, high) = dprime(np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0]))
        >>> d, low < d < high
        (1.0, True)
    """
    present, absent = np.asarray(present, np.float64), np.asarray(absent, np.float64)
    n_p, n_a = present.size, absent.size
    if n_p < 2 or n_a < 2:
        raise InputError(f"d' needs at least 2 scores per class, got {n_p} present and {n_a} absent")
    spread = math.sqrt((np.var(present, ddof=1) + np.var(absent, ddof=1)) / 2)
    if spread == 0:
        raise InputError("the observer's scores do not vary within either class, so d' is undefined; "
                         "score images that differ in noise, one image per noise realisation")
    d = float((present.mean() - absent.mean()) / spread)
    se = math.sqrt((n_p + n_a) / (n_p * n_a) + d**2 / (2 * (n_p + n_a)))
    z = _z(confidence)
    return d, (d - z * se, d + z * se)


def grouped_bootstrap(present: np.ndarray, absent: np.ndarray, groups_present: object, groups_absent: object, *,
                      resamples: int = 2000, seed: int = 0, counts: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """AUC and d' of scores under a bootstrap over groups (subjects): the unit resampled is the group.

    Each resample draws the groups with replacement (every image of a drawn group comes along, once
    per draw), then computes the Mann-Whitney AUC and d' (this module's formulas, counts as weights)
    of the drawn scores. The scores are held fixed: a template fitted to the images is not refitted
    in each resample, so the spread is that of the scored subjects, not of the template's fit.

    Args:
        present: scores of signal-present images (n_p,).
        absent: scores of signal-absent images (n_a,).
        groups_present: the group (e.g. subject id) of each signal-present image (n_p,).
        groups_absent: the group of each signal-absent image (n_a,).
        resamples: bootstrap resamples B.
        seed: seed of the draws.
        counts: optional (B, G) draw counts over the sorted union of groups (pass the same array to
            two methods' calls for a paired bootstrap: :func:`group_draws` makes it).

    Returns:
        ``(auc, snr)``, each (B,); NaN where a resample holds fewer than 2 images of a class.

    Examples:
        >>> auc, snr = grouped_bootstrap(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0.0, 1.0, 2.0, 3.0]),
        ...                              ["a", "a", "b", "b"], ["a", "a", "b", "b"], resamples=200)
        >>> auc.shape, bool(np.nanmin(auc) >= 0.5)
        ((200,), True)
    """
    present, absent = np.asarray(present, np.float64), np.asarray(absent, np.float64)
    g_p, g_a = np.asarray(groups_present), np.asarray(groups_absent)
    if g_p.shape != present.shape or g_a.shape != absent.shape:
        raise InputError(f"groups_present has shape {g_p.shape} and groups_absent {g_a.shape}; give one group per "
                         f"score ({present.shape} and {absent.shape})")
    names = np.unique(np.concatenate([g_p, g_a]))
    if counts is None:
        counts = group_draws(len(names), resamples, seed)
    if counts.shape[1] != len(names):
        raise InputError(f"counts has {counts.shape[1]} groups but the scores have {len(names)}; make it with "
                         "group_draws(number of groups, ...)")
    w_p = counts[:, np.searchsorted(names, g_p)].astype(np.float64)  # (B, n_p)
    w_a = counts[:, np.searchsorted(names, g_a)].astype(np.float64)  # (B, n_a)
    wins = (present[:, None] > absent[None, :]) + 0.5 * (present[:, None] == absent[None, :])
    n_p, n_a = w_p.sum(axis=1), w_a.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = np.einsum("bi,ij,bj->b", w_p, wins, w_a) / (n_p * n_a)
        snr = (_weighted_mean(present, w_p, n_p) - _weighted_mean(absent, w_a, n_a)) / np.sqrt(
            (_weighted_var(present, w_p, n_p) + _weighted_var(absent, w_a, n_a)) / 2)
    enough = (n_p >= 2) & (n_a >= 2)
    return np.where(enough, auc, np.nan), np.where(enough, snr, np.nan)


def group_draws(n_groups: int, resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """(B, G) counts: how often each of ``n_groups`` groups is drawn in each of ``resamples`` bootstrap
    resamples of ``n_groups`` draws with replacement (seeded)."""
    if n_groups < 1 or resamples < 1:
        raise InputError(f"a bootstrap needs at least 1 group and 1 resample, got {n_groups} and {resamples}")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=resamples)


def _weighted_mean(values: np.ndarray, weights: np.ndarray, total: np.ndarray) -> np.ndarray:
    return weights @ values / total


def _weighted_var(values: np.ndarray, weights: np.ndarray, total: np.ndarray) -> np.ndarray:
    """The sample variance of the drawn scores (each score repeated by its weight), ddof 1."""
    mean = _weighted_mean(values, weights, total)
    return (weights * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / (total - 1)
