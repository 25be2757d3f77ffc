"""Edge content of the simulated X-rays: LoG energy of X-ray / MR projection, and real radiographs.

Simulates the mr2xray demo dataset (16 subjects x 8 views, 64 px; ``--subjects`` for fewer) and
prints the Laplacian-of-Gaussian energy ratio X-ray / MR projection (mean over all pairs,
:func:`taskloss.data.edges.log_energy_ratio`) at LoG scales of 1 and 1.5 px, the mean LoG energy of the
X-rays, and the same energy for the computed radiographs that pydicom-data ships (a chest and an
extremity CR, the only radiographs of the installed packages), shrunk to the same size (area) and
min-max normalised like the targets. With ``--png DIR`` it saves a montage of MR / X-ray pairs.
Run: ``OMP_NUM_THREADS=1 python benchmarks/xray_edges.py [--subjects N] [--png DIR]``.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from taskloss.data.edges import log_energy, log_energy_ratio
from taskloss.data.mr2xray import Mr2XrayConfig, normalize_min_max, simulate_mr2xray

from common import machine

REAL_RADIOGRAPHS = ("RG1_UNCR.dcm", "RG3_UNCR.dcm")  # pydicom-data: chest CR, extremity CR


def real_radiographs(size: int) -> dict[str, torch.Tensor]:
    """pydicom-data's uncompressed CR images, bone bright, centre square, area-resized, min-max."""
    try:
        import pydicom
        from pydicom.data import get_testdata_file
    except ImportError:
        return {}
    images = {}
    for name in REAL_RADIOGRAPHS:
        path = get_testdata_file(name)
        if path is None:
            continue
        dataset = pydicom.dcmread(path)
        pixels = dataset.pixel_array.astype(np.float32)
        if dataset.PhotometricInterpretation == "MONOCHROME1":  # high values display dark
            pixels = pixels.max() - pixels
        side = min(pixels.shape)
        top, left = (pixels.shape[0] - side) // 2, (pixels.shape[1] - side) // 2
        square = torch.from_numpy(pixels[top : top + side, left : left + side].copy())[None, None]
        images[f"{name} ({dataset.get('BodyPartExamined', '?')})"] = normalize_min_max(
            F.interpolate(square, size=(size, size), mode="area"))
    return images


def save_montage(folder: Path, inputs: torch.Tensor, targets: torch.Tensor, count: int = 8) -> Path:
    """Rows of MR projections above their X-rays, 4x nearest upscaled, as one PNG."""
    import imageio.v3 as iio

    pick = torch.linspace(0, len(inputs) - 1, count).long()
    rows = [torch.cat(list(images[pick, 0]), dim=1) for images in (inputs, targets)]
    montage = torch.cat(rows, dim=0).repeat_interleave(4, 0).repeat_interleave(4, 1)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "mr2xray_pairs.png"
    iio.imwrite(path, (montage.clamp(0, 1) * 255).round().to(torch.uint8).numpy())
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=16)
    parser.add_argument("--angles", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--png", type=Path, default=None)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    start = time.perf_counter()
    data = simulate_mr2xray(Mr2XrayConfig(subjects=args.subjects, angles=args.angles, size=args.size))
    print(f"simulated {len(data)} pairs ({args.subjects} subjects x {args.angles} views, {args.size} px) "
          f"in {time.perf_counter() - start:.1f} s")
    for sigma in (1.0, 1.5):
        ratio = log_energy_ratio(data.targets, data.inputs, sigma)
        per_pair = log_energy(data.targets, sigma) / log_energy(data.inputs, sigma)
        print(f"LoG sigma {sigma} px: X-ray / MR projection energy ratio {ratio:.3f} (per pair: median "
              f"{per_pair.median():.3f}, min {per_pair.min():.3f}); mean energy X-ray "
              f"{log_energy(data.targets, sigma).mean():.2e}, MR {log_energy(data.inputs, sigma).mean():.2e}")
    for name, image in real_radiographs(args.size).items():
        print(f"real radiograph {name}: LoG energy sigma 1 px {float(log_energy(image, 1.0)[0]):.2e}, "
              f"sigma 1.5 px {float(log_energy(image, 1.5)[0]):.2e}")
    if args.png is not None:
        print(f"montage: {save_montage(args.png, data.inputs, data.targets)}")


if __name__ == "__main__":
    main()
