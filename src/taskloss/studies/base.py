"""The Study interface: what a comparison study implements, and one registry of studies.

A study turns data and a list of runs into a table, tests, figures and a report section. The
command line runs, plans, trains, evaluates and renders a study through :class:`Study` (a
built-in one from :func:`taskloss.studies.get_study`, a study file as :class:`~taskloss.studies.engine.FileStudy`),
as fastMRI's ``MriModule`` serves reconstruction models: the docstring of the base class says what a
new study provides. (Settings are still read before a study is reached: a built-in study's file by
:func:`~taskloss.studies.common.load_preset`, a study file by :func:`~taskloss.studies.spec.parse_study`.)
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from taskloss.errors import ConfigError
from taskloss.studies.layout import RUNS_DIR, SEEDS_DIR
from taskloss.studies.plan import Measure, PlannedRun, measure_steps
from taskloss.training import FitResult


@dataclass(frozen=True)
class StudyRequest:
    """How to run a study: which scale, whose data, which hardware.

    Attributes:
        preset: a built-in study's settings: a shipped scale ("demo", "small", "full") or the path
            of a built-in study file (``study: mr2xray|csmri``, e.g. an edited copy of a shipped
            one), or its validated settings (the study's :attr:`Study.preset_model`, e.g. a file with
            ``--set`` overrides); a study file of networks and losses ignores it.
        data: the user's data folder instead of the study's default (simulator or the file's path).
        devices: devices (processes) per run; > 1 trains with DDP.
        accelerator: "auto", "cpu" or "cuda".
        options: settings of how a study runs (``jobs``; a study file's also ``launcher``); a study raises
            :class:`ConfigError` for one it does not know.
    """

    preset: str | Path | BaseModel = "demo"
    data: Path | None = None
    devices: int = 1
    accelerator: str = "auto"
    options: Mapping[str, Any] = field(default_factory=dict)


class Study(ABC):
    """A comparison study (the built-in ``mr2xray`` and ``csmri``, or one described by a study file).

    A study is a run graph (:mod:`taskloss.studies.graph`) and implements five steps; :meth:`run`
    chains them and each can be called alone; :meth:`plan` times the graph before any training:

    - **build data**: the train/val/test splits its runs train and score on (seeded, split by
      subject), built once per process;
    - **build runs**: every run by folder name, each a validated configuration (network, loss,
      data, training settings) that ``OUT/<study>/runs/<name>/config.yaml`` records;
    - **train** (:meth:`train`): one run from its configuration, resumable, finished runs return
      at once (``taskloss train``);
    - **evaluate** (:meth:`evaluate`): a trained run's best checkpoint on a split, per image
      (``taskloss evaluate``), plus any study-level scoring after all runs (baselines, SIS);
    - **render** (:meth:`render`): tables, paired tests, figures and the study's section of
      ``report.md`` from what the runs saved, so it can be redone at any time (``taskloss report``).

    Subclasses set :attr:`name` and :attr:`title` and implement the abstract methods.
    """

    name: str = ""
    """Folder name under the output folder and ``study:`` in run configurations."""
    title: str = ""
    """One line for listings."""
    heading: str = ""
    """The first line of the study's report section (``## ...``); a report over seeds uses it when no
    replicate can be rendered again (their results saved without their run folders)."""
    preset_model: type[BaseModel] | None = None
    """The settings model of a built-in study's study files (``study: <name>``); None for study files
    of networks and losses."""

    @abstractmethod
    def run(self, out_dir: Path, request: StudyRequest) -> Path:
        """Build data and runs, train and evaluate every run (finished runs are skipped), render.

        Args:
            out_dir: the study folder (``OUT/<study name>``).
            request: scale, data, hardware and study options.

        Returns:
            The results folder.
        """

    @abstractmethod
    def train(self, config: Mapping[str, Any], run_dir: Path, source: str) -> FitResult:
        """Train one run from a configuration mapping (``taskloss train``).

        Args:
            config: the run configuration as loaded from YAML (validated here).
            run_dir: the run folder (resumed when it holds a checkpoint).
            source: where ``config`` came from, for error messages.
        """

    @abstractmethod
    def plan(self, request: StudyRequest, out_dir: Path, steps: int = 3,
             measure: Measure = measure_steps) -> list[PlannedRun]:
        """Every run of the study's graph with its size and a time estimate from ``steps`` measured
        training steps (``taskloss study plan``; :func:`taskloss.studies.plan.plan_graph`); nothing is
        written to ``out_dir``, whose finished runs are marked.

        Args:
            request: the settings, data and accelerator, as :meth:`run` takes them.
            out_dir: the study folder.
            steps: real training steps timed per run (after one warm-up step).
            measure: what times the steps (tests inject fixed times).
        """

    @abstractmethod
    def detectable(self, request: StudyRequest, pilot: Path) -> str:
        """The minimal detectable effects (Markdown) of the study's primary comparisons for its design
        (test subjects x seeds), from the spread of the same comparisons in ``pilot``, a long per-image
        table (e.g. an earlier run's ``results/per_image.csv``)."""

    @abstractmethod
    def evaluate(self, run_dir: Path, split: str = "test") -> Path:
        """Score a trained run's best checkpoint on ``split``; return the per-image CSV file."""

    @abstractmethod
    def render(self, out_dir: Path) -> str:
        """Write the results (tables, tests, figures) of ``out_dir``; return the report section."""

    def has_results(self, out_dir: Path) -> bool:
        """Whether ``out_dir`` holds runs of this study (the report renders only those)."""
        return (out_dir / RUNS_DIR).is_dir() or (out_dir / SEEDS_DIR).is_dir()

    def check_options(self, request: StudyRequest, known: tuple[str, ...] = ()) -> None:
        """Raise :class:`ConfigError` for an option of ``request`` that is not in ``known``."""
        unknown = sorted(set(request.options) - set(known))
        if unknown:
            raise ConfigError(f"study {self.name!r} takes no option {', '.join(unknown)}; it takes "
                              f"{', '.join(known) or 'none'}")
