"""Score a reader study: MOS per method, inter-reader agreement, paired tests between methods.

Conventions:

- MOS of a method = mean of every stored rating of its images (all readers, all cases); sd is the
  sample standard deviation of those ratings (ddof = 1; 0 for one rating). A partly rated study is
  scored with the ratings it has; ``n_ratings`` says how many.
- Agreement is computed on the images rated by every reader (items x readers table): ICC(2,1),
  ICC(2,k) and Fleiss' kappa (see :mod:`taskloss.readers.agreement`). It needs 2 readers and 2 such
  images.
- Paired tests: for each pair of methods, the per-case MOS (mean over the readers who rated that
  case's image) of the cases where both images have ratings, compared with
  :func:`taskloss.metrics.stats.paired_wilcoxon`; p-values are also Holm-adjusted over all pairs.
"""

import csv
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskloss.metrics.stats import PairedTest, paired_wilcoxon
from taskloss.readers.agreement import Icc, category_counts, fleiss_kappa, holm, icc
from taskloss.readers.store import Method, Rating, Store

MOS_FILE = "mos.csv"
MOS_COLUMNS = ("method", "mos", "sd", "n_ratings", "n_readers")
PAIRS_FILE = "mos_pairs.csv"
AGREEMENT_FILE = "agreement.csv"


@dataclass(frozen=True)
class MethodMos:
    """MOS of one method.

    Attributes:
        method: the method key.
        label: its display label.
        mos: mean score; NaN without ratings.
        sd: sample sd of the scores (ddof = 1, 0 for one rating); NaN without ratings.
        n_ratings: number of ratings.
        n_readers: number of readers who rated at least one of its images.
    """

    method: str
    label: str
    mos: float
    sd: float
    n_ratings: int
    n_readers: int


@dataclass(frozen=True)
class Agreement:
    """Inter-reader agreement on the images every reader rated.

    Attributes:
        icc: ICC(2,1) and ICC(2,k).
        fleiss_kappa: Fleiss' kappa over the scale's categories.
    """

    icc: Icc
    fleiss_kappa: float


@dataclass(frozen=True)
class MethodComparison:
    """Paired comparison of two methods' per-case MOS.

    Attributes:
        method_a: key of the first method (earlier in table order).
        method_b: key of the second.
        test: the Wilcoxon signed-rank test of a against b (median_difference > 0: a rated higher).
        p_holm: the p-value after Holm's adjustment over every pair.
    """

    method_a: str
    method_b: str
    test: PairedTest
    p_holm: float


@dataclass(frozen=True)
class MosReport:
    """Everything ``taskloss readers mos`` reports.

    Attributes:
        methods: MOS per method, in table order.
        agreement: inter-reader agreement, or None when fewer than 2 readers or 2 images rated by all.
        comparisons: paired tests of every pair of methods with ratings.
        n_ratings: ratings stored.
        n_expected: ratings of a complete study (readers x images).
    """

    methods: list[MethodMos]
    agreement: Agreement | None
    comparisons: list[MethodComparison]
    n_ratings: int
    n_expected: int


def score_study(store: Store) -> MosReport:
    """Compute the :class:`MosReport` of the study in ``store``."""
    ratings = store.ratings()
    methods = store.methods()
    readers = store.reader_names()
    n_images = len(store.images())
    return MosReport(
        methods=[_method_mos(method, ratings) for method in methods],
        agreement=_agreement(ratings, readers, store.info().scale.values),
        comparisons=_comparisons(methods, ratings),
        n_ratings=len(ratings),
        n_expected=len(readers) * n_images,
    )


def _method_mos(method: Method, ratings: list[Rating]) -> MethodMos:
    scores = np.array([r.score for r in ratings if r.method == method.key], dtype=np.float64)
    n_readers = len({r.reader for r in ratings if r.method == method.key})
    if scores.size == 0:
        return MethodMos(method.key, method.label, float("nan"), float("nan"), 0, 0)
    sd = float(scores.std(ddof=1)) if scores.size > 1 else 0.0
    return MethodMos(method.key, method.label, float(scores.mean()), sd, int(scores.size), n_readers)


def _agreement(ratings: list[Rating], readers: list[str], categories: tuple[int, ...]) -> Agreement | None:
    by_image: dict[str, dict[str, int]] = {}
    for rating in ratings:
        by_image.setdefault(rating.image_id, {})[rating.reader] = rating.score
    complete = [[scores[name] for name in readers] for scores in by_image.values()
                if len(scores) == len(readers)]
    if len(readers) < 2 or len(complete) < 2:
        return None
    return Agreement(icc=icc(complete), fleiss_kappa=fleiss_kappa(category_counts(complete, categories)))


def _comparisons(methods: list[Method], ratings: list[Rating]) -> list[MethodComparison]:
    case_scores: dict[tuple[str, str], list[int]] = {}
    for rating in ratings:
        case_scores.setdefault((rating.method, rating.case_id), []).append(rating.score)
    per_case = {key: float(np.mean(scores)) for key, scores in case_scores.items()}
    tests = []
    for first, second in itertools.combinations([m.key for m in methods], 2):
        cases = sorted({c for (m, c) in per_case if m == first} & {c for (m, c) in per_case if m == second})
        if cases:
            tests.append((first, second, paired_wilcoxon([per_case[first, c] for c in cases],
                                                         [per_case[second, c] for c in cases])))
    adjusted = holm([test.p_value for _, _, test in tests]) if tests else []
    return [MethodComparison(a, b, test, float(p)) for (a, b, test), p in zip(tests, adjusted, strict=True)]


def _number(value: float) -> str:
    """A float for CSV: empty when NaN (no ratings), else repr-exact."""
    return "" if np.isnan(value) else repr(value)


def write_mos_csv(report: MosReport, path: Path) -> None:
    """Write ``method,mos,sd,n_ratings,n_readers`` (method = key; empty mos/sd without ratings)."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(MOS_COLUMNS)
        for row in report.methods:
            writer.writerow([row.method, _number(row.mos), _number(row.sd), row.n_ratings, row.n_readers])


def write_details(report: MosReport, study_dir: Path) -> list[Path]:
    """Write the paired tests (``mos_pairs.csv``) and agreement (``agreement.csv``) into the study.

    Returns:
        The paths written.
    """
    pairs_path = study_dir / PAIRS_FILE
    with pairs_path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["method_a", "method_b", "n_cases", "median_difference", "statistic", "p_value",
                         "p_holm"])
        for c in report.comparisons:
            writer.writerow([c.method_a, c.method_b, c.test.n, repr(c.test.median_difference),
                             repr(c.test.statistic), repr(c.test.p_value), repr(c.p_holm)])
    agreement_path = study_dir / AGREEMENT_FILE
    with agreement_path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["statistic", "value", "n_items", "n_readers"])
        if report.agreement is not None:
            icc_result = report.agreement.icc
            shape = (icc_result.n_items, icc_result.n_readers)
            writer.writerow(["icc_2_1", _number(icc_result.single), *shape])
            writer.writerow(["icc_2_k", _number(icc_result.average), *shape])
            writer.writerow(["fleiss_kappa", _number(report.agreement.fleiss_kappa), *shape])
    return [pairs_path, agreement_path]
