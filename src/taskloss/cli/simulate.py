"""``taskloss simulate {mr2xray,csmri}``: write a dataset from the built-in head simulator."""

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from taskloss.cli.app import app
from taskloss.data.csmri import CsmriConfig, CsmriDataset, simulate_csmri, write_csmri
from taskloss.data.mr2xray import Mr2XrayConfig, Mr2XrayData, simulate_mr2xray, write_mr2xray
from taskloss.data.splits import SPLITS

simulate_app = typer.Typer(help="Simulate a dataset (no download): MR/X-ray projection pairs or "
                           "undersampled MR slices.", no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")

PREVIEW_FILE = "preview.png"
PREVIEW_ROWS = 4

Out = Annotated[Path, typer.Option("--out", help="Folder to write the dataset into.")]
Subjects = Annotated[int, typer.Option(help="Simulated subjects (split by subject into train/val/test).")]
Size = Annotated[int, typer.Option(help="Image side in pixels.")]
Seed = Annotated[int, typer.Option(help="Seed of the phantoms, noise, masks and split.")]
Anatomy = Annotated[str, typer.Option(help="Brain anatomy: mni152 (real) or ellipsoid (procedural).")]
Weighting = Annotated[str, typer.Option(help="MR contrast: t1, t2 or pd.")]
Preview = Annotated[bool, typer.Option("--preview", help=f"Also write {PREVIEW_FILE}, a grid of samples.")]


def _progress(total: int, what: str) -> tuple[Progress, object]:
    progress = Progress(TextColumn(f"simulating {what}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("subjects"), TimeElapsedColumn())
    return progress, progress.add_task(what, total=total)


@simulate_app.command("mr2xray")
def mr2xray(
    out: Out,
    subjects: Subjects = 12,
    angles: Annotated[int, typer.Option(help="Views per subject, evenly spaced over 180 degrees.")] = 4,
    size: Size = 64,
    seed: Seed = 0,
    anatomy: Anatomy = "mni152",
    beam: Annotated[str, typer.Option(help="cone (a C-arm) or parallel.")] = "cone",
    weighting: Weighting = "t1",
    photons: Annotated[float, typer.Option(help="X-ray photons per pixel; 0 for no Poisson noise.")] = 1e5,
    preview: Preview = False,
) -> None:
    """Paired MR projection -> X-ray projection images: input/, target/, index.csv, config.json."""
    config = Mr2XrayConfig(subjects=subjects, angles=angles, size=size, seed=seed, anatomy=anatomy,
                           beam=beam, weighting=weighting, photons=photons or None)
    progress, task = _progress(subjects, "mr2xray")
    with progress:
        data = simulate_mr2xray(config, progress=lambda done: progress.update(task, completed=done))
    out.mkdir(parents=True, exist_ok=True)
    write_mr2xray(out, data, config)
    print(f"wrote {len(data)} pairs ({_split_counts(data.splits)}) to {out}")
    if preview:
        _preview_mr2xray(data, out / PREVIEW_FILE)
        print(f"wrote {out / PREVIEW_FILE}")


@simulate_app.command("csmri")
def csmri(
    out: Out,
    subjects: Subjects = 12,
    slices: Annotated[int, typer.Option(help="Axial slices per subject.")] = 16,
    size: Size = 96,
    acceleration: Annotated[float, typer.Option(help="Undersampling factor (>= 1).")] = 8.0,
    mask: Annotated[str, typer.Option(help="cartesian-vd, random, equispaced or vd-2d.")] = "cartesian-vd",
    center_lines: Annotated[int | None, typer.Option(help="Central lines of cartesian-vd.")] = None,
    seed: Seed = 0,
    anatomy: Anatomy = "mni152",
    weighting: Weighting = "t1",
    phase: Annotated[bool, typer.Option("--phase", help="Give slices a smooth synthetic phase.")] = False,
    preview: Preview = False,
) -> None:
    """MR slices with lesion labels for compressed sensing: images/, labels/, index.csv, config.json."""
    config = CsmriConfig(subjects=subjects, slices=slices, size=size, acceleration=acceleration, mask=mask,
                         center_lines=center_lines, seed=seed, anatomy=anatomy, weighting=weighting,
                         phase=phase)
    progress, task = _progress(subjects, "csmri")
    with progress:
        data = simulate_csmri(config, progress=lambda done: progress.update(task, completed=done))
    out.mkdir(parents=True, exist_ok=True)
    write_csmri(out, data, config)
    print(f"wrote {len(data)} slices ({_split_counts(data.splits)}) to {out}")
    if preview:
        _preview_csmri(CsmriDataset(data, "val", config), out / PREVIEW_FILE)
        print(f"wrote {out / PREVIEW_FILE}")


def _split_counts(splits: list[str]) -> str:
    return ", ".join(f"{name} {splits.count(name)}" for name in SPLITS)


def _preview_mr2xray(data: Mr2XrayData, path: Path) -> None:
    """Rows of samples from different subjects, columns MR projection | X-ray projection."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    picks = np.linspace(0, len(data) - 1, min(PREVIEW_ROWS * 2, len(data))).round().astype(int)
    rows = (len(picks) + 1) // 2
    figure, axes = plt.subplots(rows, 4, figsize=(8, 2.1 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for k, i in enumerate(picks):
        row, col = divmod(k, 2)
        for offset, (image, name) in enumerate(((data.inputs[i, 0], "MR"), (data.targets[i, 0], "X-ray"))):
            ax = axes[row, 2 * col + offset]
            ax.imshow(image.numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{name} {data.ids[i]}", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _preview_csmri(dataset: CsmriDataset, path: Path) -> None:
    """Rows of validation slices, columns: ground truth, mask, zero-filled magnitude, lesion label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labelled = [i for i in range(len(dataset)) if bool(dataset.data.labels[dataset.indices[i]].any())]
    others = [i for i in range(len(dataset)) if i not in labelled]
    picks = (labelled[: PREVIEW_ROWS // 2] + others)[:PREVIEW_ROWS]
    figure, axes = plt.subplots(len(picks), 4, figsize=(8, 2.1 * len(picks)), squeeze=False)
    for row, index in enumerate(picks):
        item = dataset[index]
        zero_filled = item["input"].square().sum(dim=0).sqrt()
        panels = ((item["magnitude"][0], "ground truth"), (item["mask"][0], "mask"),
                  (zero_filled, "zero-filled"), (item["label"][0].float(), "lesion label"))
        for col, (image, name) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(image.numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{name} {item['id']}" if col == 0 else name, fontsize=7)
            ax.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
