"""Physics: spin-echo signal, HU -> attenuation, noise models, partial-volume mixing."""

import math

import pytest
import torch

from taskloss.data.physics import (
    MU_WATER_PER_MM,
    N_TISSUES,
    SpinEcho,
    Tissue,
    attenuation,
    hu_to_attenuation,
    mix,
    property_table,
    rician,
    spin_echo_signal,
    xray_line_integral,
)
from taskloss.errors import InputError


def test_spin_echo_matches_the_formula_by_hand():
    signal = spin_echo_signal(property_table(), SpinEcho.preset("t1"))
    # White matter: PD 0.675, T1 700, T2 75 at TR 500, TE 15.
    expected = 0.675 * (1 - math.exp(-500 / 700)) * math.exp(-15 / 75)
    assert signal[Tissue.WHITE_MATTER].item() == pytest.approx(expected)
    assert signal[Tissue.AIR].item() == 0
    assert signal[Tissue.CORTICAL_BONE] < 0.01  # bone is dark in MR
    assert signal[Tissue.FAT] > signal[Tissue.WHITE_MATTER] > signal[Tissue.GREY_MATTER] > signal[Tissue.CSF]
    t2 = spin_echo_signal(property_table(), SpinEcho.preset("t2"))
    assert t2[Tissue.CSF] > t2[Tissue.GREY_MATTER] > t2[Tissue.WHITE_MATTER]  # T2: CSF bright


def test_attenuation_from_hu():
    hu = torch.tensor([-1000.0, -1200.0, 0.0, 1000.0])
    expected = torch.tensor([0.0, 0.0, MU_WATER_PER_MM, 2 * MU_WATER_PER_MM])
    torch.testing.assert_close(hu_to_attenuation(hu), expected)
    mu = attenuation(property_table())
    assert mu[Tissue.CORTICAL_BONE] > 2 * mu[Tissue.WHITE_MATTER]  # bone dominates X-ray


def test_mix_is_the_fraction_weighted_sum():
    fractions = torch.zeros(1, N_TISSUES, 2, 3)
    fractions[0, Tissue.FAT, 0] = 1
    fractions[0, Tissue.CSF, 1] = 0.25
    fractions[0, Tissue.AIR, 1] = 0.75
    values = torch.arange(N_TISSUES, dtype=torch.float64)
    out = mix(fractions, values)
    assert out.shape == (1, 1, 2, 3)
    torch.testing.assert_close(out[0, 0, 0], torch.full((3,), float(Tissue.FAT)))
    torch.testing.assert_close(out[0, 0, 1], torch.full((3,), 0.25 * Tissue.CSF))


def test_rician_noise_statistics():
    generator = torch.Generator().manual_seed(0)
    zero = rician(torch.zeros(200_000), 0.1, generator)
    assert zero.mean().item() == pytest.approx(0.1 * math.sqrt(math.pi / 2), rel=0.01)  # Rayleigh mean
    strong = rician(torch.full((200_000,), 5.0), 0.1, generator)
    # E|s + n|^2 = s^2 + 2 sigma^2
    assert (strong.square().mean()).item() == pytest.approx(25 + 2 * 0.01, rel=1e-3)
    with pytest.raises(InputError, match="sigma must be >= 0"):
        rician(torch.zeros(3), -1.0)


def test_xray_poisson_noise_is_unbiased_and_optional():
    p = torch.full((100_000,), 2.0)
    assert torch.equal(xray_line_integral(p, None), p)
    noisy = xray_line_integral(p, 1e5, torch.Generator().manual_seed(1))
    assert noisy.mean().item() == pytest.approx(2.0, abs=2e-3)
    # Var(-ln(N / I0)) ~ 1 / (I0 exp(-p)) for many photons.
    assert noisy.var().item() == pytest.approx(1 / (1e5 * math.exp(-2.0)), rel=0.05)
    with pytest.raises(InputError, match="photons"):
        xray_line_integral(p, 0.0)


def test_sequence_errors():
    with pytest.raises(InputError, match="0 < TE < TR"):
        SpinEcho(tr=10.0, te=20.0)
    with pytest.raises(InputError, match="unknown MR weighting 'flair'"):
        SpinEcho.preset("flair")
