"""The two studies of the source document behind the :class:`~taskloss.studies.base.Study` interface.

Their settings are built-in study files shipped in the package (``studies/presets/<study>-<scale>.yaml``,
read into :class:`~taskloss.studies.mr2xray.Mr2XrayPreset` and :class:`~taskloss.studies.csmri.CsmriPreset`);
their steps live in :mod:`taskloss.studies.mr2xray` and :mod:`taskloss.studies.csmri` (the projection
simulator, RecNet's two stages, DLMRI, SIS, the source's reference tables). Both are run graphs
(:mod:`taskloss.studies.graph`), so they train ``--jobs`` runs at a time and are planned
(``taskloss study plan``) by the same code as a study file of networks and losses.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from taskloss.errors import InputError
from taskloss.metrics.comparisons import read_long_table
from taskloss.studies import csmri, mr2xray
from taskloss.studies.base import Study, StudyRequest
from taskloss.studies.common import BuiltinRun, load_preset, split_subjects, study_splits, train_run, validate_config
from taskloss.studies.csmri_runs import CsmriRun
from taskloss.studies.graph import RunNode
from taskloss.studies.layout import PLANS_FILE
from taskloss.studies.plan import Measure, PlannedRun, measure_steps, plan_graph
from taskloss.studies.report_kit import ALPHA, mde_markdown, plan_mdes, read_plans
from taskloss.studies.seeds import seed_folders
from taskloss.studies.segmentation import SegmentationRun
from taskloss.training import FitResult


class BuiltinStudy(Study):
    """What the two built-in studies share: settings from a study file, a run graph, the planner."""

    run_model: type[BuiltinRun]
    """The configuration model of the study's runs (``taskloss train``)."""
    OPTIONS: tuple[str, ...] = ("jobs",)

    def settings(self, request: StudyRequest) -> Any:
        """The study's validated settings (:attr:`preset_model`) from ``request.preset``."""
        assert self.preset_model is not None
        return load_preset(self.preset_model, self.name, request.preset)

    def graph(self, settings: Any, request: StudyRequest, out_dir: Path) -> list[RunNode]:
        """The run graph of one replicate (seed offset 0) of ``settings``."""
        raise NotImplementedError

    def test_split(self, settings: Any, request: StudyRequest) -> Any:
        """The test split the study scores (for the design's number of subjects)."""
        raise NotImplementedError

    def plan(self, request: StudyRequest, out_dir: Path, steps: int = 3,
             measure: Measure = measure_steps) -> list[PlannedRun]:
        """Every run of the graph, timed once and listed once per seed replicate (:func:`plan_graph`)."""
        settings = self.settings(request)
        nodes = self.graph(settings, request, out_dir)
        return plan_graph(nodes, seed_folders(out_dir, settings.seeds), steps, request.accelerator, measure)

    def detectable(self, request: StudyRequest, pilot: Path, alpha: float = ALPHA) -> str:
        """The minimal detectable effects of the primary comparisons recorded beside ``pilot`` (the
        ``results/plans.json`` of the run that wrote it), for this study's test subjects x seeds."""
        plans_file = pilot.parent / PLANS_FILE
        if not plans_file.is_file():
            raise InputError(f"--pilot {pilot}: no {PLANS_FILE} beside it, which names the study's comparisons; "
                             f"give the results/per_image.csv of a finished {self.name} study")
        settings = self.settings(request)
        plans, _ = read_plans(plans_file)
        n_subjects = len(set(split_subjects(self.test_split(settings, request))))
        n_seeds = len(settings.seeds or [0])
        rows, skipped = plan_mdes(read_long_table(pilot), plans, n_subjects, n_seeds, alpha=alpha)
        return mde_markdown(rows, skipped, str(pilot), n_subjects, n_seeds, alpha)

    def train(self, config: Mapping[str, Any], run_dir: Path, source: str) -> FitResult:
        """One run (:func:`~taskloss.studies.common.train_run` of a :attr:`run_model`)."""
        return train_run(validate_config(self.run_model, config, source), run_dir)

    def jobs(self, request: StudyRequest) -> int:
        """``request.options["jobs"]``: runs trained at once (1 by default)."""
        return int(request.options.get("jobs", 1))


class Mr2XrayStudy(BuiltinStudy):
    """MR -> X-ray projection synthesis (Stimpel et al. 2017): CRN, UNet, ResNet x perceptual, l1."""

    name = mr2xray.MR2XRAY_STUDY
    heading = mr2xray.MR2XRAY_HEADING
    preset_model = mr2xray.Mr2XrayPreset
    run_model = mr2xray.Mr2XrayRun
    title = "MR -> X-ray projection synthesis: CRN, UNet, ResNet x perceptual, l1 (MAE, SSIM, PSNR)"

    def run(self, out_dir: Path, request: StudyRequest) -> Path:
        """Train and score every run of the preset, then render (:func:`mr2xray.run_mr2xray`)."""
        self.check_options(request, self.OPTIONS)
        return mr2xray.run_mr2xray(request.preset, out_dir, request.data, request.devices, request.accelerator,
                                   jobs=self.jobs(request))

    def graph(self, settings: Any, request: StudyRequest, out_dir: Path) -> list[RunNode]:
        """:func:`mr2xray.mr2xray_graph` of the preset's runs (ImageNet rows refused without their weights)."""
        bones, runs = mr2xray.mr2xray_runs(settings, request.data)
        if any(run.loss == "perceptual_imagenet" for run in runs.values()):
            mr2xray.check_imagenet_weights(settings)
        return mr2xray.mr2xray_graph(bones, runs)

    def test_split(self, settings: Any, request: StudyRequest) -> Any:
        """The test split of the preset's data."""
        return study_splits(next(iter(mr2xray.mr2xray_runs(settings, request.data)[1].values())).data).test

    def evaluate(self, run_dir: Path, split: str = "test") -> Path:
        """Per-image MAE, SSIM, PSNR, HFEN of the best checkpoint (:func:`mr2xray.evaluate_mr2xray_run`)."""
        return mr2xray.evaluate_mr2xray_run(run_dir, split)

    def render(self, out_dir: Path) -> str:
        """Tables, tests, figure and report section (:func:`mr2xray.render_mr2xray`)."""
        return mr2xray.render_mr2xray(out_dir)


class CsmriStudy(BuiltinStudy):
    """Compressed-sensing MRI (Seitzer et al. 2018): zero-filled, DLMRI, DAGAN, RecNet, refinement."""

    name = csmri.CSMRI_STUDY
    heading = csmri.CSMRI_HEADING
    preset_model = csmri.CsmriPreset
    run_model = CsmriRun
    title = ("Compressed-sensing MRI: zero-filled, DLMRI, DAGAN, RecNet, RecNet + refinement "
             "(PSNR, SSIM, SIS, MOS)")

    def run(self, out_dir: Path, request: StudyRequest) -> Path:
        """Train the runs, score every method and render (:func:`csmri.run_csmri`); ``request.options``
        may hold ``jobs`` (the undersampling factor is the study file's ``data.acceleration``)."""
        self.check_options(request, self.OPTIONS)
        return csmri.run_csmri(request.preset, out_dir, request.data, request.devices, request.accelerator,
                               jobs=self.jobs(request))

    def graph(self, settings: Any, request: StudyRequest, out_dir: Path) -> list[RunNode]:
        """:func:`csmri.csmri_graph` of the preset's runs."""
        runs = self._runs(settings, request)
        recnet = runs["recnet"]
        assert isinstance(recnet, CsmriRun)  # the file's required RecNet run (CsmriPreset)
        return csmri.csmri_graph(csmri.trainable_runs(runs, recnet.data), out_dir)

    def test_split(self, settings: Any, request: StudyRequest) -> Any:
        """The test split of the preset's data."""
        return study_splits(self._runs(settings, request)["recnet"].data).test

    @staticmethod
    def _runs(settings: BaseModel, request: StudyRequest) -> dict[str, CsmriRun | SegmentationRun]:
        data = {"data": str(request.data)} if request.data is not None else {}
        return csmri.csmri_preset_runs(settings, data, {})  # type: ignore[arg-type]

    def evaluate(self, run_dir: Path, split: str = "test") -> Path:
        """Per-image validation metrics of the best checkpoint (:func:`csmri.evaluate_csmri_run`)."""
        return csmri.evaluate_csmri_run(run_dir, split)

    def render(self, out_dir: Path) -> str:
        """Tables, tests, figures and report section (:func:`csmri.render_csmri`)."""
        return csmri.render_csmri(out_dir)
