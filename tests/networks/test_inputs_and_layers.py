"""Input checks (one clear message per bad input), option checks and the padded convolution."""

import re
import warnings

import pytest
import torch
from torch import nn

from taskloss.errors import ConfigError, InputError
from taskloss.networks import (
    CRN,
    DAGANDiscriminator,
    DAGANGenerator,
    PatchDiscriminator,
    RefinementUNet,
    ResNetGenerator,
    UNet,
)
from taskloss.networks.layers import PaddedConv2d


def _message(error: pytest.ExceptionInfo[BaseException]) -> str:
    return str(error.value)


def test_size_error_names_the_nearest_sizes_to_crop_or_pad_to() -> None:
    network = UNet(widths=(4, 8, 16))  # total stride 4
    with pytest.raises(InputError) as error:
        network(torch.zeros(1, 1, 10, 13))
    assert _message(error) == ("UNet cannot take image of 10 x 13 px: height and width must be "
                               "multiples of 4 (the network's total stride); crop to 8 x 12 or pad "
                               "to 12 x 16")


def test_size_error_below_the_minimum_offers_only_padding() -> None:
    network = RefinementUNet(widths=(4, 8, 16))  # stride 4, reflection-padded 4x4 kernels
    assert network.min_size == 12
    with pytest.raises(InputError) as error:
        network(torch.zeros(1, 2, 8, 16))
    assert _message(error) == ("RefinementUNet cannot take image of 8 x 16 px: height and width "
                               "must be multiples of 4 (the network's total stride) and at least "
                               "12 px; pad to 12 x 16")


def test_valid_sizes_pass_and_minimum_sizes_follow_the_padding() -> None:
    assert UNet(widths=(4, 8, 16), kernel_size=3, padding_mode="reflect").min_size == 8
    assert UNet(widths=(4, 8, 16), kernel_size=3).min_size == 4
    assert ResNetGenerator(base_width=2, num_blocks=1).min_size == 8
    out = ResNetGenerator(base_width=2, num_blocks=1)(torch.zeros(1, 1, 8, 12))
    assert out.shape == (1, 1, 8, 12)


@pytest.mark.parametrize(("image", "pattern"), [
    (torch.zeros(1, 3, 8, 8), "UNet expects image of shape (B, 1, H, W), got (1, 3, 8, 8): pass "
                              "images with 1 channel(s)"),
    (torch.zeros(1, 8, 8), "image has shape (1, 8, 8); expected (B, C, H, W)"),
    (torch.zeros(1, 1, 8, 8, dtype=torch.int64), "image has dtype torch.int64"),
    (torch.zeros(1, 1, 8, 8, dtype=torch.complex64), "image is complex"),
    ([[0.0]], "image must be a torch.Tensor, got list"),
])
def test_bad_images_get_one_clear_message(image: object, pattern: str) -> None:
    with pytest.raises(InputError, match=re.escape(pattern)):
        UNet(widths=(2, 4))(image)


def test_dagan_generator_rejects_images_outside_minus_one_to_one() -> None:
    network = DAGANGenerator(encoder_widths=(2, 2), decoder_widths=(2, 2))
    with pytest.raises(InputError, match=re.escape("DAGANGenerator expects image in [-1, 1] (the "
                                                   "zero-filled magnitude scaled as 2 * x / max - 1), "
                                                   "got values in [0, 2]")):
        network(torch.linspace(0, 2, 16).view(1, 1, 4, 4))


def test_dagan_discriminator_names_its_fixed_size() -> None:
    network = DAGANDiscriminator(base_width=1, image_size=64)
    with pytest.raises(InputError, match=re.escape("DAGANDiscriminator was built for 64 x 64 images "
                                                   "(its dense layer has a fixed size), got 128 x 64; "
                                                   "resize the images or build it with "
                                                   "image_size=(128, 64)")):
        network(torch.zeros(2, 1, 128, 64))


@pytest.mark.parametrize(("build", "pattern"), [
    (lambda: UNet(widths=(8,)), "widths must be a sequence of at least 2 positive integers, got (8,)"),
    (lambda: UNet(norm="group"), "norm='group' is not supported; use one of 'batch', 'instance', "
                                 "'layer', 'none'"),
    (lambda: UNet(upsampling="bilinear"), "upsampling='bilinear' is not supported"),
    (lambda: CRN(channels=(8, 0)), "channels must be a sequence of at least 1 positive integers"),
    (lambda: UNet(padding_mode="circular"), "padding_mode='circular' is not supported"),
    (lambda: UNet(negative_slope=-0.1), "negative_slope must be >= 0, got -0.1"),
    (lambda: PatchDiscriminator(strides=(2, 2)), "strides needs one entry per width (6), got (2, 2)"),
    (lambda: PatchDiscriminator(dropout_layers=(6,)), "dropout_layers must be 0-based layer indices "
                                                      "below 6, got (6,)"),
    (lambda: PatchDiscriminator(dropout=1.0), "dropout must be in [0, 1), got 1.0"),
    (lambda: DAGANDiscriminator(image_size=100), "image_size must be positive multiples of 64"),
    (lambda: DAGANGenerator(decoder_widths=(4,)), "decoder_widths needs one entry per encoder width "
                                                  "(8), got 1"),
    (lambda: ResNetGenerator(num_blocks=-1), "num_blocks must be an integer >= 0, got -1"),
])
def test_bad_options_get_a_config_error_naming_them(build, pattern: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(pattern)):
        build()


@pytest.mark.parametrize(("kernel_size", "padding_mode"), [(3, "zeros"), (4, "zeros"), (7, "zeros"),
                                                           (4, "reflect"), (5, "reflect")])
def test_padded_conv_equals_torch_same_padding_at_stride_1(kernel_size: int, padding_mode: str) -> None:
    ours = PaddedConv2d(2, 3, kernel_size, padding_mode=padding_mode)
    reference = nn.Conv2d(2, 3, kernel_size, padding="same", padding_mode=padding_mode)
    reference.load_state_dict(ours.state_dict())
    x = torch.randn(2, 2, 9, 11)
    with warnings.catch_warnings():  # torch warns that even kernels make it copy the input
        warnings.simplefilter("ignore", UserWarning)
        expected = reference(x)
    torch.testing.assert_close(ours(x), expected)


def test_padded_conv_at_stride_2_halves_like_tensorflow_same() -> None:
    # TF "SAME": total pad max((ceil(n / s) - 1) * s + k - n, 0) = 2 for k = 4, s = 2, n even,
    # split 1 / 1; for k = 3 it is 1, split 0 / 1 (the extra pixel after).
    x = torch.randn(1, 1, 8, 10)
    even = PaddedConv2d(1, 1, 4, stride=2)
    reference = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1)), even.weight, even.bias, stride=2)
    torch.testing.assert_close(even(x), reference)
    odd = PaddedConv2d(1, 1, 3, stride=2)
    reference = nn.functional.conv2d(nn.functional.pad(x, (0, 1, 0, 1)), odd.weight, odd.bias, stride=2)
    torch.testing.assert_close(odd(x), reference)
    assert even.output_size(8) == 4 and odd.output_size(10) == 5 and even.output_size(1) is None

