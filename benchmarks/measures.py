"""Every image measure of taskloss against its reference implementation, in the same run: agreement and time.

Rows: SSIM and MS-SSIM against pytorch-msssim and torchmetrics; HaarPSI and VSI against piq 0.8.0's
own code, imported from the unpacked wheel (``--piq DIR``, see benchmarks/piq_wheel.py;
rows are skipped with the reason when it is absent); FID and KID against torchmetrics on the same
feature vectors. Per row: the median CPU time (``time.process_time``, one torch thread by default:
stable on a shared machine, where wall times of other processes' load swing by several times) of the
value and of value + backward (the loss's cost),
the reference's time divided by taskloss's (> 1: taskloss is faster), and the largest absolute
difference of the per-image values in float32 (the timed dtype) and float64.

Images: ``--batch`` grayscale images of ``--size`` px (Shepp-Logan and MNI152 slices) and as many
RGB images (crops of skimage's astronaut, chelsea, coffee), the predictions with Gaussian noise
(sd 0.05) clipped to [0, 1]; data_range 1. Run:

    PYTHONPATH=src .venv/bin/python benchmarks/measures.py --piq /path/to/unpacked-piq [--batch 8 --size 256]
"""

import argparse
import importlib.util
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from skimage import data as skdata
from skimage.transform import resize

from taskloss.data.samples import mni_slice, shepp_logan
from taskloss.metrics import frechet_distance, haarpsi, kernel_inception_distance, ms_ssim, ssim, vsi

from common import machine

Measure = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def median_time(function: Callable[[], object], repeat: int) -> float:
    """Median CPU seconds of ``function()`` over ``repeat`` runs after one warm-up run."""
    function()
    times = []
    for _ in range(repeat):
        start = time.process_time()
        function()
        times.append(time.process_time() - start)
    return statistics.median(times)


def _images(batch: int, size: int, colour: bool, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(0)
    if colour:
        bases = [resize(image / 255.0, (size, size), anti_aliasing=True)
                 for image in (skdata.astronaut(), skdata.chelsea(), skdata.coffee())]
        target = np.stack([bases[i % 3] for i in range(batch)]).transpose(0, 3, 1, 2)
    else:
        bases = [shepp_logan(size)] + [resize(mni_slice(axis=2, index=60 + i), (size, size)) for i in range(7)]
        target = np.stack([bases[i % len(bases)] for i in range(batch)])[:, None]
    pred = np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1)
    return torch.from_numpy(pred).to(dtype), torch.from_numpy(target).to(dtype)


def _value_and_backward(measure: Measure, pred: torch.Tensor, target: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        x = pred.detach().requires_grad_()
        measure(x, target).sum().backward()
    return run


def _image_row(name: str, reference: str, ours: Measure, theirs: Measure, colour: bool, args: argparse.Namespace,
               backward: bool = True) -> str:
    pred, target = _images(args.batch, args.size, colour, torch.float32)
    times = [median_time(lambda f=f: f(pred, target), repeat=args.repeat) for f in (ours, theirs)]
    cells = [f"{times[0] * 1e3:.1f}", f"{times[1] * 1e3:.1f}", f"{times[1] / times[0]:.2f}"]
    if backward:
        steps = [median_time(_value_and_backward(f, pred, target), repeat=args.repeat) for f in (ours, theirs)]
        cells += [f"{steps[0] * 1e3:.1f}", f"{steps[1] * 1e3:.1f}", f"{steps[1] / steps[0]:.2f}"]
    else:
        cells += ["—", "—", "—"]
    diff32 = float((ours(pred, target).double() - theirs(pred, target).double()).abs().max())
    pred64, target64 = _images(args.batch, args.size, colour, torch.float64)
    diff64 = float((ours(pred64, target64) - theirs(pred64, target64)).abs().max())
    kind = "RGB" if colour else "gray"
    return f"| {name} | {kind} | {reference} | " + " | ".join(cells) + f" | {diff32:.1e} | {diff64:.1e} |"


def _pixel_rows(args: argparse.Namespace) -> list[str]:
    rows = []
    if importlib.util.find_spec("pytorch_msssim"):
        import pytorch_msssim

        rows.append(_image_row("SSIM", "pytorch-msssim", lambda x, y: ssim(x, y, data_range=1.0),
                               lambda x, y: pytorch_msssim.ssim(x, y, data_range=1.0, size_average=False),
                               False, args))
        rows.append(_image_row("MS-SSIM", "pytorch-msssim", lambda x, y: ms_ssim(x, y, data_range=1.0),
                               lambda x, y: pytorch_msssim.ms_ssim(x, y, data_range=1.0, size_average=False),
                               False, args))
    else:
        print("pytorch-msssim is not installed: its rows are skipped (pip install taskloss[test])")
    if importlib.util.find_spec("torchmetrics"):
        from torchmetrics.functional.image import (
            multiscale_structural_similarity_index_measure as tm_ms_ssim,
        )

        rows.append(_image_row("MS-SSIM (style torchmetrics)", "torchmetrics",
                               lambda x, y: ms_ssim(x, y, data_range=1.0, style="torchmetrics"),
                               lambda x, y: tm_ms_ssim(x, y, data_range=1.0, reduction="none"), False, args))
    else:
        print("torchmetrics is not installed: its rows are skipped (pip install taskloss[test])")
    return rows


def _piq_rows(args: argparse.Namespace) -> list[str]:
    if args.piq is None:
        print("no --piq folder: the HaarPSI and VSI rows are skipped")
        return []
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from piq_wheel import load_piq

    piq = load_piq(args.piq)
    warnings.filterwarnings("ignore", message="The original VSI supports only RGB images")
    rows = []
    for colour in (False, True):
        rows.append(_image_row("HaarPSI", "piq 0.8.0", lambda x, y: haarpsi(x, y, data_range=1.0),
                               lambda x, y: piq.haarpsi(x, y, data_range=1.0, reduction="none"), colour, args))
    for colour in (False, True):
        rows.append(_image_row("VSI", "piq 0.8.0", lambda x, y: vsi(x, y, data_range=1.0),
                               lambda x, y: piq.vsi(x, y, data_range=1.0, reduction="none"), colour, args))
    return rows


class _Identity(torch.nn.Module):
    """torchmetrics' feature-extractor slot filled by the identity: the 'images' are the features."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _distribution_rows(args: argparse.Namespace) -> list[str]:
    if not importlib.util.find_spec("torchmetrics"):
        return []
    import torchmetrics
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    generator = torch.Generator().manual_seed(0)
    mixing = torch.randn(args.features, args.features, generator=generator, dtype=torch.float64)
    a = torch.randn(args.rows, args.features, generator=generator, dtype=torch.float64) @ mixing
    b = (torch.randn(args.rows, args.features, generator=generator, dtype=torch.float64) ** 3) @ mixing + 0.5
    fid = FrechetInceptionDistance(feature=_Identity(args.features))
    kid = KernelInceptionDistance(feature=_Identity(args.features), subsets=50, subset_size=args.rows // 2)

    def torchmetrics_value(metric: torch.nn.Module) -> Callable[[], float]:
        def run() -> float:
            metric.reset()
            metric.update(a, real=True)
            metric.update(b, real=False)
            torch.manual_seed(5)
            result = metric.compute()
            return float(result[0] if isinstance(result, tuple) else result)
        return run

    def ours_kid() -> float:
        return float(kernel_inception_distance(a, b, subsets=50, subset_size=args.rows // 2,
                                               generator=torch.Generator().manual_seed(5)).mean)

    rows = []
    for name, ours, theirs in (("FID", lambda: float(frechet_distance(a, b)), torchmetrics_value(fid)),
                               ("KID", ours_kid, torchmetrics_value(kid))):
        times = [median_time(f, repeat=args.repeat) for f in (ours, theirs)]
        diff = abs(ours() - theirs())
        rows.append(f"| {name} | {args.rows} + {args.rows} x {args.features} features | "
                    f"torchmetrics {torchmetrics.__version__} | "
                    f"{times[0] * 1e3:.1f} | {times[1] * 1e3:.1f} | {times[1] / times[0]:.2f} | — | — | — | — | "
                    f"{diff:.1e} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--piq", type=Path, default=None, help="folder holding the unpacked piq 0.8.0 wheel's piq/")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU time is summed over them)")
    parser.add_argument("--rows", type=int, default=500, help="feature vectors per set for FID and KID")
    parser.add_argument("--features", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {machine()}")
    print(f"{args.batch} images of {args.size} x {args.size} per row (gray: 1 channel, RGB: 3), float32 timed, "
          f"data_range 1.0, median CPU time of {args.repeat}\n")
    rows = _pixel_rows(args) + _piq_rows(args) + _distribution_rows(args)
    print("| measure | input | reference | taskloss CPU ms | reference CPU ms | reference / taskloss | "
          "taskloss value + backward ms | reference value + backward ms | reference / taskloss | max \\|Δ\\| float32 | "
          "max \\|Δ\\| float64 |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
