"""Readers for the data users bring: images and volumes (NPY, PNG/TIFF, DICOM, NIfTI) and fastMRI HDF5.

Every reader returns float32 (or complex64) NumPy arrays and raises :class:`taskloss.errors.DataError`
naming the file, what is wrong and what to do, for a missing, unreadable or corrupt file.

Array conventions: a 2-D image is (H, W) with row 0 at the top as the file stores it. A volume is
(D, H, W) on the axes of :mod:`taskloss.data.projector`: NIfTI volumes are reoriented to RAS with
nibabel (``as_closest_canonical``) and transposed from (x, y, z) to (z, y, x); a DICOM series is
stacked along its slice normal (assumed axial: slices along z, rows along y, columns along x).
"""

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
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder; check the path")
    name = path.name.lower()
    if path.is_dir():
        return read_dicom_series(path)
    if name.endswith(".npy"):
        return _read_npy(path)
    if name.endswith((".png", ".tif", ".tiff")):
        return _read_picture(path)
    if name.endswith(".dcm"):
        return _read_dicom_file(path)
    if name.endswith((".nii", ".nii.gz")):
        return _read_nifti(path)
    raise DataError(f"{path}: unsupported file type; use one of {', '.join(IMAGE_SUFFIXES)} or a "
                    "folder of DICOM files")


def _read_npy(path: Path) -> ImageData:
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise DataError(f"{path} is not a readable NumPy .npy file ({error}); re-save it with "
                        "numpy.save") from None
    if array.dtype.kind not in "fiuc":
        raise DataError(f"{path} holds {array.dtype} values; save a numeric array")
    dtype = np.complex64 if array.dtype.kind == "c" else np.float32
    return ImageData(np.asarray(array, dtype=dtype), None, path)


def _read_picture(path: Path) -> ImageData:
    import imageio.v3 as iio

    try:
        array = np.asarray(iio.imread(path), dtype=np.float32)
    except Exception as error:  # imageio raises many types (OSError, ValueError, plugin errors)
        raise DataError(f"{path} is not a readable PNG/TIFF image ({type(error).__name__}: {error}); "
                        "re-export it") from None
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3].mean(axis=-1)
    return ImageData(array, None, path)


def _read_dicom_file(path: Path) -> ImageData:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array.astype(np.float32)
    except (InvalidDicomError, AttributeError, ValueError, OSError, EOFError) as error:
        raise DataError(f"{path} is not a readable DICOM image ({type(error).__name__}: {error}); "
                        "check the file (it may be truncated or hold no pixel data)") from None
    array = _rescale(dataset, pixels)
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
    from pydicom.errors import InvalidDicomError

    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise DataError(f"{folder}: empty folder; a DICOM series folder must hold one file per slice")
    slices = []
    for file in files:
        try:
            dataset = pydicom.dcmread(file)
            slices.append((dataset, _rescale(dataset, dataset.pixel_array.astype(np.float32))))
        except (InvalidDicomError, AttributeError, ValueError, OSError, EOFError) as error:
            raise DataError(f"{file} (in the series {folder}) is not a readable DICOM image "
                            f"({type(error).__name__}: {error}); remove it or fix it") from None
    shapes = {pixels.shape for _, pixels in slices}
    if len(shapes) != 1:
        raise DataError(f"{folder}: slices have different sizes {sorted(shapes)}; a series needs "
                        "one size")
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
    from nibabel.filebasedimages import ImageFileError

    try:
        image = nib.as_closest_canonical(nib.load(path))
        array = np.asarray(image.get_fdata(dtype=np.float32))
    except (ImageFileError, OSError, EOFError, ValueError) as error:
        raise DataError(f"{path} is not a readable NIfTI file ({type(error).__name__}: {error}); "
                        "check that it is complete (gzip files must not be truncated)") from None
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
    """

    kspace: np.ndarray
    crop: tuple[int, int]
    max: float
    path: Path


def read_fastmri(path: Path) -> FastMRIVolume:
    """Read a fastMRI single-coil HDF5 file (``kspace``, ``reconstruction_esc``, attribute ``max``)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path")
    try:
        with h5py.File(path, "r") as file:
            missing = [k for k in ("kspace", "reconstruction_esc") if k not in file]
            if missing:
                raise DataError(f"{path} lacks the dataset(s) {missing}; fastMRI single-coil files hold "
                                "'kspace' and 'reconstruction_esc' (multi-coil files are not supported)")
            kspace = np.asarray(file["kspace"], dtype=np.complex64)
            crop = tuple(int(n) for n in file["reconstruction_esc"].shape[-2:])
            maximum = float(file.attrs.get("max", np.nan))
    except OSError as error:
        raise DataError(f"{path} is not a readable HDF5 file ({error}); check that it is complete") from None
    if kspace.ndim != 3:
        raise DataError(f"{path}: 'kspace' has shape {kspace.shape}; expected (slices, H, W) single-coil")
    return FastMRIVolume(kspace=kspace, crop=crop, max=maximum, path=path)  # type: ignore[arg-type]
