"""Comparisons of methods with subjects (and training seeds) as the units of analysis.

Images of one subject are not independent (views of one head, slices of one volume), and one
training seed is one draw of the training noise; a paired test over images counts every image
as an independent unit and calls effects that a second subject sample or seed would not repeat.
This module compares each method with a baseline on a *long table*: one row per method,
subject, case (image or slice) and optional training seed, with one column per metric.

Method, for each (family, metric, method):

1. paired differences ``method - baseline`` on the same (subject, case, seed) keys (a method
   without seeds, e.g. zero-filling, pairs with every seed of the other side); a key where either
   value is missing (an empty cell: e.g. Dice on a slice without a lesion) is left out;
2. the mean difference per subject and seed (over that subject's cases), then per subject
   (over seeds): one number per subject;
3. with one seed: the two-sided one-sample t test and the ``1 - alpha`` t interval of the
   subject means (``n_subjects - 1`` degrees of freedom). The subject means average many images
   each, so they are close to normal, and the t analysis is exact for normal subject means at
   any number of subjects; an exact sign-flip permutation test over subjects cannot reach
   p < 0.05 with 5 subjects (its smallest two-sided p is 2 / 2**5 = 0.0625). One seed is one
   trained network: the interval is about that network, and cannot hold the seed-to-seed noise;
4. with several seeds: the same mean, with the standard error
   ``sqrt(var(subject means) / n_subjects + var(seed means) / n_seeds)`` and Welch-Satterthwaite
   degrees of freedom (Satterthwaite 1946), so that a seed effect shared by every subject (one
   training run better on all images) widens the interval instead of passing for an effect of the
   method; and the difference estimated from each seed alone must have the sign of the overall
   difference before a direction is called (an effect whose sign depends on the seed is
   ``inconclusive``);
5. Holm's step-down adjustment within each family (statsmodels ``multipletests``);
6. verdict: ``higher`` / ``lower`` when the interval excludes 0, the adjusted p is below
   ``alpha`` and the seeds agree (the words describe the sign of the difference, whatever the
   metric's good direction); else ``equivalent`` when a smallest effect of interest is given
   and the interval lies inside ``(-smallest, +smallest)``; else ``inconclusive``.

Ratio metrics (SIS of Seitzer et al. 2018: mean Dice on reconstructions over mean Dice on the
ground truth, :mod:`taskloss.metrics.sis`) are a ratio of sums over the cases, not a mean of
per-case values: the difference of the two methods' ratios is estimated on the paired cases, and
its interval and test are those above applied to its delta-method linearisation, one contribution
per subject and seed (:func:`ratio_analysis`). docs/statistics.md gives the measured coverage of
every interval, and of a cluster bootstrap that this replaced.

Rank stability (:func:`rank_stability`) resamples subjects (and each method's seeds) with
replacement and counts how often each method ranks first.
"""

import csv
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats
from statsmodels.stats.multitest import multipletests

from taskloss.errors import DataError, InputError

KEY_COLUMNS = ("method", "subject", "case")
"""Columns every long table has; ``seed`` is optional."""
SEED_COLUMN = "seed"
VERDICTS = ("higher", "lower", "equivalent", "inconclusive")
COMPARISON_COLUMNS = ("family", "metric", "method", "baseline", "n_subjects", "n_seeds", "difference",
                      "ci_low", "ci_high", "p", "p_adjusted", "verdict")
"""Columns of ``comparisons.csv``, in order."""
RANK_COLUMNS = ("metric", "better", "method", "share_first", "resamples")
"""Columns of ``rank_stability.csv``, in order."""
PRIMARY = "primary"
EXPLORATORY = "exploratory"
RANK_RESAMPLES = 2_000
_FORMAT = "long table: columns method, subject, case, optional seed, and one numeric column per metric"


@dataclass(frozen=True)
class Ratio:
    """A ratio metric: per method, the sum of ``numerator`` over the paired cases over the sum of
    ``denominator`` (e.g. SIS: ``numerator`` the Dice on the method's output, ``denominator`` the Dice
    on the ground truth, cells empty on cases without the region of interest).

    Examples:
        >>> Ratio("sis", "dice", "dice_truth").numerator
        'dice'
    """

    name: str
    numerator: str
    denominator: str


@dataclass(frozen=True)
class Family:
    """A family of comparisons: Holm's adjustment runs over all its metric x method tests.

    Attributes:
        name: written in the ``family`` column (``primary``, ``exploratory:psnr``, ...).
        metrics: metric columns or :class:`Ratio` names.
        methods: methods compared with the baseline; None for every method but the baseline.

    Examples:
        >>> Family("primary", ("dice",)).methods is None
        True
    """

    name: str
    metrics: tuple[str, ...]
    methods: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Comparison:
    """One method against the baseline on one metric (a row of ``comparisons.csv``).

    Attributes:
        family: the family's name.
        metric: metric column or ratio name.
        method: the method compared.
        baseline: the method compared against.
        n_subjects: subjects with paired values (the units of the interval and the test).
        n_seeds: seeds paired (1 when neither side has seeds).
        difference: method - baseline: the mean of the subject means, or the difference of ratios.
        ci_low: lower end of the ``1 - alpha`` interval of ``difference`` (not adjusted for the family).
        ci_high: upper end of that interval.
        p: two-sided p-value.
        p_adjusted: Holm-adjusted p within the family.
        verdict: ``higher``, ``lower``, ``equivalent`` or ``inconclusive``.
        seed_differences: the difference estimated from each seed alone, in seed order.

    Examples:
        >>> row = Comparison("primary", "psnr", "b", "a", 6, 1, 0.5, 0.1, 0.9, 0.02, 0.04, "higher", (0.5,))
        >>> row.as_row()["verdict"]
        'higher'
    """

    family: str
    metric: str
    method: str
    baseline: str
    n_subjects: int
    n_seeds: int
    difference: float
    ci_low: float
    ci_high: float
    p: float
    p_adjusted: float
    verdict: str
    seed_differences: tuple[float, ...]

    def as_row(self) -> dict[str, object]:
        """The :data:`COMPARISON_COLUMNS` of this comparison."""
        return {name: getattr(self, name) for name in COMPARISON_COLUMNS}


@dataclass(frozen=True)
class RankShare:
    """How often a method ranks first on a metric over bootstrap resamples (a row of ``rank_stability.csv``).

    Attributes:
        metric: metric column or ratio name.
        better: ``higher`` or ``lower``: which values rank first.
        method: the method.
        share_first: share of resamples in which it ranks first, in [0, 1] (ties share the credit).
        resamples: number of resamples.

    Examples:
        >>> RankShare("psnr", "higher", "a", 0.75, 2000).share_first
        0.75
    """

    metric: str
    better: str
    method: str
    share_first: float
    resamples: int


class LongTable:
    """Per-case results of several methods: the input of :func:`compare` and :func:`rank_stability`.

    Built from rows of strings or numbers (:func:`read_long_table` reads a CSV file). Construction
    checks the key columns: present, non-empty, no duplicate (method, subject, case, seed), at least
    2 subjects, and each method with seeds on every row or on none. Metric columns are parsed when a
    comparison asks for them: a number, or an empty cell / ``nan`` for a value that is not defined
    (left out of the pairs).

    Args:
        rows: one mapping per case, column name -> value.
        source: named in error messages (the file).
        lines: the file line of each row (for messages); default 2, 3, ... (after a header line).

    Examples:
        >>> rows = [{"method": m, "subject": s, "case": "c0", "psnr": v}
        ...         for m, s, v in [("a", "s1", 20), ("a", "s2", 22), ("b", "s1", 21), ("b", "s2", 23.5)]]
        >>> table = LongTable(rows, source="example.csv")
        >>> table.methods, table.subjects
        (('a', 'b'), ('s1', 's2'))
    """

    def __init__(self, rows: Sequence[Mapping[str, object]], source: str = "the table",
                 lines: Sequence[int] | None = None) -> None:
        self.source = source
        if not rows:
            raise DataError(f"{source} has no rows; write one row per method, subject and case ({_FORMAT})")
        self.columns: tuple[str, ...] = tuple(rows[0].keys())
        for name in KEY_COLUMNS:
            if name not in self.columns:
                raise DataError(f"{source} has no column '{name}'; add it ({_FORMAT})")
        self.lines = np.asarray(lines if lines is not None else range(2, len(rows) + 2))
        self._cells = {name: [row.get(name) for row in rows] for name in self.columns}
        keys = {name: self._keys(name) for name in (*KEY_COLUMNS, SEED_COLUMN)}
        self.method, self.subject, self.case, self.seed = (keys[name] for name in (*KEY_COLUMNS, SEED_COLUMN))
        self.methods = tuple(dict.fromkeys(self.method))
        self.subjects = tuple(dict.fromkeys(self.subject))
        if len(self.subjects) < 2:
            raise DataError(f"{source}: column subject holds one subject only ({self.subjects[0]}); intervals "
                            "and tests over subjects need at least 2 subjects, add the results of more subjects")
        self.index: dict[tuple[str, str, str, str], int] = {}
        for row, key in enumerate(zip(self.method, self.subject, self.case, self.seed, strict=True)):
            if key in self.index:
                raise DataError(f"{source} line {self.lines[row]} repeats method {key[0]}, subject {key[1]}, case "
                                f"{key[2]}{_seed_text(key[3])} of line {self.lines[self.index[key]]}; keep one "
                                "row per method, subject, case and seed")
            self.index[key] = row
        self.seeds = {method: tuple(dict.fromkeys(s for m, s in zip(self.method, self.seed, strict=True)
                                                  if m == method)) for method in self.methods}
        for method, seeds in self.seeds.items():
            if "" in seeds and len(seeds) > 1:
                row = next(r for r, (m, s) in enumerate(zip(self.method, self.seed, strict=True))
                           if m == method and s == "")
                raise DataError(f"{source} line {self.lines[row]}, column seed: empty for method {method}, whose "
                                "other rows have seeds; give every row of a method a seed, or none (a "
                                "deterministic method)")
        self._numbers: dict[str, np.ndarray] = {}

    def _keys(self, name: str) -> tuple[str, ...]:
        if name not in self._cells:  # the optional seed column
            return ("",) * len(self.lines)
        values = tuple("" if v is None else str(v).strip() for v in self._cells[name])
        if name != SEED_COLUMN and "" in values:
            line = self.lines[values.index("")]
            raise DataError(f"{self.source} line {line}, column {name}: empty; every row needs a method, subject "
                            "and case")
        return values

    @property
    def metric_columns(self) -> tuple[str, ...]:
        """Every column that is not a key column, in file order."""
        return tuple(c for c in self.columns if c not in (*KEY_COLUMNS, SEED_COLUMN))

    def numbers(self, column: str) -> np.ndarray:
        """The values of a metric column, float64 (N,); NaN where a cell is empty or ``nan``.

        Raises:
            DataError: naming the line and column of a cell that is not a finite number.
        """
        if column not in self._numbers:
            if column not in self.metric_columns:
                raise InputError(f"metric {column}: no such column in {self.source} (metric columns: "
                                 f"{', '.join(self.metric_columns) or 'none'}); give one of them")
            values = np.empty(len(self.lines))
            for row, cell in enumerate(self._cells[column]):
                values[row] = self._number(cell, row, column)
            self._numbers[column] = values
        return self._numbers[column]

    def _number(self, cell: object, row: int, column: str) -> float:
        text = "" if cell is None else str(cell).strip()
        if text == "":
            return math.nan
        try:
            value = float(text)
        except ValueError:
            raise DataError(f"{self.source} line {self.lines[row]}, column {column}: {text!r} is not a number; write "
                            "a number, or leave the cell empty where the metric is not defined") from None
        if math.isinf(value):
            raise DataError(f"{self.source} line {self.lines[row]}, column {column}: {text} is infinite (e.g. the "
                            "PSNR of the ground truth itself); drop that method's rows or leave the cell empty")
        return value

    def check_method(self, method: str, role: str = "method") -> None:
        """Raise :class:`InputError` unless ``method`` is in the table."""
        if method not in self.methods:
            raise InputError(f"{role} {method!r} is not a method of {self.source} (methods: "
                             f"{', '.join(self.methods)}); give one of them")


def read_long_table(path: Path) -> LongTable:
    """Read a long-format CSV file (header line, then one row per method, subject, case and seed).

    Args:
        path: the CSV file.

    Returns:
        The :class:`LongTable`; messages name ``path`` and its lines.

    Raises:
        DataError: a missing key column, an empty key cell, a duplicate row, one subject only.

    Examples:
        >>> import tempfile
        >>> file = Path(tempfile.mkdtemp()) / "results.csv"
        >>> _ = file.write_text("method,subject,case,psnr\\na,s1,c0,20\\na,s2,c0,21\\n")
        >>> read_long_table(file).metric_columns
        ('psnr',)
    """
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        rows = []
        lines = []
        for row in reader:
            if None in row:
                raise DataError(f"{path} line {reader.line_num}: more cells than the header has columns; "
                                "quote cells that hold commas or fix the row")
            rows.append(row)
            lines.append(reader.line_num)
    if reader.fieldnames is None:
        raise DataError(f"{path} is empty; write a header line and one row per method, subject and case "
                        f"({_FORMAT})")
    if not rows:
        return LongTable([dict.fromkeys(reader.fieldnames, "")], source=str(path), lines=[1])
    return LongTable(rows, source=str(path), lines=lines)


def families_for(metrics: Sequence[str], primary: Sequence[str] = ()) -> list[Family]:
    """The primary family (``primary`` metrics, every method) and one exploratory family per other metric.

    Args:
        metrics: every metric compared, in output order.
        primary: the metrics of the primary family (a subset of ``metrics``).

    Returns:
        ``Family("primary", primary)`` (when ``primary`` is not empty), then
        ``Family("exploratory:<metric>", (metric,))`` for each other metric.

    Examples:
        >>> [f.name for f in families_for(["dice", "psnr"], primary=["dice"])]
        ['primary', 'exploratory:psnr']
    """
    unknown = [m for m in primary if m not in metrics]
    if unknown:
        raise InputError(f"primary metric {unknown[0]} is not among the metrics compared ({', '.join(metrics)}); "
                         "name a compared metric")
    families = [Family(PRIMARY, tuple(primary))] if primary else []
    return families + [Family(f"{EXPLORATORY}:{m}", (m,)) for m in metrics if m not in primary]


def compare(table: LongTable, baseline: str, families: Sequence[Family], *, alpha: float = 0.05,
            smallest_effects: Mapping[str, float] | None = None, ratios: Sequence[Ratio] = ()) -> list[Comparison]:
    """Compare every method of each family with ``baseline`` (see the module docstring for the method).

    Args:
        table: the long table.
        baseline: the method compared against.
        families: the families; Holm's adjustment runs within each.
        alpha: level of the tests; the intervals are ``1 - alpha`` intervals.
        smallest_effects: metric -> smallest effect of interest (> 0, the metric's units): enables
            the ``equivalent`` verdict.
        ratios: ratio metrics, named in the families by their ``name``.

    Returns:
        One :class:`Comparison` per family, metric and method, in that order.

    Raises:
        InputError: an unknown baseline, method or metric, a bad ``alpha`` or smallest effect, fewer
            than 2 subjects with paired values.
        DataError: a method without the baseline's cases, a cell that is not a finite number.

    Examples:
        >>> rows = [{"method": m, "subject": f"s{s}", "case": "c0", "psnr": 20 + s + (0.5 + 0.1 * s) * (m == "b")}
        ...         for m in "ab" for s in range(4)]
        >>> row, = compare(LongTable(rows), "a", families_for(["psnr"]))
        >>> row.verdict, round(row.difference, 2), row.n_subjects
        ('higher', 0.65, 4)
    """
    if not 0 < alpha < 1:
        raise InputError(f"alpha {alpha}: not in (0, 1); give a level such as 0.05")
    table.check_method(baseline, "baseline")
    smallest = dict(smallest_effects or {})
    ratio_by_name = {r.name: r for r in ratios}
    known = [*table.metric_columns, *ratio_by_name]
    for name, value in smallest.items():
        if name not in known:
            raise InputError(f"smallest effect of {name}: no such metric in {table.source} (metrics: "
                             f"{', '.join(known)}); name a metric")
        if not (math.isfinite(value) and value > 0):
            raise InputError(f"smallest effect of {name}: {value} is not a positive number; give the smallest "
                             "difference that matters, in the metric's units")
    plans = []
    for family in families:
        methods = family.methods if family.methods is not None else tuple(m for m in table.methods if m != baseline)
        if not methods:
            raise InputError(f"{table.source} holds only the baseline {baseline}; add the rows of a method to "
                             "compare with it")
        for method in methods:
            table.check_method(method)
            if method == baseline:
                raise InputError(f"family {family.name} compares the baseline {baseline} with itself; leave it "
                                 "out of the family's methods")
        for metric in family.metrics:
            for column in _columns_of(metric, ratio_by_name):
                table.numbers(column)
            plans.extend((family.name, metric, method) for method in methods)
    raw = [_compare_one(table, metric, method, baseline, ratio_by_name.get(metric), alpha)
           for _, metric, method in plans]
    adjusted = np.empty(len(plans))
    names = [name for name, _, _ in plans]
    for name in dict.fromkeys(names):
        members = [i for i, n in enumerate(names) if n == name]
        adjusted[members] = multipletests([raw[i][4] for i in members], method="holm")[1]
    comparisons = []
    for (name, metric, method), (n_subjects, difference, low, high, p, seed_differences), p_adj in zip(
            plans, raw, adjusted, strict=True):
        agree = all(np.sign(d) == np.sign(difference) for d in seed_differences)
        verdict = str(verdicts(difference, low, high, p_adj, agree, alpha, smallest.get(metric)))
        comparisons.append(Comparison(name, metric, method, baseline, n_subjects, len(seed_differences),
                                      difference, low, high, p, float(p_adj), verdict, seed_differences))
    return comparisons


def _columns_of(metric: str, ratios: Mapping[str, Ratio]) -> tuple[str, ...]:
    ratio = ratios.get(metric)
    return (ratio.numerator, ratio.denominator) if ratio else (metric,)


def _seed_text(seed: str) -> str:
    return f", seed {seed}" if seed else ""


def _keys(table: LongTable, method: str) -> tuple[list[tuple[str, str]], np.ndarray]:
    """The method's (subject, case) keys in table order and each key's subject index (0, 1, ...)."""
    keys = list(dict.fromkeys((s, c) for m, s, c in zip(table.method, table.subject, table.case, strict=True)
                              if m == method))
    subject_index = {s: i for i, s in enumerate(dict.fromkeys(s for s, _ in keys))}
    return keys, np.array([subject_index[s] for s, _ in keys])


def _rows(table: LongTable, method: str, keys: Sequence[tuple[str, str]], seeds: Sequence[str],
          reference: str) -> np.ndarray:
    """Row indices (keys, seeds) of ``method``; its seeds are ``seeds``, or none when it has none.

    Raises:
        DataError: the method lacks the row of one of the reference method's keys.
    """
    own = [seed if table.seeds[method] != ("",) else "" for seed in seeds]
    index = np.empty((len(keys), len(own)), dtype=np.int64)
    for k, seed in enumerate(own):
        for i, (subject, case) in enumerate(keys):
            row = table.index.get((method, subject, case, seed))
            if row is None:
                raise DataError(f"{table.source}: method {method} has no row for subject {subject}, case "
                                f"{case}{_seed_text(seed)}, which {reference} has; add the row or drop the "
                                f"method's rows (every method is scored on the cases of {reference})")
            index[i, k] = row
    return index


def _pairing(table: LongTable, method: str, baseline: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Subject index of the baseline's (subject, case) keys, and the method's and baseline's rows
    (keys, seeds) on the paired seeds.

    Raises:
        DataError: the method lacks one of the baseline's cases or seeds.
    """
    base_seeds, seeds = table.seeds[baseline], table.seeds[method]
    if base_seeds == ("",):
        paired = seeds
    elif seeds == ("",):
        paired = base_seeds
    else:
        missing = [s for s in base_seeds if s not in seeds]
        if missing:
            raise DataError(f"{table.source}: method {method} has no rows for seed {missing[0]}, which the baseline "
                            f"{baseline} has; add that seed's results or drop the method's rows (methods with "
                            "seeds are paired seed by seed)")
        paired = base_seeds
    keys, subjects = _keys(table, baseline)
    reference = f"the baseline {baseline}"
    return subjects, _rows(table, method, keys, paired, reference), _rows(table, baseline, keys, paired, reference)


def _subject_seed_sums(values: np.ndarray, subjects: np.ndarray, n_subjects: int) -> np.ndarray:
    """Sums of ``values`` (keys, seeds) per subject: (subjects, seeds); NaN values count 0."""
    sums = np.zeros((n_subjects, values.shape[1]))
    np.add.at(sums, subjects, np.nan_to_num(values, nan=0.0))
    return sums


def paired_units(table: LongTable, metric: str, method: str, baseline: str,
                 ratio: Ratio | None = None) -> np.ndarray:
    """The (subjects, seeds) values that compare()'s interval and test run on, for one comparison.

    For a metric column: the mean paired difference ``method - baseline`` over each subject's cases,
    per seed (steps 1-2 of the module docstring). For a ratio: the difference of the two ratios plus
    each subject and seed's delta-method contribution (:func:`ratio_units`). Subjects without any
    paired value are left out; NaN where a subject has no pair in a seed.

    Args:
        table: the long table.
        metric: the metric column (or the ratio's name, with ``ratio``).
        method: the method.
        baseline: the method compared against.
        ratio: the ratio metric, or None for a metric column.

    Returns:
        Array (subjects with values, paired seeds).

    Raises:
        InputError: fewer than 2 subjects with paired values; a ratio's denominator summing to 0 or less.
        DataError: a method without the baseline's cases or seeds, a cell that is not a finite number.

    Examples:
        >>> rows = [{"method": m, "subject": f"s{s}", "case": c, "psnr": s + (m == "b") * (c == "c1")}
        ...         for m in "ab" for s in range(2) for c in ("c0", "c1")]
        >>> paired_units(LongTable(rows), "psnr", "b", "a").tolist()
        [[0.5], [0.5]]
    """
    if ratio is None:
        return _paired(table, metric, method, baseline, None)[0]
    return ratio_units(*_paired(table, metric, method, baseline, ratio)[1])


def _paired(table: LongTable, metric: str, method: str, baseline: str,
            ratio: Ratio | None) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """(mean differences per subject and seed, ()) for a metric column; (empty, the four sums per
    subject and seed of :func:`ratio_analysis`) for a ratio."""
    subjects, rows, base_rows = _pairing(table, method, baseline)
    n = int(subjects.max()) + 1
    if ratio is None:
        differences = table.numbers(metric)[rows] - table.numbers(metric)[base_rows]
        counts = _subject_seed_sums(np.isfinite(differences).astype(float), subjects, n)
        with np.errstate(invalid="ignore"):
            per_subject_seed = _subject_seed_sums(differences, subjects, n) / counts  # NaN where no pairs
        kept = np.isfinite(per_subject_seed).any(axis=1)
        _check_subjects(table, metric, method, baseline, int(kept.sum()))
        return per_subject_seed[kept], ()
    parts = [table.numbers(ratio.numerator)[r] for r in (rows, base_rows)] + \
            [table.numbers(ratio.denominator)[r] for r in (rows, base_rows)]
    paired = np.logical_and.reduce([np.isfinite(p) for p in parts])
    sums = [_subject_seed_sums(np.where(paired, p, np.nan), subjects, n) for p in parts]
    count = _subject_seed_sums(paired.astype(float), subjects, n)
    kept = count.sum(axis=1) > 0
    _check_subjects(table, metric, method, baseline, int(kept.sum()))
    numerator, base_numerator, denominator, base_denominator = (s[kept] for s in sums)
    count = count[kept]
    for total, name in ((denominator, method), (base_denominator, baseline)):
        if not (total.sum(axis=0) > 0).all():
            raise InputError(f"ratio {ratio.name}: column {ratio.denominator} of method {name} sums to 0 or less "
                             f"over the paired cases of some seed in {table.source}; a ratio needs a positive "
                             "denominator")
    return np.empty((0, 0)), tuple(np.where(count > 0, x, np.nan) for x in (numerator, denominator, base_numerator,
                                                                               base_denominator))


def _compare_one(table: LongTable, metric: str, method: str, baseline: str, ratio: Ratio | None,
                 alpha: float) -> tuple[int, float, float, float, float, tuple[float, ...]]:
    """(n_subjects, difference, ci_low, ci_high, p, per-seed differences) of one method on one metric."""
    per_subject_seed, sums = _paired(table, metric, method, baseline, ratio)
    result = subject_analysis(per_subject_seed, alpha) if ratio is None else ratio_analysis(*sums, alpha)
    n_subjects = len(per_subject_seed) if ratio is None else len(sums[0])
    return (n_subjects, float(result.difference), float(result.ci_low), float(result.ci_high),
            float(result.p), tuple(float(d) for d in result.seed_differences))


def _check_subjects(table: LongTable, metric: str, method: str, baseline: str, n_subjects: int) -> None:
    if n_subjects < 2:
        raise InputError(f"metric {metric}: {method} and {baseline} have paired values in {n_subjects} subject(s) "
                         f"of {table.source}; the analysis needs at least 2 subjects with values, so fill the "
                         "empty cells or leave the metric out")


@dataclass(frozen=True)
class SubjectAnalysis:
    """The subject-level analysis of paired differences, for one or a batch of data sets.

    Attributes:
        difference: mean of the subject means (...,).
        ci_low: lower end of the ``1 - alpha`` t interval (...,).
        ci_high: upper end (...,).
        p: two-sided t-test p (...,).
        seed_differences: the mean difference of each seed alone, over subjects (..., seeds).
        seeds_agree: every seed's difference has the sign of ``difference`` (...,) bool.
    """

    difference: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p: np.ndarray
    seed_differences: np.ndarray
    seeds_agree: np.ndarray


def subject_analysis(per_subject_seed: np.ndarray, alpha: float = 0.05) -> SubjectAnalysis:
    """Interval and test of the mean paired difference over subjects and seeds (steps 2-4 of the module).

    With one seed: the one-sample t interval and t test of the subject means (n_subjects - 1 df).
    With several seeds: the same mean, with the two-component standard error
    ``sqrt(var(subject means) / n_subjects + var(seed means) / n_seeds)`` (subject means averaged over
    seeds, seed means averaged over subjects, sample variances) and Welch-Satterthwaite degrees of
    freedom, so that a seed effect shared by all subjects widens the interval.

    Args:
        per_subject_seed: mean paired difference (method - baseline) over each subject's cases, per
            seed: (..., subjects, seeds), leading axes a batch of data sets; NaN where a subject has no
            pair in a seed (each subject needs a value in some seed).
        alpha: the interval is a ``1 - alpha`` interval.

    Returns:
        A :class:`SubjectAnalysis` of arrays with the leading shape (...).

    Examples:
        >>> result = subject_analysis(np.array([[0.1], [0.3], [0.2]]))  # 3 subjects, 1 seed
        >>> round(float(result.difference), 3), round(float(result.ci_low), 3), round(float(result.p), 4)
        (0.2, -0.048, 0.0742)
    """
    # By hand rather than scipy.stats.ttest_1samp: scipy has no two-component standard error with
    # Satterthwaite degrees of freedom; with one seed this is scipy's one-sample t (a test checks it).
    x = np.asarray(per_subject_seed, dtype=float)
    subject_means = np.nanmean(x, axis=-1)
    seed_differences = np.nanmean(x, axis=-2)
    n_subjects, n_seeds = x.shape[-2:]
    difference = subject_means.mean(axis=-1)
    subject_part = subject_means.var(axis=-1, ddof=1) / n_subjects
    seed_part = seed_differences.var(axis=-1, ddof=1) / n_seeds if n_seeds > 1 else np.zeros_like(subject_part)
    se = np.sqrt(subject_part + seed_part)
    with np.errstate(invalid="ignore", divide="ignore"):
        df = (subject_part + seed_part) ** 2 / (
            subject_part**2 / (n_subjects - 1) + (seed_part**2 / (n_seeds - 1) if n_seeds > 1 else 0.0))
        half = scipy_stats.t.isf(alpha / 2, df) * se
        p = 2 * scipy_stats.t.sf(np.abs(difference) / se, df)
    # No spread at all: a zero-width interval, and p = 1 (no difference) or 0 (the same difference everywhere).
    flat = se == 0
    low = np.where(flat, difference, difference - half)
    high = np.where(flat, difference, difference + half)
    p = np.where(flat, np.where(difference == 0, 1.0, 0.0), p)
    agree = (np.sign(seed_differences) == np.sign(difference)[..., None]).all(axis=-1)
    return SubjectAnalysis(difference, low, high, p, seed_differences, agree)


def verdicts(difference: object, ci_low: object, ci_high: object, p_adjusted: object, seeds_agree: object,
             alpha: float, smallest: float | None = None) -> np.ndarray:
    """The verdicts of comparisons (step 6 of the module docstring), element-wise over arrays.

    Args:
        difference: method - baseline.
        ci_low: lower end of its interval.
        ci_high: upper end.
        p_adjusted: Holm-adjusted p.
        seeds_agree: whether every seed's difference has the sign of ``difference``.
        alpha: the level.
        smallest: the smallest effect of interest, or None (no ``equivalent`` verdict).

    Returns:
        Array of ``higher``, ``lower``, ``equivalent`` or ``inconclusive``, the broadcast shape.

    Examples:
        >>> verdicts([0.5, -0.5, 0.01, 0.5], [0.1, -0.9, -0.02, -0.1], [0.9, -0.1, 0.04, 1.1],
        ...          [0.01, 0.01, 0.5, 0.2], True, 0.05, smallest=0.05).tolist()
        ['higher', 'lower', 'equivalent', 'inconclusive']
    """
    difference, low, high = (np.asarray(x, dtype=float) for x in (difference, ci_low, ci_high))
    called = ((low > 0) | (high < 0)) & (np.asarray(p_adjusted) < alpha) & np.asarray(seeds_agree, dtype=bool)
    inside = np.zeros_like(called) if smallest is None else (-smallest < low) & (high < smallest)
    return np.where(called, np.where(difference > 0, "higher", "lower"),
                    np.where(inside, "equivalent", "inconclusive"))


def ratio_analysis(numerator: np.ndarray, denominator: np.ndarray, base_numerator: np.ndarray,
                   base_denominator: np.ndarray, alpha: float = 0.05) -> SubjectAnalysis:
    """Difference of two ratios of sums, with the interval and test of :func:`subject_analysis` on its linearisation.

    Each method's ratio is its numerator's sum over its denominator's sum, over every subject and seed.
    The difference ``R - R_base`` is a smooth function of those sums; its first-order (delta-method)
    expansion splits it into one contribution per subject and seed,
    ``(numerator - R denominator) / mean(denominator) - (the baseline's)``, which
    :func:`subject_analysis` treats like mean differences (Cochran 1977, Sampling Techniques, 6.3:
    the variance of a ratio estimator). A cluster bootstrap over 5 subjects covered a known
    difference less often (docs/statistics.md).

    Args:
        numerator: the method's numerator summed over each subject's paired cases, per seed (subjects, seeds);
            NaN where a subject has no paired case in a seed.
        denominator: the method's denominator, summed the same way (subjects, seeds).
        base_numerator: the baseline's numerator (subjects, seeds).
        base_denominator: the baseline's denominator (subjects, seeds).
        alpha: the interval is a ``1 - alpha`` interval.

    Returns:
        A :class:`SubjectAnalysis`; ``seed_differences`` are the differences of each seed's own ratios.

    Examples:
        >>> truth = np.array([[1.0], [2.0], [3.0], [2.0]])  # e.g. ground-truth Dice summed per subject
        >>> result = ratio_analysis(np.array([[0.9], [1.8], [2.6], [1.5]]), truth,
        ...                         np.array([[1.0], [1.9], [2.9], [1.9]]), truth)
        >>> round(float(result.difference), 4), round(float(result.ci_high), 4)
        (-0.1125, -0.0121)
    """
    difference = _ratio(numerator, denominator) - _ratio(base_numerator, base_denominator)
    result = subject_analysis(ratio_units(numerator, denominator, base_numerator, base_denominator), alpha)
    seed_differences = _ratio(numerator, denominator, 0) - _ratio(base_numerator, base_denominator, 0)
    return SubjectAnalysis(result.difference, result.ci_low, result.ci_high, result.p, seed_differences,
                           (np.sign(seed_differences) == np.sign(difference)).all(axis=-1))


def _ratio(top: np.ndarray, bottom: np.ndarray, axis: int | None = None) -> np.ndarray:
    return np.nansum(top, axis=axis) / np.nansum(bottom, axis=axis)


def ratio_units(numerator: np.ndarray, denominator: np.ndarray, base_numerator: np.ndarray,
                base_denominator: np.ndarray) -> np.ndarray:
    """The difference of two ratios of sums plus each subject and seed's delta-method contribution.

    ``R - R_base + (numerator - R denominator) / mean(denominator) - (the baseline's)``, with the
    contributions centred so that the mean of the subject means is exactly ``R - R_base``
    (:func:`ratio_analysis` runs :func:`subject_analysis` on these).

    Args:
        numerator: the method's numerator summed per subject and seed (subjects, seeds); NaN where none.
        denominator: its denominator (subjects, seeds).
        base_numerator: the baseline's numerator (subjects, seeds).
        base_denominator: the baseline's denominator (subjects, seeds).

    Returns:
        Array (subjects, seeds), NaN where the inputs are.

    Examples:
        >>> ratio_units(np.array([[1.0], [3.0]]), np.array([[2.0], [2.0]]), np.array([[1.0], [1.0]]),
        ...             np.array([[2.0], [2.0]])).ravel().tolist()
        [0.0, 1.0]
    """
    difference = _ratio(numerator, denominator) - _ratio(base_numerator, base_denominator)
    contributions = ((numerator - _ratio(numerator, denominator) * denominator) / np.nanmean(denominator)
                     - (base_numerator - _ratio(base_numerator, base_denominator) * base_denominator)
                     / np.nanmean(base_denominator))
    # The contributions sum to 0; centre their subject-level mean exactly on the difference.
    return difference + contributions - np.nanmean(contributions, axis=-1).mean()


def rank_stability(table: LongTable, metrics: Sequence[str], *, lower_is_better: Iterable[str] = (),
                   ratios: Sequence[Ratio] = (), resamples: int = RANK_RESAMPLES, seed: int = 0,
                   methods: Sequence[str] | None = None) -> list[RankShare]:
    """How often each method ranks first per metric when subjects (and each method's seeds) are resampled.

    Each resample draws the subjects with replacement (the same draw for every method: the
    comparison stays paired) and, for each method with seeds, its seeds with replacement; a method's
    score is the mean over the drawn subjects of its subject means (over the cases every method has
    a value for, and over the drawn seeds), or for a ratio metric its ratio of sums over them.

    Args:
        table: the long table.
        metrics: metric columns or ratio names.
        lower_is_better: metrics on which the lowest value ranks first (MAE, NMSE, HFEN, ...).
        ratios: ratio metrics named in ``metrics``.
        resamples: bootstrap resamples.
        seed: seed of the resampling.
        methods: the methods ranked against each other (e.g. a baseline and the methods compared with
            it); None for every method of the table.

    Returns:
        One :class:`RankShare` per metric and method, in table order; per metric the shares sum to 1.

    Examples:
        >>> rows = [{"method": m, "subject": f"s{s}", "case": "c0", "mae": s + (m == "b")}
        ...         for m in "ab" for s in range(3)]
        >>> [(r.method, r.share_first) for r in rank_stability(LongTable(rows), ["mae"], lower_is_better=["mae"])]
        [('a', 1.0), ('b', 0.0)]
    """
    lower = set(lower_is_better)
    ratio_by_name = {r.name: r for r in ratios}
    unknown = [m for m in lower if m not in metrics]
    if unknown:
        raise InputError(f"lower-is-better metric {unknown[0]} is not among the metrics ranked "
                         f"({', '.join(metrics)}); name a ranked metric")
    for method in methods or ():
        table.check_method(method)
    ranked = tuple(m for m in table.methods if methods is None or m in methods)
    rng = np.random.default_rng(seed)
    reference = ranked[0]
    keys, subjects = _keys(table, reference)
    rows = {m: _rows(table, m, keys, table.seeds[m], f"method {reference}") for m in ranked}
    seed_draws = {m: rng.integers(0, len(table.seeds[m]), size=(resamples, len(table.seeds[m])))
                  for m in ranked}
    shares = []
    for metric in metrics:
        columns = _columns_of(metric, ratio_by_name)
        values = {m: np.stack([table.numbers(c)[r] for c in columns]) for m, r in rows.items()}
        complete = np.logical_and.reduce([np.isfinite(v).all(axis=(0, 2)) for v in values.values()])  # (keys,)
        kept = np.unique(subjects[complete])
        if kept.size < 2:
            raise InputError(f"metric {metric}: every method has a value in {kept.size} subject(s) of "
                             f"{table.source}; ranking over subjects needs at least 2, so fill the empty cells or "
                             "leave the metric out")
        renumbered = np.searchsorted(kept, subjects[complete])
        weights = rng.multinomial(kept.size, np.full(kept.size, 1.0 / kept.size), size=resamples).astype(float)
        scores = np.stack([_resampled_score(values[m][:, complete], renumbered, weights, seed_draws[m])
                           for m in ranked])  # (methods, B)
        if metric in lower:
            scores = -scores
        first = scores == scores.max(axis=0)
        share = (first / first.sum(axis=0)).mean(axis=1)
        shares.extend(RankShare(metric, "lower" if metric in lower else "higher", m, float(s), resamples)
                      for m, s in zip(ranked, share, strict=True))
    return shares


def _resampled_score(values: np.ndarray, subjects: np.ndarray, weights: np.ndarray,
                     seed_draws: np.ndarray) -> np.ndarray:
    """A method's score in each resample, (B,): ``values`` (1 or 2 columns, keys, seeds), ``weights`` (B, subjects)
    how often each subject is drawn, ``seed_draws`` (B, seeds) the seeds drawn."""
    n = weights.shape[1]
    sums = np.stack([_subject_seed_sums(v, subjects, n) for v in values])  # (columns, subjects, seeds)
    counts = _subject_seed_sums(np.ones(values.shape[1:]), subjects, n)
    drawn = sums[:, :, seed_draws].sum(axis=3)  # (columns, subjects, B): over each resample's seeds
    if values.shape[0] == 2:  # ratio of sums
        return np.einsum("bs,sb->b", weights, drawn[0]) / np.einsum("bs,sb->b", weights, drawn[1])
    means = drawn[0] / counts[:, seed_draws].sum(axis=2)
    return np.einsum("bs,sb->b", weights, means) / n


def write_comparisons(path: Path, comparisons: Sequence[Comparison]) -> Path:
    """Write ``comparisons.csv``: the :data:`COMPARISON_COLUMNS`, floats to 10 significant digits.

    Examples:
        >>> import tempfile
        >>> row = Comparison("primary", "psnr", "b", "a", 6, 1, 0.5, 0.1, 0.9, 0.02, 0.04, "higher", (0.5,))
        >>> path = write_comparisons(Path(tempfile.mkdtemp()) / "comparisons.csv", [row])
        >>> path.read_text().splitlines()[1]
        'primary,psnr,b,a,6,1,0.5,0.1,0.9,0.02,0.04,higher'
    """
    return _write(path, COMPARISON_COLUMNS, [c.as_row() for c in comparisons])


def write_rank_stability(path: Path, shares: Sequence[RankShare]) -> Path:
    """Write ``rank_stability.csv``: the :data:`RANK_COLUMNS`.

    Examples:
        >>> import tempfile
        >>> path = write_rank_stability(Path(tempfile.mkdtemp()) / "r.csv", [RankShare("psnr", "higher", "a", 1.0, 10)])
        >>> path.read_text().splitlines()
        ['metric,better,method,share_first,resamples', 'psnr,higher,a,1,10']
    """
    return _write(path, RANK_COLUMNS, [{c: getattr(s, c) for c in RANK_COLUMNS} for s in shares])


def _write(path: Path, columns: Sequence[str], rows: Sequence[Mapping[str, object]]) -> Path:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(columns)
        writer.writerows([format(v, ".10g") if isinstance(v, float) else v for v in (row[c] for c in columns)]
                         for row in rows)
    return path
