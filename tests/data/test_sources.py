"""Data sources (``task:`` of a study file): one registry, and the two simulators as sources whose
pairs equal what the built-in studies simulate, checked against NumPy FFTs written here; then a
study file on each simulator end to end."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from taskloss.data.csmri import CsmriConfig, csmri_splits, simulate_csmri, write_csmri
from taskloss.data.mr2xray import Mr2XrayConfig, mr2xray_splits, simulate_mr2xray
from taskloss.data.sources import (
    SOURCES,
    TASKS,
    CsmriSource,
    DataSpec,
    KspaceDataSpec,
    Mr2XraySource,
    data_spec,
    paired_data,
    paired_splits,
)
from taskloss.data.sources.pairs import WARNED
from taskloss.data.splits import subject_of
from taskloss.errors import ConfigError, DataError
from taskloss.studies.common import PRESET_DIR
from taskloss.studies.engine import run_file_study
from taskloss.studies.file_report import render_file_study
from taskloss.studies.segmentation import SegmentationRun, train_segmentation
from taskloss.studies.spec import parse_study

MR2XRAY = {"subjects": 4, "angles": 2, "size": 16, "anatomy": "ellipsoid"}
CSMRI = {"subjects": 4, "slices": 3, "size": 16, "anatomy": "ellipsoid", "acceleration": 4}


def ifft2c(kspace: np.ndarray) -> np.ndarray:
    """Centred orthonormal inverse 2-D FFT in NumPy, independent of taskloss's torch one."""
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def fft2c(image: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def test_every_source_is_registered_under_its_own_task_with_paired_first():
    assert TASKS == ("paired", "csmri", "mr2xray-simulator", "csmri-simulator")
    assert all(task == source.spec.TASK for task, source in SOURCES.items())
    assert [SOURCES[task].spec for task in TASKS] == [DataSpec, KspaceDataSpec, Mr2XraySource, CsmriSource]
    assert [SOURCES[task].spec.KSPACE for task in TASKS] == [False, True, False, True]
    assert isinstance(data_spec(None, {"path": "p"}), DataSpec)  # no task: the first source
    assert isinstance(data_spec("mr2xray-simulator", {}), Mr2XraySource)
    # A typed section of one source is validated anew as another's (its keys then are unknown ones).
    with pytest.raises(ValueError, match="unknown key 'angles'"):
        data_spec("csmri-simulator", Mr2XraySource())


def test_the_mr2xray_source_is_the_simulation_with_its_bone_masks_and_split():
    data = paired_data(data_spec("mr2xray-simulator", MR2XRAY))
    simulated = simulate_mr2xray(Mr2XrayConfig(**MR2XRAY))
    assert torch.equal(data.inputs, simulated.inputs) and torch.equal(data.targets, simulated.targets)
    assert simulated.bone is not None and torch.equal(data.labels, simulated.bone.long())
    assert data.labels.dtype == torch.int64 and set(data.labels.unique().tolist()) == {0, 1}
    assert data.ids == simulated.ids and data.splits == simulated.splits and data.by == "subject"
    assert data.subjects == [subject_of(name) for name in data.ids] == [f"s{s:03d}" for s in range(4) for _ in "ab"]
    assert data.references is None and data.masks is None
    builtin = mr2xray_splits(Mr2XrayConfig(**MR2XRAY)).test
    assert [item["id"] for item in paired_splits(data_spec("mr2xray-simulator", MR2XRAY)).test] == [
        builtin[i]["id"] for i in range(len(builtin))]


def test_the_csmri_source_undersamples_each_slice_with_the_builtin_studys_fixed_mask():
    spec = data_spec("csmri-simulator", CSMRI)
    data = paired_data(spec)
    builtin = csmri_splits(CsmriConfig(**CSMRI))
    assert data.masks is not None and data.references is not None and data.masks.dtype == torch.bool
    for split in ("val", "test"):  # the built-in study's masks are fixed per slice here (fresh in training)
        dataset = getattr(builtin, split)
        for index in range(len(dataset)):
            item = dataset[index]
            row = data.ids.index(item["id"])
            assert torch.equal(data.masks[row].float(), item["mask"])
            assert torch.equal(data.targets[row], item["magnitude"])
            assert data.splits[row] == split
    # Input = |ifft2c(m * fft2c(x))| by NumPy, for every slice (train included), target |x|.
    reference = data.references[:, 0].numpy().astype(np.complex128)
    masks = data.masks[:, 0].numpy()
    expected = np.abs(ifft2c(masks * fft2c(reference)))
    np.testing.assert_allclose(data.inputs[:, 0].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(data.targets[:, 0].numpy(), np.abs(reference), atol=1e-7)
    assert np.allclose(masks.mean(axis=(1, 2)), 1 / 4)  # 4 of 16 lines at acceleration 4
    assert data.subjects == [subject_of(name) for name in data.ids] and data.by == "subject"


def test_the_csmri_source_reads_a_written_folder_as_the_builtin_study_does(tmp_path):
    config = CsmriConfig(**CSMRI)
    write_csmri(tmp_path / "slices", simulate_csmri(config), config)
    spec = data_spec("csmri-simulator", {**CSMRI, "data": str(tmp_path / "slices")})
    assert spec.data_folder() == tmp_path / "slices"
    data = paired_data(spec)
    builtin = csmri_splits(CsmriConfig(**{**CSMRI, "data": tmp_path / "slices"}))
    simulated = paired_data(data_spec("csmri-simulator", CSMRI))
    assert data.ids == simulated.ids and data.splits == simulated.splits  # the written folder keeps its splits
    assert data.labels is not None and torch.equal(data.labels, simulated.labels)
    for split in ("train", "val", "test"):
        dataset = getattr(builtin, split)
        for index in range(len(dataset)):
            item = dataset[index]
            row = data.ids.index(item["id"])
            assert data.splits[row] == split
            assert torch.equal(data.targets[row], item["magnitude"]) and torch.equal(data.labels[row], item["label"])
    assert spec.describe(data).startswith(f"Data: 12 slices of 4 subjects read from {tmp_path / 'slices'}, 16 px")


def test_a_segmentation_run_refuses_data_without_labels_before_writing(tmp_path):
    WARNED.add("csmri-simulator")  # the lesion-free warning is tested above
    run = SegmentationRun(data=data_spec("csmri-simulator", {**CSMRI, "subjects": 3, "slices": 1,
                                                             "variation": {"lesions": 0}}),
                          network="segmentation_unet", classes=2, training={"epochs": 1})
    with pytest.raises(DataError) as error:
        train_segmentation(run, tmp_path / "run")
    assert str(error.value) == (
        "the csmri-simulator data: no labels, which a segmentation run learns from; give data with labels (a "
        "paired folder's labels/, simulated data with lesions) or leave out the segmentation run")
    assert not (tmp_path / "run").exists()


def test_fresh_training_masks_are_the_builtin_studys_and_leave_validation_and_test_fixed():
    splits = paired_splits(data_spec("csmri-simulator", {**CSMRI, "training_masks": "fresh"}))
    fixed = paired_splits(data_spec("csmri-simulator", CSMRI))
    builtin = csmri_splits(CsmriConfig(**CSMRI))
    draw = data_spec("csmri-simulator", {**CSMRI, "training_masks": "fresh"}).fresh_masks()
    assert draw is not None and fixed.train.masks is None
    data = splits.train.data
    for epoch in (0, 3):
        splits.train.set_epoch(epoch)
        builtin.train.set_epoch(epoch)
        fixed.train.set_epoch(epoch)
        for index in range(len(builtin.train)):
            item, reference = splits.train[index], builtin.train[index]
            row = data.ids.index(item["id"])
            assert item["id"] == reference["id"]
            # The built-in study's training input (its zero-filled magnitude in this epoch) ...
            expected = torch.view_as_complex(reference["input"].permute(1, 2, 0).contiguous()).abs()
            torch.testing.assert_close(item["input"][0], expected, rtol=0, atol=1e-6)
            # ... and by NumPy from the reference and the drawn mask.
            mask = draw(epoch, row)[0].numpy()
            by_hand = np.abs(ifft2c(mask * fft2c(data.references[row, 0].numpy().astype(np.complex128))))
            np.testing.assert_allclose(item["input"][0].numpy(), by_hand, atol=1e-6)
            assert torch.equal(fixed.train[index]["input"], data.inputs[row])  # fixed: the epoch changes nothing
    first, later = draw(0, 0), draw(1, 0)
    assert not torch.equal(first, later) and torch.equal(first, draw(0, 0))
    for split in ("val", "test"):  # validation and test keep the one mask of each slice
        assert getattr(splits, split).masks is None


def test_the_fastmri_sources_fresh_masks_follow_its_mask_seed():
    draws = [KspaceDataSpec(path="h5", size=32, training_masks="fresh", mask_seed=seed).fresh_masks()
             for seed in (0, 0, 1)]
    assert all(draw is not None for draw in draws)
    assert torch.equal(draws[0](2, 5), draws[1](2, 5)) and not torch.equal(draws[0](2, 5), draws[2](2, 5))
    assert KspaceDataSpec(path="h5").fresh_masks() is None  # default: fixed


def test_lesion_free_simulations_have_no_labels_and_say_so_once(capsys):
    WARNED.discard("csmri-simulator")
    data = paired_data(data_spec("csmri-simulator", {**CSMRI, "subjects": 3, "slices": 1,
                                                     "variation": {"lesions": 0}}))
    assert data.labels is None
    assert capsys.readouterr().err == (
        "taskloss: warning: csmri-simulator: no slice holds a lesion, so the data has no labels (no SIS, no task "
        "term with network segmentation); add subjects or slices, or raise variation.lesions\n")


STUDY = {
    "name": "simulated",
    "networks": {"unet": {"name": "unet", "options": {"widths": [4, 8]}}},
    "losses": {"l1": {"l1": 1.0}, "mse": {"mse": 1.0}},
    "metrics": ["psnr", "ssim"],
    "training": {"epochs": 1, "batch_size": 4},
    "segmentation": {"epochs": 1},
    "figure_cases": 1,
}


@pytest.mark.parametrize(("task", "data", "line"), [
    ("mr2xray-simulator", {"data": "pairs"},
     "s.yaml: data: task: mr2xray-simulator simulates its data; leave out data.data (a folder of pairs is task: "
     "paired)"),
    ("csmri-simulator", {"path": "h5"},
     "s.yaml: data: unknown key 'path'; choose one of mask, acceleration, center_fraction, training_masks, "
     "subjects, slices, "
     "size, seed, anatomy, weighting, field_of_view_mm, orientations, zoom, noise, texture, gibbs, "
     "partial_fourier, bias, phase, val_fraction, test_fraction, data, variation"),
])
def test_a_simulator_section_refuses_a_folder_in_one_line(task, data, line):
    with pytest.raises(ConfigError) as error:
        parse_study({**STUDY, "task": task, "data": data}, "s.yaml")
    assert str(error.value) == line


def test_a_simulated_source_refuses_a_data_folder_on_the_command_line(tmp_path):
    spec = parse_study({**STUDY, "task": "mr2xray-simulator", "data": MR2XRAY}, "s.yaml", tmp_path)
    assert spec.data.data_folder() is None  # nothing to resolve against the study file's folder
    with pytest.raises(ConfigError, match=r"^task: mr2xray-simulator simulates its data and reads no folder; leave "
                                          r"out --data \(or use task: paired for a folder of pairs\)$"):
        spec.data.with_data_folder(tmp_path)


@pytest.mark.parametrize(("task", "data", "first_row", "line"), [
    ("mr2xray-simulator", {**MR2XRAY, "subjects": 5},
     "unet - l1", "Data: 10 views of 5 simulated subjects (mr2xray simulator, ellipsoid anatomy, cone beam, 2 "
     "angles, seed 0), 16 px; input the MR projection, target the X-ray, labels the projected bone mask (bone path "
     ">= 25 mm); split by subject: 6 train, 2 val, 2 test images."),
    ("csmri-simulator", {**CSMRI, "subjects": 5, "slices": 4},
     "Zero-filled", "Data: 20 slices of 5 simulated subjects (csmri simulator, ellipsoid anatomy, t1, seed 0), 16 "
     "px, cartesian-vd mask at acceleration 4 (centre fraction default), one fixed mask per slice; input the "
     "zero-filled magnitude, target the fully sampled magnitude, labels the lesions; split by subject: 12 train, "
     "4 val, 4 test slices."),
])
def test_a_study_file_on_a_simulator_runs_end_to_end(tmp_path, task, data, first_row, line):
    spec = parse_study({**STUDY, "task": task, "data": data}, "s.yaml", tmp_path)
    assert paired_data(spec.data).labels is not None  # so a scorer is trained and SIS reported
    results = run_file_study(spec, tmp_path / "out" / "simulated", accelerator="cpu")
    table = (results / "table.md").read_text().splitlines()
    assert table[0].endswith("| SIS ↑ |") and table[2].split("|")[1].strip() == first_row
    assert (tmp_path / "out" / "simulated" / "segmentation" / "config.yaml").is_file()
    with open(results / "per_image.csv", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["method"] == "unet-l1"]
    test = paired_splits(spec.data).test
    assert [row["case"] for row in rows] == [test[i]["id"] for i in range(len(test))]
    assert [row["subject"] for row in rows] == [subject_of(row["case"]) for row in rows]
    assert line in render_file_study(tmp_path / "out" / "simulated").splitlines()


def test_the_documented_simulator_study_is_accepted_with_the_mr2xray_demos_data():
    text = (Path(__file__).parents[2] / "docs" / "studies.md").read_text()
    block = text.split("### Simulated data")[1].split("```yaml\n")[1].split("```")[0]
    spec = parse_study(yaml.safe_load(block), "docs/studies.md")
    demo = yaml.safe_load((PRESET_DIR / "mr2xray-demo.yaml").read_text())["data"]
    assert spec.task == "mr2xray-simulator" and spec.trains_task_network
    assert {key: getattr(spec.data, key) for key in demo} == demo
