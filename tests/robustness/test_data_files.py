"""Corrupted data files thrown at the file readers and at the commands that read them.

Files are truncated valid files, random bytes, arrays of a wrong dtype, rank or size, or arrays
holding NaN; the readers must raise :class:`taskloss.errors.DataError` naming the file, and the
commands must refuse in one line without changing the files.
"""

import io

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskloss.data.io import read_fastmri, read_image
from taskloss.errors import DataError


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def nifti_bytes(array: np.ndarray, gz: bool) -> bytes:
    import gzip

    import nibabel as nib

    data = nib.Nifti1Image(array, np.eye(4)).to_bytes()
    return gzip.compress(data) if gz else data


def dicom_bytes(array: np.ndarray) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"  # fixed: the file has one length
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.Rows, dataset.Columns = array.shape
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 16, 16, 15
    dataset.PixelRepresentation, dataset.SamplesPerPixel = 1, 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.PixelData = array.astype(np.int16).tobytes()
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


GOOD = np.linspace(-1000, 1000, 64, dtype=np.float32).reshape(8, 8)
BAD_ARRAYS = st.sampled_from([
    np.zeros((0, 0), np.float32), np.zeros((3, 0), np.float32), np.ones(5, np.float32),
    np.ones((2, 2, 2, 2), np.float32), np.array(3.0, np.float32), np.full((4, 4), np.nan, np.float32),
    np.where(np.eye(4) > 0, np.inf, 0).astype(np.float32), np.array([["a", "b"]]),
    np.array([[None, 1]], dtype=object), np.zeros((4, 4), dtype=[("x", "f4")]), np.ones((3, 3), bool),
])


@st.composite
def corrupt_file(draw: st.DrawFn) -> tuple[str, bytes]:
    suffix = draw(st.sampled_from([".npy", ".png", ".dcm", ".nii", ".nii.gz", ".tif"]))
    kind = draw(st.sampled_from(["truncated", "random", "empty"] + (["bad array"] if suffix == ".npy" else [])))
    if kind == "random":
        return suffix, draw(st.binary(min_size=1, max_size=300))
    if kind == "empty":
        return suffix, b""
    if kind == "bad array":
        return suffix, npy_bytes(draw(BAD_ARRAYS))
    valid = {".npy": lambda: npy_bytes(GOOD), ".png": lambda: _png(), ".tif": lambda: _png(".tif"),
             ".dcm": lambda: dicom_bytes(GOOD), ".nii": lambda: nifti_bytes(GOOD[None], False),
             ".nii.gz": lambda: nifti_bytes(GOOD[None], True)}[suffix]()
    cut = draw(st.integers(min_value=1, max_value=len(valid) - 1))
    return suffix, valid[:cut]


def _png(suffix: str = ".png") -> bytes:
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", (GOOD - GOOD.min()).astype(np.uint16), extension=suffix)


@settings(max_examples=80)
@given(case=corrupt_file())
def test_read_image_raises_a_data_error_naming_the_file(case, tmp_path_factory, kit):
    suffix, data = case
    path = tmp_path_factory.mktemp("image") / f"case{suffix}"
    path.write_bytes(data)
    kit.count("test_data_files")
    try:
        image = read_image(path)
    except DataError as error:
        assert str(path) in str(error) and "\n" not in str(error)
        return
    # A truncated file that still decodes (image formats tolerate some cuts) must be usable.
    assert image.array.ndim in (2, 3) and image.array.size > 0 and np.isfinite(image.array).all()


@st.composite
def corrupt_fastmri(draw: st.DrawFn) -> dict:
    kind = draw(st.sampled_from(["real float32", "int16", "real/imag axis", "no slices", "1-D crop", "nan",
                                 "all zero", "4-D multi-coil", "crop too big", "missing crop", "max text"]))
    kspace = (np.ones((2, 8, 6)) + 1j).astype(np.complex64)
    crop = np.zeros((2, 4, 4), np.float32)
    spec = {"kind": kind, "kspace": kspace, "crop": crop, "attrs": {"max": 1.0}}
    if kind == "real float32":
        spec["kspace"] = np.ones((2, 8, 6), np.float32)
    elif kind == "int16":
        spec["kspace"] = np.ones((2, 8, 6), np.int16)
    elif kind == "real/imag axis":
        spec["kspace"] = np.ones((2, 8, 6, 2), np.float32)
    elif kind == "no slices":
        spec["kspace"] = np.zeros((0, 8, 6), np.complex64)
    elif kind == "1-D crop":
        spec["crop"] = np.zeros(draw(st.integers(0, 5)), np.float32)
    elif kind == "nan":
        kspace[draw(st.integers(0, 1)), draw(st.integers(0, 7)), draw(st.integers(0, 5))] = np.nan
    elif kind == "all zero":
        spec["kspace"] = np.zeros((draw(st.integers(1, 3)), 8, 6), np.complex64)
    elif kind == "4-D multi-coil":
        spec["kspace"] = np.ones((2, 4, 8, 6), np.complex64)
    elif kind == "crop too big":
        spec["crop"] = np.zeros((2, 100, 100), np.float32)
    elif kind == "missing crop":
        spec["crop"] = None
    else:
        spec["attrs"] = {"max": "high"}
    return spec


@settings(max_examples=40)
@given(spec=corrupt_fastmri())
def test_read_fastmri_refuses_bad_kspace_naming_the_file(spec, tmp_path_factory, kit):
    path = tmp_path_factory.mktemp("h5") / "file1000.h5"
    with h5py.File(path, "w") as file:
        file["kspace"] = spec["kspace"]
        if spec["crop"] is not None:
            file["reconstruction_esc"] = spec["crop"]
        file.attrs.update(spec["attrs"])
    kit.count("test_data_files")
    with pytest.raises(DataError) as error:
        read_fastmri(path)
    message = str(error.value)
    assert str(path) in message, spec["kind"]
    if spec["kind"] in ("real float32", "int16", "real/imag axis"):
        assert f"dtype {spec['kspace'].dtype}" in message
    if spec["kind"] == "real/imag axis":
        assert "real/imaginary pairs" in message


@settings(max_examples=12)
@given(damage=st.sampled_from(["truncated h5", "nan h5", "random h5", "corrupt npy pair", "nan npy pair",
                               "empty npy pair", "ct not in HU", "corrupt nii.gz pair"]))
def test_studies_refuse_damaged_data_folders_in_one_line(damage, tmp_path_factory, kit):
    cwd = tmp_path_factory.mktemp("data")
    data = cwd / "data"
    study = "csmri" if damage.endswith("h5") else "mr2xray"
    if study == "csmri":
        data.mkdir()
        with h5py.File(data / "file1.h5", "w") as file:
            file["kspace"] = (np.ones((2, 16, 16)) + 1j).astype(np.complex64)
            file["reconstruction_esc"] = np.zeros((2, 16, 16), np.float32)
        raw = (data / "file1.h5").read_bytes()
        (data / "file1.h5").write_bytes({"truncated h5": raw[: len(raw) // 2], "random h5": b"\x89HDF" * 30,
                                         "nan h5": raw}[damage])
        if damage == "nan h5":
            with h5py.File(data / "file1.h5", "r+") as file:
                file["kspace"][0, 0, 0] = np.nan
    else:
        for folder in ("input", "target"):
            (data / folder).mkdir(parents=True)
        good = np.full((6, 8, 8), -1000.0, np.float32)
        good[2:4, 2:6, 2:6] = 500.0
        pair = {"corrupt npy pair": (npy_bytes(good), npy_bytes(good)[:50]),
                "nan npy pair": (npy_bytes(good), npy_bytes(np.full((6, 8, 8), np.nan, np.float32))),
                "empty npy pair": (npy_bytes(np.zeros((0, 8), np.float32)),) * 2,
                "ct not in HU": (npy_bytes(good), npy_bytes((good + 1000) / 1500)),
                "corrupt nii.gz pair": (nifti_bytes(good, True)[:100], nifti_bytes(good, True))}[damage]
        suffix = ".nii.gz" if "nii" in damage else ".npy"
        (data / "input" / f"a{suffix}").write_bytes(pair[0])
        (data / "target" / f"a{suffix}").write_bytes(pair[1])
    before = kit.snapshot(cwd)
    args = ["study", study, "--data", str(data), "--out", str(cwd / "out")]
    kit.assert_refused(kit.invoke(args, cwd), args)
    kit.assert_unchanged(before, cwd)
    assert not (cwd / "out").exists()
