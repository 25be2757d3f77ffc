"""CRN's 256p layer weights were set on the 0-255 Caffe scale: the rescaled pixel weight restores CRN's pixel term."""

import torch

from taskloss.features import VGG19Features
from taskloss.losses.perceptual import (
    CAFFE_PIXEL_SCALE,
    CRN_256_LAYER_WEIGHTS,
    CRN_256_LAYER_WEIGHTS_UNIT_RANGE,
    PerceptualLoss,
)


def test_the_unit_range_pixel_term_equals_crns_0_255_pixel_term() -> None:
    assert CAFFE_PIXEL_SCALE == 255.0
    assert CRN_256_LAYER_WEIGHTS_UNIT_RANGE["pixel"] == 255.0
    assert {k: v for k, v in CRN_256_LAYER_WEIGHTS_UNIT_RANGE.items() if k != "pixel"} == {
        k: v for k, v in CRN_256_LAYER_WEIGHTS.items() if k != "pixel"}
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(2, 1, 16, 16, generator=generator)
    pred = (target + 0.1 * torch.randn(target.shape, generator=generator)).clamp(0, 1)
    network = VGG19Features("random")
    only_pixel = {"pixel": CRN_256_LAYER_WEIGHTS_UNIT_RANGE["pixel"], "conv1_2": 0.0}
    loss = PerceptualLoss(layers=["conv1_2"], include_pixel=True, layer_weights=only_pixel, network=network,
                          reduction="none")
    # CRN: weight 1 times mean |x - y| on 0-255 pixel values.
    crn_pixel_term = CRN_256_LAYER_WEIGHTS["pixel"] * (255 * pred - 255 * target).abs().flatten(1).mean(dim=1)
    torch.testing.assert_close(loss(pred, target), crn_pixel_term)
