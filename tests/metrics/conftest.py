"""Real images shipped by installed packages, degraded in the ways evaluations meet."""

import numpy as np
import pytest
from scipy import ndimage

from taskloss.data.samples import ct_slice, mni_slice, mr_slice, shepp_logan


def _degrade(image: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "noise":
        return image + rng.normal(0.0, 0.05, image.shape)
    if kind == "blur":
        return ndimage.gaussian_filter(image, 1.2)
    if kind == "shift":
        return ndimage.shift(image, (0.7, -1.3), order=1, mode="nearest")
    if kind == "contrast":
        return 0.7 * image + 0.2
    raise ValueError(kind)


@pytest.fixture(scope="session")
def real_images() -> dict[str, np.ndarray]:
    """Real 2-D images in [0, 1] (float64): CT, MR, MNI152 slices, Shepp-Logan."""
    images = {
        "ct": ct_slice(),
        "mr": mr_slice(),
        "mni_axial": mni_slice(axis=2, resolution=2),
        "mni_sagittal_odd": mni_slice(axis=0, resolution=2)[:, :-2],
        "shepp_logan": shepp_logan(96),
    }
    return {name: image.astype(np.float64) for name, image in images.items()}


DEGRADATIONS = ("noise", "blur", "shift", "contrast")


@pytest.fixture(scope="session")
def degraded_pairs(real_images: dict[str, np.ndarray]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, target, prediction) for every real image and degradation."""
    rng = np.random.default_rng(7)
    return [(f"{name}-{kind}", image, _degrade(image, kind, rng))
            for name, image in real_images.items() for kind in DEGRADATIONS]

