"""``taskloss simulate {mr2xray,csmri}``: write a dataset from the built-in head simulator."""

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from taskloss.cli.app import app, check_output_folder, finite
from taskloss.config import validate_config
from taskloss.data.csmri import CsmriConfig, CsmriDataset, simulate_csmri, write_csmri
from taskloss.data.mr2xray import Mr2XrayConfig, Mr2XrayData, simulate_mr2xray, write_mr2xray
from taskloss.data.splits import SPLITS
from taskloss.errors import InputError
from taskloss.locks import lock_path, locked_folder
from taskloss.training.checkpoint import remove_stale_temporaries

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
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace a dataset already in --out, whole "
                                         "(built in a temporary folder, then swapped in).")]

DATASET_MARKERS = ("config.json", "index.csv")
"""Files that make a folder a dataset written by ``taskloss simulate``."""


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
    photons: Annotated[float, typer.Option(help="X-ray photons per pixel; 0 for no Poisson noise.",
                                           callback=finite, min=0)] = 1e5,
    preview: Preview = False,
    overwrite: Overwrite = False,
) -> None:
    """Paired MR projection -> X-ray projection images: input/, target/, index.csv, config.json."""
    config = validate_config(Mr2XrayConfig, {
        "subjects": subjects, "angles": angles, "size": size, "seed": seed, "anatomy": anatomy, "beam": beam,
        "weighting": weighting, "photons": photons or None}, "taskloss simulate mr2xray")
    check_out(out, overwrite)
    # Per image: the MR and X-ray projections plus the simulator's working copies, float32.
    check_memory(subjects * angles * size * size * 4 * 8, "mr2xray")

    def write(folder: Path) -> None:
        write_mr2xray(folder, data, config)
        if preview:
            _preview_mr2xray(data, folder / PREVIEW_FILE)

    with locked_folder(out):
        check_out(out, overwrite)  # again under the lock: another process may have written it meanwhile
        progress, task = _progress(subjects, "mr2xray")
        with progress:
            data = simulate_mr2xray(config, progress=lambda done: progress.update(task, completed=done))
        write_dataset(out, write)
    print(f"wrote {len(data)} pairs ({_split_counts(data.splits)}) to {out}")
    if preview:
        print(f"wrote {out / PREVIEW_FILE}")


@simulate_app.command("csmri")
def csmri(
    out: Out,
    subjects: Subjects = 12,
    slices: Annotated[int, typer.Option(help="Axial slices per subject.")] = 16,
    size: Size = 96,
    acceleration: Annotated[float, typer.Option(help="Undersampling factor (>= 1).", callback=finite)] = (
        CsmriConfig.model_fields["acceleration"].default),
    mask: Annotated[str, typer.Option(help="cartesian-vd, random, equispaced or vd-2d.")] = (
        CsmriConfig.model_fields["mask"].default),
    center_fraction: Annotated[float | None, typer.Option(
        help="Share of central k-space always sampled, at most 1 / acceleration (default: the mask's).",
        callback=finite)] = None,
    seed: Seed = 0,
    anatomy: Anatomy = "mni152",
    weighting: Weighting = "t1",
    phase: Annotated[bool, typer.Option("--phase", help="Give slices a smooth synthetic phase.")] = False,
    preview: Preview = False,
    overwrite: Overwrite = False,
) -> None:
    """MR slices with lesion labels for compressed sensing: images/, labels/, index.csv, config.json."""
    # Memory first: the config builds a mask of size x size to check the mask settings.
    check_memory(subjects * slices * size * size * 8 * 8, "csmri")
    config = validate_config(CsmriConfig, {
        "subjects": subjects, "slices": slices, "size": size, "acceleration": acceleration, "mask": mask,
        "center_fraction": center_fraction, "seed": seed, "anatomy": anatomy, "weighting": weighting, "phase": phase},
        "taskloss simulate csmri")
    check_out(out, overwrite)

    def write(folder: Path) -> None:
        write_csmri(folder, data, config)
        if preview:
            _preview_csmri(CsmriDataset(data, "val", config), folder / PREVIEW_FILE)

    with locked_folder(out):
        check_out(out, overwrite)  # again under the lock: another process may have written it meanwhile
        progress, task = _progress(subjects, "csmri")
        with progress:
            data = simulate_csmri(config, progress=lambda done: progress.update(task, completed=done))
        write_dataset(out, write)
    print(f"wrote {len(data)} slices ({_split_counts(data.splits)}) to {out}")
    if preview:
        print(f"wrote {out / PREVIEW_FILE}")


def check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that would mix two datasets or destroy files that are not a dataset.

    Raises:
        InputError: ``out`` is a file; a folder holding a dataset (without ``overwrite``); or a
            non-empty folder holding something else (a dataset is never merged into it).
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file, not a folder; choose a new folder for the dataset")
    check_output_folder(out, "--out")
    if not out.is_dir() or not any(p for p in out.iterdir() if not p.name.startswith(".")):
        return
    if not any((out / name).is_file() for name in DATASET_MARKERS):
        raise InputError(f"--out {out} is a folder that holds other files (not a taskloss dataset); "
                         "choose a new or empty folder")
    if not overwrite:
        raise InputError(f"--out {out} already holds a dataset; choose a new folder, or pass --overwrite "
                         "to replace it whole")


def check_memory(nbytes: int, what: str) -> None:
    """Refuse, before simulating, a dataset whose arrays alone would not fit in this machine's memory."""
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if nbytes > available:
        raise InputError(f"the {what} dataset asked for needs about {nbytes / 2**30:.3g} GiB, more than this "
                         f"machine's {available / 2**30:.3g} GiB of memory; choose a smaller --size or fewer "
                         "--subjects")


def write_dataset(out: Path, write: Callable[[Path], None]) -> None:
    """Write a dataset into a temporary sibling folder of ``out``, then swap it in by renaming.

    A failed or killed write leaves ``out`` as it was (its temporary, ``.<name>.tmp-<pid>``, is
    removed by the next call); an existing ``out`` (checked by :func:`check_out`) is replaced whole.
    The lock file of ``out`` (:mod:`taskloss.locks`) is hard-linked into the temporary first, so the
    folder swapped in is locked by the same lock.
    """
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out.parent)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.mkdir()
    try:
        if lock_path(out).is_file():
            os.link(lock_path(out), lock_path(tmp))
        write(tmp)
        if out.is_dir() and any(out.iterdir()):
            old = out.with_name(f".{out.name}.old.tmp-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out)  # a missing or empty folder
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
