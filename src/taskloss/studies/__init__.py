"""The studies of the source document, each runnable with one command, and the combined report.

Each study module provides ``run_study(preset, out_dir, data_dir, devices, accelerator)``,
``train_config(mapping, run_dir, source)`` (``taskloss train``), ``evaluate_run(run_dir, split)``
(``taskloss evaluate``) and ``render_results(out_dir) -> str`` (its section of ``report.md``).
"""

import platform
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType

import torch

from taskloss import __version__
from taskloss.errors import DataError
from taskloss.studies import csmri, mr2xray
from taskloss.training.checkpoint import atomic_write

STUDIES: dict[str, ModuleType] = {"mr2xray": mr2xray, "csmri": csmri}
"""Every study by name (the folder name under the output folder, and ``study:`` in run configs)."""

REPORT = "report.md"


def render_report(out: Path) -> Path:
    """Render every study found in ``out`` and write ``out/report.md``.

    Returns:
        The report file.
    """
    found = [name for name in STUDIES if (out / name / "runs").is_dir()]
    sections = [STUDIES[name].render_results(out / name) for name in found]
    if not sections:
        raise DataError(f"{out} holds no study results; run `taskloss study ...` or `taskloss demo` first")
    header = [
        "# taskloss report", "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by taskloss {__version__} "
        f"(torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'}).",
        "Every number is recomputable from the per-image CSV files under each study's `runs/*/evaluation/`.",
        "",
    ]
    path = out / REPORT
    atomic_write(path, lambda tmp: tmp.write_text("\n".join(header + sections) + "\n"))
    return path
