"""DLMRI: taskloss's batched torch version against a straightforward scikit-learn version.

The reference reconstructs one image at a time with the same algorithm and settings: patches by
``sklearn.feature_extraction.image.extract_patches_2d``, sparse codes by
``sklearn.linear_model.orthogonal_mp`` (one Python-level call per patch inside scikit-learn), a
numpy K-SVD atom loop (``numpy.linalg.svd`` per atom), patch averaging by
``reconstruct_from_patches_2d``, and the k-space update with numpy's FFT. It draws the same training
patches (same seed) and starts from the same PCA dictionary, so both should reach the same images;
the reference works in float64, taskloss in float32.

Prints the time per image of each (taskloss on the whole batch at once and on one image), their
ratio, the PSNR and SSIM of both against the ground truth (magnitudes, data_range = ground-truth
maximum, as Seitzer et al.), the zero-filled baseline's, and the machine.
Run: ``.venv/bin/python benchmarks/dlmri.py [--size 128] [--images 4] [--reference-images 2]``.
"""

import argparse
import time
import warnings

import numpy as np
import torch
from skimage.transform import resize
from sklearn.feature_extraction.image import extract_patches_2d, reconstruct_from_patches_2d
from sklearn.linear_model import orthogonal_mp
from threadpoolctl import threadpool_limits

from taskloss.baselines import DlmriConfig, dlmri, zero_filled
from taskloss.data.kspace import fft2c, magnitude
from taskloss.data.masks import cartesian_vd_mask
from taskloss.data.samples import mni_slice
from taskloss.metrics import psnr, ssim

from common import machine


def _problem(images: int, size: int, acceleration: float) -> tuple[torch.Tensor, torch.Tensor]:
    """MNI152 axial slices (B, 1, size, size) in [0, 1] and Seitzer's line masks (B, 1, size, size)."""
    slices = [resize(mni_slice(axis=2, index=50 + 8 * i)[18:215, :], (size, size), anti_aliasing=True)
              for i in range(images)]
    truth = torch.from_numpy(np.stack(slices).astype(np.float32))[:, None]
    generator = torch.Generator().manual_seed(0)
    masks = torch.stack([cartesian_vd_mask((size, size), acceleration, 8, generator)
                         for _ in range(images)])
    return truth, masks


def _fft2c(image: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image), norm="ortho"))


def _ifft2c(kspace: np.ndarray) -> np.ndarray:
    return np.fft.fftshift(np.fft.ifft2(np.fft.ifftshift(kspace), norm="ortho"))


def _sklearn_codes(dictionary: np.ndarray, patches: np.ndarray, cap: int, tol: float) -> np.ndarray:
    """DLMRI's error-constrained coding with an atom cap from scikit-learn's OMP, signals as columns.

    scikit-learn ignores the atom count when given ``tol`` and always takes one atom: code only the
    patches above the target, and recode those that needed more than ``cap`` atoms with ``cap``
    (OMP is greedy, so that is where the error-constrained path would have been stopped).
    """
    atoms = dictionary.shape[1]
    codes = np.zeros((atoms, patches.shape[1]))
    above = np.flatnonzero((patches ** 2).sum(0) > tol)
    if above.size:
        codes[:, above] = orthogonal_mp(dictionary, patches[:, above], tol=tol).reshape(atoms, -1)
        over = above[(codes[:, above] != 0).sum(0) > cap]
        if over.size:
            codes[:, over] = orthogonal_mp(dictionary, patches[:, over], n_nonzero_coefs=cap
                                           ).reshape(atoms, -1)
    return codes


def _numpy_ksvd(training: np.ndarray, dictionary: np.ndarray, iterations: int, sparsity: int
                ) -> np.ndarray:
    """K-SVD with an atom loop; unused atoms replaced by the worst-represented signal."""
    dictionary = dictionary.copy()
    for _ in range(iterations):
        codes = orthogonal_mp(dictionary, training, n_nonzero_coefs=sparsity)
        residual = training - dictionary @ codes
        taken = np.zeros(training.shape[1], dtype=bool)
        for k in range(dictionary.shape[1]):
            users = np.flatnonzero(codes[k])
            if users.size == 0:
                error = np.where(taken, -1.0, (residual ** 2).sum(0))
                worst = int(np.argmax(error))
                taken[worst] = True
                dictionary[:, k] = training[:, worst] / np.linalg.norm(training[:, worst])
                continue
            with_atom = residual[:, users] + np.outer(dictionary[:, k], codes[k, users])
            u, s, vt = np.linalg.svd(with_atom, full_matrices=False)
            dictionary[:, k], codes[k, users] = u[:, 0], s[0] * vt[0]
            residual[:, users] = with_atom - np.outer(dictionary[:, k], codes[k, users])
    return dictionary


def _sklearn_dlmri(kspace: np.ndarray, mask: np.ndarray, config: DlmriConfig, seed: int
                   ) -> np.ndarray:
    """One image: kspace and mask (H, W), centred; returns the complex reconstruction (H, W)."""
    p = config.patch_size
    measured = kspace * mask
    image = _ifft2c(measured)
    peak = np.abs(image).max()
    image, measured = image / peak, measured / peak
    generator = torch.Generator().manual_seed(seed)
    dictionary = None
    for _ in range(config.outer_iterations):
        parts = [image.real, image.imag]
        patches = np.concatenate([extract_patches_2d(part, (p, p)).reshape(-1, p * p)
                                  for part in parts]).T
        means = patches.mean(0)
        centred = patches - means
        count = min(config.training_patches, centred.shape[1])
        chosen = torch.randperm(centred.shape[1], generator=generator)[:count].numpy()
        training = centred[:, chosen]
        if dictionary is None or not config.warm_start:
            dictionary = np.linalg.eigh(training @ training.T)[1][:, ::-1][:, :config.n_atoms]
        dictionary = _numpy_ksvd(training, dictionary, config.ksvd_iterations, config.sparsity)
        codes = _sklearn_codes(dictionary, centred, config.max_atoms, p * p * config.error_threshold ** 2)
        approximations = (dictionary @ codes + means).T.reshape(2, -1, p, p)
        real, imag = (reconstruct_from_patches_2d(part, image.shape) for part in approximations)
        spectrum = _fft2c(real + 1j * imag)
        image = _ifft2c(np.where(mask > 0, measured, spectrum))
    return image * peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=4, help="images taskloss reconstructs")
    parser.add_argument("--reference-images", type=int, default=2,
                        help="of those, how many the (slow) reference reconstructs")
    parser.add_argument("--acceleration", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = DlmriConfig()
    truth, masks = _problem(args.images, args.size, args.acceleration)
    kspace = fft2c(truth.to(torch.complex64)) * masks
    print(f"machine: {machine()}")
    print(f"{args.images} MNI152 slices of {args.size} x {args.size}, Seitzer line masks at "
          f"{args.acceleration:g}x (8 central lines), {config}\n")

    start = time.perf_counter()
    batch = dlmri(kspace, masks, config)
    ours_batch = (time.perf_counter() - start) / args.images
    start = time.perf_counter()
    dlmri(kspace[:1], masks[:1], config)
    ours_single = time.perf_counter() - start

    reference = []
    start = time.perf_counter()
    with threadpool_limits(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # OMP's premature-stop notes on flat patches
        for item in range(args.reference_images):
            result = _sklearn_dlmri(kspace[item, 0].numpy().astype(np.complex128),
                                    masks[item, 0].numpy(), config, seed=0)
            reference.append(torch.from_numpy(np.stack([result.real, result.imag])).float())
    theirs = (time.perf_counter() - start) / args.reference_images

    def scores(images: torch.Tensor, count: int) -> tuple[float, float]:
        target = truth[:count]
        values = (psnr(magnitude(images), target, data_range="target_max"),
                  ssim(magnitude(images), target, data_range="target_max"))
        return tuple(float(v.mean()) for v in values)

    n = args.reference_images
    rows = [
        ("zero-filled", None, scores(zero_filled(kspace, masks)[:n], n)),
        ("taskloss dlmri, batch", ours_batch, scores(batch[:n], n)),
        ("taskloss dlmri, 1 image", ours_single, None),
        ("scikit-learn dlmri", theirs, scores(torch.stack(reference), n)),
    ]
    print(f"{'method':26s} {'s/image':>9s} {'vs sklearn':>11s} {'PSNR dB':>8s} {'SSIM':>7s}"
          f"   (PSNR/SSIM: mean of the first {n} images)")
    for name, seconds, quality in rows:
        timing = f"{seconds:9.2f} {theirs / seconds:10.1f}x" if seconds else f"{'':9s} {'':11s}"
        metric = f"{quality[0]:8.2f} {quality[1]:7.4f}" if quality else ""
        print(f"{name:26s} {timing} {metric}")
    per_image = (psnr(magnitude(batch[:n]), truth[:n], data_range="target_max")
                 - psnr(magnitude(torch.stack(reference)), truth[:n], data_range="target_max"))
    print(f"\nPSNR taskloss - scikit-learn per image (dB): {np.round(per_image.numpy(), 3).tolist()}")


if __name__ == "__main__":
    main()
