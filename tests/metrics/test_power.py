"""Power and minimal detectable effect (taskloss.metrics.power): noncentral t by hand, simulated data analysed as
compare() does, variance components worked by hand, each bad input's message."""

import math

import numpy as np
import pytest
from scipy import stats

from taskloss.errors import InputError
from taskloss.metrics.comparisons import (
    Family,
    LongTable,
    Ratio,
    families_for,
    paired_units,
    subject_analysis,
    verdicts,
)
from taskloss.metrics.power import (
    VarianceComponents,
    design_mdes,
    detection_power,
    minimal_detectable_effect,
    pilot_components,
    variance_components,
)


def test_one_seed_mde_is_where_the_noncentral_t_power_is_0_8():
    # sd of a subject mean sqrt(0.3^2 + 0.4^2) = 0.5; sd_seed does not enter with one seed.
    components = VarianceComponents(sd_subject=0.3, sd_seed=2.0, sd_run=0.4)
    for n in (3, 6, 10):
        mde = minimal_detectable_effect(n, 1, components)
        df, noncentrality = n - 1, mde * math.sqrt(n) / 0.5
        critical = stats.t.ppf(0.975, df)
        power = stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality)
        assert power == pytest.approx(0.8, abs=1e-8)
    # Many subjects: the normal approximation (z_0.975 + z_0.8) sd / sqrt(n).
    assert minimal_detectable_effect(400, 1, VarianceComponents(1.0)) == pytest.approx(
        (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) / 20, rel=3e-3)
    assert detection_power(0.0, 6, 1, components) == pytest.approx(0.05, abs=1e-12)
    assert minimal_detectable_effect(6, 1, components, alpha=0.01) > minimal_detectable_effect(6, 1, components)


@pytest.mark.parametrize(("subjects", "seeds", "sd_subject", "sd_seed", "sd_run"), [
    (6, 1, 0.5, 0.0, 0.3),
    (5, 3, 0.5, 0.3, 0.3),
    (8, 2, 0.3, 0.2, 0.2),
    (5, 5, 0.2, 0.2, 0.3),
])
def test_simulated_data_analysed_as_compare_does_reach_power_0_8_at_the_mde(subjects, seeds, sd_subject, sd_seed,
                                                                            sd_run):
    # Data sets drawn case by case (4 cases per subject and seed): a run's deviation w and image noise e with
    # sd_run^2 = sd_w^2 + sd_e^2 / 4; a seed effect shared by every subject only with several seeds.
    sd_e = 0.2
    sd_w = math.sqrt(sd_run**2 - sd_e**2 / 4)
    mde = minimal_detectable_effect(subjects, seeds, VarianceComponents(sd_subject, sd_seed, sd_run))
    rng = np.random.default_rng(2026)
    sets = 4000
    cases = (mde + rng.normal(0, sd_subject, (sets, subjects, 1, 1))
             + (rng.normal(0, sd_seed, (sets, 1, seeds, 1)) if seeds > 1 else 0.0)
             + rng.normal(0, sd_w, (sets, subjects, seeds, 1)) + rng.normal(0, sd_e, (sets, subjects, seeds, 4)))
    result = subject_analysis(cases.mean(axis=-1))
    called = verdicts(result.difference, result.ci_low, result.ci_high, result.p, result.seeds_agree, 0.05)
    assert abs(np.mean(called == "higher") - 0.8) < 4 * math.sqrt(0.8 * 0.2 / sets)


def test_variance_components_by_hand():
    # 3 subjects x 2 seeds, seed 1 exactly 2 above seed 0: subject means 2, 3, 7 (grand mean 4), seed means 3, 5.
    # MS_subject = 2 (4 + 1 + 9) / 2 = 14, MS_seed = 3 (1 + 1) / 1 = 6, MS_run = 0: sd_subject^2 = 14 / 2 = 7,
    # sd_seed^2 = 6 / 3 = 2, sd_run = 0.
    components = variance_components(np.array([[1.0, 3.0], [2.0, 4.0], [6.0, 8.0]]))
    assert (components.sd_subject, components.sd_seed, components.sd_run) == pytest.approx(
        (math.sqrt(7), math.sqrt(2), 0.0), abs=1e-12)
    assert (components.n_subjects, components.n_seeds) == (3, 2)
    # Residual only (x[s, k] = +-1 in a checkerboard): MS_run = 4 * 1 / 1 = 4 > MS_subject = MS_seed = 0.
    checker = variance_components(np.array([[1.0, -1.0], [-1.0, 1.0]]))
    assert (checker.sd_subject, checker.sd_seed, checker.sd_run) == (0.0, 0.0, 2.0)
    # A subject without a value in one seed is left out; one seed: the subject means' sd.
    assert variance_components(np.array([[1.0, 3.0], [2.0, np.nan], [2.0, 4.0], [6.0, 8.0]])) == components
    assert variance_components(np.array([[0.1], [0.3], [0.2]])).sd_subject == pytest.approx(0.1)


def test_pilot_components_pair_the_table_as_compare_does():
    rng = np.random.default_rng(5)
    rows = [{"method": m, "subject": f"s{s}", "case": f"c{c}", "seed": k, "psnr": rng.normal(30 + (m == "b"), 1),
             "dice": rng.uniform(0.5, 1), "truth": 1.0}
            for m in "ab" for k in range(3) for s in range(5) for c in range(3)]
    table = LongTable(rows)
    units = paired_units(table, "psnr", "b", "a")
    by_hand = np.array([[np.mean([rows[i]["psnr"] - rows[i - 45]["psnr"] for i in range(45, 90)
                                  if rows[i]["subject"] == f"s{s}" and rows[i]["seed"] == k])
                         for k in range(3)] for s in range(5)])
    assert units == pytest.approx(by_hand, abs=1e-12)
    assert pilot_components(table, "psnr", "b", "a") == variance_components(by_hand)
    ratio = Ratio("sis", "dice", "truth")
    sis = pilot_components(table, "sis", "b", "a", [ratio])
    assert sis == variance_components(paired_units(table, "sis", "b", "a", ratio))
    assert (sis.n_subjects, sis.n_seeds) == (5, 3)

    mdes = design_mdes(table, "a", [Family("primary", ("psnr", "sis"))], ratios=[ratio], alpha=0.1)
    assert [(r.metric, r.n_subjects, r.n_seeds, r.alpha) for r in mdes] == [("psnr", 5, 3, 0.05), ("sis", 5, 3, 0.05)]
    assert mdes[1].mde == minimal_detectable_effect(5, 3, sis, alpha=0.05)
    planned, = design_mdes(table, "a", families_for(["psnr"]), n_subjects=20, n_seeds=2)
    assert planned.mde == minimal_detectable_effect(20, 2, pilot_components(table, "psnr", "b", "a"))
    assert planned.mde < mdes[0].mde
    same = design_mdes(table, "a", families_for(["truth"]))[0]  # no spread at all: any effect is detected
    assert (same.sd_subject, same.sd_seed, same.sd_run, same.mde) == (0.0, 0.0, 0.0, 0.0)
    with pytest.raises(InputError) as error:
        design_mdes(table, "a", [Family("primary", ("psnr",), ("zz",))])
    assert str(error.value) == "method 'zz' is not a method of the table (methods: a, b); give one of them"
    with pytest.raises(InputError) as error:
        design_mdes(LongTable([r for r in rows if r["method"] == "a"]), "a", families_for(["psnr"]))
    assert str(error.value) == ("family exploratory:psnr has no comparison (no metric, or no method but the "
                                "baseline a); give it metrics and methods")


@pytest.mark.parametrize(("call", "message"), [
    (lambda: VarianceComponents(-1.0), "sd_subject -1.0: not a standard deviation; give a finite number >= 0"),
    (lambda: VarianceComponents(0.0, math.nan), "sd_seed nan: not a standard deviation; give a finite number >= 0"),
    (lambda: minimal_detectable_effect(6, 3, VarianceComponents(0.0)),
     "sd_subject and sd_run are 0 (and sd_seed, with several seeds): every difference would be the same and any "
     "effect detected; give the spread measured in a pilot"),
    (lambda: minimal_detectable_effect(1, 3, VarianceComponents(1.0)),
     "design 1 subjects x 3 seeds: the analysis needs at least 2 subjects and 1 seed"),
    (lambda: minimal_detectable_effect(6, 1, VarianceComponents(0.0, 1.0)),
     "sd_subject and sd_run are 0 (and sd_seed, with several seeds): every difference would be the same and any "
     "effect detected; give the spread measured in a pilot"),
    (lambda: minimal_detectable_effect(6, 1, VarianceComponents(1.0), alpha=0.0),
     "alpha 0.0: not in (0, 1); give a level such as 0.05"),
    (lambda: minimal_detectable_effect(6, 1, VarianceComponents(1.0), power=0.01),
     "power 0.01: not in (alpha, 1); give a target such as 0.8"),
    (lambda: variance_components(np.array([[1.0, np.nan], [2.0, 3.0]])),
     "variance components: 1 subject(s) have a value in every seed; estimating the variance of a pilot needs at "
     "least 2, so fill the empty cells or leave the metric out"),
])
def test_bad_inputs_have_exact_messages(call, message):
    with pytest.raises(InputError) as error:
        call()
    assert str(error.value) == message
