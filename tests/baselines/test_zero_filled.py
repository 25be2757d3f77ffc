"""The zero-filled baseline against numpy's FFT, and the checks of k-space and mask."""

import numpy as np
import pytest
import torch

from taskloss.baselines import zero_filled
from taskloss.data.kspace import channels_to_complex, fft2c
from taskloss.errors import InputError


def _random_complex(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(shape, generator=generator),
                         torch.randn(shape, generator=generator))


@pytest.mark.parametrize("size", [(15, 18), (16, 16)])
def test_zero_filled_equals_numpy_centred_inverse_fft(size: tuple[int, int]) -> None:
    kspace = _random_complex((2, 1, *size), seed=1).to(torch.complex128)
    mask = (torch.rand(2, 1, size[0], 1) < 0.4).double()
    result = zero_filled(kspace, mask)
    assert result.shape == (2, 2, *size) and result.dtype == torch.float64
    masked = (kspace * mask).numpy()[:, 0]
    expected = np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(masked, axes=(-2, -1)), norm="ortho"),
                               axes=(-2, -1))
    np.testing.assert_allclose(result[:, 0].numpy(), expected.real, atol=1e-12)
    np.testing.assert_allclose(result[:, 1].numpy(), expected.imag, atol=1e-12)


def test_full_sampling_returns_the_image_and_a_boolean_mask_works() -> None:
    image = _random_complex((1, 1, 9, 12), seed=2)
    kspace = fft2c(image)
    full = zero_filled(kspace, torch.ones(1, 1, 9, 12, dtype=torch.bool))
    torch.testing.assert_close(channels_to_complex(full), image, atol=1e-5, rtol=0)
    lines = torch.zeros(9, dtype=torch.bool)
    lines[::3] = True
    torch.testing.assert_close(zero_filled(kspace, lines[:, None]),
                               zero_filled(kspace, lines.float()[None, None, :, None]))


@pytest.mark.parametrize(
    ("kspace", "mask", "message"),
    [
        (torch.ones(1, 1, 4, 4), torch.ones(1, 1, 4, 4), "kspace must be a complex torch.Tensor"),
        (np.ones((1, 1, 4, 4), complex), torch.ones(1, 1, 4, 4), "got ndarray"),
        (torch.ones(1, 2, 4, 4, dtype=torch.complex64), torch.ones(4, 4), r"expected \(B, 1, H, W\)"),
        (torch.ones(4, 4, dtype=torch.complex64), torch.ones(4, 4), r"expected \(B, 1, H, W\)"),
        (torch.full((1, 1, 4, 4), complex("nan+0j")), torch.ones(4, 4), "kspace holds 16 NaN"),
        (torch.ones(1, 1, 4, 4, dtype=torch.complex64), torch.ones(1, 1, 5, 1),
         r"mask of shape \(1, 1, 5, 1\) does not broadcast"),
        (torch.ones(1, 1, 4, 4, dtype=torch.complex64), torch.ones(2, 1, 4, 4),
         "does not broadcast to the k-space shape"),
        (torch.ones(1, 1, 4, 4, dtype=torch.complex64), torch.full((4, 4), 0.5),
         "mask holds values other than 0 and 1"),
        (torch.ones(1, 1, 4, 4, dtype=torch.complex64), torch.full((4, 4), float("nan")),
         "mask holds values other than 0 and 1"),
        (torch.ones(1, 1, 4, 4, dtype=torch.complex64), torch.ones(4, 4, dtype=torch.complex64),
         "mask must be a real or boolean torch.Tensor"),
        (torch.ones(1, 1, 4, 4, dtype=torch.complex64), [1, 0, 1, 0], "got list"),
    ],
)
def test_zero_filled_rejects_bad_input(kspace: object, mask: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        zero_filled(kspace, mask)  # type: ignore[arg-type]
