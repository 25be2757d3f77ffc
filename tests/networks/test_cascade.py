"""RecNet: parameter counts, data-consistency properties against numpy FFTs, gradients, bad inputs."""

import itertools
import re

import numpy as np
import pytest
import torch

from taskloss.data.kspace import channels_to_complex
from taskloss.errors import ConfigError, InputError
from taskloss.networks import RecNet


def _fft2c(image: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2-D FFT in numpy (the fastMRI convention), independent of taskloss."""
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image, axes=axes), norm="ortho"), axes=axes)


def _ifft2c(kspace: np.ndarray) -> np.ndarray:
    axes = (-2, -1)
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace, axes=axes), norm="ortho"), axes=axes)


def _to_complex(image: torch.Tensor) -> np.ndarray:
    return channels_to_complex(image.detach()).numpy()[:, 0].astype(np.complex128)


def _conv_parameters(cin: int, cout: int, k: int = 3) -> int:
    return k * k * cin * cout + cout


def test_parameter_counts_match_the_papers() -> None:
    seitzer = 3 * (_conv_parameters(2, 32) + _conv_parameters(32, 32) + _conv_parameters(32, 2))
    assert seitzer == 31_302  # "about 31k"
    assert sum(p.numel() for p in RecNet().parameters()) == seitzer
    d5c5 = 5 * (_conv_parameters(2, 64) + 3 * _conv_parameters(64, 64) + _conv_parameters(64, 2))
    network = RecNet(num_blocks=5, num_convs=5, width=64, negative_slope=0.0, residual=True)
    assert sum(p.numel() for p in network.parameters()) == d5c5


def test_noiseless_dc_keeps_the_measurements_at_sampled_positions() -> None:
    network = RecNet()
    zero_filled, kspace, mask = network.example_inputs(2, (13, 10))
    with torch.no_grad():
        output = network(zero_filled, kspace, mask)
    sampled = mask.numpy()[:, 0].astype(bool)
    output_kspace = _fft2c(_to_complex(output))
    np.testing.assert_allclose(output_kspace[sampled], kspace.numpy()[:, 0][sampled], atol=2e-6)
    assert sampled.any() and not sampled.all()


def test_noisy_dc_is_the_weighted_mean_and_approaches_the_measurements() -> None:
    zero_filled, kspace, mask = RecNet().example_inputs(1, (12, 9))
    sampled = mask.numpy()[:, 0].astype(bool)
    measured = kspace.numpy()[:, 0][sampled]
    errors = []
    for noise_lambda in (0.1, 1.0, 10.0, 1e3, 1e6):
        network = RecNet(num_blocks=1, noise_lambda=noise_lambda)
        with torch.no_grad():
            cnn_kspace = _fft2c(_to_complex(network.blocks[0](zero_filled)))
            output_kspace = _fft2c(_to_complex(network(zero_filled, kspace, mask)))
        expected = (cnn_kspace[sampled] + noise_lambda * measured) / (1 + noise_lambda)
        np.testing.assert_allclose(output_kspace[sampled], expected, atol=2e-6)
        np.testing.assert_allclose(output_kspace[~sampled], cnn_kspace[~sampled], atol=2e-6)
        errors.append(np.abs(output_kspace[sampled] - measured).max())
    assert all(later < earlier for earlier, later in itertools.pairwise(errors))
    assert errors[-1] < 1e-5 * np.abs(measured).max()


@pytest.mark.parametrize("residual", [False, True])
def test_with_a_zero_cnn_the_cascade_returns_the_zero_filled_image(residual: bool) -> None:
    network = RecNet(num_blocks=2, width=4, residual=residual)
    for block in network.blocks:
        torch.nn.init.zeros_(block[-1].weight)
        torch.nn.init.zeros_(block[-1].bias)
    zero_filled, kspace, mask = network.example_inputs(1, (9, 11))
    with torch.no_grad():
        output = network(zero_filled, kspace, mask)
    expected = _ifft2c(kspace.numpy()[:, 0].astype(np.complex128))
    np.testing.assert_allclose(_to_complex(output), expected, atol=2e-6)


@pytest.mark.parametrize(("noise_lambda", "residual"), [(None, False), (2.0, True)])
def test_gradcheck_float64(noise_lambda: float | None, residual: bool) -> None:
    network = RecNet(num_blocks=2, num_convs=2, width=3, residual=residual,
                     noise_lambda=noise_lambda).double()
    zero_filled, kspace, mask = network.example_inputs(1, (4, 5), dtype=torch.float64)
    assert kspace.dtype == torch.complex128
    zero_filled.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: network(x, kspace, mask), (zero_filled,))


def test_mask_rows_broadcast_like_a_full_mask() -> None:
    network = RecNet()
    zero_filled, kspace, mask = network.example_inputs(2, (8, 6))
    rows = mask[..., :1]
    torch.testing.assert_close(network(zero_filled, kspace, rows), network(zero_filled, kspace, mask))


def test_bad_measurements_get_one_clear_message() -> None:
    network = RecNet()
    zero_filled, kspace, mask = network.example_inputs(2, (8, 6))
    with pytest.raises(InputError, match=re.escape("kspace must be a complex tensor of shape "
                                                   "(2, 1, 8, 6) (the masked k-space of zero_filled), "
                                                   "got torch.float32 (2, 1, 8, 6)")):
        network(zero_filled, kspace.real, mask)
    with pytest.raises(InputError, match=re.escape("kspace must be a complex tensor of shape "
                                                   "(2, 1, 8, 6)")):
        network(zero_filled, kspace[:1], mask)
    with pytest.raises(InputError, match=re.escape("mask of shape (2, 1, 6, 1) does not broadcast to "
                                                   "the k-space shape (2, 1, 8, 6)")):
        network(zero_filled, kspace, mask[:, :, :6, :1])
    with pytest.raises(InputError, match=re.escape("mask must hold only 0 (not sampled) and 1 "
                                                   "(sampled); binarise it")):
        network(zero_filled, kspace, mask * 255)
    with pytest.raises(InputError, match=re.escape("mask must be a real floating tensor")):
        network(zero_filled, kspace, mask.bool())
    with pytest.raises(InputError, match=re.escape("RecNet expects zero_filled of shape (B, 2, H, W)")):
        network(zero_filled[:, :1], kspace, mask)


def test_noise_lambda_must_be_positive() -> None:
    with pytest.raises(ConfigError, match=re.escape("noise_lambda must be > 0 (or None for noiseless "
                                                    "data consistency), got 0")):
        RecNet(noise_lambda=0)
