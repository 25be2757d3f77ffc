"""Comparison studies behind one interface (:class:`~taskloss.studies.base.Study`), and the report.

:data:`STUDIES` holds the built-in studies of the source document (``mr2xray``, ``csmri``), whose
scales are study files shipped in ``presets/`` (:func:`taskloss.studies.common.load_preset`); a study
of networks and losses described by a YAML file is run by :mod:`taskloss.studies.engine`. Every study provides
``run(out_dir, request)``, ``train(config, run_dir, source)`` (``taskloss train``),
``evaluate(run_dir, split)`` (``taskloss evaluate``) and ``render(out_dir) -> str`` (its section of
``report.md``).
"""

import platform
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any

import torch

from taskloss import __version__
from taskloss.errors import ConfigError, DataError
from taskloss.studies.base import Study, StudyRequest
from taskloss.studies.builtin import CsmriStudy, Mr2XrayStudy
from taskloss.studies.engine import find_file_studies, run_study_of
from taskloss.studies.layout import REPORT_FILE
from taskloss.studies.seeds import is_seeded, render_seeded
from taskloss.studies.spec import FILE_STUDY
from taskloss.training.checkpoint import atomic_write

STUDIES: Mapping[str, Study] = MappingProxyType({"mr2xray": Mr2XrayStudy(), "csmri": CsmriStudy()})
"""The built-in studies by name (the folder name under the output folder, and ``study:`` in run
configs), read-only."""

__all__ = ["STUDIES", "Study", "StudyRequest", "get_study", "render_report", "study_of_run"]


def get_study(name: str) -> Study:
    """The built-in study ``name``; an unknown name is a :class:`ConfigError` listing the names."""
    if name not in STUDIES:
        raise ConfigError(f"unknown study {name!r}; choose one of {', '.join(STUDIES)} (or run a study "
                          "file with `taskloss study run STUDY.yaml`)")
    return STUDIES[name]


def study_of_run(config: Mapping[str, Any], source: str) -> Study:
    """The study that trains and scores a run configuration, from its ``study`` key."""
    name = config.get("study")
    if name == FILE_STUDY:
        return run_study_of(config, source)
    if name not in STUDIES:
        raise ConfigError(f"{source}: key 'study' must be one of {', '.join([*STUDIES, FILE_STUDY])}, "
                          f"got {name!r}")
    return STUDIES[name]


def _found(out: Path) -> list[tuple[Study, Path]]:
    """Every study with results in ``out``: the built-in ones, then those of study files."""
    found = [(study, out / name) for name, study in STUDIES.items() if study.has_results(out / name)]
    return found + find_file_studies(out)


def render_report(out: Path) -> Path:
    """Render every study found in ``out`` and write ``out/report.md``.

    Returns:
        The report file.
    """
    sections = [render_seeded(folder, study.render, heading=study.heading) if is_seeded(folder)
                else study.render(folder) for study, folder in _found(out)]
    if not sections:
        raise DataError(f"{out} holds no study results; run `taskloss study ...` or `taskloss demo` first")
    header = [
        "# taskloss report", "",
        f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by taskloss {__version__} "
        f"(torch {torch.__version__}, Python {platform.python_version()}, {platform.machine()}, "
        f"{'CUDA ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'}).",
        "Every number is recomputable from the per-image CSV of each study (`<study>/results/per_image.csv`; "
        "each run's in `runs/<run>/evaluation/`).",
        "",
    ]
    path = out / REPORT_FILE
    atomic_write(path, lambda tmp: tmp.write_text("\n".join(header + sections) + "\n"))
    return path
