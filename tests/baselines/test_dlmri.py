"""DLMRI: data consistency, improvement over zero-filling on a real image, batching, seeding, the
patch grid, and bad input."""


import numpy as np
import pytest
import torch
from skimage.transform import resize
from sklearn.feature_extraction.image import extract_patches_2d, reconstruct_from_patches_2d

from taskloss.baselines import DlmriConfig, dlmri, initial_dictionary, zero_filled
from taskloss.baselines.dlmri import _PatchGrid
from taskloss.config import validate_config
from taskloss.data.kspace import channels_to_complex, fft2c, magnitude
from taskloss.data.samples import mr_slice, shepp_logan
from taskloss.errors import ConfigError, InputError
from taskloss.metrics import psnr, ssim

QUICK = DlmriConfig(outer_iterations=2, ksvd_iterations=1, training_patches=400)


def line_mask(size: int, acceleration: int, central: int, seed: int) -> torch.Tensor:
    """Seitzer et al.'s variable-density Cartesian mask: ``size // acceleration`` whole k-space rows,
    the ``central`` middle ones always, the others drawn without replacement with density
    exp(-(k - N/2)^2 / (2 (N/10)^2)) + 1 / (2 acceleration). Shape (1, 1, size, 1)."""
    rng = np.random.default_rng(seed)
    k = np.arange(size)
    density = np.exp(-((k - size // 2) ** 2) * 0.5 / (size / 10) ** 2) + 0.5 / acceleration
    centre = np.arange(size // 2 - central // 2, size // 2 + central - central // 2)
    density[centre] = 0
    drawn = rng.choice(size, size // acceleration - central, replace=False, p=density / density.sum())
    mask = np.zeros(size, dtype=np.float32)
    mask[centre] = 1
    mask[drawn] = 1
    return torch.from_numpy(mask)[None, None, :, None]


def _mr(size: int) -> torch.Tensor:
    """pydicom's real 64 x 64 MR slice resized to size x size, in [0, 1], (1, 1, size, size)."""
    image = resize(mr_slice(), (size, size), anti_aliasing=size < 64).astype(np.float32)
    return torch.from_numpy(image)[None, None]


def _measure(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return fft2c(image.to(torch.complex64)) * mask


def test_line_mask_has_the_requested_lines() -> None:
    mask = line_mask(64, acceleration=4, central=4, seed=0)
    assert mask.sum() == 16 and mask[0, 0, 30:34].all()


def test_sampled_kspace_equals_the_measurements_without_noise() -> None:
    image, mask = _mr(32), line_mask(32, acceleration=3, central=4, seed=1)
    kspace = _measure(image, mask)
    result = fft2c(channels_to_complex(dlmri(kspace, mask, QUICK)))
    sampled = mask.expand_as(result).bool()
    torch.testing.assert_close(result[sampled], kspace[sampled], atol=2e-6, rtol=0)
    assert (result[~sampled] - kspace[~sampled]).abs().max() > 0.01  # unsampled entries filled in


def test_noisy_update_is_the_weighted_mean_of_estimate_and_measurements() -> None:
    # After one outer iteration the patch estimate x is the same for every nu, so the sampled
    # entries of two runs determine fft2c(x) there, and the unsampled ones must agree.
    image, mask = _mr(32), line_mask(32, acceleration=3, central=4, seed=2)
    kspace = _measure(image, mask)
    one_step = QUICK.model_copy(update={"outer_iterations": 1})
    runs = [fft2c(channels_to_complex(dlmri(kspace, mask, one_step.model_copy(update={"nu": nu}))))
            for nu in (0.5, 4.0)]
    estimate = 1.5 * runs[0] - 0.5 * kspace  # (k + nu k0) / (1 + nu) solved for k, nu = 0.5
    sampled = mask.expand_as(kspace).bool()
    torch.testing.assert_close(runs[1][sampled], ((estimate + 4 * kspace) / 5)[sampled],
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(runs[1][~sampled], runs[0][~sampled], atol=1e-5, rtol=0)


def test_dlmri_improves_on_zero_filling_a_real_mr_image() -> None:
    image, mask = _mr(64), line_mask(64, acceleration=4, central=4, seed=1)
    kspace = _measure(image, mask)
    config = DlmriConfig(outer_iterations=6, ksvd_iterations=1, training_patches=2000)
    baseline = magnitude(zero_filled(kspace, mask))
    result = magnitude(dlmri(kspace, mask, config))
    gain = psnr(result, image, data_range="target_max") - psnr(baseline, image, data_range="target_max")
    assert gain.item() > 0.8  # 1.2 dB measured (1.8 dB with 10 outer iterations)
    ssim_gain = (ssim(result, image, data_range="target_max")
                 - ssim(baseline, image, data_range="target_max"))
    assert ssim_gain.item() > 0.03  # 0.055 measured


def test_threshold_schedule_falls_geometrically_to_the_final_target() -> None:
    config = DlmriConfig(initial_error_threshold=0.2, error_threshold=0.05, outer_iterations=3)
    assert [config.threshold(i) for i in (1, 2, 3)] == pytest.approx([0.2, 0.1, 0.05])  # 0.2 * 0.5^k
    assert DlmriConfig(error_threshold=0.04).threshold(7) == 0.04  # constant without a schedule
    linear = DlmriConfig(initial_error_threshold=0.1, error_threshold=0.0, outer_iterations=5)
    assert [linear.threshold(i) for i in (1, 3, 5)] == pytest.approx([0.1, 0.05, 0.0])


def test_coarse_to_fine_schedule_beats_zero_filling_by_more() -> None:
    # A large first target codes only the strong structures while aliasing dominates the estimate.
    image, mask = _mr(64), line_mask(64, acceleration=4, central=4, seed=1)
    kspace = _measure(image, mask)
    quick = DlmriConfig(outer_iterations=6, ksvd_iterations=1, training_patches=2000)
    baseline = psnr(magnitude(zero_filled(kspace, mask)), image, data_range="target_max")
    gains = [(psnr(magnitude(dlmri(kspace, mask, config)), image, data_range="target_max") - baseline).item()
             for config in (quick, quick.model_copy(update={"initial_error_threshold": 0.2,
                                                                    "error_threshold": 0.05}))]
    assert gains[1] > 3.0 and gains[1] > gains[0] + 2.0  # 4.2 and 1.2 dB measured


def test_batch_results_equal_single_image_results() -> None:
    images = torch.cat([_mr(24), torch.from_numpy(shepp_logan(24))[None, None]])
    masks = torch.cat([line_mask(24, 3, 4, seed) for seed in (4, 5)])
    kspace = _measure(images, masks)
    config = QUICK.model_copy(update={"training_patches": 300})  # a random subset of the patches
    batch = dlmri(kspace, masks, config, seed=7)
    for item in range(2):
        single = dlmri(kspace[item:item + 1], masks[item:item + 1], config, seed=7)
        torch.testing.assert_close(batch[item:item + 1], single, atol=1e-5, rtol=1e-5)


def test_the_seed_picks_the_training_patches() -> None:
    image, mask = _mr(24), line_mask(24, 3, 4, seed=6)
    kspace = _measure(image, mask)
    config = QUICK.model_copy(update={"training_patches": 100})
    first = dlmri(kspace, mask, config, seed=1)
    assert torch.equal(first, dlmri(kspace, mask, config, seed=1))
    assert not torch.allclose(first, dlmri(kspace, mask, config, seed=2))


def test_odd_sizes_dtype_stride_and_intensity_scale() -> None:
    generator = torch.Generator().manual_seed(0)
    image = torch.randn(1, 1, 21, 26, generator=generator, dtype=torch.float64).cumsum(-1)
    mask = (torch.rand(1, 1, 21, 1, generator=generator) < 0.5).double()
    kspace = fft2c(image.to(torch.complex128)) * mask
    config = QUICK.model_copy(update={"stride": 4})
    result = dlmri(kspace, mask, config)
    assert result.shape == (1, 2, 21, 26) and result.dtype == torch.float64
    # The error target is relative to the image's peak, so DLMRI commutes with scaling.
    torch.testing.assert_close(dlmri(7.5 * kspace, mask, config), 7.5 * result)


def test_on_iteration_reports_every_outer_iteration() -> None:
    image, mask = _mr(24), line_mask(24, 3, 4, seed=8)
    seen: list[tuple[int, tuple[int, ...]]] = []
    result = dlmri(_measure(image, mask), mask, QUICK,
                   on_iteration=lambda step, estimate: seen.append((step, tuple(estimate.shape))))
    assert seen == [(1, (1, 2, 24, 24)), (2, (1, 2, 24, 24))]
    assert result.shape == (1, 2, 24, 24)


@pytest.mark.parametrize("stride", [1, 2, 3, 5])
def test_patch_grid_averages_its_own_patches_back_to_the_image(stride: int) -> None:
    image = torch.randn(2, 2, 13, 17, dtype=torch.float64)
    grid = _PatchGrid(13, 17, 5, stride, image.device)
    torch.testing.assert_close(grid.average(grid.extract(image)), image)


def test_patch_grid_orders_patches_as_sklearn() -> None:
    image = np.random.default_rng(0).standard_normal((11, 9))
    grid = _PatchGrid(11, 9, 4, 1, torch.device("cpu"))
    patches = grid.extract(torch.from_numpy(image)[None, None])[0].numpy()
    expected = extract_patches_2d(image, (4, 4)).reshape(-1, 16)
    np.testing.assert_allclose(patches, expected)
    noisy = patches + np.random.default_rng(1).standard_normal(patches.shape)
    averaged = grid.average(torch.from_numpy(noisy)[None])[0, 0].numpy()
    np.testing.assert_allclose(averaged, reconstruct_from_patches_2d(noisy.reshape(-1, 4, 4), (11, 9)))


def test_initial_dictionary_is_pca_then_training_patches() -> None:
    rng = np.random.default_rng(0)
    training = torch.from_numpy(rng.standard_normal((1, 300, 9)) * np.arange(1, 10))
    principal = initial_dictionary(training, 4)[0].numpy()
    _, vectors = np.linalg.eigh(training[0].numpy().T @ training[0].numpy())
    np.testing.assert_allclose(np.abs((principal * vectors[:, ::-1][:, :4]).sum(0)), 1.0, atol=1e-12)
    extended = initial_dictionary(training, 12, torch.Generator().manual_seed(0))[0]
    torch.testing.assert_close(extended.norm(dim=0), torch.ones(12, dtype=torch.float64))
    cosines = (training[0] @ extended[:, 9:]).abs() / training[0].norm(dim=1, keepdim=True)
    assert (cosines.amax(dim=0) > 1 - 1e-12).all()  # the extra atoms are training patches


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"patch_size": 1}, "dlmri: patch_size: Input should be greater than or equal to 2"),
        ({"n_atoms": 0}, "dlmri: n_atoms: Input should be greater than or equal to 1"),
        ({"outer_iterations": 2.5}, "dlmri: outer_iterations: Input should be a valid integer"),
        ({"ksvd_iterations": True}, "dlmri: ksvd_iterations: Input should be a valid integer"),
        ({"sparsity": 40}, "dlmri: sparsity (40) exceeds n_atoms (36); lower sparsity or raise n_atoms"),
        ({"stride": 7}, "dlmri: stride (7) exceeds patch_size (6), which would leave pixels uncovered; lower stride"),
        ({"error_threshold": -0.1}, "dlmri: error_threshold: Input should be greater than or equal to 0"),
        ({"error_threshold": "0.02"}, "dlmri: error_threshold: Input should be a valid number"),
        ({"initial_error_threshold": -1.0},
         "dlmri: initial_error_threshold: Input should be greater than or equal to 0"),
        ({"nu": 0}, "dlmri: nu: Input should be greater than 0"),
        ({"warm_start": "yes"}, "dlmri: warm_start: Input should be a valid boolean"),
        ({"atoms": 36}, "dlmri: (root): unknown key 'atoms'; choose one of patch_size, n_atoms, sparsity, "
                        "error_threshold, initial_error_threshold, outer_iterations, ksvd_iterations, "
                        "training_patches, stride, nu, warm_start"),
    ],
)
def test_config_rejects_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate_config(DlmriConfig, options, "dlmri")
    assert str(error.value) == message


def test_config_from_a_mapping_and_paper_settings() -> None:
    assert validate_config(DlmriConfig, {"nu": 2}, "dlmri") == DlmriConfig(nu=2.0)
    paper = DlmriConfig.paper()
    assert (paper.patch_size, paper.n_atoms, paper.sparsity, paper.ksvd_iterations,
            paper.training_patches, paper.stride, paper.warm_start) == (6, 36, 7, 20, 7200, 1, False)
    assert paper.max_atoms == 14


def test_dlmri_rejects_bad_input() -> None:
    kspace = torch.ones(1, 1, 5, 8, dtype=torch.complex64)
    with pytest.raises(InputError, match="images of 5x8 pixels are smaller than the 6x6 DLMRI patches"):
        dlmri(kspace, torch.ones(5, 8))
    with pytest.raises(InputError, match=r"sampled k-space \(kspace \* mask\) of image\(s\) \[1\] is all"):
        dlmri(torch.ones(2, 1, 8, 8, dtype=torch.complex64), torch.tensor([1.0, 0.0])[:, None, None, None])
    with pytest.raises(InputError, match=r"kspace must be a complex torch\.Tensor"):
        dlmri(torch.ones(1, 1, 8, 8), torch.ones(8, 8))
    with pytest.raises(ConfigError, match="config must be a DlmriConfig, got dict"):
        dlmri(torch.ones(1, 1, 8, 8, dtype=torch.complex64), torch.ones(8, 8), {"nu": 1.0})
    with pytest.raises(InputError, match="40 atoms need at least 4 training patches"):
        dlmri(torch.ones(1, 1, 6, 6, dtype=torch.complex64), torch.ones(6, 6),
              DlmriConfig(n_atoms=40, sparsity=2))


@pytest.mark.cuda
def test_cuda_matches_cpu() -> None:
    image, mask = _mr(32), line_mask(32, 3, 4, seed=9)
    kspace = _measure(image, mask)
    on_cpu = magnitude(dlmri(kspace, mask, QUICK))
    on_gpu = magnitude(dlmri(kspace.cuda(), mask.cuda(), QUICK)).cpu()
    # Floating-point differences may flip a few OMP choices; the images must still agree closely.
    assert psnr(on_gpu, on_cpu, data_range="target_max").item() > 50
