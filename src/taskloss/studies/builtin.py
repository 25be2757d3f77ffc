"""The two studies of the source document behind the :class:`~taskloss.studies.base.Study` interface.

Their settings are built-in study files shipped in the package (``studies/presets/<study>-<scale>.yaml``,
read into :class:`~taskloss.studies.mr2xray.Mr2XrayPreset` and :class:`~taskloss.studies.csmri.CsmriPreset`);
their steps live in :mod:`taskloss.studies.mr2xray` and :mod:`taskloss.studies.csmri` (the projection
simulator, RecNet's two stages, DLMRI, SIS, the source's reference tables); these classes expose them
through the one interface the command line and the report use.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taskloss.studies import csmri, mr2xray
from taskloss.studies.base import Study, StudyRequest
from taskloss.training import FitResult


class Mr2XrayStudy(Study):
    """MR -> X-ray projection synthesis (Stimpel et al. 2017): CRN, UNet, ResNet x perceptual, l1."""

    name = mr2xray.STUDY
    title = "MR -> X-ray projection synthesis: CRN, UNet, ResNet x perceptual, l1 (MAE, SSIM, PSNR)"

    def run(self, out_dir: Path, request: StudyRequest) -> Path:
        """Train and score the six runs of the preset, then render (:func:`mr2xray.run_study`)."""
        self.check_options(request)
        return mr2xray.run_study(request.preset, out_dir, request.data, request.devices, request.accelerator)

    def train(self, config: Mapping[str, Any], run_dir: Path, source: str) -> FitResult:
        """One run (:func:`mr2xray.train_config`)."""
        return mr2xray.train_config(dict(config), run_dir, source)

    def evaluate(self, run_dir: Path, split: str = "test") -> Path:
        """Per-image MAE, SSIM, PSNR, HFEN of the best checkpoint (:func:`mr2xray.evaluate_run`)."""
        return mr2xray.evaluate_run(run_dir, split)

    def render(self, out_dir: Path) -> str:
        """Tables, tests, figure and report section (:func:`mr2xray.render_results`)."""
        return mr2xray.render_results(out_dir)


class CsmriStudy(Study):
    """Compressed-sensing MRI (Seitzer et al. 2018): zero-filled, DLMRI, DAGAN, RecNet, refinement."""

    name = csmri.STUDY
    title = ("Compressed-sensing MRI: zero-filled, DLMRI, DAGAN, RecNet, RecNet + refinement "
             "(PSNR, SSIM, SIS, MOS)")
    OPTIONS = ("acceleration",)

    def run(self, out_dir: Path, request: StudyRequest) -> Path:
        """Train the runs, score every method and render (:func:`csmri.run_study`).

        ``request.options`` may hold ``acceleration`` (the undersampling factor).
        """
        self.check_options(request, self.OPTIONS)
        return csmri.run_study(request.preset, out_dir, request.data, request.devices, request.accelerator,
                               **request.options)

    def train(self, config: Mapping[str, Any], run_dir: Path, source: str) -> FitResult:
        """One run (:func:`csmri.train_config`)."""
        return csmri.train_config(dict(config), run_dir, source)

    def evaluate(self, run_dir: Path, split: str = "test") -> Path:
        """Per-image validation metrics of the best checkpoint (:func:`csmri.evaluate_run`)."""
        return csmri.evaluate_run(run_dir, split)

    def render(self, out_dir: Path) -> str:
        """Tables, tests, figures and report section (:func:`csmri.render_results`)."""
        return csmri.render_results(out_dir)
