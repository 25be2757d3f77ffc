"""Statistics for reports: summaries with bootstrap confidence intervals and paired tests.

Per-image metric values in, small typed records out. Conventions:

- the standard deviation is the sample sd (ddof = 1), as "mean +- sd" tables report it;
- the 95 % confidence interval of the mean is the percentile bootstrap over images, seeded;
- methods are compared with the paired Wilcoxon signed-rank test on per-image values
  (two-sided, scipy's exact or normal-approximation method as scipy chooses for n).

Infinite values (PSNR of identical images) are allowed in summaries and propagate (mean +inf,
sd NaN unless every value is +inf); NaN values are an error.
"""

from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats as scipy_stats

from taskloss.errors import InputError

BOOTSTRAP_RESAMPLES = 10_000


@dataclass(frozen=True)
class Summary:
    """Summary of one method's per-image values.

    Attributes:
        n: number of values.
        mean: arithmetic mean.
        sd: sample standard deviation (ddof = 1); 0 for n = 1 or all values +inf; NaN when
            some but not all values are infinite.
        median: median.
        ci_low: lower end of the 95 % bootstrap confidence interval of the mean.
        ci_high: upper end of that interval.

    Examples:
        >>> Summary(n=3, mean=0.5, sd=0.25, median=0.5, ci_low=0.2, ci_high=0.8).format(2)
        '0.50 ± 0.25'
        >>> inf = float("inf")
        >>> Summary(n=2, mean=inf, sd=0.0, median=inf, ci_low=inf, ci_high=inf).format()
        '∞'
    """

    n: int
    mean: float
    sd: float
    median: float
    ci_low: float
    ci_high: float

    def format(self, digits: int = 3) -> str:
        """``"mean ± sd"`` with ``digits`` decimals; ``"∞"`` when the mean is infinite."""
        if np.isinf(self.mean):
            return "∞" if self.mean > 0 else "-∞"
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f}"


@dataclass(frozen=True)
class PairedTest:
    """Result of a paired two-sided Wilcoxon signed-rank test of ``a`` against ``b``.

    Attributes:
        n: number of pairs.
        statistic: scipy's Wilcoxon statistic.
        p_value: two-sided p-value; 1.0 when every difference is zero.
        median_difference: median of ``a - b``.

    Examples:
        >>> paired_wilcoxon([1.0, 2.0], [1.0, 2.0])  # no difference at all
        PairedTest(n=2, statistic=0.0, p_value=1.0, median_difference=0.0)
    """

    n: int
    statistic: float
    p_value: float
    median_difference: float


def _as_values(values: object, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise InputError(f"{name} is empty; pass at least one per-image value")
    if np.isnan(array).any():
        raise InputError(f"{name} holds {int(np.isnan(array).sum())} NaN values; drop or fix the "
                         "images that produced them before summarising")
    return array


def summarize(values: object, *, seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> Summary:
    """Mean, sd, median and seeded 95 % percentile-bootstrap CI of per-image values.

    Args:
        values: 1-D array-like or tensor of per-image values (any shape is flattened).
        seed: seed of the bootstrap resampling.
        resamples: number of bootstrap resamples.

    Returns:
        A :class:`Summary`.

    Examples:
        >>> summary = summarize([1.0, 2.0, 3.0, 4.0])
        >>> summary.n, summary.mean, round(summary.sd, 4), summary.median  # sd: sqrt(5 / 3)
        (4, 2.5, 1.291, 2.5)
        >>> summary.ci_low, summary.ci_high
        (1.5, 3.5)
    """
    array = _as_values(values, "values")
    n = array.size
    # numpy rather than scipy.stats.bootstrap: this propagates +inf values (PSNR of perfect
    # reconstructions) instead of failing, and stays a few vectorised lines.
    rng = np.random.default_rng(seed)
    means = array[rng.integers(0, n, size=(resamples, n))].mean(axis=1)
    finite = bool(np.isfinite(array).all())
    if n == 1 or np.isposinf(array).all():
        sd = 0.0
    elif finite:
        sd = float(array.std(ddof=1))
    else:
        sd = float("nan")
    # Interpolating between infinite resample means gives NaN; "nearest" keeps them infinite.
    low, high = np.percentile(means, [2.5, 97.5], method="linear" if finite else "nearest")
    return Summary(n=n, mean=float(array.mean()), sd=sd, median=float(np.median(array)),
                   ci_low=float(low), ci_high=float(high))


def paired_wilcoxon(a: object, b: object) -> PairedTest:
    """Paired two-sided Wilcoxon signed-rank test between two methods' per-image values.

    Args:
        a: per-image values of method A, 1-D, same images in the same order as ``b``.
        b: per-image values of method B.

    Returns:
        A :class:`PairedTest`; ``median_difference`` > 0 means A tends to be larger.

    Examples:
        >>> test = paired_wilcoxon([1.1, 2.2, 3.3, 4.4, 5.5], [1.0, 2.0, 3.0, 4.0, 5.0])
        >>> test.statistic, test.p_value  # every difference > 0: exact two-sided p = 2 / 2^5
        (0.0, 0.0625)
        >>> round(test.median_difference, 4)
        0.3
    """
    first = _as_values(a, "a")
    second = _as_values(b, "b")
    if first.shape != second.shape:
        raise InputError(f"a has {first.size} values but b has {second.size}; a paired test needs "
                         "the same images for both methods")
    differences = first - second
    if not np.isfinite(differences).all():
        raise InputError("a - b is not finite for some images (e.g. infinite PSNR); exclude those "
                         "images or compare a finite metric")
    if not differences.any():
        return PairedTest(n=first.size, statistic=0.0, p_value=1.0, median_difference=0.0)
    result = scipy_stats.wilcoxon(first, second, alternative="two-sided")
    return PairedTest(n=first.size, statistic=float(result.statistic),
                      p_value=float(result.pvalue), median_difference=float(np.median(differences)))
