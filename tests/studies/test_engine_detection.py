"""``detection:`` in study files of networks and losses: the signal-present test images of both tasks
(checked against NumPy FFTs for ``task: csmri``), the data check before training, and a study end to end."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from taskloss.data.signals import Signal
from taskloss.data.sources import paired_data, paired_splits
from taskloss.data.sources.fastmri import slice_mask
from taskloss.errors import DataError
from taskloss.studies import render_report
from taskloss.studies.engine import check_detection_data, detection_images, run_file_study
from taskloss.studies.spec import parse_study

sys.path.insert(0, str(Path(__file__).parent))  # the data makers of the neighbouring tests (--import-mode=importlib)
from test_engine_csmri import STUDY as KSPACE_STUDY
from test_engine_csmri import fft2c, ifft2c, make_files
from test_engine_run import make_pairs

DETECTION = {"size": 1.5, "edge": 0.5, "roi": 8, "channel_width": 2.0, "n_channels": 3}
PAIRED = {"name": "spots", "data": {"path": "pairs", "size": 32, "split": {"val": 0.2, "test": 0.3}},
          "networks": {"unet": {"name": "unet", "options": {"widths": [4, 8]}}},
          "losses": {"l1": {"l1": 1.0}, "mse": {"mse": 1.0}}, "metrics": ["psnr", "ssim"],
          "training": {"epochs": 4, "batch_size": 8, "lr": 0.01}, "figure_cases": 1,
          "detection": DETECTION}


def _test_rows(spec):
    data, test = paired_data(spec.data), paired_splits(spec.data).test
    return data, [data.ids.index(test[i]["id"]) for i in range(len(test))]


def test_paired_images_get_the_disc_in_input_and_target_at_even_positions(tmp_path):
    make_pairs(tmp_path / "pairs", count=60)
    spec = parse_study(PAIRED, "s.yaml", tmp_path)
    images, locations, present, ids = detection_images(spec, 0.2)
    data, rows = _test_rows(spec)
    assert ids == [data.ids[r] for r in rows] and present.tolist() == [k % 2 == 0 for k in range(len(rows))]
    np.testing.assert_array_equal(images["input"][~present], data.inputs[rows][~present])
    np.testing.assert_array_equal(images["target"][~present], data.targets[rows][~present])
    added = images["signal"][present]
    np.testing.assert_allclose(images["target"][present] - data.targets[rows][present], added, atol=1e-6)
    np.testing.assert_allclose(images["input"][present] - data.inputs[rows][present], added, atol=1e-6)
    shape = Signal("disc", 1.5, 0.2, edge=0.5)
    for disc, (y, x) in zip(added[:, 0].numpy(), locations[present], strict=True):
        np.testing.assert_allclose(disc, shape.render((32, 32), (float(y), float(x))), atol=1e-6)
        assert disc.max() > 0.1


def test_kspace_images_are_acquired_again_with_each_slices_mask(tmp_path):
    make_files(tmp_path / "h5", count=8)
    spec = parse_study({**KSPACE_STUDY, "detection": DETECTION}, "s.yaml", tmp_path)
    images, _, present, ids = detection_images(spec, 0.3)
    data, rows = _test_rows(spec)
    np.testing.assert_array_equal(images["input"][~present], data.inputs[rows][~present])
    np.testing.assert_array_equal(images["target"][~present], data.targets[rows][~present])
    assert not images["signal"][~present].any() and present.any()
    for k in np.flatnonzero(present):
        # By hand with NumPy's FFTs: the complex reference plus the disc, acquired with the slice's mask.
        image = data.references[rows[k], 0].numpy() + images["signal"][k, 0].numpy()
        mask = slice_mask(spec.data, ids[k]).numpy()[0]
        np.testing.assert_allclose(images["target"][k, 0].numpy(), np.abs(image), atol=1e-5)
        np.testing.assert_allclose(images["input"][k, 0].numpy(), np.abs(ifft2c(mask * fft2c(image))), atol=1e-5)
        assert float(images["signal"][k].max()) > 0.1


def test_too_small_splits_for_detection_are_refused_before_training(tmp_path):
    make_pairs(tmp_path / "pairs", count=12)
    spec = parse_study(PAIRED, "s.yaml", tmp_path)
    with pytest.raises(DataError) as error:
        check_detection_data(spec)
    assert str(error.value) == ("detection: the val split holds 2 images, fewer than the 8 the detection task "
                                "needs; add data, change data.split, or leave detection out")
    with pytest.raises(DataError, match="the val split holds 2 images"):
        run_file_study(spec, tmp_path / "out" / "spots", accelerator="cpu")
    assert not (tmp_path / "out").exists()


def test_a_study_file_with_detection_scores_every_run_and_reports_it(tmp_path):
    make_pairs(tmp_path / "pairs", count=60)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(PAIRED, sort_keys=False))
    spec = parse_study(PAIRED, "study.yaml", tmp_path)
    results = run_file_study(spec, tmp_path / "out" / "spots", accelerator="cpu")
    record = json.loads((results / "detection.json").read_text())
    assert set(record["methods"]) | set(record["unscored"]) == {"ground_truth", "unet-l1", "unet-mse"}
    assert record["n_present"] == 9 and record["n_absent"] == 9 and record["contrast"] > 0
    assert 0.5 < record["methods"]["ground_truth"]["cho"]["auc"] <= 1
    report = render_report(tmp_path / "out").read_text()
    assert "### Detection (model observers)" in report and "| Ground truth |" in report
    assert "a disc of radius 1.5 px (edge 0.5 px)" in report
    # Two images per subject here: no subject has 2 of each class, so no per-subject comparison, said so.
    assert "No declared comparison on d': a subject's d' needs at least 2 signal-present" in report
