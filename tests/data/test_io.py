"""File readers: every format, orientation and spacing, and one clear error per bad file."""

import gzip

import imageio.v3 as iio
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file

from taskloss.data.io import read_dicom_series, read_fastmri, read_image, stem
from taskloss.errors import DataError


def test_npy_png_tiff(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.save(tmp_path / "a.npy", array)
    np.testing.assert_array_equal(read_image(tmp_path / "a.npy").array, array)
    iio.imwrite(tmp_path / "b.png", (array * 1000).astype(np.uint16))
    np.testing.assert_array_equal(read_image(tmp_path / "b.png").array, array * 1000)
    rgb = np.stack([array, array * 2, array * 3], axis=-1).astype(np.uint8)
    iio.imwrite(tmp_path / "c.png", rgb)
    np.testing.assert_allclose(read_image(tmp_path / "c.png").array, array * 2)
    iio.imwrite(tmp_path / "d.tif", array / 7)
    np.testing.assert_allclose(read_image(tmp_path / "d.tif").array, array / 7)
    assert read_image(tmp_path / "d.tif").spacing_mm is None


def test_nifti_volume_is_reoriented_to_z_y_x(tmp_path):
    array = np.random.default_rng(0).random((4, 5, 6)).astype(np.float32)  # (x, y, z)
    flipped = np.diag([-2.0, 3.0, 4.0, 1.0])  # x stored right-to-left (LAS)
    nib.save(nib.Nifti1Image(array, flipped), tmp_path / "v.nii.gz")
    image = read_image(tmp_path / "v.nii.gz")
    np.testing.assert_allclose(image.array, array[::-1].transpose(2, 1, 0))
    assert image.spacing_mm == (4.0, 3.0, 2.0)
    assert stem(tmp_path / "v.nii.gz") == "v"


def test_dicom_file_and_series_sorted_by_position(tmp_path):
    source = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    single = read_image(get_testdata_file("CT_small.dcm"))
    expected = source.pixel_array * float(source.RescaleSlope) + float(source.RescaleIntercept)
    np.testing.assert_allclose(single.array, expected)
    series = tmp_path / "series"
    series.mkdir()
    pixels = source.pixel_array.copy()
    for order, z in zip(["c", "a", "b"], [10.0, 12.5, 15.0], strict=True):
        source.ImagePositionPatient = [0.0, 0.0, z]
        source.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        source.PixelData = (pixels + int(z * 2)).astype(pixels.dtype).tobytes()
        source.save_as(series / f"{order}.dcm")
    volume = read_dicom_series(series)
    assert volume.array.shape == (3, 128, 128)
    assert volume.spacing_mm[0] == pytest.approx(2.5)
    np.testing.assert_allclose(np.diff(volume.array[:, 0, 0]), [5.0, 5.0])  # ascending z


def test_fastmri_reader(tmp_path):
    import h5py

    with h5py.File(tmp_path / "f.h5", "w") as file:
        file["kspace"] = np.ones((2, 8, 6), np.complex64)
        file["reconstruction_esc"] = np.zeros((2, 4, 4), np.float32)
        file.attrs["max"] = 3.5
    volume = read_fastmri(tmp_path / "f.h5")
    assert volume.kspace.shape == (2, 8, 6) and volume.crop == (4, 4) and volume.max == 3.5
    with h5py.File(tmp_path / "g.h5", "w") as file:
        file["kspace"] = np.ones((2, 8, 6), np.complex64)
    with pytest.raises(DataError, match=r"lacks the dataset\(s\) \['reconstruction_esc'\]"):
        read_fastmri(tmp_path / "g.h5")


def test_bad_files_raise_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        read_image(tmp_path / "missing.npy")
    (tmp_path / "bad.dcm").write_bytes(b"garbage" * 10)
    with pytest.raises(DataError, match=r"bad\.dcm is not a readable DICOM image"):
        read_image(tmp_path / "bad.dcm")
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.float32), np.eye(4)), tmp_path / "full.nii.gz")
    data = (tmp_path / "full.nii.gz").read_bytes()
    (tmp_path / "cut.nii.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut\.nii\.gz is not a readable NIfTI file"):
        read_image(tmp_path / "cut.nii.gz")
    (tmp_path / "bad.npy").write_bytes(gzip.compress(b"x"))
    with pytest.raises(DataError, match=r"bad\.npy is not a readable NumPy"):
        read_image(tmp_path / "bad.npy")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match=r"bad\.png is not a readable PNG/TIFF"):
        read_image(tmp_path / "bad.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty folder"):
        read_image(tmp_path / "empty")
    (tmp_path / "x.jpg").write_bytes(b"")
    with pytest.raises(DataError, match="unsupported file type"):
        read_image(tmp_path / "x.jpg")
