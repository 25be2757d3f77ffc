"""Undersampling masks: exact counts, centres, fastMRI's formulas, determinism, bad arguments."""

import numpy as np
import pytest
import torch

from taskloss.data.masks import (
    cartesian_vd_mask,
    equispaced_mask,
    make_mask,
    random_mask,
    variable_density_2d_mask,
)
from taskloss.errors import InputError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize(("width", "acceleration", "center"),
                         [(512, 8, 8), (96, 8, 2), (97, 4, 5), (33, 3, 0)])
def test_cartesian_vd_has_exactly_w_over_acc_lines_with_the_centre(width, acceleration, center):
    mask = cartesian_vd_mask((7, width), acceleration, center, gen())
    assert mask.shape == (1, 7, width) and mask.dtype == torch.float32
    lines = mask[0, 0]
    assert int(lines.sum()) == round(width / acceleration)
    assert torch.equal(mask[0], lines.expand(7, -1))  # whole columns
    start = (width - center + 1) // 2
    assert bool(lines[start:start + center].all())
    assert set(mask.unique().tolist()) <= {0.0, 1.0}


def test_cartesian_vd_prefers_low_frequencies():
    counts = sum(cartesian_vd_mask((1, 128), 8, 2, gen(s))[0, 0] for s in range(60))
    centre_band, edge_band = counts[54:74].mean(), torch.cat([counts[:20], counts[-20:]]).mean()
    assert centre_band > 3 * edge_band


def test_masks_are_deterministic_per_generator_state():
    for kind in ("cartesian-vd", "random", "equispaced", "vd-2d"):
        a, b = make_mask(kind, (32, 48), 4, gen(3)), make_mask(kind, (32, 48), 4, gen(3))
        assert torch.equal(a, b)
    draws = {tuple(make_mask("cartesian-vd", (8, 64), 4, gen(s))[0, 0].tolist()) for s in range(5)}
    assert len(draws) > 1


def test_random_mask_matches_fastmri_formula():
    width, acceleration, fraction = 100, 4, 0.08
    uniform = torch.rand(width, generator=gen(5), dtype=torch.float64).numpy()
    # fastMRI RandomMaskFunc, written with numpy from its published definition.
    n_low = round(width * fraction)
    prob = (width / acceleration - n_low) / (width - n_low)
    expected = uniform < prob
    pad = (width - n_low + 1) // 2
    expected[pad:pad + n_low] = True
    mask = random_mask((3, width), acceleration, fraction, gen(5))
    np.testing.assert_array_equal(mask[0, 0].numpy().astype(bool), expected)
    draws = [random_mask((1, width), acceleration, fraction, gen(s))[0, 0].sum() for s in range(300)]
    mean_lines = np.mean(draws)
    assert abs(mean_lines - width / acceleration) < 1.0


def test_equispaced_mask_every_acc_th_line_and_centre():
    mask = equispaced_mask((2, 64), 4, 0.08, gen(1))[0, 0].bool()
    offset = int(torch.randint(0, 4, (1,), generator=gen(1)))
    assert bool(mask[offset::4].all())
    assert bool(mask[(64 - 5 + 1) // 2:(64 - 5 + 1) // 2 + 5].all())  # round(64 * 0.08) = 5
    with pytest.raises(InputError, match="integer acceleration"):
        equispaced_mask((2, 64), 2.5, 0.04, gen())


def test_vd_2d_exact_count_and_full_centre():
    mask = variable_density_2d_mask((40, 50), 5, 0.04, gen())[0]
    assert int(mask.sum()) == round(40 * 50 / 5)
    assert bool(mask[18:22, 23:27].all())  # round(0.2 * 40) = 8 rows, round(0.2 * 50) = 10 columns


@pytest.mark.parametrize(("call", "message"), [
    (lambda: cartesian_vd_mask((4, 64), 0.5, 2, gen()), "acceleration must be >= 1"),
    (lambda: cartesian_vd_mask((4, 64), float("nan"), 2, gen()), "acceleration must be >= 1"),
    (lambda: cartesian_vd_mask((4, 64), 8, 9, gen()), r"center_lines \(9\) is more than the 8 lines"),
    (lambda: cartesian_vd_mask((4, 64), 8, -1, gen()), "center_lines must be >= 0"),
    (lambda: random_mask((4, 64), 8, 0.2, gen()), "center_fraction must be in"),
    (lambda: make_mask("spiral", (4, 64), 4, gen()), "unknown mask 'spiral'"),
])
def test_bad_arguments_raise_one_clear_error(call, message):
    with pytest.raises(InputError, match=message):
        call()


@pytest.mark.parametrize(("width", "acceleration", "fraction"), [(96, 4, 0.125), (97, 8, 0.05), (64, 4, 0.0)])
def test_cartesian_vd_takes_a_center_fraction_as_round_w_times_f_central_lines(width, acceleration, fraction):
    by_fraction = make_mask("cartesian-vd", (3, width), acceleration, gen(4), center_fraction=fraction)
    by_lines = cartesian_vd_mask((3, width), acceleration, round(width * fraction), gen(4))
    assert torch.equal(by_fraction, by_lines)
    with pytest.raises(InputError, match=r"center_fraction must be in \[0, 1 / acceleration\] = \[0, 0.25\], got 0.3"):
        make_mask("cartesian-vd", (3, width), 4, gen(), center_fraction=0.3)


def test_the_two_kspace_sources_share_one_mask_configuration():
    """The simulator's config and a study file's fastMRI data take the same mask keys, checked by
    the same validator, and build the same mask from the same settings and generator."""
    from taskloss.data.csmri import CsmriConfig
    from taskloss.data.masks import MaskSettings
    from taskloss.data.sources import KspaceDataSpec

    settings = {"mask": "equispaced", "acceleration": 4, "center_fraction": 0.1, "size": 40}
    simulator, fastmri = CsmriConfig(**settings), KspaceDataSpec(path="h5", **settings)
    assert isinstance(simulator, MaskSettings) and isinstance(fastmri, MaskSettings)
    assert torch.equal(simulator.make_mask(gen(3)), fastmri.make_mask(gen(3)))
    assert torch.equal(simulator.make_mask(gen(3)), make_mask("equispaced", (40, 40), 4, gen(3), center_fraction=0.1))
    for model in (CsmriConfig, KspaceDataSpec):
        extra = {"path": "h5"} if model is KspaceDataSpec else {}
        with pytest.raises(ValueError, match=r"equispaced masks need an integer acceleration, got 2\.5"):
            model(mask="equispaced", acceleration=2.5, **extra)
    # the defaults: Seitzer et al.'s setting for the simulator, fastMRI's for fastMRI files
    assert (CsmriConfig().mask, CsmriConfig().acceleration) == ("cartesian-vd", 8.0)
    assert (KspaceDataSpec(path="h5").mask, KspaceDataSpec(path="h5").acceleration) == ("random", 4.0)


def test_the_config_names_of_the_masks_are_the_mask_kinds():
    import typing

    from taskloss.data.masks import MaskKind, MaskName

    assert list(typing.get_args(MaskName)) == [kind.value for kind in MaskKind]
