"""``taskloss demo``: the main job on built-in data."""

from pathlib import Path
from typing import Annotated

import numpy as np
import torch
import typer
from rich.console import Console
from rich.table import Table

from taskloss.cli.app import app
from taskloss.data.samples import SAMPLES
from taskloss.metrics import hfen, mae, nmse, psnr, ssim


def _degradations(image: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    blur = torch.nn.functional.avg_pool2d(image, 3, stride=1, padding=1, count_include_pad=False)
    return {
        "gaussian noise 0.05": (image + 0.05 * torch.randn(image.shape, generator=generator)),
        "3x3 box blur": blur,
        "shift 1 px": torch.roll(image, shifts=1, dims=-1),
        "contrast x0.8": 0.8 * image + 0.1,
    }


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the results.")] = Path("demo-out"),
) -> None:
    """Score degraded copies of built-in real images with every metric (placeholder for the
    studies)."""
    out.mkdir(parents=True, exist_ok=True)
    table = Table(title="taskloss metrics on built-in images (data_range=1.0)")
    for column in ("image", "degradation", "PSNR dB", "SSIM", "MAE", "NMSE", "HFEN"):
        table.add_column(column)
    rows = []
    for name, load in SAMPLES.items():
        target = torch.from_numpy(load())[None, None]
        for label, pred in _degradations(target, seed=0).items():
            values = [f(pred, target) for f in (mae, nmse, hfen)]
            row = (name, label, psnr(pred, target, data_range=1.0).item(),
                   ssim(pred, target, data_range=1.0).item(), *(v.item() for v in values))
            rows.append(row)
            table.add_row(row[0], row[1], *(f"{v:.4f}" for v in row[2:]))
    Console().print(table)
    np.savetxt(out / "metrics.csv", np.array([r[2:] for r in rows]), delimiter=",",
               header="psnr,ssim,mae,nmse,hfen", comments="")
    print(f"wrote {out / 'metrics.csv'}")
