"""The image pairs of the piq reference values (piq_reference.json): real images that packages ship.

Shared by the script that runs piq (benchmarks/make_piq_reference.py) and the tests that read its values
(tests/metrics/test_haarpsi.py, test_vsi.py), so both build the same pairs. Every image is float64
in [0, 1] before its intensity ``scale``; odd and even sizes, grayscale and RGB, from 64 to 653 px.
"""

from typing import NamedTuple

import numpy as np
import torch
from scipy import ndimage
from skimage import data as skdata
from skimage.transform import resize

from taskloss.data.samples import ct_slice, mni_slice, mr_slice, shepp_logan


class Case(NamedTuple):
    image: str
    degradation: str
    scale: float  # the images are multiplied by it; data_range = scale

    @property
    def name(self) -> str:
        return f"{self.image}-{self.degradation}-{self.scale:g}"


CASES: tuple[Case, ...] = (
    Case("camera_odd", "noise", 1.0),  # 173 x 211
    Case("camera_odd", "blur", 1.0),
    Case("camera", "contrast", 1.0),  # 512 x 512: VSI averages 2 x 2 blocks
    Case("camera_640", "noise", 1.0),  # 640 x 653: round(2.5) = 2 blocks (half to even)
    Case("astronaut_odd", "noise", 1.0),  # RGB 201 x 158
    Case("astronaut", "blur", 1.0),  # RGB 512 x 512
    Case("chelsea", "shift", 255.0),  # RGB 300 x 451 on the 0-255 scale
    Case("mni_axial", "noise", 1.0),  # MNI152 T1 slices (nilearn), 233 x 197
    Case("mni_axial", "noise", 4095.0),  # the same pair on a 12-bit scale
    Case("mni_sagittal", "blur", 1.0),
    Case("ct", "shift", 1.0),  # pydicom's CT slice, 128 x 128
    Case("mr", "noise", 1.0),  # pydicom's MR slice, 64 x 64
    Case("shepp_logan", "contrast", 1.0),  # 181 x 181
)


def image(name: str) -> np.ndarray:
    """(H, W) or (H, W, 3) float64 in [0, 1]."""
    if name == "camera_odd":
        return resize(skdata.camera() / 255.0, (173, 211), anti_aliasing=True)
    if name == "camera":
        return skdata.camera() / 255.0
    if name == "camera_640":
        return resize(skdata.camera() / 255.0, (640, 653), anti_aliasing=True)
    if name == "astronaut_odd":
        return resize(skdata.astronaut() / 255.0, (201, 158), anti_aliasing=True)
    if name == "astronaut":
        return skdata.astronaut() / 255.0
    if name == "chelsea":
        return skdata.chelsea() / 255.0
    if name == "mni_axial":
        return mni_slice(axis=2).astype(np.float64)
    if name == "mni_sagittal":
        return mni_slice(axis=0).astype(np.float64)
    if name == "ct":
        return ct_slice().astype(np.float64)
    if name == "mr":
        return mr_slice().astype(np.float64)
    if name == "shepp_logan":
        return shepp_logan(181).astype(np.float64)
    raise ValueError(name)


def degrade(x: np.ndarray, kind: str) -> np.ndarray:
    """A degraded copy, still in [0, 1] (piq refuses values outside [0, data_range])."""
    planar = (slice(None), slice(None)) + ((None,) if x.ndim == 3 else ())
    if kind == "noise":
        return np.clip(x + np.random.default_rng(5).normal(0.0, 0.05, x.shape), 0.0, 1.0)
    if kind == "blur":
        return ndimage.gaussian_filter(x, (1.5, 1.5, 0)[: x.ndim])
    if kind == "shift":
        return np.clip(ndimage.shift(x, (0.6, -1.4, 0)[: x.ndim], order=1, mode="nearest"), 0.0, 1.0)
    if kind == "contrast":
        return 0.7 * x[planar] + 0.2
    raise ValueError(kind)


def _batch(x: np.ndarray) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))
    tensor = tensor.permute(2, 0, 1) if tensor.ndim == 3 else tensor[None]
    return tensor[None].contiguous()


def pair(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    """(pred, target), each (1, C, H, W) float64 in [0, case.scale]."""
    target = image(case.image)
    return _batch(degrade(target, case.degradation)) * case.scale, _batch(target) * case.scale
