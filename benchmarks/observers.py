"""Speed of the channelized Hotelling observer (:func:`taskloss.observers.detectability`).

The issue's target: a CHO with 10 Laguerre-Gauss channels on 2,000 ROIs of 64 x 64 (1,000 per class)
in under 1 s on 2 cores. The reference measured in the same run is one pass over the images, the
product ``images @ U`` of the (N, P) pixels with the (P, 10) channels (the CHO's unavoidable cost);
the table shows how the time grows with the ROI size (pixels P) and the image count N.

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/observers.py`` (about 20 s).
"""

import math

import numpy as np

from taskloss.observers import detectability, laguerre_gauss_channels

from common import machine, median_time

CHANNELS = 10
SIGNAL_SD = 3.0


def case(side: int, n_images: int) -> tuple[float, float, float]:
    """(CHO seconds, reference seconds, d') on n_images / 2 ROIs per class of side x side."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:side, :side] - (side - 1) / 2
    signal = 0.3 * np.exp(-(x**2 + y**2) / (2 * SIGNAL_SD**2))
    present = rng.normal(size=(n_images // 2, side, side)) + signal
    absent = rng.normal(size=(n_images // 2, side, side))
    width = SIGNAL_SD * math.sqrt(2 * math.pi)
    result = {}

    def cho() -> None:
        result["snr"] = detectability(present, absent, "cho", channels="laguerre-gauss", channel_width=width,
                                      n_channels=CHANNELS).snr

    basis = laguerre_gauss_channels((side, side), CHANNELS, width).reshape(CHANNELS, -1).T
    both = np.concatenate([present, absent]).reshape(n_images, -1)
    return median_time(cho), median_time(lambda: both @ basis), result["snr"]


def main() -> None:
    print(machine())
    print("| ROI | images | CHO time ms | one pass images @ U ms | ratio | d' |")
    print("|---|---|---|---|---|---|")
    for side, n_images in [(32, 2000), (64, 500), (64, 2000), (64, 8000), (128, 2000)]:
        seconds, reference, snr = case(side, n_images)
        print(f"| {side} x {side} | {n_images} | {1e3 * seconds:.1f} | {1e3 * reference:.1f} | "
              f"{seconds / reference:.1f}x | {snr:.2f} |")


if __name__ == "__main__":
    main()
