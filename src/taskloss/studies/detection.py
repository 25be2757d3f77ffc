"""A signal-detection task in the csmri study, scored by model observers (task-based image quality).

Task-based image quality in its medical-imaging sense (Barrett & Myers, Foundations of Image
Science, 2004, ch. 14) is how well an observer detects a signal in the images a method produces.
With ``detection:`` in a csmri study file, every method is scored that way on the test split:

1. **Signal and contrast.** A low-contrast disc (``taskloss.data.signals.Signal``, radius
   ``size`` px, edge blur ``edge`` px) whose contrast is calibrated on the *validation* split's
   ground-truth images (never the test split) so that the channelized Hotelling observer (CHO,
   Laguerre-Gauss channels) reaches ``target_auc`` on them (``calibrate_contrast`` with
   ``d' = sqrt(2) Phi^-1(AUC)``): not at ceiling, so a method can lose or keep detectability.
2. **Signal-present and signal-absent test images.** The test slices alternate: even positions
   get the signal, odd ones stay as they are, so the two classes have independent anatomy and
   noise. A signal-present slice is the slice's complex ground truth plus the signal, acquired with
   the slice's own mask exactly as the simulator acquires every slice
   (:func:`taskloss.data.kspace.undersample`); its location is drawn inside the head (centre pixel
   above :data:`ANATOMY_FRACTION` of the slice's maximum), and every absent slice gets a drawn
   location too (the ROI the observer looks at).
3. **Every method reconstructs both classes** (the same reconstructors as the image metrics: zero
   filling, DLMRI, DAGAN, RecNet, the refinement and the task-loss runs, and the ground truth as the
   upper reference), and ROIs of ``roi`` x ``roi`` px centred on the locations are scored by the CHO
   and the non-prewhitening matched filter (NPW) of :func:`taskloss.observers.detectability`:
   templates estimated on one half and scored on the other (2-fold, no resubstitution bias), AUC
   with DeLong's interval and d' with its normal-theory interval. The intervals are over images:
   the template is fitted across images, so a subject-level interval would need the fit inside a
   resampling of subjects (not done; say so where it matters).

``results/detection.json`` records the settings, the calibrated contrast and each method's scores;
:func:`detection_section` writes the report's table and the methods where PSNR and the CHO's d'
order them differently from RecNet.
"""

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from taskloss.config import StrictModel
from taskloss.data.kspace import complex_to_channels, undersample
from taskloss.data.signals import Signal, calibrate_contrast, cut_rois, dprime_for_auc, insert_signals
from taskloss.observers import detectability

ANATOMY_FRACTION = 0.1
"""A signal's centre pixel lies where the slice's magnitude exceeds this fraction of its maximum (the head)."""
DETECTION_FILE = "detection.json"
"""``results/detection.json``: the detection task's settings, contrast and every method's scores."""
OBSERVERS = ("cho", "npw")


class DetectionSettings(StrictModel):
    """The ``detection:`` section of a csmri study file (module docstring).

    Attributes:
        size: the disc's radius in pixels.
        edge: the standard deviation of its edge blur in pixels.
        target_auc: the CHO's AUC on the validation ground truth that sets the contrast, in (0.5, 1).
        roi: the observers' ROI side in pixels (even or odd).
        channel_width: the Laguerre-Gauss channels' width in pixels.
        n_channels: the number of Laguerre-Gauss channels.
        seed: seed of the signal locations (and of the calibration's).
    """

    size: float = Field(2.0, gt=0)
    edge: float = Field(0.7, gt=0)
    target_auc: float = Field(0.85, gt=0.5, lt=1.0)
    roi: int = Field(16, ge=8)
    channel_width: float = Field(4.0, gt=0)
    n_channels: int = Field(5, ge=1, le=10)
    seed: int = Field(0, ge=0)

    def signal(self, contrast: float) -> Signal:
        """The disc of this section with ``contrast`` (peak value added to the [0, 1] magnitude)."""
        return Signal("disc", self.size, contrast, edge=self.edge)

    def observer_options(self, observer: Literal["cho", "npw"]) -> dict[str, Any]:
        """Keyword arguments of :func:`taskloss.observers.detectability` for ``observer``."""
        if observer == "cho":
            return {"channels": "laguerre-gauss", "channel_width": self.channel_width, "n_channels": self.n_channels}
        return {}


def head_masks(magnitudes: np.ndarray) -> np.ndarray:
    """(N, H, W) booleans: where each slice's magnitude exceeds :data:`ANATOMY_FRACTION` of its maximum."""
    peaks = magnitudes.reshape(len(magnitudes), -1).max(axis=1)
    return magnitudes > ANATOMY_FRACTION * peaks[:, None, None]


def calibrate(settings: DetectionSettings, validation_magnitudes: np.ndarray) -> float:
    """The contrast at which the CHO reaches ``settings.target_auc`` on the validation ground truth (N, H, W)."""
    roi = (settings.roi, settings.roi)
    return calibrate_contrast(validation_magnitudes, settings.signal(1.0), roi, dprime_for_auc(settings.target_auc),
                              observer="cho", seed=settings.seed, mask=head_masks(validation_magnitudes),
                              **settings.observer_options("cho"))


def present_batch(batch: Mapping[str, Any], signals: torch.Tensor) -> dict[str, Any]:
    """The batch of csmri test slices with ``signals`` (B, 1, H, W), real, added to the complex ground
    truth and acquired again with each slice's mask (:func:`undersample`): every key a method reads."""
    target = batch["target"]
    image = torch.complex(target[:, 0], target[:, 1])[:, None] + signals.to(target.dtype)
    zero_filled, kspace = undersample(image, batch["mask"])
    return {**batch, "input": complex_to_channels(zero_filled), "kspace": kspace, "target": complex_to_channels(image),
            "magnitude": image.abs()}


def score_methods(settings: DetectionSettings, contrast: float, batches: Sequence[Mapping[str, Any]],
                  methods: Mapping[str, Callable[[dict[str, Any]], torch.Tensor]]) -> dict[str, Any]:
    """Reconstruct the signal-present and signal-absent test slices with every method and score them.

    Args:
        settings: the detection section.
        contrast: the calibrated contrast.
        batches: the test split in batches (the csmri dataset's items, collated).
        methods: method key -> reconstructor (batch -> magnitude (B, 1, H, W)).

    Returns:
        The record of ``results/detection.json``: settings, contrast, class sizes, and per method and
        observer ``auc``, ``auc_ci``, ``snr``, ``snr_ci``.
    """
    roi = (settings.roi, settings.roi)
    offset, rois = 0, {m: {"present": [], "absent": []} for m in methods}
    for batch in batches:
        magnitudes = batch["magnitude"][:, 0].cpu().double().numpy()
        n = len(magnitudes)
        present = (offset + np.arange(n)) % 2 == 0
        inserted = insert_signals(magnitudes, settings.signal(contrast), roi, seed=settings.seed + offset,
                                  mask=head_masks(magnitudes))
        signals = torch.from_numpy(inserted.present - inserted.absent).float()[:, None] * torch.from_numpy(
            present).float()[:, None, None, None]
        # One pass per batch: the signal-present rows carry the signal, the others a zero signal, which
        # acquires them exactly as the dataset did (present_batch's undersample is the dataset's).
        mixed = present_batch(batch, signals.to(batch["target"].device))
        for method, reconstruct in methods.items():
            estimate = reconstruct(mixed).float().cpu().numpy()[:, 0]
            for kind, rows in (("present", present), ("absent", ~present)):
                if rows.any():
                    rois[method][kind].append(cut_rois(estimate[rows], inserted.locations[rows], roi))
        offset += n
    scores: dict[str, Any] = {}
    for method, parts in rois.items():
        present_rois, absent_rois = np.concatenate(parts["present"]), np.concatenate(parts["absent"])
        scores[method] = {}
        for observer in OBSERVERS:
            result = detectability(present_rois, absent_rois, observer, seed=settings.seed,
                                   **settings.observer_options(observer))
            scores[method][observer] = {"auc": result.auc, "auc_ci": list(result.auc_ci), "snr": result.snr,
                                        "snr_ci": list(result.snr_ci)}
    first = next(iter(rois.values()))
    return {"settings": settings.model_dump(), "contrast": contrast, "signal": "disc",
            "n_present": int(sum(len(r) for r in first["present"])),
            "n_absent": int(sum(len(r) for r in first["absent"])), "methods": scores}


def detection_section(record: Mapping[str, Any], labels: Callable[[str], str], psnr: Mapping[str, float],
                      reference: str = "recnet") -> list[str]:
    """The report's lines: the detection table and where PSNR and the CHO's d' disagree with ``reference``.

    Args:
        record: ``results/detection.json``.
        labels: method key -> row label.
        psnr: method key -> mean test PSNR (the image metrics' table).
        reference: the method the disagreements are stated against.
    """
    s = record["settings"]
    lines = [f"Detection task (model observers): a disc of radius {s['size']:g} px (edge {s['edge']:g} px), contrast "
             f"{record['contrast']:.4g} (set on the validation ground truth so that the CHO reaches AUC "
             f"{s['target_auc']:g}), in {record['n_present']} test slices against {record['n_absent']} without; "
             f"{s['roi']} x {s['roi']} px ROIs at known locations; CHO with {s['n_channels']} Laguerre-Gauss channels "
             f"(width {s['channel_width']:g} px) and NPW, templates fitted on one half and scored on the other. "
             "Intervals are 95 % over images (DeLong for AUC), not over subjects.", "",
             "| Method | CHO AUC | CHO d' | NPW AUC | NPW d' |", "|---|---|---|---|---|"]
    order = [m for m in psnr if m in record["methods"]] + [m for m in record["methods"] if m not in psnr]
    for method in order:
        scores, cells = record["methods"][method], []
        for observer in OBSERVERS:
            o = scores[observer]
            cells += [f"{o['auc']:.3f} [{o['auc_ci'][0]:.3f}, {o['auc_ci'][1]:.3f}]",
                      f"{o['snr']:.2f} [{o['snr_ci'][0]:.2f}, {o['snr_ci'][1]:.2f}]"]
        lines.append(f"| {labels(method)} | " + " | ".join(cells) + " |")
    lines += ["", *disagreements(record, labels, psnr, reference)]
    return lines


def disagreements(record: Mapping[str, Any], labels: Callable[[str], str], psnr: Mapping[str, float],
                  reference: str = "recnet") -> list[str]:
    """Where PSNR and the CHO's d' move in opposite directions against ``reference``: one line per method
    whose d' interval lies apart from the reference's, one line naming those whose intervals overlap
    (not settled), or one line saying they agree everywhere."""
    methods = record["methods"]
    if reference not in methods or reference not in psnr:
        return []
    base = methods[reference]["cho"]
    settled, unsettled = [], []
    for method in psnr:
        if method in (reference, "ground_truth") or method not in methods:
            continue
        cho = methods[method]["cho"]
        d_psnr, d_snr = psnr[method] - psnr[reference], cho["snr"] - base["snr"]
        if not (d_psnr * d_snr < 0 and math.isfinite(d_snr)):
            continue
        if cho["snr_ci"][0] > base["snr_ci"][1] or cho["snr_ci"][1] < base["snr_ci"][0]:
            settled.append(f"- PSNR and detectability disagree: {labels(method)} has {d_psnr:+.2f} dB PSNR but "
                           f"{d_snr:+.2f} CHO d' against {labels(reference)}, the d' intervals apart.")
        else:
            unsettled.append(f"{labels(method)} ({d_psnr:+.2f} dB, d' {d_snr:+.2f})")
    if unsettled:
        settled.append(f"- PSNR and the CHO's d' move in opposite directions against {labels(reference)} for "
                       f"{'; '.join(unsettled)}, but the d' intervals overlap: not a settled difference.")
    return settled or [f"- PSNR and the CHO's d' order every method the same way against {labels(reference)}."]
