"""``taskloss study run|plan|list``: loss studies described by a study file (docs/studies.md).

A study file with a ``study`` key (``study: mr2xray`` or ``csmri``) is a built-in study's file, such
as the shipped presets (``taskloss study list``) or an edited copy; any other file describes a study
of networks and losses (:mod:`taskloss.studies.spec`).
"""

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from taskloss.cli.app import output_folder
from taskloss.cli.runs import Accelerator, Devices, Jobs, Out, Sets, run_builtin_study, study_app
from taskloss.errors import ConfigError, InputError
from taskloss.studies import STUDIES, Study, StudyRequest, get_study, render_report
from taskloss.studies.common import SCALES, load_preset, overridden, shipped_study_files
from taskloss.studies.engine import FileStudy
from taskloss.studies.layout import PER_IMAGE_CSV, RESULTS_DIR
from taskloss.studies.plan import plan_table
from taskloss.studies.spec import StudySpec, parse_study
from taskloss.training.config import apply_overrides, load_yaml

StudyFile = Annotated[Path, typer.Argument(help="The study file (YAML); see docs/studies.md.")]


@study_app.command("run")
def study_run(
    study_file: StudyFile,
    out: Out = Path("taskloss-out"),
    devices: Devices = 1,
    accelerator: Accelerator = "auto",
    jobs: Jobs = 1,
    launcher: Annotated[str, typer.Option(help="local (this machine) or slurm (one job per run, with submitit; "
                                          "settings in the file's slurm: section).")] = "local",
    sets: Sets = None,
) -> None:
    """Train every network x loss of a study file, score them on the test split, write the report.

    A built-in study's file (``study: mr2xray|csmri``, e.g. a shipped preset or an edited copy) runs
    that study with the file's settings into OUT/<study>/. ``--set`` changes settings of either kind
    of file without editing it; every run folder records the settings it ran with. With ``--jobs``,
    runs train at once, each after the runs it builds on.
    """
    data = apply_overrides(load_yaml(study_file), sets or [])
    if "study" in data:
        study = _builtin_study(data, study_file)
        if launcher != "local":
            raise ConfigError(f"--launcher {launcher}: {study_file} is a built-in {study} study, which trains on this "
                              "machine (use --jobs N for runs at once); the slurm launcher runs study files of "
                              "networks and losses")
        run_builtin_study(study, _builtin_settings(study, study_file, sets), None, out, devices, accelerator,
                          jobs=jobs)
        return
    spec = _file_spec(data, study_file, sets)
    request = StudyRequest(devices=devices, accelerator=accelerator, options={"jobs": jobs, "launcher": launcher})
    with output_folder(out):
        results = FileStudy(spec).run(out / spec.name, request)
        report = render_report(out)
    print(f"{spec.name}: results in {results}; report {report}")


@study_app.command("plan")
def study_plan(
    study_file: StudyFile,
    out: Out = Path("taskloss-out"),
    jobs: Annotated[int, typer.Option(min=1, help="Runs at once, for the estimate.")] = 1,
    steps: Annotated[int, typer.Option(min=1, help="Training steps timed per run.")] = 3,
    accelerator: Accelerator = "auto",
    pilot: Annotated[Path | None, typer.Option(help="A long per-image CSV of the same methods (e.g. an earlier "
                                               "run's results/per_image.csv): its spread gives the smallest "
                                               "effects the design detects. Default: OUT/<study>/results/"
                                               "per_image.csv when it exists.")] = None,
    sets: Sets = None,
) -> None:
    """List the runs of a study file, shipped or not (per seed with ``seeds``), with their sizes and a time
    estimate from measured steps; with a pilot, the smallest effects its primary comparisons can detect."""
    data = apply_overrides(load_yaml(study_file), sets or [])
    if pilot is not None and not pilot.is_file():
        raise InputError(f"--pilot {pilot}: no such file; give a long per-image CSV such as an earlier run's "
                         "results/per_image.csv, or leave --pilot out")
    study, request = _study_of(data, study_file, sets, accelerator)
    folder = out / study.name
    found = pilot or folder / RESULTS_DIR / PER_IMAGE_CSV
    planned = study.plan(request, folder, steps)
    detectable = study.detectable(request, found) if found.is_file() else (
        f"No pilot ({found} does not exist): give `--pilot RESULTS.csv`, a long per-image table of the same "
        "methods (e.g. a short run's results/per_image.csv), for the smallest effects this design detects.\n")
    print(plan_table(planned, jobs) + "\n\n" + detectable)


def _study_of(data: dict[str, Any], study_file: Path, sets: list[str] | None, accelerator: str
              ) -> tuple[Study, StudyRequest]:
    """The study a study file describes (built-in or of networks and losses) and the request that runs it."""
    if "study" in data:
        name = _builtin_study(data, study_file)
        return get_study(name), StudyRequest(preset=_builtin_settings(name, study_file, sets),
                                             accelerator=accelerator)
    return FileStudy(_file_spec(data, study_file, sets)), StudyRequest(accelerator=accelerator)


def _file_spec(data: dict[str, Any], study_file: Path, sets: list[str] | None) -> StudySpec:
    """The study of a study file of networks and losses, with the overrides applied (paths relative to the file)."""
    return parse_study(data, overridden(study_file, sets), study_file.parent)


def _builtin_settings(study: str, study_file: Path, sets: list[str] | None) -> Path | BaseModel:
    """A built-in study file's settings: the file itself, or with overrides its validated settings."""
    model = get_study(study).preset_model
    if not sets or model is None:
        return study_file
    return load_preset(model, study, study_file, sets)


def _builtin_study(data: dict[str, Any], study_file: Path) -> str:
    """The built-in study a study file names in its ``study`` key."""
    name = data["study"]
    if name not in STUDIES:
        raise ConfigError(f"{study_file}: study: unknown built-in study {name!r}; choose one of "
                          f"{', '.join(STUDIES)} (a study file of networks and losses has no 'study' key, see "
                          "docs/studies.md)")
    return str(name)


@study_app.command("list")
def study_list() -> None:
    """List the built-in studies and their shipped study files (`taskloss study NAME --preset SCALE`)."""
    files = shipped_study_files()
    for name, study in STUDIES.items():
        print(f"{name}: {study.title}")
        for scale in SCALES:
            print(f"  --preset {scale:<6} {files[f'{name}-{scale}']}")
    print("Copy a file, edit it and run it with `taskloss study run FILE.yaml`.")
