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
from taskloss.studies.common import train_run, validate_config
from taskloss.studies.csmri_runs import CsmriRun
from taskloss.training import FitResult


class Mr2XrayStudy(Study):
    """MR -> X-ray projection synthesis (Stimpel et al. 2017): CRN, UNet, ResNet x perceptual, l1."""

    name = mr2xray.MR2XRAY_STUDY
    preset_model = mr2xray.Mr2XrayPreset
    title = "MR -> X-ray projection synthesis: CRN, UNet, ResNet x perceptual, l1 (MAE, SSIM, PSNR)"

    def run(self, out_dir: Path, request: StudyRequest) -> Path:
        """Train and score every run of the preset, then render (:func:`mr2xray.run_mr2xray`)."""
        self.check_options(request)
        return mr2xray.run_mr2xray(request.preset, out_dir, request.data, request.devices, request.accelerator)

    def train(self, config: Mapping[str, Any], run_dir: Path, source: str) -> FitResult:
        """One run (:func:`~taskloss.studies.common.train_run` of a :class:`mr2xray.Mr2XrayRun`)."""
        return train_run(validate_config(mr2xray.Mr2XrayRun, config, source), run_dir)

    def evaluate(self, run_dir: Path, split: str = "test") -> Path:
        """Per-image MAE, SSIM, PSNR, HFEN of the best checkpoint (:func:`mr2xray.evaluate_mr2xray_run`)."""
        return mr2xray.evaluate_mr2xray_run(run_dir, split)

    def render(self, out_dir: Path) -> str:
        """Tables, tests, figure and report section (:func:`mr2xray.render_mr2xray`)."""
        return mr2xray.render_mr2xray(out_dir)


class CsmriStudy(Study):
    """Compressed-sensing MRI (Seitzer et al. 2018): zero-filled, DLMRI, DAGAN, RecNet, refinement."""

    name = csmri.CSMRI_STUDY
    preset_model = csmri.CsmriPreset
    title = ("Compressed-sensing MRI: zero-filled, DLMRI, DAGAN, RecNet, RecNet + refinement "
             "(PSNR, SSIM, SIS, MOS)")
    OPTIONS = ("acceleration",)

    def run(self, out_dir: Path, request: StudyRequest) -> Path:
        """Train the runs, score every method and render (:func:`csmri.run_csmri`).

        ``request.options`` may hold ``acceleration`` (the undersampling factor).
        """
        self.check_options(request, self.OPTIONS)
        return csmri.run_csmri(request.preset, out_dir, request.data, request.devices, request.accelerator,
                               **request.options)

    def train(self, config: Mapping[str, Any], run_dir: Path, source: str) -> FitResult:
        """One run (:func:`~taskloss.studies.common.train_run` of a :class:`~taskloss.studies.csmri_runs.CsmriRun`)."""
        return train_run(validate_config(CsmriRun, config, source), run_dir)

    def evaluate(self, run_dir: Path, split: str = "test") -> Path:
        """Per-image validation metrics of the best checkpoint (:func:`csmri.evaluate_csmri_run`)."""
        return csmri.evaluate_csmri_run(run_dir, split)

    def render(self, out_dir: Path) -> str:
        """Tables, tests, figures and report section (:func:`csmri.render_csmri`)."""
        return csmri.render_csmri(out_dir)
