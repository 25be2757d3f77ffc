"""``task: csmri`` study files: fastMRI-style HDF5 files undersampled into pairs, checked against
NumPy FFTs written here, then one tiny study end to end."""

import csv
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from scipy import ndimage

from taskloss.data.sources import KspaceDataSpec, paired_data, paired_splits
from taskloss.data.sources.fastmri import read_kspace_pairs, slice_mask
from taskloss.data.splits import split_subjects
from taskloss.errors import ConfigError, DataError
from taskloss.studies.engine import load_file_run, run_file_study, run_study_of
from taskloss.studies.spec import build_runs, load_study, parse_study

SHAPE = (24, 20)  # acquisition grid (H, W) of the k-space
CROP = (16, 16)  # reconstruction_esc
SLICES = 3


def fft2c(image):
    """Centred orthonormal 2-D FFT in NumPy (fastMRI's convention), independent of taskloss's torch one."""
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def ifft2c(kspace):
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def crop(image, shape):
    top, left = (image.shape[-2] - shape[0]) // 2, (image.shape[-1] - shape[1]) // 2
    return image[..., top:top + shape[0], left:left + shape[1]]


def volume(seed):
    """Complex images (SLICES, H, W): smooth magnitude, smooth phase."""
    rng = np.random.default_rng(seed)
    magnitude = ndimage.gaussian_filter(rng.random((SLICES, *SHAPE)), (0, 2, 2)) + 0.1
    phase = ndimage.gaussian_filter(rng.normal(size=(SLICES, *SHAPE)), (0, 4, 4)) * 3
    return (magnitude * np.exp(1j * phase)).astype(np.complex64)


def write_volume(path, images, reconstruction="reconstruction_esc"):
    """A fastMRI-style single-coil file: k-space = FFT of ``images``; the stored reconstruction is
    the cropped magnitude (fastMRI's definition of reconstruction_esc)."""
    with h5py.File(path, "w") as file:
        file["kspace"] = fft2c(images).astype(np.complex64)
        if reconstruction is not None:
            file[reconstruction] = np.abs(crop(images, CROP)).astype(np.float32)
        file.attrs["max"] = float(np.abs(images).max())


def make_files(folder, count=4):
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for k in range(count):
        images[f"file{k}"] = volume(k)
        write_volume(folder / f"file{k}.h5", images[f"file{k}"])
    return images


def spec_of(folder, **data):
    return KspaceDataSpec(path=folder, size=CROP[0], **data)


def test_zero_filled_input_is_the_masked_inverse_fft_and_target_the_reference(tmp_path):
    images = make_files(tmp_path / "h5")
    spec = spec_of(tmp_path / "h5", acceleration=4, mask="random", center_fraction=0.125)
    data = read_kspace_pairs(spec)
    assert len(data.ids) == 4 * SLICES and data.ids[:2] == ["file0_z000", "file0_z001"]
    for index in (0, 5, 11):
        name = data.ids[index]
        full = crop(images[name[:5]][int(name[-3:])], CROP)
        reference = full / np.abs(full).max()
        mask = slice_mask(spec, name)[0].numpy()
        expected = np.abs(ifft2c(mask * fft2c(reference)))
        np.testing.assert_allclose(data.inputs[index, 0].numpy(), expected, atol=2e-6)
        np.testing.assert_allclose(data.targets[index, 0].numpy(), np.abs(reference), atol=2e-6)
        with h5py.File(tmp_path / "h5" / f"{name[:5]}.h5") as file:  # = the stored reconstruction, scaled
            stored = file["reconstruction_esc"][int(name[-3:])]
        np.testing.assert_allclose(data.targets[index, 0].numpy(), stored / stored.max(), atol=2e-6)
    assert float(data.targets.amax()) == pytest.approx(1.0)


def test_at_acceleration_one_the_input_is_the_target(tmp_path):
    make_files(tmp_path / "h5")
    data = read_kspace_pairs(spec_of(tmp_path / "h5", acceleration=1, mask="equispaced", center_fraction=0.0))
    np.testing.assert_allclose(data.inputs.numpy(), data.targets.numpy(), atol=2e-6)


def test_a_smaller_size_keeps_the_central_kspace_of_the_crop(tmp_path):
    images = make_files(tmp_path / "h5")
    data = read_kspace_pairs(KspaceDataSpec(path=tmp_path / "h5", size=8, acceleration=1, mask="equispaced",
                                            center_fraction=0.0))
    low = ifft2c(crop(fft2c(crop(images["file1"][2], CROP)), (8, 8)))
    np.testing.assert_allclose(data.targets[1 * SLICES + 2, 0].numpy(), np.abs(low) / np.abs(low).max(), atol=2e-6)


@pytest.mark.parametrize(("mask", "acceleration", "fraction"), [("equispaced", 4, 0.08), ("random", 4, 0.08),
                                                                 ("equispaced", 8, 0.04)])
def test_masks_have_the_asked_acceleration_and_central_lines(tmp_path, mask, acceleration, fraction):
    spec = KspaceDataSpec(path=tmp_path, size=100, mask=mask, acceleration=acceleration, center_fraction=fraction)
    masks = np.stack([slice_mask(spec, f"f{k}_z000")[0].numpy() for k in range(200)])  # (200, 100, 100)
    assert (masks == masks[:, :1]).all()  # whole lines: every row the same
    lines = masks[:, 0]
    centre = round(100 * fraction)
    start = (100 - centre + 1) // 2
    assert lines[:, start:start + centre].all()
    if mask == "equispaced":  # central lines plus every acceleration-th line: about W / acceleration + some
        assert (lines.sum(axis=1) <= 100 / acceleration + centre).all()
        assert (lines.sum(axis=1) >= 100 // acceleration).all()
    else:  # fastMRI's RandomMaskFunc: W / acceleration lines on average
        assert lines.sum(axis=1).mean() == pytest.approx(100 / acceleration, rel=0.05)
    assert np.array_equal(masks[0], slice_mask(spec, "f0_z000")[0].numpy())  # fixed per slice
    assert len({m.tobytes() for m in masks}) > 1  # but not one mask for all slices


def test_split_is_by_file_and_seeded_as_the_paired_rule(tmp_path):
    make_files(tmp_path / "h5", count=6)
    spec = spec_of(tmp_path / "h5", split={"val": 0.2, "test": 0.2, "seed": 3})
    data = read_kspace_pairs(spec)
    by_file = {}
    for subject, split in zip(data.subjects, data.splits, strict=True):
        by_file.setdefault(subject, set()).add(split)
    assert all(len(splits) == 1 for splits in by_file.values()) and data.by == "file"
    expected = split_subjects(range(6), 3, 0.2, 0.2)  # stems file0..file5 sort as 0..5
    assert {f"file{k}": {expected[k]} for k in range(6)} == by_file
    splits = paired_splits(spec)
    sizes = [len(splits.train), len(splits.val), len(splits.test)]
    assert sum(sizes) == 6 * SLICES and all(size > 0 and size % SLICES == 0 for size in sizes)


def test_slices_and_the_reference_grid_without_a_stored_reconstruction(tmp_path):
    folder = tmp_path / "h5"
    folder.mkdir()
    images = {k: volume(k) for k in range(3)}
    write_volume(folder / "a.h5", images[0], reconstruction=None)  # crop: the centred 20 x 20 square
    write_volume(folder / "b.h5", images[1], reconstruction="reconstruction_rss")
    write_volume(folder / "c.h5", images[2])
    data = read_kspace_pairs(KspaceDataSpec(path=folder, size=16, slices=(1, -1)))
    assert data.ids == ["a_z001", "b_z001", "c_z001"]
    square = crop(images[0][1], (20, 20))
    low = ifft2c(crop(fft2c(square), (16, 16)))
    np.testing.assert_allclose(data.targets[0, 0].numpy(), np.abs(low) / np.abs(low).max(), atol=2e-6)
    with pytest.raises(DataError) as error:
        read_kspace_pairs(KspaceDataSpec(path=folder, size=16, slices=(5, 9)))
    assert str(error.value) == (f"{folder / 'a.h5'}: data.slices [5, 9] keeps none of its 3 slices; widen "
                                "data.slices (e.g. [0, null] keeps all) or leave the file out")
    with pytest.raises(DataError) as error:
        read_kspace_pairs(KspaceDataSpec(path=folder, size=18))
    assert str(error.value) == (f"{folder / 'b.h5'}: slices of (16, 16) (the reconstruction_rss grid) are "
                                "smaller than data.size 18; use a data.size of at most 16, or leave the file out")


STUDY = {
    "name": "knee",
    "task": "csmri",
    "data": {"path": "h5", "size": 16, "acceleration": 4, "center_fraction": 0.125},
    "networks": {"unet": {"name": "unet", "options": {"widths": [4, 8]}}},
    "losses": {"l1": {"l1": 1.0}, "mse": {"mse": 1.0}},
    "metrics": ["psnr", "ssim"],
    "training": {"epochs": 1, "batch_size": 4},
    "figure_cases": 2,
}


def _parse(data, task="csmri", source="s.yaml"):
    return parse_study({**STUDY, "task": task, "data": data}, source)


@pytest.mark.parametrize(("task", "data", "line"), [
    ("paired", {"path": "p", "acceleration": 4},
     "s.yaml: data: unknown key 'acceleration'; choose one of path, size, split, normalize"),
    ("csmri", {"path": "p", "normalize": "each"},
     "s.yaml: data: unknown key 'normalize'; choose one of mask, acceleration, center_fraction, training_masks, "
     "path, size, split, slices, mask_seed"),
    ("csmri", {"path": "p", "split": {"by": "subject"}},
     "s.yaml: data.split: unknown key 'by'; choose one of val, test, seed"),
    ("csmri", {"path": "p", "acceleration": 4, "center_fraction": 0.3},
     "s.yaml: data: center_fraction must be in [0, 1 / acceleration] = [0, 0.25], got 0.3; the central lines "
     "alone would exceed the budget"),
    ("csmri", {"path": "p", "mask": "radial"},
     "s.yaml: data.mask: Input should be 'cartesian-vd', 'random', 'equispaced' or 'vd-2d'"),
    ("csmri", {"path": "p", "mask": "equispaced", "acceleration": 2.5},
     "s.yaml: data: equispaced masks need an integer acceleration, got 2.5"),
    ("mri", {"path": "p"},
     "s.yaml: task: unknown task 'mri'; choose one of paired, csmri, mr2xray-simulator, csmri-simulator"),
])
def test_a_key_of_the_other_task_or_a_bad_mask_is_one_line(task, data, line):
    with pytest.raises(ConfigError) as error:
        _parse(data, task)
    assert str(error.value) == line


def test_the_documented_example_is_accepted(tmp_path):
    text = (Path(__file__).parents[2] / "docs" / "studies.md").read_text()
    block = text.split("### `task: csmri`")[1].split("```yaml\n")[1].split("```")[0]
    spec = parse_study(yaml.safe_load(block), "docs/studies.md", tmp_path)
    assert spec.task == "csmri" and spec.data.slices == (5, -5) and spec.data.center_fraction == 0.08
    assert spec.data.path == tmp_path / "singlecoil_train"


def test_slices_take_open_ends(tmp_path):
    make_files(tmp_path / "h5", count=3)
    data = read_kspace_pairs(spec_of(tmp_path / "h5", slices=(None, 1)))
    assert data.ids == ["file0_z000", "file1_z000", "file2_z000"]
    assert _parse({"path": "h5", "slices": [-1, None]}).data.slices == (-1, None)


def test_a_csmri_study_file_records_its_task_in_every_run(tmp_path):
    spec = _parse({"path": "h5"})
    assert spec.data == KspaceDataSpec(path="h5")  # defaults: 320 px, random mask, 4x, fastMRI's centre
    assert (spec.data.size, spec.data.mask, spec.data.acceleration) == (320, "random", 4.0)
    run = build_runs(spec)["unet-l1"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(run.model_dump(mode="json")))
    again = load_file_run(tmp_path)
    assert again == run and isinstance(again.data, KspaceDataSpec) and again.task == "csmri"


def test_a_bad_file_is_one_error_naming_it(tmp_path):
    folder = tmp_path / "h5"
    make_files(folder, count=3)
    with h5py.File(folder / "file1.h5", "w") as file:
        file["kspace"] = np.ones((2, 8, 6), np.float32)
    with pytest.raises(DataError) as error:
        read_kspace_pairs(spec_of(folder))
    assert str(error.value) == (f"{folder / 'file1.h5'}: 'kspace' has dtype float32, not complex; fastMRI "
                                "k-space is complex64 (slices, H, W)")
    (folder / "file1.h5").write_bytes(b"not hdf5")
    with pytest.raises(DataError, match=r"file1.h5 is not a readable HDF5 file \(OSError: .*\); check that it is "
                                        r"complete$"):
        read_kspace_pairs(spec_of(folder))
    (folder / "file1.h5").unlink()
    with pytest.raises(DataError) as error:
        read_kspace_pairs(spec_of(folder))
    assert str(error.value) == (f"{folder}: 6 slices of 2 file(s); train, val and test need one file each at "
                                "least: add fastMRI files (each file is one volume)")


def test_a_csmri_study_runs_end_to_end_with_a_zero_filled_row(tmp_path):
    make_files(tmp_path / "h5", count=5)
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(STUDY, sort_keys=False))
    spec = load_study(tmp_path / "study.yaml")
    results = run_file_study(spec, tmp_path / "out" / "knee", accelerator="cpu")
    table = (results / "table.md").read_text()
    assert [line.split("|")[1].strip() for line in table.splitlines()[2:5]] == ["Zero-filled", "unet - l1",
                                                                                "unet - mse"]
    test = paired_splits(spec.data).test
    with open(results / "per_image.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    zero_filled = [row for row in rows if row["method"] == "zero_filled"]
    assert [row["case"] for row in zero_filled] == [test[i]["id"] for i in range(len(test))]
    # The zero-filled row scores the input itself: PSNR against the target by hand (data_range 1).
    data = paired_data(spec.data)
    first = data.ids.index(test[0]["id"])
    error = np.mean((np.clip(data.inputs[first, 0].numpy(), 0, 1) - data.targets[first, 0].numpy()) ** 2)
    assert float(zero_filled[0]["psnr"]) == pytest.approx(10 * np.log10(1 / error), rel=1e-4)
    assert len([row for row in rows if row["method"] == "unet-l1"]) == len(test)
    assert (results / "figure.png").is_file()
    assert (results / "comparisons.md").read_text().startswith("No comparison: the test split holds fewer than 2")
    methods = json.loads((results / "methods.json").read_text())["methods"]
    assert [m["key"] for m in methods] == ["unet-l1", "unet-mse", "ground_truth"]
    assert (results / "images" / "unet-l1" / f"{test[0]['id']}.npy").is_file()
    # A csmri run is also trained alone (`taskloss train runs/<run>/config.yaml`); finished, it returns at once.
    run_dir = tmp_path / "out" / "knee" / "runs" / "unet-l1"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    finished = run_study_of(config, "config.yaml").train(config, run_dir, "config.yaml")
    assert (finished.epochs, finished.steps) == (1, 3) and math.isnan(finished.seconds_per_step)  # 9 train slices
