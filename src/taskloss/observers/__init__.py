"""Model observers: task-based image quality as the detectability of a known signal.

- :func:`detectability`: NPW, NPWE, Hotelling and channelized Hotelling (CHO) observers on
  signal-present and signal-absent images (N, H, W), scored by 2-fold cross-validation; AUC with
  DeLong's interval and d' with its interval (:class:`Detectability`);
- :mod:`taskloss.observers.channels`: Laguerre-Gauss, Gabor and difference-of-Gaussians channels
  (after the FDA LCD-CT toolbox) and the NPWE eye filter;
- :mod:`taskloss.observers.roc`: :func:`auc_delong` and :func:`dprime` on any two sets of scores, and
  :func:`grouped_bootstrap` (AUC and d' resampled over subjects, paired through :func:`group_draws`).

This package is of the metrics layer: it imports only errors, validation and the lowest layers.
Formulas, the bias guard and a detection study on one's own images: ``docs/observers.md``.
"""

from taskloss.observers.channels import (
    CHANNEL_FAMILIES,
    DENSE_DOG,
    LCD_CT_PIXELS_PER_DEGREE,
    LG_CHANNELS,
    dog_channels,
    eye_filter,
    gabor_channels,
    laguerre_gauss_channels,
    make_channels,
    roi_grid,
)
from taskloss.observers.detect import OBSERVERS, Detectability, detectability
from taskloss.observers.roc import auc_delong, dprime, group_draws, grouped_bootstrap

__all__ = [
    "CHANNEL_FAMILIES",
    "DENSE_DOG",
    "LCD_CT_PIXELS_PER_DEGREE",
    "LG_CHANNELS",
    "OBSERVERS",
    "Detectability",
    "auc_delong",
    "detectability",
    "dog_channels",
    "dprime",
    "eye_filter",
    "gabor_channels",
    "group_draws",
    "grouped_bootstrap",
    "laguerre_gauss_channels",
    "make_channels",
    "roi_grid",
]
