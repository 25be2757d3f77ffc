"""Projected bone masks of the mr2xray data: the bone path length along the X-ray's rays, thresholded."""

import torch

from taskloss.data.mr2xray import Mr2XrayConfig, mr2xray_splits
from taskloss.data.phantoms import head_phantom
from taskloss.data.physics import bone_fraction
from taskloss.data.projector import project


def test_bone_masks_threshold_the_projected_bone_share_and_items_carry_them():
    config = Mr2XrayConfig(subjects=3, angles=2, size=24, anatomy="ellipsoid", seed=5, bone_threshold_mm=20.0)
    train = mr2xray_splits(config).train
    items = [train[i] for i in range(len(train))]
    subject = items[0]["subject"]
    phantom = head_phantom(subject, config.seed, anatomy=config.anatomy, spacing_mm=config.phantom_spacing_mm(),
                           variation=config.variation)
    path_mm = project(bone_fraction(phantom.fractions)[None], phantom.spacing, config.angle_list(),
                      config.geometry())[0, 0]  # (A, S, S) bone path length, mm
    masks = torch.stack([item["bone"][0] for item in items if item["subject"] == subject])
    assert items[0]["bone"].shape == (1, 24, 24) and items[0]["bone"].dtype == torch.int64
    torch.testing.assert_close(masks, (path_mm >= 20.0).long())
    assert 0.02 < masks.float().mean() < 0.9  # a bone region, not the whole image and not empty
