"""A nodule-detection task in the mr2xray study, scored by model observers on the synthesised X-rays.

The csmri study's detection task (:mod:`taskloss.studies.detection`) adds a disc to an image; here the
signal is anatomy: a spherical nodule in the subject's 3-D head phantom, so the MR projection (the
networks' input) and the X-ray projection (their target) both show it, each through its own physics,
and a network can only hand it on to the X-ray it synthesises if it carries the MR's small feature.
With ``detection:`` in an mr2xray study file:

1. **The nodule.** A sphere of radius ``radius_mm`` centred on a white-matter voxel drawn per subject
   (:func:`taskloss.data.mr2xray.nodule_site`); inside it the MR signal and the attenuation are the
   surrounding tissue's times ``1 + c`` (a denser, brighter nodule; one contrast ``c`` for both
   modalities). Its line integrals along the data set's rays are added to the measured (noisy) MR and
   X-ray line integrals of each view (:func:`taskloss.data.mr2xray.view_integrals`,
   :func:`~taskloss.data.mr2xray.finish_views`), as lesion-insertion studies add a lesion's projection to
   raw data: the same phantom, rays and noise as the data set, plus the nodule; its centre in each view
   is where its projected chord is longest.
2. **Contrast.** ``c`` is set on the real X-rays of the training and validation subjects (never the
   test split; no network is involved, so the training subjects add views without any selection on
   them) so that the CHO reaches ``target_auc`` there (Brent's method on d' = sqrt(2) Phi^-1(AUC)):
   the ground truth is not at ceiling. The validation split alone (3 subjects in the demo, 24 views)
   moved the test AUC far from the target.
3. **Signal-present and signal-absent views.** Every test view twice: with the nodule and noise of its
   own (drawn from another stream, :data:`NODULE_NOISE_STREAM`), and as the data set has it, each with
   its ROI at the nodule's projected centre. The pair shares the anatomy (background known exactly
   per view, varying across views), so the classes differ in the signal and the noise alone; the
   observers keep each pair in one half of their 2-fold split (``paired``), so no template scores a
   view whose twin it was fitted to. (A first version used even against odd angle positions; the
   anatomy then differed between the classes, and on the small preset the ground truth's test AUC
   fell to 0.60 against the 0.85 it was calibrated to.)
4. **Scoring.** Every run's network synthesises the X-rays of both classes from their MR
   projections; the real X-rays are the upper reference. ROIs of ``roi`` px are scored by the CHO
   (Laguerre-Gauss) and the NPW as in csmri (:func:`taskloss.studies.detection.observer_scores`:
   templates fitted on one half, scored on the other), and the declared families (each network's
   losses against its ℓ1 run) compare d' per test subject with Holm
   (:func:`~taskloss.studies.detection.detection_comparisons`).

``results/detection.json`` has the record's usual keys (settings, contrast, ids, every view's scores).
"""

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from pydantic import Field
from scipy import optimize

from taskloss.data.fields import generator_for
from taskloss.data.mr2xray import Mr2XrayConfig, ViewIntegrals, finish_views, view_integrals
from taskloss.data.signals import cut_rois, dprime_for_auc
from taskloss.data.splits import split_subjects
from taskloss.errors import InputError
from taskloss.observers import detectability
from taskloss.studies.detection import GROUND_TRUTH, ObserverSettings, detection_record

CONTRAST_BRACKET = (1e-3, 4.0)
"""The relative contrasts c between which the calibration searches (from a nodule 0.1 % denser to one 5 times
as dense as its surroundings)."""
NODULE_NOISE_STREAM = 3
"""``generator_for(seed, subject, NODULE_NOISE_STREAM)`` draws the noise of a subject's views with the nodule
(stream 1 is the data set's noise, 2 the nodule's site)."""
CONTRAST_TOLERANCE = 1e-3
"""Relative tolerance of the calibrated contrast."""


class NoduleDetection(ObserverSettings):
    """The ``detection:`` section of an mr2xray study file (module docstring).

    Attributes (besides :class:`~taskloss.studies.detection.ObserverSettings`' ROI and channels):
        radius_mm: the nodule's radius, mm.
        target_auc: the CHO's AUC on the validation subjects' real X-rays that sets the contrast, in (0.5, 1).
        seed: seed of the observers' template/score split.
    """

    radius_mm: float = Field(8.0, gt=0)
    target_auc: float = Field(0.85, gt=0.5, lt=1.0)
    seed: int = Field(0, ge=0)


class NoduleViews:
    """One split's views twice: with the nodule and their own noise (signal-present), and as the data set
    has them (signal-absent), in the same order, so that ``present[i]`` and ``absent[i]`` are one view.

    Attributes:
        ids: view ids as the data set names them (``s003_a045.0``), in subject then angle order (N).
        present: (2 N,) bool: the first N images (of :meth:`images`) show the nodule, the last N do not.
        locations: (2 N, 2) float ROI centres (y, x) for ``roi`` px ROIs (a pixel's centre for odd
            ROIs, its lower-right corner for even ones, as :func:`cut_rois` centres them).
    """

    def __init__(self, config: Mr2XrayConfig, subjects: Sequence[int], settings: NoduleDetection) -> None:
        self.config = config
        self.integrals: list[ViewIntegrals] = [view_integrals(config, s, settings.radius_mm) for s in subjects]
        self.noise = [generator_for(config.seed, s, NODULE_NOISE_STREAM).get_state() for s in subjects]
        self.ids = [f"s{s:03d}_a{a:05.1f}" for s in subjects for a in config.angle_list()]
        self.present = np.repeat([True, False], len(self.ids))
        offset = 0.5 if settings.roi % 2 == 0 else 0.0
        centres = np.concatenate([i.nodule_px.double().numpy() for i in self.integrals if i.nodule_px is not None])
        self.locations = np.concatenate([centres, centres]) + offset
        without = [finish_views(config, integrals)[:2] for integrals in self.integrals]
        self._without = tuple(torch.cat([w[k] for w in without]) for k in (0, 1))

    def images(self, contrast: float) -> tuple[torch.Tensor, torch.Tensor]:
        """MR projections and real X-rays (2 N, 1, S, S) in [0, 1]: the views with the nodule of ``contrast``
        (each subject's other noise, :data:`NODULE_NOISE_STREAM`), then the data set's views."""
        present = [finish_views(self.config, integrals, contrast, noise)[:2]
                   for integrals, noise in zip(self.integrals, self.noise, strict=True)]
        mr = torch.cat([*(p[0] for p in present), self._without[0]])
        return mr, torch.cat([*(p[1] for p in present), self._without[1]])

    def rois(self, images: torch.Tensor | np.ndarray, roi: int) -> tuple[np.ndarray, np.ndarray]:
        """The signal-present and signal-absent ROIs (N, roi, roi) of images (2 N, 1, S, S), pairs in order."""
        array = images.detach().double().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        cut = cut_rois(array[:, 0], self.locations, (roi, roi))
        return cut[self.present], cut[~self.present]


class NoduleObserverTerm(ObserverSettings):
    """The observer loss of an mr2xray run (loss ``observer``): ℓ1 + ``weight`` x
    :class:`~taskloss.losses.ObserverLoss` (the CHO), each term balanced over the first ``balance_batches``.

    Every training view also exists with a nodule of ``radius_mm`` and relative contrast ``contrast`` in
    the subject's phantom (:func:`training_nodules`, made once when the run starts); a step synthesises
    the batch and its nodule versions, and the CHO's d' on the outputs' ROIs (present: the nodule
    versions', absent: the batch's own, at the same places) is compared with its d' on the same ROIs of
    the real X-rays. The pairs share their anatomy, so what the observer sees is the network's response
    to the nodule.

    Attributes (besides :class:`~taskloss.studies.detection.ObserverSettings`' ROI and channels):
        weight: the observer term's weight after balancing (ℓ1 weighs 1).
        radius_mm: the nodule's radius, mm.
        contrast: its relative contrast c (MR signal and attenuation times 1 + c; the demo's detection
            calibration gave 0.41).
        balance_batches: the first batches whose means balance the two terms.
    """

    weight: float = Field(1.0, gt=0)
    radius_mm: float = Field(8.0, gt=0)
    contrast: float = Field(0.4, gt=0)
    balance_batches: int = Field(5, ge=1)

    def description(self) -> str:
        """One line for the run's loss description."""
        return (f"{self.loss_name()} of a nodule of radius {self.radius_mm:g} mm, contrast {self.contrast:g}, in "
                f"{self.roi} px ROIs")


def training_nodules(config: Mr2XrayConfig, term: NoduleObserverTerm) -> dict[str, tuple[torch.Tensor, torch.Tensor,
                                                                                              np.ndarray]]:
    """Every training view with the nodule of ``term``: view id -> (MR (1, S, S), X-ray (1, S, S), ROI centre (2,)).

    The nodule's site is the subject's (:func:`taskloss.data.mr2xray.nodule_site`), inserted as in the
    detection task (:func:`~taskloss.data.mr2xray.finish_views`); only training subjects are simulated.
    """
    views: dict[str, tuple[torch.Tensor, torch.Tensor, np.ndarray]] = {}
    offset = 0.5 if term.roi % 2 == 0 else 0.0
    for subject in split_of(config, "train"):
        integrals = view_integrals(config, subject, term.radius_mm)
        mr, xray, _ = finish_views(config, integrals, term.contrast)
        assert integrals.nodule_px is not None
        for k, angle in enumerate(config.angle_list()):
            views[f"s{subject:03d}_a{angle:05.1f}"] = (mr[k], xray[k], integrals.nodule_px[k].double().numpy() + offset)
    return views


def split_of(config: Mr2XrayConfig, *splits: str) -> list[int]:
    """The subjects of ``splits`` ("train", "val", "test"), as the data set splits them, in order."""
    found = split_subjects(range(config.subjects), config.seed, config.val_fraction, config.test_fraction)
    return sorted(subject for subject, name in found.items() if name in splits)


def calibrate_nodule(config: Mr2XrayConfig, settings: NoduleDetection) -> float:
    """The contrast c at which the CHO reaches ``settings.target_auc`` on the real X-rays of the training and
    validation subjects.

    Raises:
        InputError: fewer than 4 such views of each class, or a target the CHO does not reach within
            :data:`CONTRAST_BRACKET`.
    """
    views = NoduleViews(config, split_of(config, "train", "val"), settings)
    if len(views.ids) < 4:
        raise InputError(f"the training and validation splits have {len(views.ids)} views; the nodule's contrast "
                         "needs at least 4: use more subjects or angles")
    target = dprime_for_auc(settings.target_auc)

    def deficit(contrast: float) -> float:
        present, absent = views.rois(views.images(contrast)[1], settings.roi)
        return detectability(present, absent, "cho", seed=settings.seed, paired=True,
                             **settings.observer_options("cho")).snr - target

    low, high = CONTRAST_BRACKET
    if deficit(high) < 0:
        raise InputError(f"the CHO does not reach AUC {settings.target_auc:g} on the training and validation X-rays "
                         f"with a nodule "
                         f"{high:g} times denser than its surroundings; use a larger radius_mm or a lower target_auc")
    if deficit(low) >= 0:
        return low
    return float(optimize.brentq(deficit, low, high, xtol=CONTRAST_TOLERANCE * low, rtol=CONTRAST_TOLERANCE))


def score_nodules(config: Mr2XrayConfig, settings: NoduleDetection, contrast: float,
                  methods: Mapping[str, Callable[[torch.Tensor], torch.Tensor]]) -> dict[str, Any]:
    """Synthesise the test views with and without the nodule with every method and score them.

    Args:
        config: the data settings.
        settings: the detection section.
        contrast: the calibrated contrast.
        methods: run name -> synthesiser (MR projections (B, 1, S, S) -> X-rays (B, 1, S, S) in [0, 1]).

    Returns:
        The record of ``results/detection.json``, with the real X-rays as method :data:`GROUND_TRUTH`; a
        method the observers cannot score (its ROIs do not vary, ...) is left out of ``methods`` and named
        in ``unscored`` with the reason.
    """
    views = NoduleViews(config, split_of(config, "test"), settings)
    mr, xray = views.images(contrast)
    outputs = {GROUND_TRUTH: xray}
    with torch.no_grad():
        outputs.update({name: synthesise(mr) for name, synthesise in methods.items()})
    return detection_record({name: views.rois(images, settings.roi) for name, images in outputs.items()},
                            settings, contrast, "nodule", (views.ids, views.ids), paired=True)


def nodule_task(record: Mapping[str, Any]) -> str:
    """The report's sentence on the signal and the views (:func:`~taskloss.studies.detection.detection_section`)."""
    s = record["settings"]
    return (f"a spherical nodule of radius {s['radius_mm']:g} mm in the 3-D phantom, its MR signal and attenuation "
            f"{100 * record['contrast']:.3g} % above its surroundings' (set on the training and validation "
            f"subjects' real X-rays so that the CHO reaches AUC {s['target_auc']:g}); each of the "
            f"{record['n_present']} test views with the nodule (and noise of its own) and as the data set has it, the "
            "pair kept in one half of the observers' split; the X-rays each network synthesises from the MR "
            "projections")

