"""X-ray realism: bone tissues, detector blur, radiograph display, LoG edge energy of the pairs."""

import numpy as np
import pytest
import torch
from scipy import ndimage

from taskloss.data.edges import log_energy, log_energy_ratio
from taskloss.data.mr2xray import Mr2XrayConfig, simulate_mr2xray
from taskloss.data.phantoms import head_phantom
from taskloss.data.physics import (
    BONE_TISSUES,
    FWHM_PER_SIGMA,
    MU_WATER_PER_MM,
    N_TISSUES,
    RadiographDisplay,
    Tissue,
    attenuation,
    bone_fraction,
    detector_blur,
    gaussian_blur,
    property_table,
)
from taskloss.errors import InputError


def test_bone_tissues_are_the_dense_ones():
    hu = property_table()[:, 3]
    assert {Tissue.CORTICAL_BONE, Tissue.MARROW, Tissue.TOOTH} == BONE_TISSUES
    assert all((hu[t] >= 300) == (t in BONE_TISSUES) for t in Tissue)
    assert 1000 <= hu[Tissue.CORTICAL_BONE] <= 1900  # compact bone
    mu = attenuation(property_table())
    assert mu[Tissue.CORTICAL_BONE].item() == pytest.approx(2.8 * MU_WATER_PER_MM)  # 1800 HU
    assert mu[Tissue.TOOTH] > mu[Tissue.CORTICAL_BONE]


def test_bone_fraction_sums_the_bone_tissues():
    fractions = torch.zeros(N_TISSUES, 2, 2)
    fractions[Tissue.CORTICAL_BONE, 0, 0], fractions[Tissue.SKIN, 0, 0] = 0.25, 0.75
    fractions[Tissue.MARROW, 0, 1], fractions[Tissue.TOOTH, 0, 1] = 0.5, 0.5
    fractions[Tissue.AIR, 1] = 1
    torch.testing.assert_close(bone_fraction(fractions), torch.tensor([[[0.25, 1.0], [0.0, 0.0]]]))
    with pytest.raises(InputError, match="fractions must be"):
        bone_fraction(torch.zeros(3, 2, 2))


def test_the_head_has_face_jaw_teeth_and_spine():
    phantom = head_phantom(0, spacing_mm=4)
    litres = phantom.fractions.sum(dim=(1, 2, 3)) * 4.0**3 / 1e6
    assert 0.001 < litres[Tissue.TOOTH] < 0.02  # 32 teeth, ~0.2-0.5 ml each
    z = phantom.fractions.shape[1]
    # Bone reaches the jaw and neck levels, below the template's lowest slice (MNI z -72).
    below = bone_fraction(phantom.fractions)[0, : z * 60 // 254]
    assert below.sum() * 4.0**3 / 1e3 > 20  # ml of bone (mandible and vertebrae)


def test_gaussian_blur_matches_scipy():
    image = torch.rand(1, 1, 20, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = ndimage.gaussian_filter(image[0, 0].numpy(), 1.3, mode="mirror", truncate=3.0)
    np.testing.assert_allclose(gaussian_blur(image, 1.3)[0, 0].numpy(), expected, atol=1e-12)
    assert torch.equal(gaussian_blur(image, 0.0), image)


def test_detector_blur_acts_on_the_intensity():
    edge = torch.zeros(1, 1, 16, 16)
    edge[..., 8:] = 2.0  # line integral 0 | 2
    blurred = detector_blur(edge, fwhm_mm=2 * FWHM_PER_SIGMA, pixel_mm=1.0)  # sigma 2 px
    intensity = gaussian_blur(torch.exp(-edge), 2.0)
    torch.testing.assert_close(blurred, -torch.log(intensity))
    # Blurring intensities is not blurring line integrals: at the edge -ln(mean I) < mean p.
    assert blurred[0, 0, 0, 8] < gaussian_blur(edge, 2.0)[0, 0, 0, 8]
    assert torch.equal(detector_blur(edge, 0.0, 1.0), edge)
    with pytest.raises(InputError, match="detector blur needs"):
        detector_blur(edge, -1.0, 1.0)


def test_radiograph_display_windows_the_log_intensity():
    line = torch.zeros(1, 1, 32, 32)
    line[..., 8:24, 8:24] = torch.linspace(1.0, 3.0, 16)  # an object of line integrals 1 to 3
    plain = RadiographDisplay(compression=0.0, window_quantile=1.0)(line, pixel_mm=1.0)
    torch.testing.assert_close(plain, line / 3.0)  # log intensity, windowed 0..max: bone bright
    shown = RadiographDisplay()(line, pixel_mm=1.0)
    assert shown.min() == 0 and shown.max() == 1
    with pytest.raises(InputError, match="radiograph display needs"):
        RadiographDisplay(compression=1.0)


def test_log_energy_of_a_quadratic_is_its_laplacian():
    y, x = torch.meshgrid(torch.arange(40.0), torch.arange(40.0), indexing="ij")
    image = ((x - 20) ** 2 + (y - 20) ** 2)[None, None].double()
    # The Laplacian of x^2 + y^2 is 4 everywhere (to the sampled kernel's 0.5 %).
    interior = ndimage.gaussian_laplace(image[0, 0].numpy(), 1.0, mode="reflect")[10:30, 10:30]
    assert interior == pytest.approx(4.0, rel=0.01)
    assert float(log_energy(2 * image)) == pytest.approx(4 * float(log_energy(image)))  # quadratic
    assert float(log_energy(image + 5)) == pytest.approx(float(log_energy(image)))  # offset-free
    assert float(log_energy(torch.ones(1, 8, 8))) < 1e-6  # flat: no edges
    with pytest.raises(InputError, match="sigma_px must be > 0"):
        log_energy(image, 0.0)
    with pytest.raises(InputError, match="must have one shape"):
        log_energy_ratio(image, image[..., :5])


def test_simulated_xrays_carry_the_edge_energy_of_their_mr_projections():
    config = {"subjects": 3, "angles": 2, "size": 32, "anatomy": "ellipsoid"}
    data = simulate_mr2xray(Mr2XrayConfig(**config))
    assert log_energy_ratio(data.targets, data.inputs) >= 1
    # The display's thickness compression is what lifts the edges above the plain log intensity.
    plain = simulate_mr2xray(Mr2XrayConfig(**config, display_compression=0.0))
    assert log_energy(data.targets).mean() > 1.5 * log_energy(plain.targets).mean()
