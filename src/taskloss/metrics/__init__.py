"""Image-quality metrics, one value per image, and statistics for reports.

Every function takes ``pred`` and ``target`` of shape (B, C, H, W) or (B, C, D, H, W) and returns a
tensor of shape (B,). PSNR, SSIM, MS-SSIM, HaarPSI and VSI need an explicit ``data_range``
(see :mod:`taskloss.metrics.data_range`). The learned distances LPIPS and DISTS need networks, a higher layer:
their formulas on given features are here (:func:`lpips_distance`, :func:`dists_distance`), the measures with
their networks and weights are :class:`taskloss.features.LPIPS` and :class:`taskloss.features.DISTS`.
"""

from taskloss.metrics.data_range import POLICIES, DataRange, per_volume_max, resolve_data_range
from taskloss.metrics.distribution import KIDResult, frechet_distance, kernel_inception_distance
from taskloss.metrics.dists import DISTS_C1, DISTS_C2, dists_distance
from taskloss.metrics.haarpsi import haarpsi
from taskloss.metrics.hfen import hfen, laplacian_of_gaussian
from taskloss.metrics.lpips import LPIPS_EPS, lpips_distance
from taskloss.metrics.ms_ssim import MS_SSIM_WEIGHTS, ms_ssim
from taskloss.metrics.pixel import mae, mse, nmse, psnr
from taskloss.metrics.sis import dice, semantic_interpretability
from taskloss.metrics.ssim import ssim, ssim_map
from taskloss.metrics.stats import PairedTest, Summary, paired_wilcoxon, summarize
from taskloss.metrics.vsi import vsi

__all__ = [
    "DISTS_C1",
    "DISTS_C2",
    "LPIPS_EPS",
    "MS_SSIM_WEIGHTS",
    "POLICIES",
    "DataRange",
    "KIDResult",
    "PairedTest",
    "Summary",
    "dice",
    "dists_distance",
    "frechet_distance",
    "haarpsi",
    "hfen",
    "kernel_inception_distance",
    "laplacian_of_gaussian",
    "lpips_distance",
    "mae",
    "ms_ssim",
    "mse",
    "nmse",
    "paired_wilcoxon",
    "per_volume_max",
    "psnr",
    "resolve_data_range",
    "semantic_interpretability",
    "ssim",
    "ssim_map",
    "summarize",
    "vsi",
]
