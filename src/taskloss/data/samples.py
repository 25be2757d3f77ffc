"""Real medical images that ship with installed packages, for tests, demos and sanity checks.

Nothing is downloaded: pydicom bundles a CT slice and an MR slice, nilearn bundles the MNI152 T1
template (1 mm or 2 mm), and scikit-image bundles the Shepp-Logan phantom. Each function returns a
float32 numpy array (H, W) scaled to [0, 1] by its own minimum and maximum.
"""

from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

from taskloss.errors import DataError


def _unit_range(image: np.ndarray) -> np.ndarray:
    image = image.astype(np.float64)
    low, high = float(image.min()), float(image.max())
    if high <= low:
        raise DataError("sample image is constant; it cannot be scaled to [0, 1]")
    return ((image - low) / (high - low)).astype(np.float32)


def _pydicom_file(name: str) -> Path:
    import pydicom.data

    # Resolve inside pydicom's bundled test files; get_testdata_files() would try to download.
    path = Path(pydicom.data.__file__).parent / "test_files" / name
    if not path.is_file():
        raise DataError(f"pydicom's bundled file {name} is missing from {path.parent}; reinstall "
                        "pydicom (pip install --force-reinstall pydicom)")
    return path


def dicom_pixels(path: Path) -> np.ndarray:
    """Pixel values of a single-frame DICOM file in modality units (rescale slope/intercept)."""
    import pydicom

    dataset = pydicom.dcmread(path)
    pixels = dataset.pixel_array.astype(np.float64)
    slope = float(getattr(dataset, "RescaleSlope", 1.0))
    intercept = float(getattr(dataset, "RescaleIntercept", 0.0))
    return pixels * slope + intercept


def ct_slice() -> np.ndarray:
    """pydicom's ``CT_small.dcm``: an axial CT slice, 128 x 128, in [0, 1]."""
    return _unit_range(dicom_pixels(_pydicom_file("CT_small.dcm")))


def mr_slice() -> np.ndarray:
    """pydicom's ``MR_small.dcm``: an MR slice, 64 x 64, in [0, 1]."""
    return _unit_range(dicom_pixels(_pydicom_file("MR_small.dcm")))


@cache
def _mni_t1(resolution: int) -> np.ndarray:
    from nilearn.datasets import load_mni152_template

    return np.asarray(load_mni152_template(resolution=resolution).get_fdata(), dtype=np.float32)


def mni_slice(axis: int = 2, index: int | None = None, resolution: int = 1) -> np.ndarray:
    """A slice of nilearn's MNI152 T1 template (brain only, skull-stripped), in [0, 1].

    Args:
        axis: 0 sagittal, 1 coronal, 2 axial (the template is in RAS orientation).
        index: slice index along ``axis``; default the middle slice.
        resolution: template resolution in mm, 1 (197 x 233 x 189) or 2 (99 x 117 x 95).

    Returns:
        The slice rotated so that anterior (or superior) is up, float32 in [0, 1].
    """
    volume = _mni_t1(resolution)
    index = volume.shape[axis] // 2 if index is None else index
    return _unit_range(np.rot90(np.take(volume, index, axis=axis)).copy())


def shepp_logan(size: int = 256) -> np.ndarray:
    """scikit-image's modified Shepp-Logan phantom resized to ``size`` x ``size``, in [0, 1]."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    phantom = resize(shepp_logan_phantom(), (size, size), order=1, anti_aliasing=True)
    return _unit_range(phantom)


SAMPLES: dict[str, Callable[[], np.ndarray]] = {
    "ct (pydicom CT_small)": ct_slice,
    "mr (pydicom MR_small)": mr_slice,
    "mni152 axial": lambda: mni_slice(axis=2),
    "mni152 coronal": lambda: mni_slice(axis=1),
    "shepp-logan": shepp_logan,
}
"""Every built-in sample image by display name."""


def _pydicom_data_file(name: str) -> Path | None:
    """A file of the optional ``pydicom-data`` package (module ``data_store``), or None."""
    try:
        import data_store
    except ImportError:
        return None
    path = Path(data_store.__file__).parent / "data" / name
    return path if path.is_file() else None


def real_mr_images() -> dict[str, np.ndarray]:
    """Real MR images shipped with pydicom (and pydicom-data when installed), each (H, W) in [0, 1].

    pydicom: ``MR_small.dcm`` (a 64 x 64 head slice). pydicom-data adds the 10 frames of
    ``emri_small.dcm`` (64 x 64, head), ``MR-SIEMENS-DICOM-WithOverlays.dcm`` (484 x 484, abdomen)
    and ``MR2_UNCR.dcm`` (1024 x 1024, shoulder). Anatomy other than the simulator's brain makes
    this a test of generalisation.
    """
    import pydicom

    images = {"MR_small": mr_slice()}
    for name in ("MR-SIEMENS-DICOM-WithOverlays.dcm", "MR2_UNCR.dcm"):
        path = _pydicom_data_file(name)
        if path is not None:
            images[name.removesuffix(".dcm")] = _unit_range(dicom_pixels(path))
    path = _pydicom_data_file("emri_small.dcm")
    if path is not None:
        for frame, pixels in enumerate(pydicom.dcmread(path).pixel_array):
            images[f"emri_small_{frame}"] = _unit_range(pixels)
    return images
