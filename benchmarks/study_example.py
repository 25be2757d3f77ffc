"""Wall and CPU time of issue #11's example study file, with ``--jobs 1`` and ``--jobs 2``.

Builds about 30 pairs of 64 px with the built-in simulator (``taskloss simulate mr2xray``: MR
projection -> X-ray, 10 subjects x 3 views, names ``<subject>_<view>`` so the study splits by
subject), writes the study file of ``docs/studies.md`` (unet + resnet x l1, ssim_l1, perceptual;
5 epochs) next to it, and times ``taskloss study run`` once per ``--jobs`` value, each into a fresh
output folder. Prints the machine, the load average before each command (timings are only
comparable on an otherwise idle machine) and one table: wall time, CPU time of the command and its
children (user + system), and the speed-up against ``--jobs 1`` measured in the same run.

Run: ``python benchmarks/study_example.py [--jobs 1 2] [--work DIR] [--subjects 10 --angles 3]``.
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from common import machine

STUDY = {  # the example of issue #11 and docs/studies.md, verbatim apart from the data path
    "name": "denoise-t1",
    "task": "paired",
    "data": {"path": "pairs/", "size": 64, "split": {"val": 0.2, "test": 0.2, "seed": 0}},
    "networks": {"unet": {"name": "unet", "options": {"widths": [16, 32, 64, 128]}},
                 "resnet": {"name": "resnet"}},
    "losses": {"l1": {"l1": 1.0}, "ssim_l1": {"ssim": 0.84, "l1": 0.16},
               "perceptual": {"perceptual": {"weight": 1.0, "network": "domain",
                                             "layers": ["conv1_2", "conv2_2", "conv3_2"], "balance": 10}}},
    "metrics": ["mae", "psnr", "ssim", "hfen"],
    "baseline": "l1",
    "training": {"epochs": 5, "batch_size": 8, "lr": 0.001},
}


def taskloss(*args: str) -> list[str]:
    """The command line of ``taskloss ARGS`` with this interpreter."""
    return [sys.executable, "-c", "import sys; from taskloss.cli import main; sys.exit(main())", *args]


def prepare(work: Path, subjects: int, angles: int) -> Path:
    """Simulate the pairs into ``work/pairs`` and write ``work/study.yaml``; return the study file."""
    subprocess.run(taskloss("simulate", "mr2xray", "--out", str(work / "pairs"), "--subjects", str(subjects),
                            "--angles", str(angles), "--size", "64"), check=True, stdout=subprocess.DEVNULL)
    path = work / "study.yaml"
    path.write_text(yaml.safe_dump(STUDY, sort_keys=False))
    return path


def timed(command: list[str]) -> tuple[float, float]:
    """Run ``command``; return its wall time and the CPU time (user + system) of it and its children."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    """Prepare the data once, time every ``--jobs`` value, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work", type=Path, default=None, help="kept folder (default: a temporary one)")
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--angles", type=int, default=3)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="taskloss-study-example-"))
    work.mkdir(parents=True, exist_ok=True)
    print(machine())
    study = prepare(work, args.subjects, args.angles)
    pairs = len(list((work / "pairs" / "input").iterdir()))
    print(f"{pairs} pairs of 64 px in {work / 'pairs'}; study file {study}")
    rows = []
    for jobs in args.jobs:
        out = work / f"out-jobs{jobs}"
        shutil.rmtree(out, ignore_errors=True)
        load = os.getloadavg()[0]
        wall, cpu = timed(taskloss("study", "run", str(study), "--out", str(out), "--jobs", str(jobs)))
        rows.append((jobs, load, wall, cpu))
        print(f"--jobs {jobs}: {wall / 60:.1f} min wall, {cpu:.0f} s CPU (load average before: {load:.2f})",
              flush=True)
    reference = rows[0][2]
    print("\n| command | load before | wall time | CPU time | speed-up |\n|---|---|---|---|---|")
    for jobs, load, wall, cpu in rows:
        print(f"| `--jobs {jobs}` | {load:.2f} | {wall / 60:.1f} min | {cpu:.0f} s | {reference / wall:.2f}x |")
    if args.work is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
