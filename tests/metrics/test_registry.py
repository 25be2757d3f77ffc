"""The metric registry: every metric by name computes what its function computes, with a known direction."""

import typing

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from taskloss.errors import ConfigError
from taskloss.metrics.registry import METRICS, score
from taskloss.studies.report_kit import BETTER_HIGHER, LOWER_IS_BETTER, metric_column
from taskloss.studies.spec import EXTRA_METRICS, IMAGE_METRICS, Metric


def _pair() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, 37, 41, generator=generator, dtype=torch.float64)
    return (target + 0.1 * torch.randn(target.shape, generator=generator, dtype=torch.float64)).clamp(0, 1), target


def test_pixel_metrics_by_name_match_numpy_and_scikit_image():
    pred, target = _pair()
    values = score(("mae", "mse", "nmse", "psnr", "ssim"), pred, target, 1.0)
    p, t = pred.numpy()[:, 0], target.numpy()[:, 0]
    assert list(values) == ["mae", "mse", "nmse", "psnr", "ssim"]  # the order asked for
    np.testing.assert_allclose(values["mae"], np.abs(p - t).mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(values["mse"], ((p - t) ** 2).mean(axis=(1, 2)), rtol=1e-12)
    np.testing.assert_allclose(values["nmse"], ((p - t) ** 2).sum(axis=(1, 2)) / (t**2).sum(axis=(1, 2)), rtol=1e-12)
    psnr = [peak_signal_noise_ratio(a, b, data_range=1.0) for b, a in zip(p, t, strict=True)]
    np.testing.assert_allclose(values["psnr"], psnr, rtol=1e-10)
    reference = [structural_similarity(b, a, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False) for b, a in zip(p, t, strict=True)]
    np.testing.assert_allclose(values["ssim"], reference, atol=2e-3)  # skimage crops the border before its mean


def test_every_metric_returns_one_value_per_image_and_a_direction():
    pred, target = _pair()
    big = torch.rand(2, 1, 176, 176, dtype=torch.float64)
    for name, metric in METRICS.items():
        p, t = (big.clamp(0.1, 1), big) if name == "ms_ssim" else (pred, target)
        value = score((name,), p, t, 1.0)[name]
        assert value.shape == (2,) and torch.isfinite(value).all(), name
        perfect = score((name,), t, t, 1.0)[name]
        assert (perfect >= value).all() if metric.higher_is_better else (perfect <= value).all(), name
    assert {"mae", "mse", "nmse", "hfen"} == LOWER_IS_BETTER
    assert {"psnr", "ssim", "haarpsi", "vsi", "ms_ssim", "sis"} == BETTER_HIGHER
    assert metric_column("psnr").label == "PSNR" and metric_column("psnr").digits == 2
    assert not metric_column("hfen").higher_is_better


def test_the_study_file_metrics_are_registered_names():
    assert set(typing.get_args(Metric)) == {*IMAGE_METRICS, *EXTRA_METRICS} <= set(METRICS)


def test_an_unknown_metric_is_one_error_naming_the_choices():
    pred, target = _pair()
    with pytest.raises(ConfigError, match=r"^unknown metric 'psrn'; choose one of mae, mse, nmse, psnr, ssim, hfen"):
        score(("psnr", "psrn"), pred, target, 1.0)
