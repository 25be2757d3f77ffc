"""The mr2xray nodule-detection task: the nodule in the phantom, its views, the calibration, the record,
and a small study end to end."""

import csv
import json
import math

import numpy as np
import pytest
import torch

from taskloss.data.mr2xray import (
    Mr2XrayConfig,
    finish_views,
    mr2xray_splits,
    nodule_volume,
    simulate_views,
    view_integrals,
)
from taskloss.data.signals import dprime_for_auc
from taskloss.errors import InputError
from taskloss.observers import detectability
from taskloss.studies import render_report
from taskloss.studies.detection import detection_section
from taskloss.studies.mr2xray import Mr2XrayPreset, run_mr2xray
from taskloss.studies.nodules import (
    GROUND_TRUTH,
    NoduleDetection,
    NoduleViews,
    calibrate_nodule,
    nodule_task,
    score_nodules,
    split_of,
)

CONFIG = Mr2XrayConfig(subjects=8, angles=12, size=32, anatomy="ellipsoid")
SETTINGS = NoduleDetection(radius_mm=16.0, roi=8, channel_width=2.0, n_channels=3)


def test_views_without_the_nodule_are_the_data_sets_own():
    plain = simulate_views(CONFIG, 3)
    integrals = view_integrals(CONFIG, 3, nodule_radius_mm=16.0)
    for found, expected in zip(finish_views(CONFIG, integrals), plain, strict=True):
        assert torch.equal(found, expected)


def test_the_nodule_shows_where_its_chord_is_longest_in_both_modalities():
    integrals = view_integrals(CONFIG, 2, nodule_radius_mm=16.0)
    (mr0, x0, _), (mr1, x1, _) = finish_views(CONFIG, integrals), finish_views(CONFIG, integrals, 0.5)
    assert integrals.nodule_px is not None and integrals.nodule_px.shape == (12, 2)
    for view in range(12):
        for before, after in ((mr0, mr1), (x0, x1)):
            change = (after - before)[view, 0].abs()
            peak = np.unravel_index(int(change.argmax()), change.shape)
            # within the nodule's projected radius (2 px: 16 mm at 8.1 mm per pixel) + 1 px of its centre
            assert np.abs(np.array(peak) - integrals.nodule_px[view].numpy()).max() <= 3
            assert float(change.max()) > 0.01


def test_a_nodule_volume_holds_a_spheres_volume():
    sphere = nodule_volume((40, 40, 40), (20, 20, 20), radius_mm=10.0, spacing_mm=1.0)
    assert float(sphere.sum()) == pytest.approx(4 / 3 * math.pi * 10.0**3, rel=0.01)
    assert float(sphere[20, 20, 20]) == 1.0 and float(sphere[0, 0, 0]) == 0.0
    assert float(sphere[20, 20, 30]) == 0.5  # the surface: half inside


def test_a_contrast_without_a_nodule_is_refused():
    with pytest.raises(InputError, match="contrast is not 0 but these integrals have no nodule; pass "
                                         "nodule_radius_mm to view_integrals"):
        finish_views(CONFIG, view_integrals(CONFIG, 0), 0.1)


def test_the_calibrated_contrast_reaches_the_target_on_training_and_validation_x_rays():
    contrast = calibrate_nodule(CONFIG, SETTINGS)
    assert 0.01 < contrast < 1.0
    subjects = split_of(CONFIG, "train", "val")
    assert not set(subjects) & set(split_of(CONFIG, "test"))
    views = NoduleViews(CONFIG, subjects, SETTINGS)
    present, absent = views.rois(views.images(contrast)[1], SETTINGS.roi)
    found = detectability(present, absent, "cho", seed=0, channels="laguerre-gauss", channel_width=2.0,
                          n_channels=3, paired=True).snr
    assert found == pytest.approx(dprime_for_auc(0.85), abs=1e-3)


def test_each_view_is_a_pair_that_differs_by_the_nodule_and_the_noise():
    views = NoduleViews(CONFIG, [2], SETTINGS)
    mr, xray = views.images(0.3)
    plain_mr, plain_xray, _ = simulate_views(CONFIG, 2)
    assert torch.equal(mr[12:], plain_mr) and torch.equal(xray[12:], plain_xray)  # the data set's views
    no_signal = views.images(0.0)[1][:12]
    assert not torch.equal(no_signal, plain_xray)  # another noise realisation
    assert float((no_signal - plain_xray).abs().mean()) < 0.01  # of the same views
    signal = (xray[:12] - no_signal)[:, 0]
    for k in range(12):  # the difference is the nodule, at its computed centre
        peak = np.unravel_index(int(signal[k].abs().argmax()), signal[k].shape)
        assert np.abs(np.array(peak) - (views.locations[k] - 0.5)).max() <= 3
    assert views.present.tolist() == [True] * 12 + [False] * 12
    np.testing.assert_array_equal(views.locations[:12], views.locations[12:])


def test_the_record_scores_the_data_sets_test_views_with_every_method():
    splits = mr2xray_splits(CONFIG)
    test_ids = [splits.test[i]["id"] for i in range(len(splits.test))]
    inputs = torch.stack([splits.test[i]["input"] for i in range(len(splits.test))])
    seen = {}

    def identity(mr):
        seen["mr"] = mr
        return mr

    record = score_nodules(CONFIG, SETTINGS, 0.3, {"copy": identity})
    assert record["ids_present"] == record["ids_absent"] == test_ids and record["paired"] is True
    assert (record["n_present"], record["n_absent"]) == (24, 24) and set(record["methods"]) == {GROUND_TRUTH, "copy"}
    assert torch.equal(seen["mr"][24:], inputs)  # the signal-absent views are those the image metrics score
    assert not torch.equal(seen["mr"][:24], inputs)
    cho = record["methods"][GROUND_TRUTH]["cho"]
    assert len(cho["scores_present"]) == 24 and 0.5 < cho["auc"] <= 1.0
    assert json.loads(json.dumps(record)) == record


def test_a_method_whose_output_does_not_vary_is_named_unscored():
    record = score_nodules(CONFIG, SETTINGS, 0.3, {"flat": lambda mr: torch.zeros_like(mr)})
    assert set(record["methods"]) == {GROUND_TRUTH}
    assert record["unscored"]["flat"].startswith("present: all 24 images are identical")
    lines = detection_section(record, str, {}, task=nodule_task(record))
    assert "- Not scored: flat (present: all 24 images are identical (no image-to-image variation); an observer " \
           "needs one independent noise realisation per image)." in lines


def test_too_few_views_for_the_calibration_are_refused():
    few = Mr2XrayConfig(subjects=3, angles=1, size=32, anatomy="ellipsoid")
    with pytest.raises(InputError, match="the training and validation splits have 2 views; the nodule's contrast "
                                         "needs at least 4"):
        calibrate_nodule(few, SETTINGS)


STUDY = {"study": "mr2xray", "name": "nodules",
         "data": {"subjects": 8, "angles": 12, "size": 32, "anatomy": "ellipsoid"},
         "training": {"epochs": 2, "batch_size": 4, "progress": False, "optimizer": {"lr": 0.01}},
         "networks": {"UNet": {"name": "unet", "options": {"widths": [4, 8, 8, 8, 8]}}},
         "task_networks": [], "bone_epochs": 1, "balance_batches": 1, "figure_cases": 1, "perception": "domain",
         "detection": SETTINGS.model_dump(), "observer_networks": ["UNet"],
         "observer": {"radius_mm": 16.0, "contrast": 0.3, "roi": 8, "channel_width": 2.0, "n_channels": 3,
                      "balance_batches": 2}}


def test_a_study_with_detection_reports_the_observers_and_the_comparisons(tmp_path):
    run_mr2xray(Mr2XrayPreset.model_validate(STUDY), tmp_path / "mr2xray", accelerator="cpu")
    results = tmp_path / "mr2xray" / "results"
    record = json.loads((results / "detection.json").read_text())
    assert set(record["methods"]) == {GROUND_TRUTH, "unet-perceptual", "unet-l1", "unet-observer"}
    assert record["signal"] == "nodule" and record["contrast"] > 0
    assert (results / "tradeoff_detection.png").read_bytes()[:4] == b"\x89PNG"
    lines = (results / "detection_comparisons.csv").read_text().splitlines()
    assert lines[0].startswith("family,baseline,method")
    assert sorted(line.split(",")[2] for line in lines[1:]) == ["unet-observer", "unet-perceptual"]
    report = render_report(tmp_path).read_text()
    assert "### Nodule detection (model observers)" in report
    assert "a spherical nodule of radius 16 mm in the 3-D phantom" in report
    assert "| Real X-ray (ground truth) |" in report and "| UNet - p loss |" in report
    assert "| UNet - ℓ1 + observer loss | UNet - ℓ1 loss |" in report  # its declared comparison on d'
    # The observer term trained: finite and positive in the log (a hinge, 0 once the output's d' is the truth's).
    with open(tmp_path / "mr2xray" / "runs" / "unet-observer" / "train_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    observer = [float(row["raw_observer"]) for row in rows]
    assert len(observer) == 2 and all(math.isfinite(v) and v >= 0 for v in observer) and max(observer) > 0  # per 10
    loss = json.loads((tmp_path / "mr2xray" / "runs" / "unet-observer" / "evaluation" / "run.json").read_text())
    assert loss["loss"].startswith("l1 + 1 x CHO observer loss (LG 3 channels, width 2 px) of a nodule of radius 16 mm")
    assert "![mr2xray PSNR against detectability](mr2xray/results/tradeoff_detection.png)" in report

