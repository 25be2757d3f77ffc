"""Throughput of the data layer against one UNet training step at the same size.

Prints projections/s (mr2xray simulation), slices/s (csmri simulation), items/s (csmri loading with
on-the-fly masks and FFTs), and for each the time to make one batch of 8 divided by the time of one
UNet training step (forward, L1 loss, backward, Adam) on a batch of 8 at the same size, measured in
the same run: a ratio well below 1 means data is not the bottleneck. Run:
``OMP_NUM_THREADS=2 python benchmarks/data.py``.
"""

import time

import torch

from taskloss.data.csmri import CsmriConfig, CsmriDataset, simulate_csmri
from taskloss.data.mr2xray import Mr2XrayConfig, simulate_subject
from taskloss.data.phantoms import mni_anatomy
from taskloss.networks.factory import create_network

from common import machine, median_time

BATCH = 8
UNET_WIDTHS = (32, 64, 128, 256)  # a 4-level, 32-channel UNet: a typical image-to-image network at these sizes


def unet_step_seconds(channels: int, size: int) -> float:
    """Median time of one training step of the UNet on a batch of ``BATCH`` images."""
    network = create_network("unet", in_channels=channels, out_channels=channels, widths=UNET_WIDTHS)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-4)
    images = torch.rand(BATCH, channels, size, size)

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.l1_loss(network(images), images).backward()
        optimizer.step()

    return median_time(step, repeat=3)


def main() -> None:
    print(f"machine: {machine()}")
    start = time.perf_counter()
    mni_anatomy(4), mni_anatomy(2)
    print(f"MNI152 anatomy (load + labels, 4 mm and 2 mm, cached after): {time.perf_counter() - start:.2f} s")
    for size in (64, 128):
        config = Mr2XrayConfig(size=size, angles=4)
        seconds = median_time(lambda config=config: simulate_subject(config, 1), repeat=3)
        per_batch = seconds / config.angles * BATCH
        step = unet_step_seconds(1, size)
        print(f"mr2xray {size} px: {config.angles / seconds:.1f} projection pairs/s; batch of {BATCH}: "
              f"{per_batch * 1e3:.0f} ms; UNet step {step * 1e3:.0f} ms; ratio {per_batch / step:.2f}")
    config = CsmriConfig(size=96, subjects=3, slices=16)
    seconds = median_time(lambda: simulate_csmri(config), repeat=1, warmup=0)
    slices = config.subjects * config.slices
    step = unet_step_seconds(2, config.size)
    per_batch = seconds / slices * BATCH
    print(f"csmri 96 px simulation: {slices / seconds:.1f} slices/s; batch of {BATCH}: "
          f"{per_batch * 1e3:.0f} ms; UNet step {step * 1e3:.0f} ms; ratio {per_batch / step:.2f}")
    dataset = CsmriDataset(simulate_csmri(config), "train", config)
    loader = torch.utils.data.DataLoader(dataset, batch_size=BATCH, num_workers=0)
    seconds = median_time(lambda: [None for _ in loader], repeat=3)
    per_batch = seconds / len(loader)
    print(f"csmri 96 px loading (mask + FFTs per item, 0 workers): {len(dataset) / seconds:.0f} items/s; "
          f"batch of {BATCH}: {per_batch * 1e3:.1f} ms; ratio to the UNet step {per_batch / step:.3f}")


if __name__ == "__main__":
    main()
