"""Power and minimal detectable effect (MDE) of the subject- and seed-level analysis of comparisons.

The analysis is the one :func:`taskloss.metrics.comparisons.compare` runs (steps 2-6 of its module
docstring): per subject and seed the mean paired difference over the subject's cases, then the t
analysis of the subject means with one seed, or the two-component standard error with
Welch-Satterthwaite degrees of freedom with several, a direction called only where the seeds agree.
The model of the (subject, seed) mean differences is the one of benchmarks/comparison_calibration.py:

    d[s, k] = effect + u[s] + v[k] + w[s, k],  u ~ N(0, sd_subject), v ~ N(0, sd_seed), w ~ N(0, sd_run)

``u`` is how much a subject's images favour the method (the method x subject interaction; a
subject effect shared by both methods cancels in the pair), ``v`` a training seed's deviation on
every subject, ``w`` one run's deviation on one subject, with the image noise averaged over that
subject's cases (so a design is assumed to keep the pilot's cases per subject).

Power is the probability of a ``higher`` or ``lower`` verdict (before Holm: for a family, plan at
alpha over the family's size, the level Holm applies to its smallest p). The MDE is the effect at
which the power is the target (0.8 by convention, Cohen 1988).

- One seed: the analysis is the one-sample t test of S subject means, about the one trained network
  (its seed's deviation is part of that network's effect, so ``sd_seed`` does not enter). The subject
  means have the sd ``sigma = sqrt(sd_subject**2 + sd_run**2)`` and the power is exact:
  ``P(|T'| > t_crit)`` with ``T'`` noncentral t with ``S - 1`` degrees of freedom and noncentrality
  ``effect sqrt(S) / sigma``, ``t_crit`` the ``1 - alpha / 2`` quantile of t (Cohen 1988, ch. 2).
- Several seeds: the statistic's estimated degrees of freedom and the seed-agreement rule have no
  closed form (the MDE of a noncentral t at Satterthwaite's expected degrees of freedom had a
  simulated power of 0.77, not 0.80, at 6 subjects x 3 seeds), so the power is simulated: :data:`DRAWS` data sets
  of the model, analysed by :func:`taskloss.metrics.comparisons.subject_analysis` and
  :func:`~taskloss.metrics.comparisons.verdicts` (compare()'s own code), with common random numbers
  across effects so that the MDE search is deterministic (Monte-Carlo sd of a power near 0.8:
  ``sqrt(0.8 x 0.2 / 20000) = 0.003``).

tests/metrics/test_power.py checks both against data sets simulated independently.
"""

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import optimize
from scipy import stats as scipy_stats

from taskloss.errors import InputError
from taskloss.metrics.comparisons import Family, LongTable, Ratio, paired_units, subject_analysis, verdicts

POWER = 0.8
"""Conventional target power (Cohen 1988, Statistical Power Analysis for the Behavioral Sciences)."""
DRAWS = 20_000
"""Simulated data sets behind the power of a design with several seeds."""
MDE_COLUMNS = ("family", "metric", "method", "baseline", "n_subjects", "n_seeds", "sd_subject", "sd_seed", "sd_run",
               "alpha", "power", "mde")
"""Columns of ``mde.csv``, in order."""


@dataclass(frozen=True)
class VarianceComponents:
    """Standard deviations of the model of the module docstring, in the metric's units.

    Attributes:
        sd_subject: of a subject's mean difference over subjects (``u``).
        sd_seed: of a seed's deviation shared by every subject (``v``); 0 when not estimable (one seed).
        sd_run: of one run's deviation on one subject, image noise averaged over its cases (``w``); 0 when
            not estimable (one seed: then it is counted in ``sd_subject``).
        n_subjects: subjects the components were estimated from (0 when given by hand).
        n_seeds: seeds they were estimated from (0 when given by hand).

    Examples:
        >>> VarianceComponents(0.3, 0.1, 0.2).sd_seed
        0.1
    """

    sd_subject: float
    sd_seed: float = 0.0
    sd_run: float = 0.0
    n_subjects: int = 0
    n_seeds: int = 0

    def __post_init__(self) -> None:
        for name in ("sd_subject", "sd_seed", "sd_run"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"{name} {value}: not a standard deviation; give a finite number >= 0")


def variance_components(per_subject_seed: np.ndarray, source: str = "variance components") -> VarianceComponents:
    """Estimate the components from a pilot's (subject, seed) mean differences.

    The moment (ANOVA) estimators of the two-way random-effects model without replication
    (Searle, Casella and McCulloch 1992, Variance Components, 4.7): with mean squares of subjects
    ``MS_s``, of seeds ``MS_k`` and residual ``MS_r``, ``sd_run**2 = MS_r``, ``sd_subject**2 =
    max(0, (MS_s - MS_r) / K)``, ``sd_seed**2 = max(0, (MS_k - MS_r) / S)``. With one seed only the
    subject means' spread is seen: ``sd_subject`` is their standard deviation (the run part included,
    which makes a design with more seeds look no better than it is) and ``sd_seed`` is 0 (a seed
    effect cannot be seen: the MDE of several seeds is then a lower bound).

    Args:
        per_subject_seed: mean paired difference per subject and seed (subjects, seeds), e.g.
            :func:`taskloss.metrics.comparisons.paired_units`; subjects with an empty (NaN) seed are left out.
        source: what the values are, for the error message.

    Returns:
        The :class:`VarianceComponents`, with the pilot's subjects and seeds.

    Raises:
        InputError: fewer than 2 subjects with a value in every seed.

    Examples:
        >>> round(variance_components(np.array([[0.1], [0.3], [0.2]])).sd_subject, 4)
        0.1
    """
    x = np.asarray(per_subject_seed, dtype=float)
    x = x[np.isfinite(x).all(axis=1)]
    n_subjects, n_seeds = x.shape
    if n_subjects < 2:
        raise InputError(f"{source}: {n_subjects} subject(s) have a value in every seed; estimating the "
                         "variance of a pilot needs at least 2, so fill the empty cells or leave the metric out")
    if n_seeds == 1:
        return VarianceComponents(float(x[:, 0].std(ddof=1)), 0.0, 0.0, n_subjects, 1)
    grand = x.mean()
    subject_means, seed_means = x.mean(axis=1), x.mean(axis=0)
    ms_subject = n_seeds * ((subject_means - grand) ** 2).sum() / (n_subjects - 1)
    ms_seed = n_subjects * ((seed_means - grand) ** 2).sum() / (n_seeds - 1)
    residual = x - subject_means[:, None] - seed_means[None, :] + grand
    ms_run = (residual**2).sum() / ((n_subjects - 1) * (n_seeds - 1))
    return VarianceComponents(math.sqrt(max(0.0, (ms_subject - ms_run) / n_seeds)),
                              math.sqrt(max(0.0, (ms_seed - ms_run) / n_subjects)), math.sqrt(ms_run),
                              n_subjects, n_seeds)


def pilot_components(table: LongTable, metric: str, method: str, baseline: str,
                     ratios: Sequence[Ratio] = ()) -> VarianceComponents:
    """The components of one comparison of a pilot long table, paired exactly as compare() pairs it.

    Args:
        table: the pilot's long table.
        metric: metric column or ratio name.
        method: the method.
        baseline: the method compared against.
        ratios: ratio metrics (a ratio's units are its delta-method contributions, as in compare()).

    Returns:
        The :class:`VarianceComponents` of ``method - baseline`` on ``metric``.

    Examples:
        >>> rows = [{"method": m, "subject": f"s{s}", "case": "c0", "psnr": 20 + s + (m == "b") * (0.5 + 0.1 * s)}
        ...         for m in "ab" for s in range(4)]
        >>> round(pilot_components(LongTable(rows), "psnr", "b", "a").sd_subject, 4)
        0.1291
    """
    ratio = {r.name: r for r in ratios}.get(metric)
    return variance_components(paired_units(table, metric, method, baseline, ratio),
                               f"metric {metric}, {method} - {baseline} in {table.source}")


def _spread(n_seeds: int, components: VarianceComponents) -> bool:
    """Whether the differences of a design vary at all (sd_seed does not enter with one seed)."""
    return bool(components.sd_subject or components.sd_run or (n_seeds > 1 and components.sd_seed))


def _check_design(n_subjects: int, n_seeds: int, components: VarianceComponents, alpha: float) -> None:
    if n_subjects < 2 or n_seeds < 1:
        raise InputError(f"design {n_subjects} subjects x {n_seeds} seeds: the analysis needs at least 2 subjects "
                         "and 1 seed")
    if not _spread(n_seeds, components):
        raise InputError("sd_subject and sd_run are 0 (and sd_seed, with several seeds): every difference would be "
                         "the same and any effect detected; give the spread measured in a pilot")
    if not 0 < alpha < 1:
        raise InputError(f"alpha {alpha}: not in (0, 1); give a level such as 0.05")


def _one_seed_power(effect: float, n_subjects: int, components: VarianceComponents, alpha: float) -> float:
    """Exact power of the two-sided one-sample t test of ``n_subjects`` subject means."""
    df = n_subjects - 1
    noncentrality = abs(effect) * math.sqrt(n_subjects) / math.hypot(components.sd_subject, components.sd_run)
    critical = scipy_stats.t.isf(alpha / 2, df)
    # The left tail P(T' < -critical) as the right tail of -T' (noncentrality -nc): scipy 1.17's nct.cdf
    # returns NaN there for a large noncentrality (df 1, nc 40), its sf 0.
    return float(scipy_stats.nct.sf(critical, df, noncentrality) + scipy_stats.nct.sf(critical, df, -noncentrality))


class _Simulation:
    """Common random numbers of one design with several seeds: the noise of :data:`DRAWS` data sets."""

    def __init__(self, n_subjects: int, n_seeds: int, components: VarianceComponents, draws: int, seed: int):
        rng = np.random.default_rng(seed)
        self.noise = (components.sd_subject * rng.standard_normal((draws, n_subjects, 1))
                      + components.sd_seed * rng.standard_normal((draws, 1, n_seeds))
                      + components.sd_run * rng.standard_normal((draws, n_subjects, n_seeds)))

    def power(self, effect: float, alpha: float) -> float:
        result = subject_analysis(effect + self.noise, alpha)
        called = verdicts(result.difference, result.ci_low, result.ci_high, result.p, result.seeds_agree, alpha)
        return float(np.isin(called, ("higher", "lower")).mean())


def detection_power(effect: float, n_subjects: int, n_seeds: int, components: VarianceComponents,
                    alpha: float = 0.05, *, draws: int = DRAWS, seed: int = 0) -> float:
    """Probability that compare()'s analysis of a design calls a direction (before Holm) at a true ``effect``.

    Args:
        effect: the true mean difference, metric units (either sign).
        n_subjects: subjects of the design (>= 2).
        n_seeds: seeds of the design (>= 1).
        components: the spread of the differences.
        alpha: level of the two-sided test.
        draws: simulated data sets (several seeds only).
        seed: seed of the simulation (several seeds only).

    Returns:
        The power in [0, 1]: exact (noncentral t) with one seed, simulated with several (module docstring).

    Examples:
        >>> round(detection_power(0.0, 6, 1, VarianceComponents(1.0)), 4)
        0.05
    """
    _check_design(n_subjects, n_seeds, components, alpha)
    if n_seeds == 1:
        return _one_seed_power(effect, n_subjects, components, alpha)
    return _Simulation(n_subjects, n_seeds, components, draws, seed).power(effect, alpha)


def minimal_detectable_effect(n_subjects: int, n_seeds: int, components: VarianceComponents, alpha: float = 0.05,
                              power: float = POWER, *, draws: int = DRAWS, seed: int = 0) -> float:
    """The smallest true difference that compare()'s analysis of a design detects with the given power.

    Args:
        n_subjects: subjects of the design (>= 2).
        n_seeds: seeds of the design (>= 1).
        components: the spread of the differences (:func:`pilot_components`, or by hand).
        alpha: level of the two-sided test (for a family under Holm, alpha over the family's size).
        power: target power, in (alpha, 1).
        draws: simulated data sets (several seeds only).
        seed: seed of the simulation (several seeds only).

    Returns:
        The MDE (> 0, the metric's units): :func:`detection_power` reaches ``power`` there.

    Raises:
        InputError: a design with fewer than 2 subjects or no seed, no spread, ``alpha`` or ``power`` out of
            range.

    Examples:
        >>> round(minimal_detectable_effect(8, 1, VarianceComponents(sd_subject=1.0)), 3)  # in units of sd_subject
        1.156
    """
    _check_design(n_subjects, n_seeds, components, alpha)
    if not alpha < power < 1:
        raise InputError(f"power {power}: not in (alpha, 1); give a target such as {POWER}")
    if n_seeds == 1:
        def power_at(effect: float) -> float:
            return _one_seed_power(effect, n_subjects, components, alpha)
    else:
        simulation = _Simulation(n_subjects, n_seeds, components, draws, seed)

        def power_at(effect: float) -> float:
            return simulation.power(effect, alpha)
    scale = math.sqrt(components.sd_subject**2 / n_subjects + components.sd_seed**2 / n_seeds
                      + components.sd_run**2 / (n_subjects * n_seeds))
    high = 4 * scale
    while power_at(high) < power:
        high *= 2
    return float(optimize.brentq(lambda e: power_at(e) - power, 0.0, high, xtol=1e-9 * scale, rtol=1e-9))


@dataclass(frozen=True)
class DesignMde:
    """The MDE of one comparison for a design (a row of ``mde.csv``).

    Attributes:
        family: the family's name.
        metric: metric column or ratio name.
        method: the method.
        baseline: the method compared against.
        n_subjects: subjects of the design.
        n_seeds: seeds of the design.
        sd_subject: the pilot's components (:class:`VarianceComponents`).
        sd_seed: idem.
        sd_run: idem.
        alpha: the level planned at: the family's alpha over its number of tests (Holm's level for its smallest p).
        power: the target power.
        mde: the minimal detectable effect (metric units; 0 where the pilot's differences do not vary at all).
    """

    family: str
    metric: str
    method: str
    baseline: str
    n_subjects: int
    n_seeds: int
    sd_subject: float
    sd_seed: float
    sd_run: float
    alpha: float
    power: float
    mde: float


def design_mdes(table: LongTable, baseline: str, families: Sequence[Family], *, alpha: float = 0.05,
                power: float = POWER, ratios: Sequence[Ratio] = (), n_subjects: int | None = None,
                n_seeds: int | None = None) -> list[DesignMde]:
    """The MDE of every comparison of ``families``, from a pilot long table, for its design or a planned one.

    Each comparison's components come from :func:`pilot_components`; its level is ``alpha`` over the
    number of tests in its family (Holm's adjusted p of the smallest p is that p times the family's size).

    Args:
        table: the pilot's long table.
        baseline: the method compared against.
        families: the families of the comparisons (as for compare()).
        alpha: the family-wise level.
        power: the target power.
        ratios: ratio metrics named in the families.
        n_subjects: subjects of the planned design; None for each comparison's own (the pilot's).
        n_seeds: seeds of the planned design; None for the pilot's.

    Returns:
        One :class:`DesignMde` per family, metric and method, in compare()'s order.

    Raises:
        InputError: an unknown baseline or method, a family without comparisons, a design or level out of
            range, a comparison without 2 subjects that have a value in every seed.
        DataError: as compare() (a method without the baseline's cases, a cell that is not a number).

    Examples:
        >>> rows = [{"method": m, "subject": f"s{s}", "case": "c0", "psnr": 20 + s + (m == "b") * (0.5 + 0.1 * s)}
        ...         for m in "ab" for s in range(4)]
        >>> row, = design_mdes(LongTable(rows), "a", [Family("primary", ("psnr",))], n_subjects=10)
        >>> row.n_subjects, row.n_seeds, round(row.mde, 4)
        (10, 1, 0.1286)
    """
    table.check_method(baseline, "baseline")
    ratio_by_name = {r.name: r for r in ratios}
    rows = []
    for family in families:
        methods = family.methods if family.methods is not None else tuple(m for m in table.methods if m != baseline)
        if not methods or not family.metrics:
            raise InputError(f"family {family.name} has no comparison (no metric, or no method but the baseline "
                             f"{baseline}); give it metrics and methods")
        for method in methods:
            table.check_method(method)
        level = alpha / (len(family.metrics) * len(methods))
        for metric in family.metrics:
            for method in methods:
                units = paired_units(table, metric, method, baseline, ratio_by_name.get(metric))
                components = variance_components(units, f"metric {metric}, {method} - {baseline} in {table.source}")
                subjects = n_subjects if n_subjects is not None else units.shape[0]
                seeds = n_seeds if n_seeds is not None else units.shape[1]
                mde = (minimal_detectable_effect(subjects, seeds, components, level, power)
                       if _spread(seeds, components) else 0.0)
                rows.append(DesignMde(family.name, metric, method, baseline, subjects, seeds, components.sd_subject,
                                      components.sd_seed, components.sd_run, level, power, mde))
    return rows


def write_mdes(path: Path, rows: Sequence[DesignMde]) -> Path:
    """Write ``mde.csv``: the :data:`MDE_COLUMNS`, floats to 10 significant digits.

    Examples:
        >>> import tempfile
        >>> row = DesignMde("primary", "psnr", "b", "a", 6, 1, 0.5, 0.0, 0.0, 0.05, 0.8, 0.6)
        >>> write_mdes(Path(tempfile.mkdtemp()) / "mde.csv", [row]).read_text().splitlines()[1]
        'primary,psnr,b,a,6,1,0.5,0,0,0.05,0.8,0.6'
    """
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(MDE_COLUMNS)
        for row in rows:
            writer.writerow([format(v, ".10g") if isinstance(v, float) else v
                             for v in (getattr(row, c) for c in MDE_COLUMNS)])
    return path
