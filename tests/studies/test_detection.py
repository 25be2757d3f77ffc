"""The csmri detection task (taskloss.studies.detection): the signal-present acquisition is the
slice plus the signal acquired again, an identity reconstruction reaches the white-noise d' and one
that ignores its input stays at chance, the calibration hits its target, the report's lines."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from taskloss.data.csmri import CsmriConfig, csmri_splits
from taskloss.data.kspace import complex_to_channels, fft2c, ifft2c
from taskloss.data.signals import Signal, white_noise_contrast
from taskloss.errors import ConfigError
from taskloss.observers import auc_delong, dprime
from taskloss.studies.csmri_runs import CsmriRun, csmri_task
from taskloss.studies.detection import (
    DetectionSettings,
    calibrate,
    comparison_lines,
    detection_comparisons,
    detection_section,
    head_masks,
    present_batch,
    score_methods,
    subject_resamples,
    write_detection_comparisons,
)

SIZE = 32


def noise_batches(rng, count, sigma, batch=50):
    """Batches of csmri-like items whose images are 1 + white Gaussian noise (real), fully sampled."""
    out = []
    for _ in range(count):
        image = torch.from_numpy(1.0 + sigma * rng.standard_normal((batch, 1, SIZE, SIZE))).float()
        complex_image = image.to(torch.complex64)
        out.append({"target": complex_to_channels(complex_image), "input": complex_to_channels(complex_image),
                    "kspace": fft2c(complex_image), "mask": torch.ones(batch, 1, SIZE, SIZE),
                    "magnitude": image, "id": [f"s{i}" for i in range(batch)]})
    return out


def test_the_signal_present_slice_is_the_slice_plus_the_signal_acquired_with_its_mask():
    config = CsmriConfig(subjects=3, slices=2, size=SIZE, anatomy="ellipsoid", acceleration=4.0)
    test = csmri_splits(config).test
    items = [test[i] for i in range(len(test))]
    batch = {k: torch.stack([it[k] for it in items]) for k in ("input", "target", "kspace", "mask", "magnitude")}
    signal = torch.zeros(len(items), 1, SIZE, SIZE)
    signal[:, :, 10:13, 12:15] = 0.05
    present = present_batch(batch, signal)
    # Linear acquisition: the measured k-space gains exactly mask * F(signal); unsampled entries stay 0.
    gained = present["kspace"] - batch["kspace"]
    torch.testing.assert_close(gained, fft2c(signal.to(torch.complex64)) * batch["mask"], atol=1e-5, rtol=0)
    torch.testing.assert_close(present["input"], complex_to_channels(ifft2c(present["kspace"])))
    truth = torch.complex(batch["target"][:, 0], batch["target"][:, 1])[:, None] + signal
    torch.testing.assert_close(present["magnitude"], truth.abs())
    assert torch.equal(present["mask"], batch["mask"])
    # A zero signal acquires a slice exactly as the dataset did: the absent rows of a mixed batch are the slices.
    unchanged = present_batch(batch, torch.zeros_like(signal))
    for key in ("input", "kspace", "magnitude", "target"):
        torch.testing.assert_close(unchanged[key], batch[key], atol=1e-6, rtol=0)


def test_identity_reaches_the_white_noise_dprime_and_a_blind_method_stays_at_chance():
    """In white noise of sd sigma every signal-aware linear observer reaches d' = |s| / sigma (Barrett &
    Myers 2004, ch. 13): the contrast is set for d' = 2, so the ground truth's AUC is Phi(2 / sqrt 2) = 0.92."""
    rng = np.random.default_rng(0)
    sigma, settings = 0.05, DetectionSettings(size=2.0, edge=0.7, roi=12, channel_width=3.0)
    contrast = white_noise_contrast(settings.signal(1.0), (12, 12), sigma, 2.0)
    fixed = noise_batches(np.random.default_rng(1), 8, sigma)[0]["magnitude"]
    methods = {"truth": lambda b: b["magnitude"], "blind": lambda b: fixed[: len(b["magnitude"])]}
    record = score_methods(settings, contrast, noise_batches(rng, 8, sigma), methods)
    assert (record["n_present"], record["n_absent"]) == (200, 200)
    truth, blind = record["methods"]["truth"], record["methods"]["blind"]
    # The CHO (5 channels, template fitted on half of 400 images) comes near the ideal: its interval holds 2.
    cho = truth["cho"]
    assert 1.6 < cho["snr"] < 2.2 and cho["snr_ci"][0] < 2.0 < cho["snr_ci"][1], cho
    assert cho["auc"] == pytest.approx(stats.norm.cdf(cho["snr"] / math.sqrt(2)), abs=0.03)  # Gaussian scores
    # NPW's template is the estimated mean difference over 144 pixels: its noise costs d' (here 1.29).
    assert 1.0 < truth["npw"]["snr"] < cho["snr"]
    for observer in ("cho", "npw"):
        assert blind[observer]["auc_ci"][0] < 0.5 < blind[observer]["auc_ci"][1]


def test_calibration_reaches_the_target_auc_on_fresh_images():
    sigma, settings = 0.05, DetectionSettings(size=2.0, roi=12, channel_width=3.0, target_auc=0.8)
    images = np.concatenate([b["magnitude"][:, 0].double().numpy()
                             for b in noise_batches(np.random.default_rng(2), 4, sigma)])
    contrast = calibrate(settings, images)
    record = score_methods(settings, contrast, noise_batches(np.random.default_rng(3), 8, sigma),
                           {"truth": lambda b: b["magnitude"]})
    assert record["methods"]["truth"]["cho"]["auc"] == pytest.approx(0.8, abs=0.05)
    assert contrast > 0 and record["contrast"] == contrast


def test_head_masks_keep_the_anatomy_only():
    image = np.zeros((1, 8, 8))
    image[0, 2:6, 2:6] = 1.0
    image[0, 0, 0] = 0.05  # background below 10 % of the peak
    assert head_masks(image)[0].sum() == 16 and not head_masks(image)[0, 0, 0]


def record(snrs):
    return {"settings": DetectionSettings().model_dump(), "contrast": 0.02, "n_present": 10, "n_absent": 10,
            "methods": {m: {o: {"auc": 0.8, "auc_ci": [0.7, 0.9], "snr": d, "snr_ci": [d - w, d + w]}
                            for o in ("cho", "npw")} for m, (d, w) in snrs.items()}}


def test_the_report_states_where_psnr_and_detectability_disagree():
    psnr = {"recnet": 28.0, "refinement": 27.2, "dagan": 24.0}
    lines = detection_section(record({"recnet": (1.5, 0.1), "refinement": (1.9, 0.1), "dagan": (1.0, 0.2)}),
                              str.upper, psnr)
    assert lines[2:4] == ["| Method | CHO AUC | CHO d' | NPW AUC | NPW d' |", "|---|---|---|---|---|"]
    assert lines[4] == ("| RECNET | 0.800 [0.700, 0.900] | 1.50 [1.40, 1.60] | 0.800 [0.700, 0.900] | "
                        "1.50 [1.40, 1.60] |")
    assert lines[-1] == ("- PSNR and detectability disagree: REFINEMENT has -0.80 dB PSNR but +0.40 CHO d' against "
                         "RECNET, the d' intervals apart.")
    close = detection_section(record({"recnet": (1.5, 0.3), "refinement": (1.6, 0.3), "dagan": (1.0, 0.2)}),
                              str.upper, psnr)
    assert close[-1] == ("- PSNR and the CHO's d' move in opposite directions against RECNET for REFINEMENT (-0.80 "
                         "dB, d' +0.10), but not settled (the comparison is inconclusive, or the d' intervals "
                         "overlap).")
    same = detection_section(record({"recnet": (1.5, 0.1), "dagan": (1.0, 0.2)}), str.upper, psnr)
    assert same[-1] == "- PSNR and the CHO's d' order every method the same way against RECNET."


def test_signal_is_a_disc_of_the_settings():
    assert DetectionSettings(size=3.0, edge=0.5).signal(0.1) == Signal("disc", 3.0, 0.1, edge=0.5)


def scored_record(seed=0, subjects=6, per_class=4):
    """A detection record with per-slice scores: a baseline, a method whose signal stands out more in every
    subject, and a copy of the baseline."""
    rng = np.random.default_rng(seed)
    ids_p = [f"s{s:02d}_z{2 * k:03d}" for s in range(subjects) for k in range(per_class)]
    ids_a = [f"s{s:02d}_z{2 * k + 1:03d}" for s in range(subjects) for k in range(per_class)]
    n = subjects * per_class
    absent = rng.normal(size=n)
    base = {"present": 0.5 + rng.normal(size=n), "absent": absent}
    better = {"present": base["present"] + 2.0, "absent": absent}

    def entry(parts):
        auc, auc_ci = auc_delong(parts["present"], parts["absent"])
        snr, snr_ci = dprime(parts["present"], parts["absent"])
        scores = {"auc": auc, "auc_ci": list(auc_ci), "snr": snr, "snr_ci": list(snr_ci),
                  "scores_present": parts["present"].tolist(), "scores_absent": parts["absent"].tolist()}
        return {"cho": scores, "npw": scores}

    return {"settings": DetectionSettings().model_dump(), "contrast": 0.02, "n_present": n, "n_absent": n,
            "ids_present": ids_p, "ids_absent": ids_a,
            "methods": {"base": entry(base), "better": entry(better), "copy": entry(base)}}


def by_hand_subject_dprime(record, method, subject):
    scores = record["methods"][method]["cho"]
    p = [v for i, v in zip(record["ids_present"], scores["scores_present"], strict=True) if i.startswith(subject)]
    a = [v for i, v in zip(record["ids_absent"], scores["scores_absent"], strict=True) if i.startswith(subject)]
    return (np.mean(p) - np.mean(a)) / math.sqrt((np.var(p, ddof=1) + np.var(a, ddof=1)) / 2)


def test_detection_comparisons_take_the_subject_as_the_unit():
    record = scored_record()
    found = detection_comparisons(record, [("base", ("better", "copy", "absent_method")), ("missing", ("base",))])
    assert [(c.baseline, c.method, c.subjects) for c in found] == [("base", "better", 6), ("base", "copy", 6)]
    better, copy = found
    differences = [by_hand_subject_dprime(record, "better", f"s{s:02d}") - by_hand_subject_dprime(record, "base",
                                                                                                   f"s{s:02d}")
                   for s in range(6)]
    t = stats.ttest_1samp(differences, 0.0)
    interval = t.confidence_interval(0.95)
    assert better.difference == pytest.approx(np.mean(differences))
    assert (better.ci_low, better.ci_high, better.p) == pytest.approx((interval.low, interval.high, t.pvalue))
    assert better.verdict == "higher" and better.p_holm == pytest.approx(min(1.0, 2 * better.p))
    # Paired: a copy of the baseline differs by exactly 0 in every subject.
    assert (copy.difference, copy.ci_low, copy.ci_high, copy.p, copy.verdict) == (0.0, 0.0, 0.0, 1.0, "inconclusive")
    assert detection_comparisons({k: v for k, v in record.items() if k != "ids_present"}, [("base", ("better",))]) == []


def test_the_section_gives_subject_intervals_and_the_comparisons(tmp_path):
    record = scored_record(subjects=12)
    comparisons = detection_comparisons(record, [("base", ("better", "copy"))])
    lines = detection_section(record, str.upper, {"base": 28.0, "better": 27.0, "copy": 28.0}, comparisons,
                              reference="base")
    assert "Intervals: 95 % bootstrap intervals over the 12 test subjects (the per-slice scores held fixed" in lines[0]
    low, high = np.nanpercentile(subject_resamples(record)["better"][1], [2.5, 97.5])
    assert f"| BETTER | {record['methods']['better']['cho']['auc']:.3f} [" in lines[5]
    assert f" | {record['methods']['better']['cho']['snr']:.2f} [{low:.2f}, {high:.2f}] |" in lines[5]
    assert f"| BETTER | BASE | {comparisons[0].difference:+.2f} [" in "\n".join(lines)
    assert lines[-1].startswith("- PSNR and detectability disagree: BETTER has -1.00 dB PSNR but +")
    assert lines[-1].endswith(f"(per subject {comparisons[0].difference:+.2f} [{comparisons[0].ci_low:+.2f}, "
                              f"{comparisons[0].ci_high:+.2f}], Holm p {comparisons[0].p_holm:.3g}).")
    write_detection_comparisons(tmp_path / "c.csv", comparisons)
    rows = (tmp_path / "c.csv").read_text().splitlines()
    assert rows[0] == ("family,baseline,method,observer,measure,difference,ci_low,ci_high,p,p_holm,verdict,"
                       "subjects") and rows[2].startswith("base,base,copy,cho,snr,0.0,0.0,0.0,1.0,1.0,inconclusive,12")


def test_with_few_subjects_the_table_keeps_the_intervals_over_images():
    """2 subjects give 3 distinct bootstrap resamples: no interval over subjects from them."""
    record = scored_record(subjects=2)
    lines = detection_section(record, str.upper, {"base": 28.0}, ())
    assert "not over subjects: 2 test subjects are too few for a bootstrap over subjects (at least 10)" in lines[0]
    o = record["methods"]["base"]["cho"]
    assert f"| BASE | {o['auc']:.3f} [{o['auc_ci'][0]:.3f}, {o['auc_ci'][1]:.3f}] |" in lines[4]


def test_observer_runs_are_recnet_runs_without_a_task_term(tmp_path):
    observer = {"weight": 1.0}
    with pytest.raises(ConfigError, match=r"either task_run \(the task loss\) or observer \(the observer loss\)"):
        csmri_task(CsmriRun(stage="recnet", network="recnet", observer=observer, task_run="seg"), tmp_path / "r")
    with pytest.raises(ConfigError, match=r"observer applies to recnet runs, not to a 'dagan' run; remove it"):
        csmri_task(CsmriRun(stage="dagan", network="dagan_generator", observer=observer), tmp_path / "r")


def test_over_seeds_each_subject_keeps_a_difference_per_seed():
    """Two seeds in which 'better' gains in every subject: called; a second seed in which it loses: not."""
    first, second = scored_record(seed=0), scored_record(seed=1)
    both = detection_comparisons([first, second], [("base", ("better",))])[0]
    table = np.array([[by_hand_subject_dprime(r, "better", f"s{s:02d}") - by_hand_subject_dprime(r, "base",
                                                                                                 f"s{s:02d}")
                       for r in (first, second)] for s in range(6)])
    assert both.difference == pytest.approx(table.mean()) and both.verdict == "higher" and both.subjects == 6
    flipped = {**second, "methods": {**second["methods"], "better": second["methods"]["base"],
                                     "base": second["methods"]["better"]}}
    mixed = detection_comparisons([first, flipped], [("base", ("better",))])[0]
    assert mixed.verdict == "inconclusive" and mixed.ci_low < 0 < mixed.ci_high
    lines = comparison_lines([both], str.upper, seeds=2)
    assert "over the 2 training seeds too: interval over subjects and seeds" in lines[0]
