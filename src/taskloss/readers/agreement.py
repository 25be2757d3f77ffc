"""Inter-reader agreement (ICC, Fleiss' kappa) and Holm's multiple-comparison adjustment.

Written with numpy because neither scipy nor the project's dependencies provide them (pingouin and
statsmodels do, at the cost of pandas-based stacks for three short closed-form formulas). The
formulas follow the original papers and are checked in the tests against their published examples:

- ICC: Shrout & Fleiss (1979), "Intraclass correlations: uses in assessing rater reliability",
  case 2: a two-way random-effects ANOVA (items and readers both random samples), absolute
  agreement. ICC(2,1) is the reliability of one reader's score, ICC(2,k) that of the mean of the k
  readers, i.e. of a MOS. (McGraw & Wong (1996) call them ICC(A,1) and ICC(A,k).)
- Fleiss' kappa: Fleiss (1971), "Measuring nominal scale agreement among many raters"; it treats
  the scores as nominal categories, so disagreeing by one point counts as much as by four.
- Holm (1979): step-down adjustment of p-values controlling the family-wise error rate.
"""

from dataclasses import dataclass

import numpy as np

from taskloss.errors import InputError


@dataclass(frozen=True)
class Icc:
    """Intraclass correlations of a complete items x readers table, Shrout & Fleiss case 2.

    Attributes:
        single: ICC(2,1), absolute agreement of single readers; NaN when every score is equal.
        average: ICC(2,k), reliability of the mean over the k readers; NaN likewise.
        n_items: number of items (rows).
        n_readers: number of readers (columns), k.
    """

    single: float
    average: float
    n_items: int
    n_readers: int


def _check_table(scores: object, what: str) -> np.ndarray:
    table = np.asarray(scores, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] < 2 or table.shape[1] < 2:
        raise InputError(f"{what} needs a 2-D table with at least 2 rows and 2 columns, got shape "
                         f"{table.shape}")
    if not np.isfinite(table).all():
        raise InputError(f"{what} needs a complete table; drop the items with missing (NaN) scores first")
    return table


def icc(scores: object) -> Icc:
    """ICC(2,1) and ICC(2,k) of a complete table of scores.

    Args:
        scores: array-like (n_items, k_readers), every item scored by every reader; n, k >= 2.

    Returns:
        An :class:`Icc`.

    Raises:
        InputError: for another shape or missing (non-finite) scores.
    """
    table = _check_table(scores, "ICC")
    n, k = table.shape
    grand = table.mean()
    ss_items = k * float(((table.mean(axis=1) - grand) ** 2).sum())
    ss_readers = n * float(((table.mean(axis=0) - grand) ** 2).sum())
    ss_error = float(((table - grand) ** 2).sum()) - ss_items - ss_readers
    ms_items = ss_items / (n - 1)
    ms_readers = ss_readers / (k - 1)
    ms_error = ss_error / ((n - 1) * (k - 1))
    single_denominator = ms_items + (k - 1) * ms_error + k * (ms_readers - ms_error) / n
    average_denominator = ms_items + (ms_readers - ms_error) / n
    with np.errstate(invalid="ignore", divide="ignore"):
        single = float(np.float64(ms_items - ms_error) / single_denominator)
        average = float(np.float64(ms_items - ms_error) / average_denominator)
    return Icc(single=single, average=average, n_items=n, n_readers=k)


def category_counts(scores: object, categories: tuple[int, ...]) -> np.ndarray:
    """Count, for each item, how many readers gave each category.

    Args:
        scores: array-like (n_items, k_readers) of integer scores, all in ``categories``.
        categories: every possible score.

    Returns:
        int64 array (n_items, len(categories)); each row sums to k.
    """
    table = _check_table(scores, "category counts")
    if not np.isin(table, categories).all():
        raise InputError(f"scores must all lie in {categories}; check the scale")
    return (table[:, :, None] == np.asarray(categories)[None, None, :]).sum(axis=1).astype(np.int64)


def fleiss_kappa(counts: object) -> float:
    """Fleiss' kappa from a table of category counts.

    Args:
        counts: array-like (n_items, n_categories): how many of the k readers put each item in each
            category; every row sums to the same k >= 2.

    Returns:
        Kappa; 1 for perfect agreement, about 0 for chance; NaN when every rating falls in one
        category (chance agreement is then 1 and kappa is undefined).

    Raises:
        InputError: for negative counts or rows with different totals.
    """
    table = np.asarray(counts, dtype=np.float64)
    if table.ndim != 2 or table.shape[0] < 1 or (table < 0).any():
        raise InputError(f"counts must be a 2-D table of non-negative counts, got shape {table.shape}")
    raters = table.sum(axis=1)
    k = raters[0]
    if k < 2 or not np.all(raters == k):
        raise InputError("every item needs the same number of ratings, at least 2; drop incomplete items")
    agreement = ((table**2).sum(axis=1) - k) / (k * (k - 1))
    proportions = table.sum(axis=0) / table.sum()
    chance = float((proportions**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(np.float64(agreement.mean() - chance) / (1.0 - chance))


def holm(p_values: object) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order.

    Args:
        p_values: array-like (m,) of p-values in [0, 1].

    Returns:
        float64 array (m,): adjusted p-values, each >= its raw value, capped at 1.
    """
    raw = np.asarray(p_values, dtype=np.float64).reshape(-1)
    order = np.argsort(raw, kind="stable")
    m = raw.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * raw[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted
