"""``taskloss study``, ``train``, ``evaluate``, ``report``, ``train-perception``: training and scoring."""

from pathlib import Path
from typing import Annotated, Literal

import typer
from pydantic import BaseModel

from taskloss.cli.app import app, check_output_folder, finite, one_of, removed_on_failure
from taskloss.errors import ConfigError, DataError
from taskloss.locks import locked_folder
from taskloss.studies import StudyRequest, get_study, render_report, study_of_run
from taskloss.studies.common import load_preset
from taskloss.studies.layout import RUN_CONFIG_FILE
from taskloss.training.config import apply_overrides, load_yaml

study_app = typer.Typer(help="Run a loss-comparison study end to end: train every run, score it on the "
                        "test split, write tables and figures.", no_args_is_help=True)
app.add_typer(study_app, name="study")

Preset = Annotated[str, typer.Option(help="Scale: demo (minutes on CPU), small (about 30 min on 2 CPU cores), "
                                     "full (the papers' settings, GPU); a shipped study file (`taskloss study "
                                     "list`).")]
Data = Annotated[Path | None, typer.Option(help="Your own data instead of the built-in simulator.")]
Out = Annotated[Path, typer.Option(help="Output folder (the study writes OUT/<study>/).")]
Devices = Annotated[int, typer.Option(help="Devices per run; > 1 trains with DDP (or launch with torchrun).",
                                      min=1)]
Accelerator = Annotated[str, typer.Option(help="auto, cpu or cuda.", callback=one_of("auto", "cpu", "cuda"))]
Jobs = Annotated[int, typer.Option(min=1, help="Runs trained at once on this machine, each after the runs it builds "
                                   "on (CPU cores are split between them).")]
Sets = Annotated[list[str] | None, typer.Option("--set", help="KEY=VALUE: change one setting of the file for this "
                                                "command (VALUE is YAML; repeat for more), e.g. --set "
                                                "training.epochs=5 or --set data.acceleration=8.")]


def run_builtin_study(name: str, preset: str | Path | BaseModel, data: Path | None, out: Path, devices: int,
                      accelerator: str, **options: object) -> None:
    """Run the built-in study ``name`` (a shipped scale, a study file, or its validated settings) into
    ``out/name``; render the report."""
    check_output_folder(out, "--out")
    if data is not None and not data.is_dir():
        raise DataError(f"--data {data} is {'a file' if data.exists() else 'missing'}; pass the folder of your "
                        "data (see docs/data.md)")
    request = StudyRequest(preset=preset, data=data, devices=devices, accelerator=accelerator, options=options)
    with removed_on_failure(out / name), locked_folder(out):
        results = get_study(name).run(out / name, request)
        report = render_report(out)
    print(f"{name}: results in {results}; report {report}")


@study_app.command("mr2xray")
def study_mr2xray(preset: Preset = "demo", data: Data = None, out: Out = Path("taskloss-out"),
                  devices: Devices = 1, accelerator: Accelerator = "auto", jobs: Jobs = 1, sets: Sets = None) -> None:
    """MR -> X-ray projection synthesis: CRN, UNet, ResNet x perceptual, l1 (MAE, SSIM, PSNR)."""
    run_builtin_study("mr2xray", _with_sets("mr2xray", preset, sets or []), data, out, devices, accelerator,
                      jobs=jobs)


@study_app.command("csmri")
def study_csmri(preset: Preset = "demo", data: Data = None, out: Out = Path("taskloss-out"),
                devices: Devices = 1, accelerator: Accelerator = "auto", jobs: Jobs = 1, sets: Sets = None,
                acceleration: Annotated[float | None, typer.Option(
                    help="Undersampling factor, short for --set data.acceleration=A; default the preset's (demo and "
                    "small 4, full 8).", callback=finite)] = None) -> None:
    """Compressed-sensing MRI: zero-filled, DLMRI, DAGAN, RecNet, RecNet + refinement (PSNR, SSIM, SIS, MOS)."""
    sets = [*(sets or []), *([f"data.acceleration={acceleration}"] if acceleration is not None else [])]
    run_builtin_study("csmri", _with_sets("csmri", preset, sets), data, out, devices, accelerator, jobs=jobs)


def _with_sets(name: str, preset: str, sets: list[str]) -> str | BaseModel:
    """The shipped scale ``preset`` of study ``name``, or with ``--set`` overrides its validated settings
    (checked before anything is written)."""
    model = get_study(name).preset_model
    return load_preset(model, name, preset, sets) if sets and model is not None else preset


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="Run configuration (YAML); see docs/studies.md.")],
    overrides: Annotated[list[str] | None, typer.Argument(help="key=value overrides, e.g. training.epochs=5")]
    = None,
    out: Annotated[Path | None, typer.Option(help="Run folder; default runs/<config name>.")] = None,
) -> None:
    """Train one run from a YAML configuration (resumes when the run folder has a checkpoint)."""
    data = apply_overrides(load_yaml(config), overrides or [])
    study = study_of_run(data, str(config))
    run_dir = out or Path("runs") / config.stem
    check_output_folder(run_dir, "--out")
    with removed_on_failure(run_dir), locked_folder(run_dir):
        result = study.train(data, run_dir, str(config))
    print(f"trained {result.epochs} epochs ({result.steps} steps) in {run_dir}; best "
          f"{result.best_value} at epoch {result.best_epoch}")


@app.command()
def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run folder written by `taskloss train` or a study.")],
    split: Annotated[str, typer.Option(help="train, val or test.")] = "test",
) -> None:
    """Score a run's best checkpoint on a split; per-image results in RUN_DIR/evaluation/<split>.csv."""
    if split not in ("train", "val", "test"):
        raise ConfigError(f"--split must be train, val or test, got {split!r}")
    study = study_of_run(load_yaml(run_dir / RUN_CONFIG_FILE), str(run_dir / RUN_CONFIG_FILE))
    print(f"wrote {study.evaluate(run_dir, split)}")


@app.command()
def report(out: Annotated[Path, typer.Argument(help="The output folder of `taskloss study` or `demo`.")]
           ) -> None:
    """Render tables and figures again from saved results; write OUT/report.md."""
    print(f"wrote {render_report(out)}")


@app.command("train-perception")
def train_perception(
    out: Annotated[Path | None, typer.Option(help="Weights file; default the packaged one.")] = None,
    subjects: Annotated[int, typer.Option(help="Simulated training subjects.", min=1)] = 8,
    steps: Annotated[int, typer.Option(help="Optimiser steps.", min=1)] = 3000,
    size: Annotated[int, typer.Option(help="Image side in pixels.", min=8)] = 64,
    seed: Annotated[int, typer.Option(help="Seed of phantoms, sampling and weights.")] = 0,
) -> None:
    """Train the domain perception network on simulated tissue labels (used offline instead of VGG-19)."""
    from rich.progress import Progress

    from taskloss.features.domain import shipped_weights_path
    from taskloss.training.perception import PerceptionTrainingConfig, train_domain_network

    target = out or shipped_weights_path()
    config = PerceptionTrainingConfig(subjects=subjects, steps=steps, size=size, seed=seed)
    with Progress() as progress:
        tasks: dict[str, object] = {}

        def update(phase: Literal["simulate", "train"] | str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = progress.add_task(phase, total=total)
            progress.update(tasks[phase], completed=done)  # type: ignore[arg-type]

        result = train_domain_network(target, config, update)
    print(f"wrote {target}: held-out slice accuracy {result.slice_accuracy:.3f}, projection composition "
          f"error {result.projection_error:.3f}, final loss {result.final_loss:.3f}")
