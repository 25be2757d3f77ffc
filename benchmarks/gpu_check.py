"""The GPU check: one prepared script for a CUDA machine, printing one table.

Steps (each a row of the table):

1. ``tests``: the CUDA-only tests (``pytest -m cuda``), passed / failed / skipped.
2. ``perceptual``: one perceptual-loss training step (forward and backward, VGG-19 to conv5_2,
   Chen & Koltun's layers, L1, batch 8) at 256 px, in fp32 (cuDNN's default TF32 convolutions)
   and under bf16 autocast: images per second, and the fraction of the GPU's peak, where the peak
   is a dense matrix product of the same precision (8192^3, TF32 or bf16) measured in the same
   run and the step's FLOPs are counted by ``torch.utils.flop_counter``. Weights are random
   (seeded): the arithmetic, and so the time, is the same as with ImageNet weights.
3. ``data`` and ``epoch``: every trained run of both studies' ``full`` presets (networks, image
   size, batch, optimiser, precision ``auto`` = bf16-mixed) trained through the studies' own
   ``train_run`` for a few epochs on a few simulated subjects at the full image size (4 subjects, 2
   of them training subjects, x 16 views or slices, 3 epochs by default): the simulation time, then
   per run the mean seconds per step (the first, warm-up step included), peak GPU memory, and the
   time of one full-preset epoch estimated as seconds per step times the full preset's steps per
   epoch (the full data sets take far longer to simulate than one device call may run: about 4
   minutes per mr2xray subject at 256 px on 2 loaded CPU cores).
4. ``ddp``: one mr2xray full-preset run for one epoch over all visible GPUs (Fabric DDP, one
   process per GPU), against the same run on one GPU; skipped when one GPU is visible.

``--dry-run`` runs every step on a tiny size and the ``demo`` presets on the CPU (DDP with two CPU
processes), the same code path; the test suite runs it so the script cannot rot between GPU
loans.

Run: ``python benchmarks/gpu_check.py [--dry-run] [--out DIR] [--skip tests,ddp]``.
"""

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from taskloss.data.splits import split_subjects
from taskloss.features import VGG19Features
from taskloss.losses import CRN_LAYERS, PerceptualLoss
from taskloss.studies import csmri, mr2xray
from taskloss.studies.common import given, train_run
from taskloss.studies.graph import RunKind, graph_order
from taskloss.training import make_fabric

from common import machine, median_time

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("tests", "perceptual", "epoch", "ddp")
PEAK_SIZE = 8192  # side of the square matrix product that measures the GPU's peak rate
# 4 subjects split into 2 training, 1 validation and 1 test subject (split_subjects): the fewest with
# which the scorer and the loss's segmentation network train on separate halves (train_subjects).
SUBJECTS = 4
TINY = {"size": 64, "subjects": SUBJECTS, "views": 2}  # --dry-run data (64 px: DAGAN's discriminator needs it)


@dataclass
class Row:
    """One line of the table: the step, what was measured, and the value (or why it was skipped)."""

    step: str
    item: str
    value: str


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


# --- 1. CUDA-only tests -----------------------------------------------------------------------

def run_cuda_tests() -> list[Row]:
    """``pytest -m cuda`` in a child process; the counts from its summary line."""
    command = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
               "--continue-on-collection-errors", "tests"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr.strip()[-200:]
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|error)", summary)}
    value = ", ".join(f"{counts.get(k, 0)} {k}" for k in ("passed", "failed", "skipped"))
    if counts.get("error"):  # e.g. test modules whose packages (flask, playwright) the machine lacks
        value += f"; {counts['error']} test modules could not be collected"
    return [Row("tests", f"pytest -m cuda (exit {done.returncode})", value)]


# --- 2. Perceptual loss step ------------------------------------------------------------------

def peak_flops(dtype: torch.dtype, device: torch.device, size: int, repeat: int) -> float:
    """FLOP/s of a dense ``size``^3 matrix product in ``dtype`` (TF32 allowed for float32)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    allow = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    try:
        seconds = median_time(lambda: a @ b, repeat=repeat, warmup=1)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = allow
    return 2 * size**3 / seconds


def perceptual_step(size: int, batch: int, device: torch.device, bf16: bool
                    ) -> tuple[Callable[[], None], float]:
    """One training step of the perceptual loss and its FLOP count."""
    torch.manual_seed(0)
    loss = PerceptualLoss(layers=CRN_LAYERS, network=VGG19Features(weights="random")).to(device)
    target = torch.rand(batch, 1, size, size, device=device)
    pred = (target + 0.05 * torch.randn_like(target)).clamp(0, 1).requires_grad_(True)

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            value = loss(pred, target)
        value.backward()
        pred.grad = None

    with FlopCounterMode(display=False) as counter:
        step()
    return step, float(counter.get_total_flops())


def measure_perceptual(size: int, batch: int, device: torch.device, peak_size: int, repeat: int) -> list[Row]:
    """Images per second and fraction of the measured peak, fp32 and bf16 autocast (median of ``repeat``)."""
    rows = []
    for bf16 in (False, True):
        name = "bf16 autocast" if bf16 else "fp32 (TF32 conv)"
        step, flops = perceptual_step(size, batch, device, bf16)
        seconds = median_time(step, repeat=repeat, warmup=1)
        peak = peak_flops(torch.bfloat16 if bf16 else torch.float32, device, peak_size, repeat)
        rows.append(Row("perceptual", f"{size} px, batch {batch}, {name}",
                        f"{batch / seconds:.1f} img/s, {seconds * 1e3:.1f} ms/step, "
                        f"{flops / seconds / 1e12:.1f} TFLOP/s = {flops / seconds / peak:.1%} of the "
                        f"measured {peak / 1e12:.0f} TFLOP/s matrix peak"))
    return rows


# --- 3. One epoch of every full-preset run ----------------------------------------------------

def _gib(value: float) -> str:
    return "n/a (CPU)" if math.isnan(value) else f"{value:.2f} GiB"


@contextmanager
def peak_memory() -> Iterator[dict[str, float]]:
    """Peak GPU memory (GiB) allocated inside the block; NaN on the CPU."""
    result = {"gib": math.nan}
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    yield result
    if torch.cuda.is_available():
        result["gib"] = torch.cuda.max_memory_allocated() / 2**30


PER_SUBJECT = ("angles", "slices")  # the data key that counts a subject's items (mr2xray, csmri)


def items_per_subject(data: dict[str, Any]) -> int:
    """Training items one subject gives: its views (mr2xray) or slices (csmri)."""
    return next(int(data[key]) for key in PER_SUBJECT if key in data)


def train_subjects(subjects: int) -> int:
    """Subjects the seeded split puts into training."""
    return sum(name == "train" for name in split_subjects(range(subjects), 0).values())


def shrink(data: dict[str, Any], subjects: int, views: int, size: int | None) -> dict[str, Any]:
    """The data settings with fewer subjects and views (or slices), and for --dry-run a tiny size."""
    shrunk = {**data, "subjects": subjects, **{key: views for key in PER_SUBJECT if key in data}}
    return shrunk if size is None else {**shrunk, "size": size}


def _with_epochs(run: Any, epochs: int) -> Any:
    return run.model_copy(update={"training": run.training.model_copy(update={"epochs": epochs})})


def trained_runs(study: str, preset: str, data: dict[str, Any], epochs: int, out: Path
                 ) -> list[tuple[str, Any, Path, Callable[[Any, Path], Any]]]:
    """Every trained run of a study's preset in the order its run graph trains them (``--jobs 1``):
    (name, run configuration, run folder, the function that trains it).

    mr2xray trains its two bone-segmentation networks (the task loss's and the scorer) first.
    """
    settings = {"epochs": epochs, "progress": False}
    if study == "csmri":
        graph = csmri.csmri_graph(csmri.csmri_preset_runs(csmri.CSMRI_PRESETS[preset], data, settings), out)
    else:
        graph = mr2xray.mr2xray_graph(*mr2xray.mr2xray_runs(mr2xray.MR2XRAY_PRESETS[preset], hardware=settings))
        graph = [replace(node, run=_with_epochs(node.run.model_copy(update={"data": type(node.run.data).model_validate(
            {**given(node.run.data), **data})}), epochs)) for node in graph]
    return [(Path(node.name).name, node.run, out / node.name, partial(_train, node.kind))
            for node in graph_order(graph)]


def _train(kind: RunKind, run: Any, run_dir: Path) -> Any:
    return kind.train(run, run_dir, None)


def measure_epochs(preset: str, out: Path, subjects: int, views: int, size: int | None, epochs: int) -> list[Row]:
    """Train every run of both studies' ``preset`` for ``epochs`` epochs on ``subjects`` simulated
    subjects of ``views`` views (slices) each; the seconds per step are the mean over all steps."""
    rows = []
    studies = (("mr2xray", mr2xray, mr2xray.MR2XRAY_PRESETS), ("csmri", csmri, csmri.CSMRI_PRESETS))
    for study, module, presets in studies:
        full_data = presets[preset].data
        runs = trained_runs(study, preset, shrink(full_data, subjects, views, size), epochs, out / study)
        started = time.perf_counter()
        data = module.study_splits(runs[0][1].data)
        rows.append(Row("data", f"{study}: simulate {subjects} subjects x {views} at "
                        f"{data.train[0]['target'].shape[-1]} px", f"{time.perf_counter() - started:.1f} s"))
        if len(data.train) != train_subjects(subjects) * views:
            raise RuntimeError(f"{study}: the training split does not hold {views} items per subject")
        full_items = train_subjects(full_data["subjects"]) * items_per_subject(full_data)
        for name, run, run_dir, train in runs:
            with peak_memory() as memory:
                started = time.perf_counter()
                result = train(run, run_dir)
                _sync()
                wall = time.perf_counter() - started
            steps = math.ceil(full_items / run.training.batch_size)
            rows.append(Row("epoch", f"{study} {name} ({run.network}, batch {run.training.batch_size})",
                            f"{result.seconds_per_step * 1e3:.1f} ms/step over {result.steps} steps ({epochs} "
                            f"epochs), {wall:.1f} s with validation, peak {_gib(memory['gib'])}; full-preset "
                            f"epoch ~{steps * result.seconds_per_step:.0f} s ({steps} steps)"))
    return rows


# --- 4. DDP over all visible GPUs -------------------------------------------------------------

def ddp_child(devices: int, out: Path, preset: str, subjects: int, views: int, size: int | None,
              accelerator: str) -> None:
    """Entered in the DDP launch (Fabric re-runs this command in every process): one epoch, then
    rank 0 writes its seconds per step to ``out/ddp-<devices>.json``."""
    mr_preset = mr2xray.MR2XRAY_PRESETS[preset]
    runs = mr2xray.mr2xray_preset_runs(mr_preset, shrink(mr_preset.data, subjects, views, size),
                               {"epochs": 1, "progress": False, "devices": devices, "accelerator": accelerator})
    name, run = next(iter(runs.items()))
    fabric = make_fabric(run.training)
    result = train_run(run, out / f"runs-{devices}" / name, fabric)
    if fabric.is_global_zero:
        (out / f"ddp-{devices}.json").write_text(json.dumps({"run": name, "seconds_per_step":
                                                               result.seconds_per_step}))


def measure_ddp(out: Path, preset: str, subjects: int, views: int, size: int | None, dry_run: bool) -> list[Row]:
    """The same run on 1 device and on all visible GPUs (2 CPU processes with --dry-run)."""
    devices = 2 if dry_run else torch.cuda.device_count()
    if devices < 2:
        return [Row("ddp", "DDP over visible GPUs", f"skipped: {devices} GPU visible")]
    accelerator = "cpu" if dry_run else "cuda"
    times = {}
    for count in (1, devices):
        command = [sys.executable, __file__, "--ddp-child", str(count), "--out", str(out), "--preset", preset,
                   "--subjects", str(subjects), "--views", str(views), "--accelerator", accelerator,
                   *(["--size", str(size)] if size else [])]
        subprocess.run(command, check=True, cwd=ROOT)
        times[count] = json.loads((out / f"ddp-{count}.json").read_text())["seconds_per_step"]
    # The global batch grows with the devices: images per second is the fair comparison.
    speedup = devices * times[1] / times[devices]
    return [Row("ddp", f"mr2xray {preset} run, 1 vs {devices} {accelerator} processes",
                f"{times[1] * 1e3:.1f} vs {times[devices] * 1e3:.1f} ms/step; {speedup:.2f}x images/s")]


# --- the table --------------------------------------------------------------------------------

def table(rows: list[Row]) -> str:
    """The rows as one Markdown table."""
    lines = ["| step | what | measured |", "|---|---|---|"]
    return "\n".join(lines + [f"| {r.step} | {r.item} | {r.value} |" for r in rows])


def main(argv: list[str] | None = None) -> str:
    """Run the selected steps and return the table (also printed)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="every step on a tiny size (CPU is fine)")
    parser.add_argument("--out", type=Path, default=None, help="folder for the runs (default: a temp folder)")
    parser.add_argument("--skip", default="", help=f"comma-separated steps to skip, of {', '.join(STEPS)}")
    parser.add_argument("--subjects", type=int, default=None, help="simulated subjects per study (epoch, ddp)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run in the epoch step")
    parser.add_argument("--views", type=int, default=None, help="views (mr2xray) or slices (csmri) per subject")
    parser.add_argument("--preset", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--ddp-child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--accelerator", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    skip = {s for s in args.skip.split(",") if s}
    if unknown := skip - set(STEPS):
        parser.error(f"--skip: unknown step(s) {', '.join(sorted(unknown))}; choose from {', '.join(STEPS)}")
    preset = args.preset or ("demo" if args.dry_run else "full")
    size = args.size or (TINY["size"] if args.dry_run else None)
    subjects = args.subjects or (TINY["subjects"] if args.dry_run else SUBJECTS)
    views = args.views or (TINY["views"] if args.dry_run else 16)
    epochs = args.epochs or (1 if args.dry_run else 3)
    if args.ddp_child is not None:
        ddp_child(args.ddp_child, args.out, preset, subjects, views, size, args.accelerator)
        return ""
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("no CUDA device: run on a GPU machine, or use --dry-run")
    device = torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        rows: list[Row] = []
        steps: dict[str, Callable[[], list[Row]]] = {
            "tests": run_cuda_tests,
            "perceptual": lambda: measure_perceptual(32 if args.dry_run else 256, 2 if args.dry_run else 8,
                                                     device, 64 if args.dry_run else PEAK_SIZE,
                                                     1 if args.dry_run else 10),
            "epoch": lambda: measure_epochs(preset, out / "epoch", subjects, views, size, epochs),
            "ddp": lambda: measure_ddp(out / "ddp", preset, subjects, views, size, args.dry_run),
        }
        for name, step in steps.items():
            if name in skip:
                continue
            started = time.perf_counter()
            new_rows = step()
            rows += new_rows
            print(table(new_rows), flush=True)  # kept even if a later step dies or times out
            print(f"gpu_check: {name} done in {time.perf_counter() - started:.1f} s", flush=True)
    text = f"Machine: {machine()}\n\n{table(rows)}"
    print(text, flush=True)
    return text


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
