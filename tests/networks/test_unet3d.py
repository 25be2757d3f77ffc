"""The 3-D U-Net (spatial_dims=3): sizes, parameters counted by hand, gradients, errors."""

import pytest
import torch
from torch import nn

from taskloss.errors import ConfigError, InputError
from taskloss.networks import SegmentationUNet, UNet, create_network


def test_parameters_are_the_3d_layout_counted_by_hand() -> None:
    net = UNet(1, 2, widths=(4, 8), spatial_dims=3)
    # conv 1->4, 4->4 | 4->8, 8->8 (27 weights per pair, no bias before batch norm) + 2 BN params each;
    # transposed 8->4 (2x2x2, bias); decoder 8->4, 4->4; head 4->2 (1x1x1, bias).
    by_hand = (27 * (1 * 4 + 4 * 4 + 4 * 8 + 8 * 8 + 8 * 4 + 4 * 4) + 2 * (4 + 4 + 8 + 8 + 4 + 4)
               + (8 * 4 * 8 + 4) + (4 * 2 + 2))
    assert sum(p.numel() for p in net.parameters()) == by_hand == 4762
    assert sum(isinstance(m, nn.Conv3d) for m in net.modules()) == 7
    assert sum(isinstance(m, nn.BatchNorm3d) for m in net.modules()) == 6
    assert not any(isinstance(m, nn.Conv2d) for m in net.modules())


def test_create_network_builds_the_3d_segmenter_and_it_trains() -> None:
    net = create_network("segmentation_unet", widths=(2, 4, 4), spatial_dims=3)
    assert isinstance(net, SegmentationUNet) and net.spatial_dims == 3
    (volume,) = net.example_inputs(2, (4, 12, 20))
    logits = net(volume)
    assert logits.shape == (2, 2, 4, 12, 20)
    logits.square().mean().backward()
    assert all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in net.parameters())


def test_bad_inputs_and_options_name_the_fix() -> None:
    net = UNet(1, 1, widths=(2, 4), spatial_dims=3)
    with pytest.raises(InputError) as error:
        net(torch.rand(1, 1, 8, 8))
    assert str(error.value) == ("UNet is a 3-D network and takes volumes (B, C, D, H, W), got image of shape "
                                "(1, 1, 8, 8); pass volumes, or create the network with spatial_dims=2 for 2-D images")
    with pytest.raises(InputError) as error:
        net(torch.rand(1, 1, 4, 6, 7))
    assert str(error.value) == ("UNet cannot take image of 4 x 6 x 7 px: depth, height and width must be multiples "
                                "of 2 (the network's total stride); crop to 4 x 6 x 6 or pad to 4 x 6 x 8")
    with pytest.raises(InputError, match=r"UNet expects image of shape \(B, 1, D, H, W\), got \(1, 2, 4, 4, 4\)"):
        net(torch.rand(1, 2, 4, 4, 4))
    with pytest.raises(ConfigError, match=r"3-D convolutions take an odd kernel_size and stride 1 here, got "
                                          r"kernel_size=4, stride=1; use e\.g\. kernel_size=3"):
        UNet(widths=(2, 4), kernel_size=4, spatial_dims=3)
    with pytest.raises(ConfigError, match="spatial_dims=1 is not supported; use one of 2, 3"):
        UNet(widths=(2, 4), spatial_dims=1)
