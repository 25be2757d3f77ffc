"""Head phantoms: partial-volume fractions, real MNI152 anatomy, subject variation, errors."""

import pytest
import torch
from pydantic import ValidationError

from taskloss.config import validate_config
from taskloss.data.phantoms import Variation, head_phantom, mni_anatomy
from taskloss.data.physics import N_TISSUES, Tissue
from taskloss.errors import ConfigError, InputError


@pytest.mark.parametrize("anatomy", ["ellipsoid", "mni152"])
def test_fractions_are_a_partition_with_every_tissue(anatomy):
    phantom = head_phantom(1, seed=3, anatomy=anatomy, spacing_mm=4)
    fractions = phantom.fractions
    assert fractions.shape[0] == N_TISSUES and fractions.dtype == torch.float32
    assert float(fractions.min()) >= 0
    torch.testing.assert_close(fractions.sum(dim=0), torch.ones(fractions.shape[1:]), atol=1e-5, rtol=0)
    assert set(phantom.labels().unique().tolist()) == set(range(N_TISSUES))
    # The outermost voxels are air.
    assert torch.allclose(fractions[Tissue.AIR, -1], torch.ones_like(fractions[Tissue.AIR, -1]))


def test_mni_brain_and_skull_volumes_are_adult_sized():
    phantom = head_phantom(0, spacing_mm=4, variation=Variation(scale=0, deformation_mm=0, lesions=0))
    litres = phantom.fractions.sum(dim=(1, 2, 3)) * 4.0**3 / 1e6
    brain = litres[Tissue.GREY_MATTER] + litres[Tissue.WHITE_MATTER]
    assert 1.3 < brain < 1.7  # MNI152 grey + white matter ~1.5 l
    bone = litres[Tissue.CORTICAL_BONE] + litres[Tissue.MARROW]
    assert 0.4 < bone < 1.0  # skull ~0.5-0.8 l
    assert litres[Tissue.LESION] == 0


def test_mni_anatomy_is_cached_and_centred_on_the_template():
    assert mni_anatomy(4) is mni_anatomy(4)
    anatomy = mni_anatomy(4)
    coordinates = anatomy.coordinates()
    # The template grid spans MNI x -98..98 (1 mm voxels); 4 mm blocks keep that span.
    assert coordinates[0, 0, 0, 0].item() == pytest.approx(-98 + 1.5)
    brain = (anatomy.grey + anatomy.white) > 0.5
    assert brain.any() and not bool((anatomy.hull[brain] == 0).any())  # the hull holds the brain


def test_subjects_are_deterministic_and_differ():
    a, b = (head_phantom(2, seed=7, anatomy="ellipsoid", spacing_mm=4) for _ in range(2))
    assert torch.equal(a.fractions, b.fractions) and torch.equal(a.properties, b.properties)
    c = head_phantom(3, seed=7, anatomy="ellipsoid", spacing_mm=4)
    assert (a.fractions - c.fractions).abs().sum() > 100
    assert not torch.equal(a.properties, c.properties)
    assert torch.equal(a.properties[Tissue.AIR], c.properties[Tissue.AIR])  # air is never jittered


def test_lesions_lie_in_the_brain():
    phantom = head_phantom(0, seed=1, spacing_mm=4, variation=Variation(lesions=3))
    lesion = phantom.fractions[Tissue.LESION] > 0.5
    assert lesion.any()
    brain_or_lesion = phantom.fractions[[Tissue.GREY_MATTER, Tissue.WHITE_MATTER, Tissue.LESION]].sum(0)
    assert bool((brain_or_lesion[lesion] > 0.9).all())


@pytest.mark.parametrize(("call", "message"), [
    (lambda: head_phantom(-1), "subject must be >= 0"),
    (lambda: head_phantom(0, anatomy="skull"), "unknown anatomy 'skull'"),
    (lambda: head_phantom(0, spacing_mm=5), "spacing_mm must be an integer from 1 to 4"),
])
def test_bad_arguments(call, message):
    with pytest.raises(InputError, match=message):
        call()


@pytest.mark.parametrize(("settings", "message"), [
    ({"scale": -0.1}, "scale: Input should be greater than or equal to 0"),
    ({"tissue": 1.0}, "tissue: Input should be less than 1"),
    ({"lesion_radius_mm": [5.0, 2.0]},
     r"lesion_radius_mm: must be \(low, high\) with 0 < low <= high, got \[5.0, 2.0\]"),
    ({"lesions": 2, "sclae": 0.1}, r"\(root\): unknown key 'sclae'; choose one of rotation_deg, scale, deformation_mm"),
])
def test_bad_variation_is_one_config_error_naming_the_key(settings, message):
    with pytest.raises(ConfigError, match=f"^variation: {message}"):
        validate_config(Variation, settings, "variation")


def test_variation_is_frozen_hashable_and_reads_lists():
    variation = validate_config(Variation, {"lesion_radius_mm": [6, 14], "lesions": 8}, "variation")
    assert variation.lesion_radius_mm == (6.0, 14.0)
    assert hash(variation) == hash(Variation(lesions=8, lesion_radius_mm=(6.0, 14.0)))
    with pytest.raises(ValidationError):
        variation.lesions = 3  # type: ignore[misc]
