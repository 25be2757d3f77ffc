"""The report kit of every study (mr2xray, csmri, study files): the long per-image table, the
comparisons with subjects as the units, and their tables and verdict sentences.

Each study writes ``results/per_image.csv`` in the long format of ``taskloss compare``
(:mod:`taskloss.metrics.comparisons`; docs/statistics.md): columns ``method``, ``subject``,
``case``, then one column per metric, full precision, an empty cell where a value is not defined
(Dice on an image without the region). The report's comparisons are computed from that file as
written, by :func:`taskloss.metrics.comparisons.compare`: paired differences averaged per subject,
a t interval over subjects, Holm within each family, the verdicts ``higher`` / ``lower`` /
``equivalent`` / ``inconclusive``. A study declares its comparisons as :class:`Plan` s: a baseline,
the methods compared with it, the metrics, and the primary ones. A family is one plan's primary
metrics x methods (Holm over its tests), or one exploratory metric x the plan's methods; each plan is
one ``taskloss compare`` call (:meth:`Plan.command`, written into ``results/comparisons.md``), so
the command recomputes every row of ``results/comparisons.csv`` from ``results/per_image.csv``.
"""

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from taskloss.data.splits import subject_of
from taskloss.metrics.comparisons import (
    PRIMARY,
    Comparison,
    Family,
    LongTable,
    Ratio,
    compare,
    families_for,
    read_long_table,
    write_comparisons,
)
from taskloss.metrics.power import POWER, DesignMde, design_mdes
from taskloss.metrics.registry import METRICS
from taskloss.report import Column
from taskloss.studies.common import write_json, write_text
from taskloss.studies.layout import COMPARISONS_CSV, COMPARISONS_MD, PER_IMAGE_CSV, PLANS_FILE, RESULTS_DIR
from taskloss.training.checkpoint import atomic_write

ALPHA = 0.05
"""Level of the reports' tests; their intervals are 95 % intervals."""
LongRow = dict[str, object]
SIS_RATIO = Ratio("sis", "dice", "dice_truth")
"""SIS (Seitzer et al. 2018) as a ratio of long-table columns: the scoring network's Dice on the method's
output over its Dice on the ground truth, on the cases with a region (the cells of the others are empty)."""


@dataclass(frozen=True)
class Plan:
    """One declared set of comparisons against one baseline: exactly what one ``taskloss compare`` call makes.

    The primary family is ``primary`` x ``methods`` (Holm over its tests); every other metric of
    ``metrics`` is its own exploratory family (Holm over ``methods``), as
    :func:`taskloss.metrics.comparisons.families_for` builds them.

    Attributes:
        baseline: the method compared against.
        methods: the methods compared with it.
        metrics: metric columns (or :data:`SIS_RATIO`'s name ``sis``), in output order.
        primary: the metrics of the primary family, a subset of ``metrics``.

    Examples:
        >>> plan = Plan("unet-l1", ("unet-task",), ("psnr", "dice", "sis"), primary=("dice",))
        >>> [(f.name, f.metrics, f.methods) for f in plan.families()][:2]
        [('primary', ('dice',), ('unet-task',)), ('exploratory:psnr', ('psnr',), ('unet-task',))]
        >>> plan.command("per_image.csv")  # doctest: +NORMALIZE_WHITESPACE
        'taskloss compare per_image.csv --baseline unet-l1 --method unet-task --metric psnr --metric dice
         --metric sis --primary dice --ratio sis=dice/dice_truth --out comparisons/unet-l1'
    """

    baseline: str
    methods: tuple[str, ...]
    metrics: tuple[str, ...]
    primary: tuple[str, ...] = ()

    def families(self) -> list[Family]:
        """The plan's families, each over :attr:`methods`."""
        return [replace(f, methods=self.methods) for f in families_for(self.metrics, self.primary)]

    def ratios(self) -> tuple[Ratio, ...]:
        """The ratio metrics the plan names (:data:`SIS_RATIO` when ``sis`` is among the metrics)."""
        return (SIS_RATIO,) if SIS_RATIO.name in self.metrics else ()

    def command(self, csv_path: str) -> str:
        """The ``taskloss compare`` call that recomputes this plan's comparisons from ``csv_path``."""
        words = ["taskloss compare", csv_path, "--baseline", self.baseline]
        words += [f"--method {m}" for m in self.methods] + [f"--metric {m}" for m in self.metrics]
        words += [f"--primary {m}" for m in self.primary]
        words += [f"--ratio {r.name}={r.numerator}/{r.denominator}" for r in self.ratios()]
        return " ".join([*words, f"--out comparisons/{self.baseline}"])


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


def _ratio_defined(table: LongTable, ratio: Ratio) -> bool:
    """Whether ``ratio``'s denominator has a positive sum over the cells of every method and seed (SIS is
    undefined when the scoring network finds nothing on the ground truth, e.g. a segmenter trained for one
    epoch)."""
    values = table.numbers(ratio.denominator)
    groups = np.array([f"{m}\0{s}" for m, s in zip(table.method, table.seed, strict=True)])
    return all(np.nansum(values[groups == g]) > 0 for g in np.unique(groups))


def study_comparisons(path: Path, plans: Sequence[Plan], alpha: float = ALPHA
                      ) -> tuple[list[Plan], list[Comparison]]:
    """The comparisons of a study from its long CSV: each plan as :func:`taskloss.metrics.comparisons.compare`
    makes it (Holm within each of the plan's families), plans in order.

    Returns:
        The plans as computed (without methods-less plans, and without SIS where it is undefined) and
        their comparisons; none when the file holds fewer than 2 subjects (no interval over subjects
        exists; the report says so).
    """
    if subject_count(path) < 2:
        return [], []
    table = read_long_table(path)
    undefined = {r.name for r in (SIS_RATIO,) if r.numerator in table.metric_columns and not _ratio_defined(table, r)}
    used = [replace(plan, metrics=tuple(m for m in plan.metrics if m not in undefined),
                    primary=tuple(m for m in plan.primary if m not in undefined))
            for plan in plans if plan.methods]
    return used, [c for plan in used
                  for c in compare(table, plan.baseline, plan.families(), alpha=alpha, ratios=plan.ratios())]


def plan_commands(plans: Sequence[Plan], csv_path: str) -> str:
    """The ``taskloss compare`` calls that recompute ``plans`` from the study's long CSV, one per line."""
    return "\n".join(plan.command(csv_path) for plan in plans)


def _number(value: float) -> str:
    return f"{value:+.3g}" if abs(value) >= 1e-3 or value == 0 else f"{value:+.2e}"


def _p(value: float) -> str:
    return "< 0.001" if value < 1e-3 else f"{value:.3f}"


def comparisons_markdown(comparisons: Sequence[Comparison], label: Callable[[str], str],
                         commands: str = "") -> str:
    """The comparisons as a Markdown table (one row each), the line that says how they were made, and
    the ``taskloss compare`` calls (``commands``, :func:`plan_commands`) that recompute them; with no
    comparison, the sentence that says why."""
    if not comparisons:
        return NO_COMPARISON.format(subjects="fewer than 2") + "\n"
    lines = ["| Family | Metric | Method vs baseline | Subjects | Seeds | Difference [95 % CI] | p (Holm) | Verdict |",
             "|---|---|---|---:|---:|---|---:|---|"]
    lines += [f"| {c.family} | {c.metric.upper().replace('_', ' ')} | {label(c.method)} vs {label(c.baseline)} | "
              f"{c.n_subjects} | {c.n_seeds} | {_number(c.difference)} [{_number(c.ci_low)}, {_number(c.ci_high)}] | "
              f"{_p(c.p_adjusted)} | {_verdict_cell(c)} |" for c in comparisons]
    lines = [*lines, "", METHOD_NOTE]
    if commands:
        lines += ["", "```", commands, "```"]
    return "\n".join(lines) + "\n"


def _verdict_cell(c: Comparison) -> str:
    """The verdict, and for a direction whether it is the better one: ``higher (worse)``."""
    judged = better(c.metric, c.verdict) if c.verdict in ("higher", "lower") else ""
    return f"{c.verdict} ({judged})" if judged else c.verdict


METHOD_NOTE = ("*Method minus baseline on the same test images, averaged per subject (and seed); the 95 % t "
               "interval and the two-sided t test over subjects (the units: images of one subject are not "
               "independent; with several training seeds the seed-to-seed variance widens the interval, and a "
               "direction is called only when every seed agrees), SIS by the delta method on the ratio of sums; "
               f"Holm-adjusted within each family (α = {ALPHA}). `primary`: the comparisons the study declares, "
               "every other family exploratory. A verdict's direction is the sign of the difference, marked "
               "better or worse by the metric's good direction (lower for MAE, MSE, NMSE, HFEN). The `taskloss "
               "compare` calls below recompute every row from `results/per_image.csv`.*")


NO_COMPARISON = ("No comparison: the test split holds {subjects} subject(s), and an interval over subjects needs "
                 "at least 2 (run a larger preset, or give data with more subjects).")


LOWER_IS_BETTER = frozenset(name for name, metric in METRICS.items() if not metric.higher_is_better)
"""Metrics of the studies where a lower value is the better one (the errors of
:data:`taskloss.metrics.registry.METRICS`)."""
BETTER_HIGHER = frozenset({*(name for name, metric in METRICS.items() if metric.higher_is_better), "sis"})
"""Metrics of the studies where a higher value is the better one (and SIS and every Dice column)."""


def metric_column(name: str) -> Column:
    """The table column of the per-image metric ``name``: its header, direction and decimals
    (:data:`taskloss.metrics.registry.METRICS`)."""
    metric = METRICS[name]
    return Column(name, metric.label, metric.higher_is_better, digits=metric.digits)


def better(metric: str, verdict: str) -> str:
    """Whether a ``higher`` / ``lower`` verdict on ``metric`` is the ``better`` or the ``worse``
    direction; ``""`` for a metric whose good direction the studies do not know.

    Examples:
        >>> better("hfen", "higher"), better("psnr", "higher"), better("bone_dice", "lower"), better("x", "lower")
        ('worse', 'better', 'worse', '')
    """
    if metric in LOWER_IS_BETTER:
        good = "lower"
    elif metric in BETTER_HIGHER or "dice" in metric:
        good = "higher"
    else:
        return ""
    return "better" if verdict == good else "worse"


def verdict_sentence(comparison: Comparison, label: Callable[[str], str]) -> str:
    """One plain sentence for a comparison, quoting its interval; a direction says whether it is the
    better one (:func:`better`).

    "no effect larger than X" is said only of an interval that holds 0, X its farther end (the
    interval rules out larger effects of either sign at its level).

    Examples:
        >>> c = Comparison("primary", "psnr", "b", "a", 6, 1, 0.5, 0.1, 0.9, 0.002, 0.004, "higher", (0.5,))
        >>> verdict_sentence(c, str)
        '- b vs a, PSNR: higher by +0.5, better (95 % CI [+0.1, +0.9], 6 subjects, Holm p = 0.004; primary).'
        >>> c = Comparison("primary", "dice", "b", "a", 6, 1, 0.01, -0.02, 0.04, 0.4, 0.8, "inconclusive", (0.01,))
        >>> verdict_sentence(c, str)  # doctest: +ELLIPSIS
        '- b vs a, DICE: inconclusive, +0.01 (95 % CI [-0.02, +0.04], ...); no effect larger than 0.04 ...'
    """
    c = comparison
    what = f"- {label(c.method)} vs {label(c.baseline)}, {c.metric.upper().replace('_', ' ')}"
    seeds = f" x {c.n_seeds} seeds" if c.n_seeds > 1 else ""
    interval = (f"95 % CI [{_number(c.ci_low)}, {_number(c.ci_high)}], {c.n_subjects} subjects{seeds}, "
                f"Holm p {'= ' if c.p_adjusted >= 1e-3 else ''}{_p(c.p_adjusted)}; {c.family}")
    if c.verdict in ("higher", "lower"):
        judged = better(c.metric, c.verdict)
        return f"{what}: {c.verdict} by {_number(c.difference)}{', ' + judged if judged else ''} ({interval})."
    bound = max(abs(c.ci_low), abs(c.ci_high))
    tail = f"; no effect larger than {bound:.3g} (either sign: the far end of the interval)" if \
        c.ci_low <= 0 <= c.ci_high else ""
    return f"{what}: {c.verdict}, {_number(c.difference)} ({interval}){tail}."


def verdict_lines(comparisons: Sequence[Comparison], label: Callable[[str], str], subjects: int,
                  keep: Callable[[Comparison], bool] = lambda c: c.family == PRIMARY) -> list[str]:
    """The verdict sentences of the comparisons ``keep`` selects (default: the primary family), or the
    sentence that says why there are none."""
    if not comparisons:
        return ["- " + NO_COMPARISON.format(subjects=subjects)]
    lines = [verdict_sentence(c, label) for c in comparisons if keep(c)]
    if all(c.n_seeds == 1 for c in comparisons):
        lines.append("- " + ONE_SEED)
    return lines


ONE_SEED = ("One training seed: each verdict is about the networks trained here, not about their losses (another "
            "seed may move an effect of this size); exploratory until the study is rerun over seeds "
            "(`seeds:`, docs/studies.md).")


def write_plans(path: Path, plans: Sequence[Plan], labels: Mapping[str, str]) -> Path:
    """Record the declared ``plans`` and every method's label as JSON (read by :func:`read_plans`)."""
    write_json(path, {"plans": [{"baseline": p.baseline, "methods": list(p.methods), "metrics": list(p.metrics),
                                 "primary": list(p.primary)} for p in plans], "labels": dict(labels)})
    return path


def read_plans(path: Path) -> tuple[list[Plan], dict[str, str]]:
    """The plans and labels :func:`write_plans` recorded."""
    data = json.loads(path.read_text())
    plans = [Plan(p["baseline"], tuple(p["methods"]), tuple(p["metrics"]), tuple(p["primary"])) for p in data["plans"]]
    return plans, dict(data["labels"])


@dataclass(frozen=True)
class Reported:
    """What :func:`report_comparisons` wrote: the comparisons, the ``taskloss compare`` calls that
    recompute them, and the number of test subjects."""

    comparisons: list[Comparison]
    commands: str
    subjects: int


def report_comparisons(results: Path, rows: Sequence[LongRow], plans: Sequence[Plan],
                       label: Callable[[str], str]) -> Reported:
    """Write a study's ``per_image.csv`` (``rows``), ``plans.json``, ``comparisons.csv`` and
    ``comparisons.md`` into its results folder, the comparisons computed from the CSV as written.

    Args:
        results: the study's results folder.
        rows: the long table's rows (:func:`long_rows`).
        plans: the study's declared comparisons.
        label: a method's name in tables and sentences.
    """
    per_image = write_long_table(results / PER_IMAGE_CSV, rows)
    methods = dict.fromkeys(str(row["method"]) for row in rows)
    write_plans(results / PLANS_FILE, plans, {m: label(m) for m in methods})
    used, comparisons = study_comparisons(per_image, plans)
    commands = plan_commands(used, f"{RESULTS_DIR}/{PER_IMAGE_CSV}")
    write_comparisons(results / COMPARISONS_CSV, comparisons)
    write_text(results / COMPARISONS_MD, comparisons_markdown(comparisons, label, commands))
    return Reported(comparisons, commands, subject_count(per_image))



def plan_mdes(pilot: LongTable, plans: Sequence[Plan], n_subjects: int, n_seeds: int, *, alpha: float = ALPHA,
              power: float = POWER) -> tuple[list[DesignMde], list[str]]:
    """The minimal detectable effect of every primary comparison of ``plans`` for a design of
    ``n_subjects`` test subjects x ``n_seeds`` seeds, from the spread of the same comparisons in
    ``pilot`` (:func:`taskloss.metrics.power.design_mdes`: the pilot's variance components, the level
    alpha over the family's tests).

    Returns:
        The MDE rows, and one line per primary metric or method the pilot does not hold (not estimated).
    """
    rows: list[DesignMde] = []
    skipped: list[str] = []
    if SIS_RATIO.numerator in pilot.metric_columns and not _ratio_defined(pilot, SIS_RATIO):
        # As in the report (study_comparisons): SIS is undefined when the scorer finds nothing on the ground truth.
        skipped.append(f"{SIS_RATIO.name}: undefined in the pilot (its scorer's {SIS_RATIO.denominator} sums to 0 for "
                       "some method and seed)")
        plans = [replace(plan, primary=tuple(m for m in plan.primary if m != SIS_RATIO.name)) for plan in plans]
    for plan in plans:
        if plan.baseline not in pilot.methods:
            skipped.append(f"{plan.baseline} and the methods compared with it: the pilot holds no {plan.baseline}")
            continue
        methods = tuple(m for m in plan.methods if m in pilot.methods)
        columns = {m: (SIS_RATIO.numerator if m == SIS_RATIO.name else m) for m in plan.primary}
        metrics = tuple(m for m in plan.primary if columns[m] in pilot.metric_columns)
        skipped += [f"{m} vs {plan.baseline}: the pilot holds no {m}" for m in plan.methods if m not in methods]
        skipped += [f"{m} ({plan.baseline}'s plan): the pilot holds no column {columns[m]}"
                    for m in plan.primary if m not in metrics]
        if methods and metrics:
            # The level of the whole declared family (alpha over all its tests), also for the ones the pilot lacks.
            level = alpha * len(methods) * len(metrics) / (len(plan.methods) * len(plan.primary))
            rows += design_mdes(pilot, plan.baseline, [Family(PRIMARY, metrics, methods)], alpha=level, power=power,
                                ratios=plan.ratios(), n_subjects=n_subjects, n_seeds=n_seeds)
    return rows, skipped


def mde_markdown(rows: Sequence[DesignMde], skipped: Sequence[str], source: str, n_subjects: int, n_seeds: int,
                 alpha: float = ALPHA, power: float = POWER) -> str:
    """The minimal detectable effects of :func:`plan_mdes` as a Markdown section (table, then its assumptions)."""
    seeds = f"{n_seeds} seed" + ("s" if n_seeds != 1 else "")
    lines = [f"Minimal detectable effects of the primary comparisons for {n_subjects} test subjects x {seeds} "
             f"(power {power:.0%} of a higher / lower verdict, family-wise alpha {alpha}: each test planned at "
             f"alpha over its family's tests, Holm's level for the smallest p), from the spread in {source}:", "",
             "| metric | method | baseline | sd subject | sd seed | sd run | alpha per test | MDE |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {r.metric} | {r.method} | {r.baseline} | {r.sd_subject:.3g} | {r.sd_seed:.3g} | {r.sd_run:.3g} | "
              f"{r.alpha:.3g} | {r.mde:.3g} |" for r in rows]
    lines += ["", "The MDE is in the metric's units, either direction (docs/statistics.md, \"Minimal detectable "
              "effect\"); the design's subjects are the test split's and keep the pilot's cases per subject."]
    if rows and n_seeds > 1 and all(r.sd_seed == 0 and r.sd_run == 0 for r in rows):
        lines.append("A one-seed pilot cannot see the seed-to-seed noise (sd seed 0): for several seeds these "
                     "MDEs are lower bounds; a pilot of 2 or more seeds estimates it.")
    lines += [f"- not estimated: {line}" for line in skipped]
    return "\n".join(lines) + "\n"


def step_time_lines(info: Mapping[str, Mapping[str, Any]], label: Callable[[str], str]) -> list[str]:
    """The report's table of training costs: one row per run with a record (``evaluation/run.json``,
    :func:`taskloss.studies.common.write_run_info`), labelled ``label(name)``; runs without one are left out.

    >>> step_time_lines({"unet-l1": {"seconds_per_step": 0.0421, "steps": 30, "best_epoch": 3}, "x": {}}, str.upper)
    ['| Run | seconds per training step | steps | best epoch |', '|---|---|---|---|', '| UNET-L1 | 0.042 | 30 | 3 |']
    """
    return ["| Run | seconds per training step | steps | best epoch |", "|---|---|---|---|",
            *(f"| {label(name)} | {i['seconds_per_step']:.3f} | {i['steps']} | {i['best_epoch']} |"
              for name, i in info.items() if i)]

