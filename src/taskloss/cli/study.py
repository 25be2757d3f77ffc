"""``taskloss study run|plan|list``: loss studies described by a study file (docs/studies.md)."""

from pathlib import Path
from typing import Annotated

import typer

from taskloss.cli.runs import Accelerator, Devices, Out, study_app
from taskloss.studies import STUDIES, StudyRequest, render_report
from taskloss.studies.engine import FileStudy, plan_study, plan_table
from taskloss.studies.spec import load_study

StudyFile = Annotated[Path, typer.Argument(help="The study file (YAML); see docs/studies.md.")]


@study_app.command("run")
def study_run(
    study_file: StudyFile,
    out: Out = Path("taskloss-out"),
    devices: Devices = 1,
    accelerator: Accelerator = "auto",
    jobs: Annotated[int, typer.Option(min=1, help="Runs trained at once on this machine (CPU cores are split "
                                      "between them).")] = 1,
    launcher: Annotated[str, typer.Option(help="local (this machine) or slurm (one job per run, with submitit; "
                                          "settings in the file's slurm: section).")] = "local",
) -> None:
    """Train every network x loss of a study file, score them on the test split, write the report."""
    spec = load_study(study_file)
    request = StudyRequest(devices=devices, accelerator=accelerator, options={"jobs": jobs, "launcher": launcher})
    results = FileStudy(spec).run(out / spec.name, request)
    print(f"{spec.name}: results in {results}; report {render_report(out)}")


@study_app.command("plan")
def study_plan(
    study_file: StudyFile,
    out: Out = Path("taskloss-out"),
    jobs: Annotated[int, typer.Option(min=1, help="Runs at once, for the estimate.")] = 1,
    steps: Annotated[int, typer.Option(min=1, help="Training steps timed per run.")] = 3,
    accelerator: Accelerator = "auto",
) -> None:
    """List the runs of a study file with their sizes and a time estimate from measured steps."""
    spec = load_study(study_file)
    print(plan_table(plan_study(spec, out / spec.name, steps, accelerator), jobs))


@study_app.command("list")
def study_list() -> None:
    """List the built-in studies (`taskloss study NAME --preset ...`)."""
    for name, study in STUDIES.items():
        print(f"{name}: {study.title}")
