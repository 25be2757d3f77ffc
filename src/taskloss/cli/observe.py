"""``taskloss observe``: model observers on two folders of signal-present and signal-absent images or ROIs.

Every file of each folder that :func:`taskloss.data.io.read_image` reads (NPY, PNG, TIFF, DICOM,
NIfTI) is one image (H, W) or, if 3-D, a stack of them along its first axis. Each observer asked
for is scored with :func:`taskloss.observers.detectability` (signal known exactly, 2-fold
cross-validation; docs/observers.md); only when every observer has its result are
``detectability.csv`` and ``roc.png`` written.
"""

import csv
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from taskloss.cli.app import app, finite, output_folder
from taskloss.data import io
from taskloss.errors import InputError
from taskloss.observers import CHANNEL_FAMILIES, OBSERVERS, Detectability, detectability

CSV_FILE = "detectability.csv"
ROC_FILE = "roc.png"
COLUMNS = ("observer", "channels", "n_channels", "auc", "auc_ci_low", "auc_ci_high", "dprime", "dprime_ci_low",
           "dprime_ci_high", "confidence", "n_present", "n_absent")


def read_folder(folder: Path) -> np.ndarray:
    """The images of a folder, sorted by file name, as one stack (N, H, W) float64.

    Raises:
        InputError: a folder with no image files, or images of different sizes (the file named).
        DataError: a file that cannot be read, or holds NaN or infinite values (the file named).
    """
    files = sorted(p for p in folder.iterdir() if io.is_image_entry(p) and p.is_file())
    if not files:
        raise InputError(f"{folder} holds no image files ({', '.join(io.IMAGE_SUFFIXES)}); put one ROI (H, W) or "
                         "a stack of ROIs (N, H, W) per file there")
    stacks, first = [], None
    for path in files:
        array = io.read_image(path).array
        if np.iscomplexobj(array):
            raise InputError(f"{path} holds complex values; save magnitudes (np.abs) for the observer")
        stack = array[None] if array.ndim == 2 else array
        if first is None:
            first = (path, stack.shape[1:])
        elif stack.shape[1:] != first[1]:
            raise InputError(f"{path} is {stack.shape[1]} x {stack.shape[2]} but {first[0]} is {first[1][0]} x "
                             f"{first[1][1]}; crop every image to the same ROI size, centred on the signal")
        stacks.append(stack.astype(np.float64))
    images = np.concatenate(stacks)
    if not np.ptp(images, axis=0).any():
        raise InputError(f"{folder}: all {len(images)} images are identical (a constant image set); the observer "
                         "needs one independent noise realisation per image")
    return images


def _check_sizes(present: np.ndarray, absent: np.ndarray, present_dir: Path, absent_dir: Path) -> None:
    if present.shape[1:] != absent.shape[1:]:
        raise InputError(f"the images of {present_dir} are {present.shape[1]} x {present.shape[2]} but those of "
                         f"{absent_dir} are {absent.shape[1]} x {absent.shape[2]}; crop both to the same ROI size")


def _rows(present: np.ndarray, absent: np.ndarray, observers: list[str], families: list[str],
          options: dict, where: str) -> list[Detectability]:
    """Every observer's result (one per channel family for the CHO); an observer's refusal names the folders."""
    results = []
    for observer in observers:
        for family in families if observer == "cho" else [None]:
            kwargs = dict(options)
            if observer == "cho":
                kwargs["channels"] = family
                if family != "laguerre-gauss":
                    kwargs.pop("channel_width", None)
            else:
                kwargs.pop("channel_width", None)
                kwargs.pop("n_channels", None)
            try:
                results.append(detectability(present, absent, observer, **kwargs))
            except InputError as error:
                raise InputError(f"{where}: {error}") from None
    return results


def write_csv(path: Path, results: list[Detectability]) -> None:
    """One row per observer, the columns of :data:`COLUMNS`."""
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(COLUMNS)
        for r in results:
            writer.writerow([r.observer, r.channels or "", r.n_channels, f"{r.auc:.6g}", f"{r.auc_ci[0]:.6g}",
                             f"{r.auc_ci[1]:.6g}", f"{r.snr:.6g}", f"{r.snr_ci[0]:.6g}", f"{r.snr_ci[1]:.6g}",
                             r.confidence, r.n_present, r.n_absent])


def _label(result: Detectability) -> str:
    name = result.observer if result.channels is None else f"{result.observer} ({result.channels})"
    return (f"{name}: AUC {result.auc:.3f} [{result.auc_ci[0]:.3f}, {result.auc_ci[1]:.3f}], "
            f"d' {result.snr:.2f}")


def roc_figure(path: Path, results: list[Detectability], title: str) -> None:
    """The empirical ROC curve of every observer, with the chance diagonal, as a PNG."""
    from matplotlib.figure import Figure  # the object API: no pyplot state, no GUI backend

    figure = Figure(figsize=(5.2, 5.0))
    axis = figure.subplots()
    axis.plot([0, 1], [0, 1], color="0.6", linestyle="--", linewidth=1, label="chance (AUC 0.5)")
    for result in results:
        fpr, tpr = result.roc()
        axis.plot(fpr, tpr, linewidth=1.5, label=_label(result))  # corners of the empirical curve; ties diagonal
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_aspect("equal")
    axis.set_xlabel("false-positive fraction (signal-absent)")
    axis.set_ylabel("true-positive fraction (signal-present)")
    axis.set_title(title, fontsize=9)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=150)


def _table(results: list[Detectability]) -> Table:
    table = Table(title="detectability (2-fold cross-validated scores)")
    for column in ("observer", "channels", "AUC", "AUC interval", "d'", "d' interval", "present", "absent"):
        table.add_column(column)
    for r in results:
        table.add_row(r.observer, r.channels or "-", f"{r.auc:.3f}", f"[{r.auc_ci[0]:.3f}, {r.auc_ci[1]:.3f}]",
                      f"{r.snr:.3f}", f"[{r.snr_ci[0]:.3f}, {r.snr_ci[1]:.3f}]", str(r.n_present), str(r.n_absent))
    return table


@app.command("observe")
def observe_command(
    present_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, readable=True,
                                                help="Folder of signal-present images or ROIs.")],
    absent_dir: Annotated[Path, typer.Argument(exists=True, file_okay=False, readable=True,
                                               help="Folder of signal-absent images or ROIs, of the same size.")],
    out: Annotated[Path, typer.Option(help=f"Folder for {CSV_FILE} and {ROC_FILE}.")],
    observer: Annotated[list[str] | None, typer.Option(
        help=f"An observer ({', '.join(OBSERVERS)}; repeat). Default: cho and npw.")] = None,
    channels: Annotated[list[str] | None, typer.Option(
        help=f"The CHO's channels ({', '.join(CHANNEL_FAMILIES)}; repeat for one row each). Default: "
             "laguerre-gauss.")] = None,
    channel_width: Annotated[float | None, typer.Option(
        min=0.0, callback=finite, help="Laguerre-Gauss width in pixels (needed with those channels): about 2/3 "
                                       "of a disc's radius, 2.5 x a Gaussian signal's standard deviation.")] = None,
    n_channels: Annotated[int | None, typer.Option(
        min=1, help="Channels of laguerre-gauss (default 5) or dog (default 10).")] = None,
    confidence: Annotated[float, typer.Option(min=0.0, max=1.0, callback=finite,
                                              help="Coverage of the intervals.")] = 0.95,
    seed: Annotated[int, typer.Option(help="Seed of the 2-fold split.")] = 0,
) -> None:
    """Score signal-present against signal-absent images with model observers (AUC, d', intervals)."""
    observers = list(observer or ["cho", "npw"])
    families = list(channels or ["laguerre-gauss"])
    for name in observers:
        if name not in OBSERVERS:
            raise InputError(f"--observer {name}: unknown; use one of {', '.join(OBSERVERS)}")
    for family in families:
        if family not in CHANNEL_FAMILIES:
            raise InputError(f"--channels {family}: unknown; use one of {', '.join(CHANNEL_FAMILIES)}")
    if "cho" in observers and "laguerre-gauss" in families and channel_width is None:
        raise InputError("--observer cho with --channels laguerre-gauss needs --channel-width (pixels): about 2/3 "
                         "of a disc signal's radius, or 2.5 x a Gaussian signal's standard deviation")
    present, absent = read_folder(present_dir), read_folder(absent_dir)
    _check_sizes(present, absent, present_dir, absent_dir)
    options = {"channel_width": channel_width, "n_channels": n_channels, "confidence": confidence, "seed": seed}
    results = _rows(present, absent, observers, families, options, f"{present_dir} vs {absent_dir}")
    with output_folder(out):
        write_csv(out / CSV_FILE, results)
        roc_figure(out / ROC_FILE, results, f"{present_dir.name} vs {absent_dir.name}: {len(present)} present, "
                                            f"{len(absent)} absent ROIs of {present.shape[1]} x {present.shape[2]}")
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(_table(results))
    print(f"written: {out / CSV_FILE}, {out / ROC_FILE}")
