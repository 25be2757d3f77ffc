"""Batched SSIM and PSNR against scikit-image's per-image loop (and torchmetrics, MONAI if present).

Prints, for a batch of 64 images of 256 x 256 (Shepp-Logan and MNI152 slices with noise), each
implementation's median time, its ratio to skimage's loop, and its largest absolute difference to
skimage. Run: ``.venv/bin/python benchmarks/metrics.py [--batch 64] [--size 256]``.
"""

import argparse
import importlib.util

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import resize

from taskloss.data.samples import mni_slice, shepp_logan
from taskloss.metrics import psnr, ssim

from common import machine, median_time

GAUSSIAN = {"gaussian_weights": True, "sigma": 1.5, "use_sample_covariance": False, "data_range": 1.0}


def _images(batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    bases = [shepp_logan(size)] + [resize(mni_slice(axis=2, index=60 + i), (size, size)) for i in range(7)]
    target = np.stack([bases[i % len(bases)] for i in range(batch)]).astype(np.float32)
    pred = np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1).astype(np.float32)
    return torch.from_numpy(pred)[:, None], torch.from_numpy(target)[:, None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    pred, target = _images(args.batch, args.size)
    p_np, t_np = pred[:, 0].numpy(), target[:, 0].numpy()
    print(f"machine: {machine()}")
    print(f"{args.batch} images of {args.size} x {args.size}, float32, data_range 1.0\n")

    def skimage_ssim() -> np.ndarray:
        return np.array([structural_similarity(t, p, **GAUSSIAN) for t, p in zip(t_np, p_np, strict=True)])

    def skimage_psnr() -> np.ndarray:
        return np.array([peak_signal_noise_ratio(t, p, data_range=1.0)
                         for t, p in zip(t_np, p_np, strict=True)])

    sk_ssim, sk_psnr = skimage_ssim(), skimage_psnr()
    rows = [
        ("ssim", "skimage loop", skimage_ssim, sk_ssim, sk_ssim),
        ("ssim", "taskloss batched", lambda: ssim(pred, target, data_range=1.0), None, sk_ssim),
        ("psnr", "skimage loop", skimage_psnr, sk_psnr, sk_psnr),
        ("psnr", "taskloss batched", lambda: psnr(pred, target, data_range=1.0), None, sk_psnr),
    ]
    if importlib.util.find_spec("torchmetrics"):
        from torchmetrics.functional.image import (
            peak_signal_noise_ratio as tm_psnr,
        )
        from torchmetrics.functional.image import (
            structural_similarity_index_measure as tm_ssim,
        )

        rows.append(("ssim", "torchmetrics", lambda: tm_ssim(pred, target, data_range=1.0, reduction="none"),
                     None, sk_ssim))
        rows.append(("psnr", "torchmetrics", lambda: tm_psnr(pred, target, data_range=1.0, reduction="none",
                                                             dim=(1, 2, 3)), None, sk_psnr))
    if importlib.util.find_spec("monai"):
        from monai.metrics import PSNRMetric, SSIMMetric

        monai_ssim = SSIMMetric(spatial_dims=2, data_range=1.0, win_size=11, kernel_sigma=1.5)
        monai_psnr = PSNRMetric(max_val=1.0)
        rows.append(("ssim", "monai", lambda: monai_ssim(pred, target), None, sk_ssim))
        rows.append(("psnr", "monai", lambda: monai_psnr(pred, target), None, sk_psnr))

    baseline: dict[str, float] = {}
    print(f"{'metric':6} {'implementation':18} {'time ms':>9} {'skimage/this':>13} "
          f"{'max |diff| to skimage':>22}")
    for metric, name, run, values, reference in rows:
        seconds = median_time(run, repeat=5)
        baseline.setdefault(metric, seconds)
        if values is None:
            values = np.asarray(torch.as_tensor(run()).reshape(-1), dtype=np.float64)
        diff = float(np.abs(values - reference).max())
        print(f"{metric:6} {name:18} {seconds * 1e3:9.1f} {baseline[metric] / seconds:12.2f}x {diff:22.2e}")


if __name__ == "__main__":
    main()
