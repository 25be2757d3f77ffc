"""Calibration of `taskloss compare` (taskloss.metrics.comparisons) on simulated clustered data.

Model of one data set (the paired difference method - baseline of one metric on one image):

    d[subject, seed, case] = effect + v[subject] + w[subject, seed] + b[seed] + e[subject, seed, case]

with v ~ N(0, sd_subject) (how much each subject's images favour the method: the subject random
effect of the difference; a subject effect shared by both methods cancels in the pair), w ~ N(0,
sd_run) (one training run's deviation on one subject), b ~ N(0, sd_seed) (a seed's deviation
on every subject; 0 unless asked) and e ~ N(0, sd_image) (image-level noise). ``--skewed``
draws v and e from centred exponential distributions of the same sd instead.

Per design (subjects x seeds, 12 images per subject and seed) the script reports, over
``--sets`` data sets: the share of false verdicts (``higher`` or ``lower``) of the subject-level
analysis when ``effect = 0``, the share of p < 0.05 of a per-image paired Wilcoxon test on the
same data (images averaged over seeds, as a per-image report would test them), and the coverage
of the 95 % interval when ``effect = 0.3``. With ``--ratio`` it does the same for an SIS-like
ratio metric (:func:`simulate_ratio`), for ``ratio_analysis`` and for the expanded percentile
cluster bootstrap it replaced. Run:

    .venv/bin/python benchmarks/comparison_calibration.py --sets 2000
"""

import argparse
import time

import numpy as np
from scipy import stats

from taskloss.metrics.comparisons import ratio_analysis, subject_analysis, verdicts

ALPHA = 0.05
CASES = 12
"""Images per subject and seed (mr2xray's small preset has 12 views per subject)."""
SD_SUBJECT, SD_RUN, SD_IMAGE = 0.5, 0.3, 1.0
EFFECT = 0.3


def simulate(rng: np.random.Generator, sets: int, subjects: int, seeds: int, effect: float = 0.0,
             cases: int = CASES, sd_subject: float = SD_SUBJECT, sd_run: float = SD_RUN, sd_image: float = SD_IMAGE,
             sd_seed: float = 0.0, skewed: bool = False) -> np.ndarray:
    """Per-image paired differences of ``sets`` data sets: (sets, subjects, seeds, cases), see the module."""
    def draw(sd: float, shape: tuple[int, ...], skew: bool) -> np.ndarray:
        return sd * (rng.exponential(1.0, shape) - 1.0) if skew else rng.normal(0.0, sd, shape)

    v = draw(sd_subject, (sets, subjects, 1, 1), skewed)
    w = rng.normal(0.0, sd_run, (sets, subjects, seeds, 1))
    b = rng.normal(0.0, sd_seed, (sets, 1, seeds, 1))
    e = draw(sd_image, (sets, subjects, seeds, cases), skewed)
    return effect + v + w + b + e


def false_verdicts(differences: np.ndarray) -> float:
    """Share of data sets where the subject-level analysis calls ``higher`` or ``lower``."""
    result = subject_analysis(differences.mean(axis=-1), ALPHA)
    called = verdicts(result.difference, result.ci_low, result.ci_high, result.p, result.seeds_agree, ALPHA)
    return float(np.isin(called, ("higher", "lower")).mean())


def wilcoxon_positives(differences: np.ndarray) -> float:
    """Share of data sets where a paired Wilcoxon test over images (seed-averaged) has p < alpha."""
    per_image = differences.mean(axis=2).reshape(differences.shape[0], -1)
    return float((stats.wilcoxon(per_image, axis=1).pvalue < ALPHA).mean())


def coverage(differences: np.ndarray, effect: float) -> float:
    """Share of data sets whose 95 % interval covers ``effect``."""
    result = subject_analysis(differences.mean(axis=-1), ALPHA)
    return float(((result.ci_low <= effect) & (effect <= result.ci_high)).mean())


def simulate_ratio(rng: np.random.Generator, subjects: int, seeds: int, effect: float) -> tuple[np.ndarray, ...]:
    """Per-subject and seed sums (numerator, denominator, baseline numerator, baseline denominator), each
    (subjects, seeds), of one SIS-like data set: 2 to 6 ROI cases per subject, ground-truth Dice ~
    N(0.8, 0.1) (the shared denominator), a method's Dice = truth Dice x (0.9 + effect + subject + run +
    case noise); the true difference of the ratios is ``effect``."""
    counts = rng.integers(2, 7, subjects)
    sums = np.zeros((3, subjects, seeds))
    for s, n in enumerate(counts):
        truth = rng.normal(0.8, 0.1, n)
        v = rng.normal(0.0, 0.05)
        for k in range(seeds):
            w = rng.normal(0.0, 0.02)
            sums[0, s, k] = (truth * (0.9 + effect + v + w + rng.normal(0.0, 0.08, n))).sum()
            sums[1, s, k] = (truth * (0.9 + rng.normal(0.0, 0.08, n))).sum()
            sums[2, s, k] = truth.sum()
    return sums[0], sums[2], sums[1], sums[2]


def expanded_bootstrap(rng: np.random.Generator, numerator: np.ndarray, denominator: np.ndarray,
                       base_numerator: np.ndarray, base_denominator: np.ndarray,
                       resamples: int = 10_000) -> tuple[float, float]:
    """The replaced alternative: a paired cluster bootstrap over subjects (sums over seeds), the expanded
    percentile 95 % interval of Hesterberg (2015, The American Statistician 69(4))."""
    totals = [x.sum(axis=1) for x in (numerator, denominator, base_numerator, base_denominator)]
    n = totals[0].size
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(float)
    draws = weights @ totals[0] / (weights @ totals[1]) - weights @ totals[2] / (weights @ totals[3])
    tail = stats.norm.sf(np.sqrt(n / (n - 1)) * stats.t.isf(ALPHA / 2, n - 1))
    low, high = np.quantile(draws, [tail, 1 - tail])
    return float(low), float(high)


def ratio_rates(rng: np.random.Generator, sets: int, subjects: int, seeds: int) -> tuple[float, ...]:
    """Under no effect, the share of false verdicts, and the coverage of a 0.05 effect, of the ratio method
    (``ratio_analysis``) and of the expanded percentile bootstrap."""
    false, covered, false_boot, covered_boot = 0, 0, 0, 0
    for _ in range(sets):
        null = simulate_ratio(rng, subjects, seeds, 0.0)
        result = ratio_analysis(*null, ALPHA)
        false += str(verdicts(result.difference, result.ci_low, result.ci_high, result.p, result.seeds_agree,
                              ALPHA)) in ("higher", "lower")
        low, high = expanded_bootstrap(rng, *null)
        false_boot += low > 0 or high < 0
        known = simulate_ratio(rng, subjects, seeds, 0.05)
        result = ratio_analysis(*known, ALPHA)
        covered += bool(result.ci_low <= 0.05 <= result.ci_high)
        low, high = expanded_bootstrap(rng, *known)
        covered_boot += low <= 0.05 <= high
    return false / sets, covered / sets, false_boot / sets, covered_boot / sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=2000, help="simulated data sets per design")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skewed", action="store_true", help="exponential subject effects and image noise")
    parser.add_argument("--sd-seed", type=float, default=0.0, help="sd of a seed effect shared by all subjects")
    parser.add_argument("--ratio", action="store_true", help="also the SIS-like ratio metric's bootstrap")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    print(f"{args.sets} data sets per design; sd subject {SD_SUBJECT}, run {SD_RUN}, image {SD_IMAGE}, seed "
          f"{args.sd_seed}, {CASES} images per subject and seed, {'skewed' if args.skewed else 'normal'}")
    print("subjects seeds | false verdicts (compare)   | per-image Wilcoxon p<0.05 | 95 % coverage")
    for subjects in (5, 6, 8, 10):
        for seeds in (1, 3, 5):
            options = {"sd_seed": args.sd_seed, "skewed": args.skewed}
            null = simulate(rng, args.sets, subjects, seeds, **options)
            known = simulate(rng, args.sets, subjects, seeds, effect=EFFECT, **options)
            print(f"{subjects:8d} {seeds:5d} | {false_verdicts(null):26.3f} | {wilcoxon_positives(null):25.3f} | "
                  f"{coverage(known, EFFECT):13.3f}")
    if args.ratio:
        print("ratio (SIS-like): ratio_analysis (delta method) | expanded percentile cluster bootstrap (10,000)")
        print("subjects seeds | false verdicts | 95 % coverage | bootstrap: interval excludes 0 | coverage")
        for subjects in (5, 7, 10):
            for seeds in (1, 3):
                false, covered, false_boot, covered_boot = ratio_rates(rng, args.sets, subjects, seeds)
                print(f"{subjects:8d} {seeds:5d} | {false:14.3f} | {covered:13.3f} | {false_boot:30.3f} | "
                      f"{covered_boot:8.3f}")
    print(f"{time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
