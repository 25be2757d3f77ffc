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
