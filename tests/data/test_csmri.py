"""The csmri dataset: item contract, undersampling against numpy FFTs, mask seeding, folders, fastMRI."""

from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch

from taskloss.config import validate_config
from taskloss.data.csmri import (
    CsmriConfig,
    CsmriDataset,
    _sample_slices,
    add_kspace_noise,
    csmri_splits,
    load_csmri_folder,
    simulate_csmri,
    slice_positions_mm,
    tissue_texture,
    write_csmri,
)
from taskloss.data.kspace import fft2c
from taskloss.errors import ConfigError, DataError

SMALL = {"subjects": 3, "slices": 4, "size": 32, "anatomy": "ellipsoid", "acceleration": 4, "seed": 2}


@pytest.fixture(scope="module")
def config():
    return CsmriConfig(**SMALL)


@pytest.fixture(scope="module")
def data(config):
    return simulate_csmri(config)


def numpy_fft2c(x: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def numpy_ifft2c(k: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))


def test_items_follow_the_contract_and_numpy_fft(data, config):
    dataset = CsmriDataset(data, "val", config)
    item = dataset[1]
    expected = {"input": ((2, 32, 32), torch.float32), "target": ((2, 32, 32), torch.float32),
                "kspace": ((1, 32, 32), torch.complex64), "mask": ((1, 32, 32), torch.float32),
                "magnitude": ((1, 32, 32), torch.float32), "label": ((1, 32, 32), torch.int64)}
    for key, (shape, dtype) in expected.items():
        assert (item[key].shape, item[key].dtype) == (shape, dtype), key
    assert isinstance(item["id"], str) and isinstance(item["subject"], int)
    assert item["magnitude"].max().item() == pytest.approx(1.0)  # per-slice max normalisation
    truth = (item["target"][0] + 1j * item["target"][1]).numpy().astype(np.complex128)
    mask = item["mask"][0].numpy()
    kspace = mask * numpy_fft2c(truth)
    np.testing.assert_allclose(item["kspace"][0].numpy(), kspace, atol=1e-5)
    zero_filled = numpy_ifft2c(kspace)
    np.testing.assert_allclose(item["input"][0].numpy(), zero_filled.real, atol=1e-5)
    np.testing.assert_allclose(item["input"][1].numpy(), zero_filled.imag, atol=1e-5)
    np.testing.assert_allclose(item["magnitude"][0].numpy(), np.abs(truth), atol=1e-5)
    assert int(mask[0].sum()) == 8  # cartesian-vd: exactly 32 / 4 lines


def test_masks_fixed_for_val_fresh_per_epoch_for_train(data, config):
    val_a, val_b = CsmriDataset(data, "val", config), CsmriDataset(data, "val", config)
    val_b.set_epoch(3)
    assert torch.equal(val_a[0]["mask"], val_b[0]["mask"])
    assert not torch.equal(val_a[0]["mask"], val_a[1]["mask"])  # one mask per slice
    train = CsmriDataset(data, "train", config)
    first = train[0]["mask"]
    assert torch.equal(first, CsmriDataset(data, "train", config)[0]["mask"])  # reproducible
    train.set_epoch(1)
    assert not torch.equal(first, train[0]["mask"])


def test_splits_by_subject_and_labels(config):
    splits = csmri_splits(config)
    subjects = [set(s.data.subjects[s.indices].tolist()) for s in splits]
    assert [len(s) for s in subjects] == [1, 1, 1]
    assert sum(len(s) for s in splits) == 12
    labels = splits.train.data.labels
    assert labels.dtype == torch.int64 and set(labels.unique().tolist()) <= {0, 1}


def test_phase_option_gives_complex_slices():
    data = simulate_csmri(CsmriConfig(**{**SMALL, "phase": True, "subjects": 3, "slices": 1}))
    assert data.images.imag.abs().max() > 0.1
    assert data.images.abs().flatten(1).amax(dim=1).allclose(torch.ones(3))


def test_write_and_read_back(tmp_path, data, config):
    write_csmri(tmp_path, data, config)
    loaded = load_csmri_folder(tmp_path, config)
    assert loaded.ids == data.ids and loaded.splits == data.splits
    torch.testing.assert_close(loaded.images, data.images)
    assert torch.equal(loaded.labels, data.labels)


def test_fastmri_files(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("file_a", "file_b", "file_c"):
        image = rng.random((2, 40, 36)) + 1j * rng.random((2, 40, 36))
        with h5py.File(tmp_path / f"{name}.h5", "w") as file:
            file["kspace"] = numpy_fft2c(image).astype(np.complex64)
            file["reconstruction_esc"] = np.zeros((2, 32, 32), np.float32)
            file.attrs["max"] = 1.0
    data = load_csmri_folder(tmp_path, CsmriConfig(size=32))
    assert data.images.shape == (6, 1, 32, 32) and data.ids[0] == "file_a_z000"
    assert data.subjects.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.images.abs().flatten(1).amax(dim=1).allclose(torch.ones(6))
    assert int(data.labels.sum()) == 0
    (tmp_path / "file_a.h5").write_bytes(b"not an hdf5 file")
    with pytest.raises(DataError, match=r"file_a\.h5 is not a readable HDF5 file"):
        load_csmri_folder(tmp_path, CsmriConfig(size=32))


@pytest.mark.parametrize(("settings", "message"), [
    ({"acceleration": 0.5}, "data: acceleration must be >= 1 (1 = fully sampled), got 0.5"),
    ({"size": 96, "center_fraction": 0.2}, "data: center_fraction must be in [0, 1 / acceleration] = [0, 0.125], "
                                           "got 0.2; the central lines alone would exceed the budget"),
    ({"mask": "radial"}, "data: mask: Input should be 'cartesian-vd', 'random', 'equispaced' or 'vd-2d'"),
    ({"mask": "equispaced", "acceleration": 2.5}, "data: equispaced masks need an integer acceleration, got 2.5"),
    ({"slices": -2}, "data: slices: Input should be greater than or equal to 1"),
    ({"accel": 4}, "data: (root): unknown key 'accel'; choose one of mask, acceleration, center_fraction, subjects, "),
    ({"zoom": 0.5}, "data: zoom: Input should be greater than or equal to 1"),
    ({"orientations": ["axial", "oblique"]}, "data: orientations.1: Input should be 'axial', 'coronal' or 'sagittal'"),
    ({"orientations": []}, "data: orientations: Tuple should have at least 1 item after validation, not 0"),
    ({"texture": -0.1}, "data: texture: Input should be greater than or equal to 0"),
    ({"subjects": 2}, "data: subjects must be >= 3 (train, val and test get one each at least), got 2"),
])
def test_config_errors_name_the_key(settings, message):
    with pytest.raises(ConfigError) as error:
        validate_config(CsmriConfig, settings, "data")
    assert str(error.value).startswith(message)


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="holds neither images/"):
        load_csmri_folder(tmp_path, CsmriConfig())


def test_kspace_noise_has_the_requested_sigma_in_kspace_and_image():
    image = torch.zeros(4, 1, 64, 64, dtype=torch.complex64)
    sigma = torch.tensor([0.01, 0.02, 0.05, 0.1]).view(4, 1, 1, 1)
    noisy = add_kspace_noise(image, sigma, torch.Generator().manual_seed(0))
    for domain in (fft2c(noisy), noisy):  # orthonormal FFT: the same sigma per pixel (Parseval)
        for part in (domain.real, domain.imag):
            measured = part.flatten(1).std(dim=1)
            assert torch.allclose(measured, sigma.flatten(), rtol=0.05)  # 4096 samples: sd of sd ~1.1 %


def test_tissue_texture_has_unit_variance_log_and_one_pixel_correlation():
    texture = tissue_texture((8, 1, 64, 64), 0.1, torch.Generator().manual_seed(1))
    log = texture.log() / 0.1
    assert abs(log.var().item() - 1.0) < 0.05 and abs(log.mean().item()) < 0.02
    inner = log[..., 1:-1, 1:-1]  # away from the reflected border
    for lag in (inner[..., 1:, :] * inner[..., :-1, :], inner[..., :, 1:] * inner[..., :, :-1]):
        # kernel (1, 2, 1) / 4: lag-1 autocorrelation (1 * 2 + 2 * 1) / (1 + 4 + 1) = 2 / 3
        assert abs(lag.mean().item() - 2 / 3) < 0.03


def _coordinate_volumes(spacing: float = 2.0, n: int = 81) -> torch.Tensor:
    """(3, D, H, W) volumes holding the x, y and z coordinate (mm from the centre) of each voxel."""
    axis = (torch.arange(n, dtype=torch.float32) - (n - 1) / 2) * spacing
    z, y, x = torch.meshgrid(axis, axis, axis, indexing="ij")
    return torch.stack([x, y, z])


def test_slices_of_each_orientation_follow_its_axes():
    config = CsmriConfig(subjects=3, slices=3, size=16, field_of_view_mm=64.0,
                         orientations=("axial", "coronal", "sagittal"))
    planes = _sample_slices(_coordinate_volumes(), SimpleNamespace(spacing_mm=2.0, origin_mm=(0.0, 0.0, 0.0)),
                            config)
    positions = slice_positions_mm(config)
    assert positions == [20.0, -15.0, 0.0]  # the middle of each orientation's range
    pixel = 64.0 / 16
    # axial: x grows along columns, y falls down the rows (anterior at the top), z is the position
    assert torch.allclose(planes[0, 0, 5, 1:] - planes[0, 0, 5, :-1], torch.tensor(pixel))
    assert torch.allclose(planes[1, 0, 1:, 5] - planes[1, 0, :-1, 5], torch.tensor(-pixel))
    assert torch.allclose(planes[2, 0], torch.tensor(positions[0]))
    # coronal: x along columns, z falls down the rows, y is the position
    assert torch.allclose(planes[0, 1, 5, 1:] - planes[0, 1, 5, :-1], torch.tensor(pixel))
    assert torch.allclose(planes[2, 1, 1:, 5] - planes[2, 1, :-1, 5], torch.tensor(-pixel))
    assert torch.allclose(planes[1, 1], torch.tensor(positions[1]))
    # sagittal: y falls along columns (anterior at the left), z falls down the rows, x is the position
    assert torch.allclose(planes[1, 2, 5, 1:] - planes[1, 2, 5, :-1], torch.tensor(-pixel))
    assert torch.allclose(planes[2, 2, 1:, 5] - planes[2, 2, :-1, 5], torch.tensor(-pixel))
    assert torch.allclose(planes[0, 2], torch.tensor(positions[2]))


def test_orientations_from_a_mapping_are_a_hashable_tuple():
    config = validate_config(CsmriConfig, {"orientations": ["axial", "sagittal"]}, "data")
    assert config.orientations == ("axial", "sagittal") and hash(config) == hash(CsmriConfig(
        orientations=("axial", "sagittal")))


def test_zoom_narrows_each_slice_inside_the_full_field():
    config = CsmriConfig(subjects=3, slices=6, size=16, field_of_view_mm=64.0, zoom=2.0)
    phantom = SimpleNamespace(spacing_mm=2.0, origin_mm=(0.0, 0.0, 0.0))
    planes = _sample_slices(_coordinate_volumes(), phantom, config, torch.Generator().manual_seed(3))
    x = planes[0]
    steps = x[:, 5, 1] - x[:, 5, 0]  # column spacing of each slice: 4 mm / zoom, zoom in [1, 2]
    assert ((steps >= 2.0 - 1e-4) & (steps <= 4.0 + 1e-4)).all() and steps.std() > 0.05
    half = 32.0 - 2.0  # centre of the outermost pixel of the full field
    assert (x.amin(dim=(1, 2)) >= -half - 1e-3).all() and (x.amax(dim=(1, 2)) <= half + 1e-3).all()
    again = _sample_slices(_coordinate_volumes(), phantom, config, torch.Generator().manual_seed(3))
    assert torch.equal(planes, again)
