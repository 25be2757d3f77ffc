"""The report kit of every study (mr2xray, csmri, study files): the long per-image table, the
comparisons with subjects as the units, and their tables and verdict sentences.

Each study writes ``results/per_image.csv`` in the long format of ``taskloss compare``
(:mod:`taskloss.metrics.comparisons`; docs/statistics.md): columns ``method``, ``subject``,
``case``, then one column per metric, full precision, an empty cell where a value is not defined
(Dice on an image without the region). The report's comparisons are computed from that file as
written, by :func:`taskloss.metrics.comparisons.compare`: paired differences averaged per subject,
a t interval over subjects, Holm within each family, the verdicts ``higher`` / ``lower`` /
``equivalent`` / ``inconclusive``. A study names its comparisons as *plans*: a baseline and the
families compared with it. Families of one name are one family across baselines (e.g. mr2xray's
primary family: perceptual vs l1 on every network): Holm runs over all of their tests. With one
baseline this is exactly ``taskloss compare per_image.csv --baseline B --primary ...``.
"""

import csv
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from statsmodels.stats.multitest import multipletests

from taskloss.metrics.comparisons import (
    PRIMARY,
    Comparison,
    Family,
    Ratio,
    compare,
    read_long_table,
    verdicts,
)
from taskloss.studies.paired import subject_of
from taskloss.training.checkpoint import atomic_write

ALPHA = 0.05
"""Level of the reports' tests; their intervals are 95 % intervals."""
LongRow = dict[str, object]
Plan = tuple[str, Sequence[Family]]
"""A baseline and the families of comparisons against it."""
SIS_RATIO = Ratio("sis", "dice", "dice_truth")
"""SIS (Seitzer et al. 2018) as a ratio of long-table columns: the scoring network's Dice on the method's
output over its Dice on the ground truth, on the cases with a region (the cells of the others are empty)."""


def case_subject(case: str) -> str:
    """The subject of a case id as the studies write them: the part before the last underscore.

    Examples:
        >>> case_subject("s005_z001"), case_subject("s003_a000.0"), case_subject("file1000_z012")
        ('s005', 's003', 'file1000')
    """
    return subject_of(case) or case


def long_rows(method: str, cases: Sequence[str], values: Mapping[str, np.ndarray],
              subjects: Sequence[str] | None = None) -> list[LongRow]:
    """Rows of the long table for one method: ``method``, ``subject``, ``case`` and each metric.

    Args:
        method: the method (run) name.
        cases: the case ids, N.
        values: metric -> (N,) values; NaN or an infinite value becomes an empty cell (not defined).
        subjects: the subject of each case; default :func:`case_subject` of the id.
    """
    subjects = subjects if subjects is not None else [case_subject(c) for c in cases]
    return [{"method": method, "subject": subject, "case": case,
             **{name: float(column[i]) for name, column in values.items()}}
            for i, (case, subject) in enumerate(zip(cases, subjects, strict=True))]


def write_long_table(path: Path, rows: Sequence[LongRow]) -> Path:
    """Write ``rows`` as the long CSV (columns in first-seen order; floats as ``repr``, so the file
    holds every digit)."""
    columns = list(dict.fromkeys(name for row in rows for name in row))

    def cell(value: object) -> str:
        if isinstance(value, float):
            return repr(value) if math.isfinite(value) else ""
        return "" if value is None else str(value)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            writer.writerows([cell(row.get(name)) for name in columns] for row in rows)

    atomic_write(path, write)
    return path


def subject_count(path: Path) -> int:
    """The number of subjects in a long CSV written by :func:`write_long_table`."""
    with open(path, newline="") as handle:
        return len({row["subject"] for row in csv.DictReader(handle)})


def study_comparisons(path: Path, plans: Sequence[Plan], ratios: Sequence[Ratio] = (),
                      alpha: float = ALPHA) -> list[Comparison]:
    """The comparisons of a study from its long CSV: each plan's families against its baseline, Holm
    over all tests of the families of one name (whatever their baseline).

    Returns:
        The comparisons in plan, family, metric and method order; empty when the file holds fewer
        than 2 subjects (no interval over subjects exists; the report says so).
    """
    if subject_count(path) < 2:
        return []
    table = read_long_table(path)
    rows = [c for baseline, families in plans for c in compare(table, baseline, families, alpha=alpha,
                                                                 ratios=ratios)]
    adjusted = np.array([c.p_adjusted for c in rows])
    for name in dict.fromkeys(c.family for c in rows):
        members = [i for i, c in enumerate(rows) if c.family == name]
        adjusted[members] = multipletests([rows[i].p for i in members], method="holm")[1]
    result = []
    for c, p_adjusted in zip(rows, adjusted, strict=True):
        agree = all(np.sign(d) == np.sign(c.difference) for d in c.seed_differences)
        verdict = str(verdicts(c.difference, c.ci_low, c.ci_high, p_adjusted, agree, alpha))
        result.append(Comparison(c.family, c.metric, c.method, c.baseline, c.n_subjects, c.n_seeds, c.difference,
                                 c.ci_low, c.ci_high, c.p, float(p_adjusted), verdict, c.seed_differences))
    return result


def _number(value: float) -> str:
    return f"{value:+.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:+.2e}"


def _p(value: float) -> str:
    return "< 0.001" if value < 1e-3 else f"{value:.3f}"


def comparisons_markdown(comparisons: Sequence[Comparison], label: Callable[[str], str]) -> str:
    """The comparisons as a Markdown table (one row each), with the line that says how they were made."""
    lines = ["| Family | Metric | Method vs baseline | Subjects | Difference [95 % CI] | p (Holm) | Verdict |",
             "|---|---|---|---:|---|---:|---|"]
    lines += [f"| {c.family} | {c.metric.upper().replace('_', ' ')} | {label(c.method)} vs {label(c.baseline)} | "
              f"{c.n_subjects} | {_number(c.difference)} [{_number(c.ci_low)}, {_number(c.ci_high)}] | "
              f"{_p(c.p_adjusted)} | {c.verdict} |" for c in comparisons]
    return "\n".join([*lines, "", METHOD_NOTE]) + "\n"


METHOD_NOTE = ("*Method minus baseline on the same test images, averaged per subject; the 95 % t interval and the "
               "two-sided t test over subjects (the units: images of one subject are not independent), Holm-adjusted "
               f"within each family (α = {ALPHA}); `primary`: the comparisons the study is about, every other family "
               "exploratory. One training seed: the interval is about these trained networks, not about the seed "
               "noise. `taskloss compare results/per_image.csv --baseline ...` recomputes them.*")


def verdict_sentence(comparison: Comparison, label: Callable[[str], str]) -> str:
    """One plain sentence for a comparison, quoting its interval.

    "no effect larger than X" is said only of an interval that holds 0, X its farther end (the
    interval rules out larger effects of either sign at its level).

    Examples:
        >>> c = Comparison("primary", "psnr", "b", "a", 6, 1, 0.5, 0.1, 0.9, 0.002, 0.004, "higher", (0.5,))
        >>> verdict_sentence(c, str)
        '- b vs a, PSNR: higher by +0.5 (95 % CI [+0.1, +0.9], 6 subjects, Holm p = 0.004; primary).'
        >>> c = Comparison("primary", "dice", "b", "a", 6, 1, 0.01, -0.02, 0.04, 0.4, 0.8, "inconclusive", (0.01,))
        >>> verdict_sentence(c, str)  # doctest: +ELLIPSIS
        '- b vs a, DICE: inconclusive, +0.01 (95 % CI [-0.02, +0.04], ...); no effect larger than 0.04 ...'
    """
    c = comparison
    what = f"- {label(c.method)} vs {label(c.baseline)}, {c.metric.upper().replace('_', ' ')}"
    interval = (f"95 % CI [{_number(c.ci_low)}, {_number(c.ci_high)}], {c.n_subjects} subjects, "
                f"Holm p {'= ' if c.p_adjusted >= 1e-3 else ''}{_p(c.p_adjusted)}; {c.family}")
    if c.verdict in ("higher", "lower"):
        return f"{what}: {c.verdict} by {_number(c.difference)} ({interval})."
    bound = max(abs(c.ci_low), abs(c.ci_high))
    tail = f"; no effect larger than {bound:.3g} (either sign: the interval's far end)" if \
        c.ci_low <= 0 <= c.ci_high else ""
    return f"{what}: {c.verdict}, {_number(c.difference)} ({interval}){tail}."


def verdict_lines(comparisons: Sequence[Comparison], label: Callable[[str], str], subjects: int,
                  keep: Callable[[Comparison], bool] = lambda c: c.family == PRIMARY) -> list[str]:
    """The verdict sentences of the comparisons ``keep`` selects (default: the primary family), or the
    sentence that says why there are none."""
    if not comparisons:
        return [f"- No comparison: the test split holds {subjects} subject(s), and an interval over subjects "
                "needs at least 2 (run a larger preset, or give data with more subjects)."]
    return [verdict_sentence(c, label) for c in comparisons if keep(c)]
