"""The mr2xray dataset: item contract, physics of the pairs, splits, folders written and read."""

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from taskloss.config import validate_config
from taskloss.data.mr2xray import (
    Mr2XrayConfig,
    load_mr2xray_folder,
    mr2xray_splits,
    simulate_mr2xray,
    write_mr2xray,
)
from taskloss.data.phantoms import Variation, head_phantom
from taskloss.data.physics import Tissue
from taskloss.data.projector import project
from taskloss.errors import ConfigError, DataError

SMALL = {"subjects": 4, "angles": 2, "size": 24, "anatomy": "ellipsoid", "seed": 5}


@pytest.fixture(scope="module")
def data():
    return simulate_mr2xray(Mr2XrayConfig(**SMALL))


def test_items_follow_the_contract():
    splits = mr2xray_splits(Mr2XrayConfig(**SMALL))
    item = splits.train[0]
    assert set(item) == {"input", "target", "id", "subject", "angle", "bone"}
    for key in ("input", "target"):
        assert item[key].shape == (1, 24, 24) and item[key].dtype == torch.float32
        assert item[key].min() == 0 and item[key].max() == 1  # per-image min-max
    assert isinstance(item["id"], str) and isinstance(item["subject"], int)
    assert isinstance(item["angle"], float)
    train, val, test = ({s[i]["subject"] for i in range(len(s))} for s in splits)
    assert train and val and test and not (train & val or train & test or val & test)
    assert sum(len(s) for s in splits) == 8


def test_simulation_is_deterministic(data):
    again = simulate_mr2xray(Mr2XrayConfig(**SMALL))
    assert torch.equal(data.inputs, again.inputs) and torch.equal(data.targets, again.targets)
    assert data.ids[:2] == ["s000_a000.0", "s000_a090.0"]


def test_bone_is_bright_in_xray_and_dark_in_mr(data):
    config = Mr2XrayConfig(**SMALL)
    phantom = head_phantom(0, config.seed, anatomy="ellipsoid", spacing_mm=config.phantom_spacing_mm())
    bone = phantom.fractions[[Tissue.CORTICAL_BONE]][None]
    bone_path = project(bone, phantom.spacing, [0.0], config.geometry())[0, 0, 0]
    head = data.targets[0, 0] > 0.05
    most_bone = head & (bone_path >= bone_path[head].quantile(0.8))
    least_bone = head & (bone_path <= bone_path[head].quantile(0.2))
    xray, mr = data.targets[0, 0], data.inputs[0, 0]
    # Relative to the rays with little bone, bony rays are brighter in X-ray than in MR.
    assert xray[most_bone].mean() / xray[least_bone].mean() > mr[most_bone].mean() / mr[least_bone].mean()


def test_write_and_read_back(tmp_path, data):
    config = Mr2XrayConfig(**SMALL)
    write_mr2xray(tmp_path, data, config)
    loaded = load_mr2xray_folder(tmp_path, config)
    assert loaded.ids == data.ids and loaded.splits == data.splits
    torch.testing.assert_close(loaded.inputs, data.inputs, atol=1e-6, rtol=0)
    torch.testing.assert_close(loaded.targets, data.targets, atol=1e-6, rtol=0)
    assert torch.equal(loaded.subjects, data.subjects) and torch.allclose(loaded.angles, data.angles)
    splits = mr2xray_splits(Mr2XrayConfig(**{**SMALL, "data": tmp_path}))
    assert [len(s) for s in splits] == [data.splits.count(n) for n in ("train", "val", "test")]


def test_user_pairs_of_images_and_volumes(tmp_path):
    (tmp_path / "input").mkdir()
    (tmp_path / "target").mkdir()
    rng = np.random.default_rng(0)
    for k in range(3):  # 2-D pairs of another size: resized, min-max normalised
        np.save(tmp_path / "input" / f"p{k}.npy", rng.random((30, 30)).astype(np.float32) * 7)
        np.save(tmp_path / "target" / f"p{k}.npy", rng.random((30, 30)).astype(np.float32) + 3)
    volume = np.zeros((20, 20, 20), np.float32)
    volume[5:15, 5:15, 5:15] = 1000.0  # a bone cube in air (HU), RAS affine
    hu = np.full((20, 20, 20), -1000.0, np.float32)
    hu[5:15, 5:15, 5:15] = 1000.0
    for folder, array in (("input", volume), ("target", hu)):
        nib.save(nib.Nifti1Image(array, np.diag([2.0, 2.0, 2.0, 1.0])), tmp_path / folder / "vol.nii.gz")
    config = Mr2XrayConfig(subjects=3, angles=2, size=24)
    data = load_mr2xray_folder(tmp_path, config)
    assert data.ids == ["p0", "p1", "p2", "vol_a000.0", "vol_a090.0"]
    assert data.inputs.shape == (5, 1, 24, 24) and float(data.inputs.max()) == 1.0
    assert math.isnan(float(data.angles[0])) and float(data.angles[4]) == 90.0
    assert data.subjects.tolist() == [0, 1, 2, 3, 3]  # one subject per pair, views share it
    assert set(data.splits) == {"train", "val", "test"}


def test_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(DataError, match="input: no such folder"):
        load_mr2xray_folder(tmp_path, Mr2XrayConfig())
    (tmp_path / "input").mkdir()
    (tmp_path / "target").mkdir()
    np.save(tmp_path / "input" / "a.npy", np.zeros((4, 4), np.float32))
    np.save(tmp_path / "target" / "b.npy", np.zeros((4, 4), np.float32))
    with pytest.raises(DataError, match=r"unmatched files: \['a'\] only in input/, \['b'\] only in target/"):
        load_mr2xray_folder(tmp_path, Mr2XrayConfig())
    np.save(tmp_path / "target" / "a.npy", np.zeros((4, 5), np.float32))
    (tmp_path / "target" / "b.npy").unlink()
    with pytest.raises(DataError, match=r"has shape \(4, 4\) but .* has shape \(4, 5\)"):
        load_mr2xray_folder(tmp_path, Mr2XrayConfig())


@pytest.mark.parametrize(("settings", "message"), [
    ({"sise": 64}, "data: (root): unknown key 'sise'; choose one of subjects, angles, size, seed, anatomy, beam, "
                   "field_of_view_mm, "),
    ({"subjects": 2}, "data: subjects must be >= 3 (train, val and test get one each at least), got 2"),
    ({"beam": "fan"}, "data: beam: Input should be 'cone' or 'parallel'"),
    ({"mr_noise": -0.1}, "data: mr_noise: Input should be greater than or equal to 0"),
    ({"variation": {"lesion": 0}}, "data: variation: unknown key 'lesion'; choose one of rotation_deg, scale, "),
    ({"field_of_view_mm": -1}, "data: field_of_view_mm must be > 0, got -1.0"),
])
def test_config_errors_name_the_key(settings, message):
    with pytest.raises(ConfigError) as error:
        validate_config(Mr2XrayConfig, settings, "data")
    assert str(error.value).startswith(message)


def test_config_from_a_mapping():
    config = validate_config(Mr2XrayConfig, {"size": 32, "variation": {"lesions": 0}, "data": "pairs"}, "data")
    assert config.variation.lesions == 0 and config.data == Path("pairs")
    assert hash(config) == hash(Mr2XrayConfig(size=32.0, variation=Variation(lesions=0), data=Path("pairs")))
