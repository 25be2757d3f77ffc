"""The per-image metrics by name: how each is computed, its header and which direction is better.

One entry per metric, read by everything that scores images by name: a study file's ``metrics:``
and ``training.monitor``, the built-in mr2xray and csmri studies' validation and test metrics, the
report tables' headers and bold cells, and the verdicts' better/worse words. Adding a metric is one
entry here (and, for study files, its name in :data:`taskloss.studies.spec.Metric`).

Every ``compute`` takes ``pred`` and ``target`` (B, C, H, W) and a ``data_range``
(:data:`~taskloss.metrics.data_range.DataRange`; ignored by the metrics that need none) and returns
(B,) float.

Examples:
    >>> import torch
    >>> pred, target = torch.full((1, 1, 8, 8), 0.5), torch.zeros(1, 1, 8, 8)
    >>> score(("mae", "psnr"), pred, target, 1.0)  # PSNR = 10 log10(1 / 0.25)
    {'mae': tensor([0.5000]), 'psnr': tensor([6.0206])}
    >>> METRICS["hfen"].higher_is_better
    False
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import torch

from taskloss.errors import ConfigError
from taskloss.metrics.data_range import DataRange
from taskloss.metrics.haarpsi import haarpsi
from taskloss.metrics.hfen import hfen
from taskloss.metrics.ms_ssim import ms_ssim
from taskloss.metrics.pixel import mae, mse, nmse, psnr
from taskloss.metrics.ssim import ssim
from taskloss.metrics.vsi import vsi

Compute = Callable[[torch.Tensor, torch.Tensor, DataRange], torch.Tensor]


@dataclass(frozen=True)
class ImageMetric:
    """A per-image metric.

    Attributes:
        name: its key in per-image results and study files (e.g. ``"psnr"``).
        label: the table header (e.g. ``"PSNR"``).
        higher_is_better: the better direction (bold cells, verdicts, ``training.monitor``'s mode).
        compute: ``(pred, target, data_range) -> (B,)``.
        digits: decimals shown in tables.
    """

    name: str
    label: str
    higher_is_better: bool
    compute: Compute
    digits: int = 3


METRICS: Mapping[str, ImageMetric] = MappingProxyType({m.name: m for m in (
    ImageMetric("mae", "MAE", False, lambda pred, target, _: mae(pred, target)),
    ImageMetric("mse", "MSE", False, lambda pred, target, _: mse(pred, target)),
    ImageMetric("nmse", "NMSE", False, lambda pred, target, _: nmse(pred, target)),
    ImageMetric("psnr", "PSNR", True, lambda pred, target, scale: psnr(pred, target, data_range=scale), digits=2),
    ImageMetric("ssim", "SSIM", True, lambda pred, target, scale: ssim(pred, target, data_range=scale)),
    ImageMetric("hfen", "HFEN", False, lambda pred, target, _: hfen(pred, target)),
    ImageMetric("haarpsi", "HaarPSI", True, lambda pred, target, scale: haarpsi(pred, target, data_range=scale)),
    ImageMetric("vsi", "VSI", True, lambda pred, target, scale: vsi(pred, target, data_range=scale)),
    ImageMetric("ms_ssim", "MS-SSIM", True, lambda pred, target, scale: ms_ssim(pred, target, data_range=scale)),
)})
"""Every per-image metric by name, in the order the reports list them."""


def score(names: Sequence[str], pred: torch.Tensor, target: torch.Tensor, data_range: DataRange
          ) -> dict[str, torch.Tensor]:
    """The metrics ``names`` (in that order) of ``pred`` against ``target``, each (B,).

    Raises:
        ConfigError: a name that is not in :data:`METRICS`.
    """
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric {unknown[0]!r}; choose one of {', '.join(METRICS)}")
    return {name: METRICS[name].compute(pred, target, data_range) for name in names}
