"""Readers for the data users bring: images and volumes (NPY, PNG/TIFF, DICOM, NIfTI) and fastMRI HDF5.

Every reader returns float32 (or complex64) NumPy arrays and raises :class:`taskloss.errors.DataError`
naming the file, what is wrong and what to do, for a missing, unreadable or corrupt file.

Array conventions: a 2-D image is (H, W) with row 0 at the top as the file stores it. A volume is
(D, H, W) on the axes of :mod:`taskloss.data.projector`: NIfTI volumes are reoriented to RAS with
nibabel (``as_closest_canonical``) and transposed from (x, y, z) to (z, y, x); a DICOM series is
stacked along its slice normal (assumed axial: slices along z, rows along y, columns along x).
"""

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from taskloss.errors import DataError

IMAGE_SUFFIXES = (".npy", ".png", ".tif", ".tiff", ".dcm", ".nii", ".nii.gz")
"""File types that :func:`read_image` understands (a folder of DICOM files is a series)."""


@dataclass(frozen=True)
class ImageData:
    """An image (H, W) or volume (D, H, W) and its voxel size.

    Attributes:
        array: float32 or complex64 values (modality units: HU for CT, signal for MR).
        spacing_mm: voxel size per axis in mm, one value per axis of ``array``; ``None`` when the
            file does not say (NPY, PNG, TIFF).
        path: the file or series folder it came from.
    """

    array: np.ndarray
    spacing_mm: tuple[float, ...] | None
    path: Path


@contextmanager
def reading(path: Path, what: str, advice: str) -> Iterator[None]:
    """Turn any failure of a third-party reader into one :class:`DataError` naming the file.

    NumPy, imageio, pydicom, nibabel and h5py raise many exception types for a damaged file
    (``OSError``, ``ValueError``, ``EOFError``, ``zlib.error``, ``struct.error``, ``KeyError``,
    plugin errors); listing them would miss some. ``MemoryError`` passes through (the command
    line reports it with its own advice). NumPy's numerical warnings (``RuntimeWarning``: an
    overflowing cast, an invalid value) are errors here too, so a user never sees one as raw text,
    only the line naming the file; other warnings (a library's notes on odd but readable files)
    are left alone.

    Args:
        path: the file being read.
        what: what it should be, e.g. "NIfTI file".
        advice: what to do, e.g. "check that it is complete".

    Examples:
        >>> import numpy as np
        >>> with reading(Path("big.npy"), "NumPy .npy file", "re-save it as float32"):  # doctest: +ELLIPSIS
        ...     _ = np.asarray([1e300], dtype=np.float64).astype(np.float32)
        Traceback (most recent call last):
        ...
        taskloss.errors.DataError: big.npy is not a readable NumPy .npy file (RuntimeWarning: overflow ...
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            yield
    except (DataError, MemoryError):
        raise
    except Exception as error:
        raise DataError(f"{path} is not a readable {what} ({type(error).__name__}: {error}); "
                        f"{advice}".replace("\n", " ")) from None


def check_array(image: ImageData) -> ImageData:
    """Refuse what no reader's caller can use: other ranks than 2 or 3, empty axes, NaN or infinity.

    Raises:
        DataError: naming the file and the problem.
    """
    array = image.array
    if array.ndim not in (2, 3):
        raise DataError(f"{image.path} has shape {array.shape}; expected a 2-D image (H, W) or a 3-D volume "
                        "(D, H, W)")
    if array.size == 0:
        raise DataError(f"{image.path} holds an empty array of shape {array.shape}; save an image of at "
                        "least 1 x 1")
    if not np.isfinite(array).all():
        raise DataError(f"{image.path} holds {int((~np.isfinite(array)).sum())} NaN or infinite values; "
                        "save finite intensities")
    return image


def stem(path: Path) -> str:
    """File name without its image suffix (``case1.nii.gz`` -> ``case1``; a folder keeps its name)."""
    name = path.name
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def is_image_entry(path: Path) -> bool:
    """True for a file with a suffix of :data:`IMAGE_SUFFIXES` or a folder (a DICOM series)."""
    if path.name.startswith("."):
        return False
    return path.is_dir() or any(path.name.lower().endswith(s) for s in IMAGE_SUFFIXES)


def read_image(path: Path) -> ImageData:
    """Read one image or volume; a folder is read as a DICOM series.

    Args:
        path: an ``.npy``, ``.png``, ``.tif``/``.tiff``, ``.dcm``, ``.nii``/``.nii.gz`` file, or a
            folder of DICOM files.

    Returns:
        The image (H, W) or volume (D, H, W) and its spacing. RGB(A) PNG/TIFF images are turned to
        gray by the mean of their colour channels.

    Raises:
        DataError: naming the file: missing, of an unknown type, unreadable (truncated, corrupt),
            not numeric, of another rank than 2 or 3, empty, or holding NaN or infinite values.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; check the path")
    name = path.name.lower()
    if path.is_dir():
        return check_array(read_dicom_series(path))
    if name.endswith(".npy"):
        return check_array(_read_npy(path))
    if name.endswith((".png", ".tif", ".tiff")):
        return check_array(_read_picture(path))
    if name.endswith(".dcm"):
        return check_array(_read_dicom_file(path))
    if name.endswith((".nii", ".nii.gz")):
        return check_array(_read_nifti(path))
    raise DataError(f"{path}: unsupported file type; use one of {', '.join(IMAGE_SUFFIXES)} or a "
                    "folder of DICOM files")


def _read_npy(path: Path) -> ImageData:
    with reading(path, "NumPy .npy file", "re-save it with numpy.save"):
        array = np.load(path, allow_pickle=False)
    if array.dtype.kind not in "fiuc":
        raise DataError(f"{path} holds {array.dtype} values; save a numeric array")
    dtype = np.complex64 if array.dtype.kind == "c" else np.float32
    with reading(path, "NumPy .npy file of float32 values", "save values within float32's range (3.4e38)"):
        return ImageData(np.asarray(array, dtype=dtype), None, path)


def _read_picture(path: Path) -> ImageData:
    import imageio.v3 as iio

    with reading(path, "PNG/TIFF image", "re-export it"):
        array = np.asarray(iio.imread(path), dtype=np.float32)
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3].mean(axis=-1)
    return ImageData(array, None, path)


def _read_dicom_file(path: Path) -> ImageData:
    import pydicom

    with reading(path, "DICOM image", "check the file (it may be truncated or hold no pixel data)"):
        dataset = pydicom.dcmread(path)
        array = _rescale(dataset, dataset.pixel_array.astype(np.float32))
        row_col = _pixel_spacing(dataset)
        if array.ndim == 3:  # multi-frame: frames along z, spacing between frames if recorded
            between = getattr(dataset, "SpacingBetweenSlices", getattr(dataset, "SliceThickness", 0))
            thickness = float(between or 0)
            spacing = (thickness, *row_col) if row_col and thickness > 0 else None
            return ImageData(array, spacing, path)
    return ImageData(array, row_col, path)


def _rescale(dataset: object, pixels: np.ndarray) -> np.ndarray:
    """Modality units (HU for CT) from stored values: ``pixels * RescaleSlope + RescaleIntercept``."""
    slope = float(getattr(dataset, "RescaleSlope", 1.0))
    intercept = float(getattr(dataset, "RescaleIntercept", 0.0))
    return (pixels * slope + intercept).astype(np.float32)


def _pixel_spacing(dataset: object) -> tuple[float, float] | None:
    spacing = getattr(dataset, "PixelSpacing", None)
    return (float(spacing[0]), float(spacing[1])) if spacing is not None else None


def read_dicom_series(folder: Path) -> ImageData:
    """Read a folder of single-slice DICOM files as a volume (D, H, W).

    Slices are sorted by their position along the slice normal (``ImagePositionPatient`` and
    ``ImageOrientationPatient``), else by ``InstanceNumber``; the slice spacing is the median
    distance between neighbouring positions, else ``SliceThickness``.
    """
    import pydicom

    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: empty folder; a DICOM series folder must hold one file per slice")
    slices = []
    for file in files:
        with reading(file, f"DICOM image (in the series {folder})", "remove it or fix it"):
            dataset = pydicom.dcmread(file)
            slices.append((dataset, _rescale(dataset, dataset.pixel_array.astype(np.float32))))
    shapes = {pixels.shape for _, pixels in slices}
    if len(shapes) != 1:
        raise DataError(f"{folder}: slices have different sizes {sorted(shapes)}; a series needs "
                        "one size")
    with reading(folder, "DICOM series", "check the slices' position, orientation and spacing tags"):
        positions = _slice_positions([d for d, _ in slices])
        order = np.argsort(positions) if positions is not None else np.argsort(
            [int(getattr(d, "InstanceNumber", i)) for i, (d, _) in enumerate(slices)])
        volume = np.stack([slices[i][1] for i in order])
        row_col = _pixel_spacing(slices[0][0])
        if positions is not None and len(slices) > 1:
            between = float(np.median(np.diff(np.sort(positions))))
        else:
            between = float(getattr(slices[0][0], "SliceThickness", 0) or 0)
    spacing = (between, *row_col) if row_col and between > 0 else None
    return ImageData(volume, spacing, folder)


def _slice_positions(datasets: list) -> np.ndarray | None:
    """Distance of each slice along the slice normal, or None when positions are not recorded."""
    try:
        orientation = np.array(datasets[0].ImageOrientationPatient, dtype=np.float64)
        normal = np.cross(orientation[:3], orientation[3:])
        return np.array([np.dot(normal, np.array(d.ImagePositionPatient, dtype=np.float64))
                         for d in datasets])
    except AttributeError:
        return None


def _read_nifti(path: Path) -> ImageData:
    import nibabel as nib

    with reading(path, "NIfTI file", "check that it is complete (gzip files must not be truncated)"):
        image = nib.as_closest_canonical(nib.load(path))
        array = np.asarray(image.get_fdata(dtype=np.float32))
    zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    array = np.squeeze(array)
    if array.ndim == 3:
        return ImageData(np.ascontiguousarray(array.transpose(2, 1, 0)), zooms[::-1], path)
    if array.ndim == 2:  # a single slice (x, y): rows along y, anterior (high y) at the top
        return ImageData(np.ascontiguousarray(array.T[::-1]), (zooms[1], zooms[0]), path)
    raise DataError(f"{path} has shape {array.shape}; expected a 2-D image or a 3-D volume")


@dataclass(frozen=True)
class FastMRIVolume:
    """One fastMRI single-coil file.

    Attributes:
        kspace: fully sampled k-space (slices, H, W) complex64, DC at the centre (fastMRI stores it
            centred).
        crop: shape of ``reconstruction_esc`` (the 320 x 320 region the benchmark scores).
        max: the file's ``max`` attribute (the volume's largest reconstruction value).
        path: the file.
        reference: the dataset whose shape gave ``crop``, or "kspace" (the centred square).
    """

    kspace: np.ndarray
    crop: tuple[int, int]
    max: float
    path: Path
    reference: str = "reconstruction_esc"


RECONSTRUCTIONS = ("reconstruction_esc", "reconstruction_rss")
"""The reconstructions a fastMRI file may store, in the order :func:`read_fastmri` looks for them."""


def read_fastmri(path: Path, reconstruction_optional: bool = False) -> FastMRIVolume:
    """Read a fastMRI single-coil HDF5 file (``kspace``, ``reconstruction_esc``, attribute ``max``).

    Args:
        path: the file.
        reconstruction_optional: False: the file must hold ``reconstruction_esc`` (its shape is
            the crop). True: the crop is the shape of ``reconstruction_esc``, else of
            ``reconstruction_rss``, else the centred square of side min(H, W) of the k-space.

    Raises:
        DataError: naming the file, for a file that is missing, not HDF5, lacks a dataset, holds
            k-space that is not complex (real, integer, or real/imaginary pairs on a last axis of
            2), not (slices, H, W), empty, all zero or not finite, or a crop larger than the k-space.
    """
    import h5py

    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path} is a folder; pass a fastMRI single-coil .h5 file")
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path")
    with reading(path, "HDF5 file", "check that it is complete"), h5py.File(path, "r") as file:
        stored = [k for k in RECONSTRUCTIONS if isinstance(file.get(k), h5py.Dataset)]
        needed = ("kspace",) if reconstruction_optional else ("kspace", "reconstruction_esc")
        missing = [k for k in needed if not isinstance(file.get(k), h5py.Dataset)]
        if missing:
            raise DataError(f"{path} lacks the dataset(s) {missing}; fastMRI single-coil files hold "
                            "'kspace' and 'reconstruction_esc' (multi-coil files are not supported)")
        _check_kspace_layout(path, file["kspace"].dtype, file["kspace"].shape)
        reference = "reconstruction_esc" if not reconstruction_optional else (stored or ["kspace"])[0]
        side = min(file["kspace"].shape[1:])
        crop_shape = file[reference].shape if reference != "kspace" else (side, side)
        kspace = np.asarray(file["kspace"], dtype=np.complex64)
        maximum = float(np.asarray(file.attrs.get("max", np.nan)).ravel()[0])
    if len(crop_shape) < 2 or min(crop_shape[-2:]) < 1:
        raise DataError(f"{path}: '{reference}' has shape {crop_shape}; expected (slices, H, W)")
    crop = (int(crop_shape[-2]), int(crop_shape[-1]))
    if crop[0] > kspace.shape[1] or crop[1] > kspace.shape[2]:
        raise DataError(f"{path}: '{reference}' is {crop}, larger than the k-space {kspace.shape[1:]}; "
                        "the crop must fit inside the image (check that the file is single-coil fastMRI)")
    _check_kspace_values(path, kspace)
    return FastMRIVolume(kspace=kspace, crop=crop, max=maximum, path=path, reference=reference)


def _check_kspace_layout(path: Path, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """Complex (slices, H, W) k-space, with at least one slice; otherwise a DataError naming the problem."""
    if dtype.kind != "c":
        hint = (" (a last axis of 2 looks like real/imaginary pairs: store kspace[..., 0] + 1j * kspace[..., 1])"
                if len(shape) == 4 and shape[-1] == 2 else "")
        raise DataError(f"{path}: 'kspace' has dtype {dtype}, not complex{hint}; fastMRI k-space is complex64 "
                        "(slices, H, W)")
    if len(shape) != 3:
        raise DataError(f"{path}: 'kspace' has shape {shape}; expected (slices, H, W) single-coil")
    if min(shape) < 1:
        raise DataError(f"{path}: 'kspace' has shape {shape}, with no data; a volume needs at least one "
                        "slice of at least 1 x 1")


def _check_kspace_values(path: Path, kspace: np.ndarray) -> None:
    finite = np.isfinite(kspace)
    if not finite.all():
        raise DataError(f"{path}: 'kspace' holds {int((~finite).sum())} NaN or infinite values; the file is "
                        "damaged, leave it out of the folder")
    if not np.any(kspace):
        raise DataError(f"{path}: 'kspace' is all zero; the file holds no signal, leave it out of the folder")


HU_AIR = -1000.0
"""Hounsfield units of air."""


def check_hounsfield(image: ImageData) -> None:
    """Refuse a CT image or volume whose values cannot be Hounsfield units.

    CT in HU puts air at -1000 and water at 0, so a head volume reaches far below zero around the
    head. Intensities normalised to [0, 1] (or [0, 255]) never go below zero and would be read as
    water-like tissue everywhere.

    Raises:
        DataError: naming the file, when the lowest value is above -500 HU (no air at all).
    """
    lowest = float(np.min(image.array)) if image.array.size else 0.0
    if lowest > HU_AIR / 2:
        raise DataError(f"{image.path}: the CT's lowest value is {lowest:.4g}, but CT in Hounsfield units has "
                        "air near -1000; save the target volume in HU (apply RescaleSlope/RescaleIntercept), "
                        "not normalised intensities")
