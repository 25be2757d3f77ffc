"""``taskloss demo``: the main job, both studies at demo scale on built-in data, one report."""

import time
from pathlib import Path
from typing import Annotated

import typer

from taskloss.cli.app import app, one_of, output_folder
from taskloss.studies import STUDIES, StudyRequest, render_report


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the results.")] = Path("demo-out"),
    accelerator: Annotated[str, typer.Option(help="auto, cpu or cuda.", callback=one_of("auto", "cpu", "cuda"))]
    = "auto",
) -> None:
    """Run both studies (mr2xray, csmri) at demo scale on the built-in simulator; write OUT/report.md.

    Finished runs are kept: running it again only redoes what is missing.
    """
    with output_folder(out):
        started = time.perf_counter()
        for name, study in STUDIES.items():
            print(f"taskloss demo: {name} study (preset demo)")
            study.run(out / name, StudyRequest(preset="demo", accelerator=accelerator))
        report = render_report(out)
    print(f"taskloss demo: done in {(time.perf_counter() - started) / 60:.1f} min; report {report}")
