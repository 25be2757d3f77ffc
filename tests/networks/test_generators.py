"""Generators: CRN's pyramid and layer norm, architectures by parameter count, residual outputs."""

import numpy as np
import pytest
import torch
from skimage.measure import block_reduce
from torch import nn

from taskloss.networks import (
    CRN,
    CRN_PRESETS,
    DAGANGenerator,
    ResNetGenerator,
    SegmentationUNet,
    UNet,
    area_pyramid,
)
from taskloss.networks.resnet import ResidualBlock


def _count(network: nn.Module) -> int:
    return sum(p.numel() for p in network.parameters())


def test_area_pyramid_equals_block_means() -> None:
    image = torch.rand(2, 3, 24, 40, dtype=torch.float64)
    pyramid = area_pyramid(image, 4)
    assert [tuple(level.shape[-2:]) for level in pyramid] == [(24, 40), (12, 20), (6, 10), (3, 5)]
    for k, level in enumerate(pyramid):
        expected = block_reduce(image.numpy(), (1, 1, 2**k, 2**k), np.mean)
        np.testing.assert_allclose(level.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize(("size", "stride"), [(64, 16), (128, 32), (256, 64)])
def test_crn_presets_start_at_4_px(size: int, stride: int) -> None:
    assert CRN(channels=CRN_PRESETS[size]).total_stride == stride == size // 4


def test_crn_coarsest_module_sees_the_area_downsampled_input() -> None:
    network = CRN(channels=(4, 4, 4))
    seen = []
    network.refinement_modules[0].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    network.refinement_modules[2].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    image = torch.rand(1, 1, 12, 20)
    network(image)
    expected = block_reduce(image.numpy(), (1, 1, 4, 4), np.mean)
    np.testing.assert_allclose(seen[0].numpy(), expected, rtol=1e-6)
    assert seen[1].shape == (1, 4 + 1, 12, 20)  # upsampled features, then the full-size input
    torch.testing.assert_close(seen[1][:, 4:], image)


def test_crn_layer_norm_normalises_each_sample_over_channels_and_space() -> None:
    network = CRN(channels=(6, 5))
    conv, norm = network.refinement_modules[1][0][:2]
    assert isinstance(norm, nn.GroupNorm) and norm.num_groups == 1 and norm.weight.shape == (5,)
    assert conv.bias is None  # the layer norm's shift replaces it, as slim.conv2d with a normaliser
    x = torch.randn(3, 5, 4, 6, dtype=torch.float64) * 3 + 1
    flat = x.numpy().reshape(3, -1)
    expected = (flat - flat.mean(1, keepdims=True)) / np.sqrt(flat.var(1, keepdims=True) + norm.eps)
    np.testing.assert_allclose(norm.double()(x).detach().numpy().reshape(3, -1), expected, rtol=1e-10)


def test_crn_parameter_count() -> None:
    c1, c2, c3 = 8, 6, 4
    expected = (
        9 * 1 * c1 + 9 * c1 * c1 + 4 * c1                     # module 1: 2 convs, 2 layer norms
        + 9 * (c1 + 1) * c2 + 9 * c2 * c2 + 4 * c2            # module 2 takes features + input
        + 9 * (c2 + 1) * c3 + 9 * c3 * c3 + 4 * c3
        + c3 + 1                                              # linear 1x1 head
    )
    assert _count(CRN(channels=(c1, c2, c3))) == expected


def _unet_count(widths: tuple[int, ...], in_channels: int, out_channels: int, transposed: bool) -> int:
    bn = lambda c: 2 * c  # noqa: E731
    total = 0
    previous = in_channels
    for w in widths:  # encoder: 2 x (3x3 conv without bias, BN)
        total += 9 * previous * w + bn(w) + 9 * w * w + bn(w)
        previous = w
    for coarse, fine in zip(widths[:0:-1], widths[-2::-1], strict=True):
        if transposed:  # 2x2 transposed conv with bias
            total += 4 * coarse * fine + fine
        else:  # nearest upsampling, 3x3 conv, BN
            total += 9 * coarse * fine + bn(fine)
        total += 9 * 2 * fine * fine + bn(fine) + 9 * fine * fine + bn(fine)
    return total + widths[0] * out_channels + out_channels


@pytest.mark.parametrize("upsampling", ["transposed", "nearest"])
def test_unet_parameter_count(upsampling: str) -> None:
    network = UNet(2, 3, (4, 8, 16, 32), upsampling=upsampling)
    assert _count(network) == _unet_count((4, 8, 16, 32), 2, 3, upsampling == "transposed")
    assert network.total_stride == 8


def test_default_unet_is_ronneberger_sized() -> None:
    with torch.device("meta"):
        network = UNet()
    assert _count(network) == _unet_count((64, 128, 256, 512, 1024), 1, 1, True)  # ~31 M
    assert network.total_stride == 16
    assert _count(SegmentationUNet()) == _unet_count((8, 16, 32, 64), 1, 2, True)


def test_resnet_parameter_count_and_layout() -> None:
    w, blocks = 4, 2
    expected = (49 * 1 * w + 9 * w * 2 * w + 9 * 2 * w * 4 * w      # stem, two downsamplings
                + blocks * 2 * 9 * (4 * w) ** 2                       # residual blocks
                + 9 * 4 * w * 2 * w + 9 * 2 * w * w                   # two transposed convs
                + 49 * w + 1)                                         # 7x7 output conv with bias
    network = ResNetGenerator(base_width=w, num_blocks=blocks)
    assert _count(network) == expected
    assert sum(isinstance(m, ResidualBlock) for m in network.modules()) == blocks
    assert network(torch.randn(1, 1, 20, 12)).shape == (1, 1, 20, 12)


def test_residual_block_is_the_identity_when_its_branch_is_zero() -> None:
    block = ResidualBlock(3, "instance")
    nn.init.zeros_(block.body[1].weight)  # instance norm of zeros is zero
    x = torch.randn(2, 3, 5, 7)
    torch.testing.assert_close(block(x), x)


def test_dagan_generator_output_is_the_clipped_residual_sum() -> None:
    network = DAGANGenerator(encoder_widths=(4, 8, 8), decoder_widths=(8, 8, 4))
    nn.init.zeros_(network.head.weight)
    nn.init.constant_(network.head.bias, 0.5)
    image = torch.linspace(-1, 1, 2 * 16 * 24).view(2, 1, 16, 24)
    output = network(image)
    np.testing.assert_allclose(output.detach().numpy(), np.clip(image.numpy() + np.tanh(0.5), -1, 1),
                               atol=1e-6)
    assert network.total_stride == 8


def test_dagan_generator_default_is_the_8_level_256_px_network() -> None:
    with torch.device("meta"):
        network = DAGANGenerator()
    assert network.total_stride == 256
    first_transposed = network.decoder[0][0]
    last_transposed = network.decoder[-1][0]
    assert (first_transposed.in_channels, first_transposed.out_channels) == (512, 512)
    assert (last_transposed.in_channels, last_transposed.out_channels) == (64 + 64, 64)
    assert network.decoder[1][0].in_channels == 512 + 512  # up7 concatenated with conv7
