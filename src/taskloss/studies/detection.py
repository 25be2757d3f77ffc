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
   with DeLong's interval and d' with its normal-theory interval (over images), and every slice's
   score.
4. **Intervals and comparisons over subjects.** The study's declared families (each baseline with
   its methods) compare d' per test subject (each subject's d' from its own slices' scores), the
   mean difference with a t interval and test over subjects, Holm within a family
   (:func:`detection_comparisons`, ``results/detection_comparisons.csv``). With at least
   :data:`MIN_BOOTSTRAP_SUBJECTS` test subjects the table's intervals resample the subjects
   (:func:`taskloss.observers.grouped_bootstrap`, the per-slice scores held fixed: the template's
   fit is not redone in each resample); with fewer they are over images.

An ``observer:`` option of a RecNet run (:class:`ObserverTerm`) trains with the observer loss on
the same kind of disc.

``results/detection.json`` records the settings, the calibrated contrast and each method's scores;
:func:`detection_section` writes the report's table, the comparisons, and the methods where PSNR and
the CHO's d' order them differently from RecNet.
"""

import csv
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field
from statsmodels.stats.multitest import multipletests

from taskloss.config import StrictModel
from taskloss.data.kspace import complex_to_channels, undersample
from taskloss.data.signals import Signal, calibrate_contrast, cut_rois, dprime_for_auc, insert_signals
from taskloss.data.splits import subject_of
from taskloss.errors import InputError
from taskloss.losses import ObserverLoss
from taskloss.metrics.comparisons import subject_analysis, verdicts
from taskloss.observers import detectability, dprime, group_draws, grouped_bootstrap

ANATOMY_FRACTION = 0.1
"""A signal's centre pixel lies where the slice's magnitude exceeds this fraction of its maximum (the head)."""
DETECTION_FILE = "detection.json"
"""``results/detection.json``: the detection task's settings, contrast and every method's scores."""
OBSERVERS = ("cho", "npw")
GROUND_TRUTH = "ground_truth"
"""The method key of the reference images (the ground truth, signal inserted) in a detection record."""


class ObserverSettings(StrictModel):
    """The observers' ROI and the CHO's channels, shared by every detection task and the observer loss.

    Attributes:
        roi: the observers' ROI side in pixels (even or odd).
        channel_width: the Laguerre-Gauss channels' width in pixels.
        n_channels: the number of Laguerre-Gauss channels.
    """

    roi: int = Field(16, ge=8)
    channel_width: float = Field(4.0, gt=0)
    n_channels: int = Field(5, ge=1, le=10)

    def observer_options(self, observer: Literal["cho", "npw"]) -> dict[str, Any]:
        """Keyword arguments of :func:`taskloss.observers.detectability` for ``observer``."""
        if observer == "cho":
            return {"channels": "laguerre-gauss", "channel_width": self.channel_width, "n_channels": self.n_channels}
        return {}

    def loss(self) -> ObserverLoss:
        """The CHO observer loss on these channels (the observer-loss rows' training term)."""
        return ObserverLoss("cho", channels="laguerre-gauss", channel_width=self.channel_width,
                            n_channels=self.n_channels)

    def loss_name(self) -> str:
        """The observer loss in words, for a run's loss description."""
        return f"CHO observer loss (LG {self.n_channels} channels, width {self.channel_width:g} px)"


class DiscObserver(ObserverSettings):
    """The disc and the CHO shared by the csmri detection task and the observer loss.

    Attributes (besides :class:`ObserverSettings`' ROI and channels):
        size: the disc's radius in pixels.
        edge: the standard deviation of its edge blur in pixels.
    """

    size: float = Field(2.0, gt=0)
    edge: float = Field(0.7, gt=0)


class DetectionSettings(DiscObserver):
    """The ``detection:`` section of a csmri study file (module docstring).

    Attributes (besides :class:`DiscObserver`'s disc and CHO):
        target_auc: the CHO's AUC on the validation ground truth that sets the contrast, in (0.5, 1).
        seed: seed of the signal locations (and of the calibration's).
    """

    target_auc: float = Field(0.85, gt=0.5, lt=1.0)
    seed: int = Field(0, ge=0)

    def signal(self, contrast: float) -> Signal:
        """The disc of this section with ``contrast`` (peak value added to the [0, 1] magnitude)."""
        return Signal("disc", self.size, contrast, edge=self.edge)


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


def signal_batch(batch: Mapping[str, Any], signal: Signal, roi: int, seed: int,
                 rows: np.ndarray | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """``batch`` with ``signal`` inserted into the ground truth of ``rows`` (default: every slice) at
    locations drawn inside the head (:func:`head_masks`) from ``seed``, acquired again
    (:func:`present_batch`; a row without the signal is acquired exactly as the dataset did).

    Returns:
        The new batch and the (B, 2) signal centres (y, x), one per slice (drawn for every slice).
    """
    magnitudes = batch["magnitude"][:, 0].detach().cpu().double().numpy()
    inserted = insert_signals(magnitudes, signal, (roi, roi), seed=seed, mask=head_masks(magnitudes))
    signals = torch.from_numpy(inserted.present - inserted.absent).float()[:, None]
    if rows is not None:
        signals = signals * torch.from_numpy(rows).float()[:, None, None, None]
    return present_batch(batch, signals.to(batch["target"].device)), inserted.locations


class ObserverTerm(DiscObserver):
    """The ``observer:`` option of a csmri ``recnet`` run: the training loss becomes
    MSE + ``weight`` x :class:`~taskloss.losses.ObserverLoss`, balanced as the task term is
    (``loss_mode``, ``task_balance_batches``).

    In every training step a disc of ``contrast`` is inserted into each slice's ground truth at a
    location drawn inside the head (from the global torch generator, which checkpoints carry, so a
    resumed run draws the same), that signal-present slice is acquired again with the slice's mask
    and reconstructed too, and the CHO's d' on ``roi`` x ``roi`` ROIs of the outputs (present: the
    signal-present reconstructions, absent: the batch's own, at the same locations) is compared with
    its d' on the same ROIs of the ground truth. The pairs share their anatomy, so the mean difference
    the observer sees is the network's response to the signal and its covariance the anatomy's.

    Attributes (besides :class:`DiscObserver`'s disc and CHO):
        weight: the observer term's weight after balancing (MSE weighs 1).
        contrast: the disc's peak on the [0, 1] magnitude (the demo's detection calibration gave 0.092).
    """

    weight: float = Field(1.0, gt=0)
    contrast: float = Field(0.1, gt=0)

    def signal(self) -> Signal:
        """The disc inserted into the training targets."""
        return Signal("disc", self.size, self.contrast, edge=self.edge)

    def description(self) -> str:
        """One line for the run's loss description."""
        return (f"{self.loss_name()} of a disc of radius {self.size:g} px, contrast {self.contrast:g}, in "
                f"{self.roi} px ROIs")


def score_methods(settings: DetectionSettings, contrast: float, batches: Sequence[Mapping[str, Any]],
                  methods: Mapping[str, Callable[[dict[str, Any]], torch.Tensor]]) -> dict[str, Any]:
    """Reconstruct the signal-present and signal-absent test slices with every method and score them.

    Args:
        settings: the detection section.
        contrast: the calibrated contrast.
        batches: the test split in batches (the csmri dataset's items, collated, with their ``id``).
        methods: method key -> reconstructor (batch -> magnitude (B, 1, H, W)).

    Returns:
        The record of ``results/detection.json``: settings, contrast, class sizes, the ids of the
        signal-present and signal-absent slices, and per method and observer ``auc``, ``auc_ci``,
        ``snr``, ``snr_ci`` (over images) and every slice's score (``scores_present``, ``scores_absent``,
        in the order of the ids).
    """
    roi = (settings.roi, settings.roi)
    offset, rois = 0, {m: {"present": [], "absent": []} for m in methods}
    ids: dict[str, list[str]] = {"present": [], "absent": []}
    for batch in batches:
        n = len(batch["magnitude"])
        present = (offset + np.arange(n)) % 2 == 0
        # One pass per batch: the signal-present rows carry the signal, the others a zero signal, which
        # acquires them exactly as the dataset did (present_batch's undersample is the dataset's).
        mixed, locations = signal_batch(batch, settings.signal(contrast), settings.roi, settings.seed + offset,
                                        rows=present)
        for kind, rows in (("present", present), ("absent", ~present)):
            ids[kind] += [str(batch["id"][i]) for i in np.flatnonzero(rows)]
        for method, reconstruct in methods.items():
            estimate = reconstruct(mixed).float().cpu().numpy()[:, 0]
            for kind, rows in (("present", present), ("absent", ~present)):
                if rows.any():
                    rois[method][kind].append(cut_rois(estimate[rows], locations[rows], roi))
        offset += n
    return detection_record({method: (np.concatenate(parts["present"]), np.concatenate(parts["absent"]))
                             for method, parts in rois.items()}, settings, contrast, "disc",
                            (ids["present"], ids["absent"]))


def observer_scores(present: np.ndarray, absent: np.ndarray, settings: ObserverSettings, seed: int,
                    paired: bool = False) -> dict[str, dict[str, Any]]:
    """Every observer of :data:`OBSERVERS` on one method's signal-present and signal-absent ROIs (N, h, w):
    observer -> ``auc``, ``auc_ci``, ``snr``, ``snr_ci`` (over images) and each ROI's score
    (``scores_present``, ``scores_absent``), as ``detection.json`` keeps them; ``paired``: ``present[i]``
    and ``absent[i]`` are one scene (:func:`taskloss.observers.detectability`)."""
    found = {}
    for observer in OBSERVERS:
        result = detectability(present, absent, observer, seed=seed, paired=paired,
                               **settings.observer_options(observer))
        found[observer] = {"auc": result.auc, "auc_ci": list(result.auc_ci), "snr": result.snr,
                           "snr_ci": list(result.snr_ci), "scores_present": result.scores_present.tolist(),
                           "scores_absent": result.scores_absent.tolist()}
    return found


NO_DETECTION_COMPARISON = ("No declared comparison on d': a subject's d' needs at least 2 signal-present and 2 "
                           "signal-absent test images of that subject, and a comparison at least 2 such subjects.")
def detection_record(rois: Mapping[str, tuple[np.ndarray, np.ndarray]], settings: ObserverSettings,
                     contrast: float, signal: str, ids: tuple[list[str], list[str]], paired: bool = False
                     ) -> dict[str, Any]:
    """The record of ``results/detection.json`` (every study's): :func:`observer_scores` of every
    method's (present, absent) ROIs (N, h, w) as ``methods``, and as ``unscored`` (method -> reason) a
    method no observer can fit (e.g. a collapsed network whose ROIs do not vary).

    Args:
        rois: method -> (signal-present ROIs, signal-absent ROIs).
        settings: the observers' settings (``model_dump`` is recorded), their seed the split's.
        contrast: the signal's calibrated contrast.
        signal: "disc" or "nodule".
        ids: the image ids of the present and of the absent ROIs.
        paired: present and absent ROIs are the same images with and without the signal (recorded
            when True; the observers keep each pair in one half of their split).
    """
    scores, unscored = {}, {}
    for method, (present, absent) in rois.items():
        try:
            scores[method] = observer_scores(present, absent, settings, settings.seed, paired)
        except InputError as error:
            unscored[method] = str(error)
    return {"settings": settings.model_dump(), "contrast": contrast, "signal": signal, **({"paired": True} if paired
            else {}), "n_present": len(ids[0]), "n_absent": len(ids[1]), "ids_present": ids[0], "ids_absent": ids[1],
            "methods": scores, "unscored": unscored}


SUBJECT_RESAMPLES = 2000
"""Bootstrap resamples of the test subjects behind the detection table's intervals."""
MIN_BOOTSTRAP_SUBJECTS = 10
"""Fewest test subjects for the table's bootstrap intervals over subjects: n subjects give only
``C(2n - 1, n)`` distinct resamples (3 for 2 subjects, 126 for 5), and a percentile interval from so few
under-covers; below this the table shows the intervals over images."""
DETECTION_COMPARISONS_FILE = "detection_comparisons.csv"
"""``results/detection_comparisons.csv``: the declared detection comparisons (one row per method)."""


@dataclass(frozen=True)
class DetectionComparison:
    """One method against a baseline on an observer's d', paired over the test subjects.

    Attributes:
        family: the baseline's family (Holm within it).
        baseline: the method compared against.
        method: the method.
        observer: "cho" or "npw".
        measure: "snr" (d').
        difference: the mean over test subjects of the per-subject difference method - baseline of d'
            (each subject's d' from its own signal-present and signal-absent slices' scores).
        ci_low: lower end of its t interval over subjects
            (:func:`taskloss.metrics.comparisons.subject_analysis`, n_subjects - 1 df).
        ci_high: upper end.
        p: the paired t test's p over subjects.
        p_holm: Holm-adjusted within the family.
        verdict: ``higher``, ``lower`` or ``inconclusive`` (:func:`taskloss.metrics.comparisons.verdicts`).
        subjects: test subjects with at least 2 slices of each class.
    """

    family: str
    baseline: str
    method: str
    observer: str
    measure: str
    difference: float
    ci_low: float
    ci_high: float
    p: float
    p_holm: float
    verdict: str
    subjects: int


def _groups(record: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """The subject of every signal-present and every signal-absent slice."""
    return (np.array([subject_of(i) or i for i in record["ids_present"]]),
            np.array([subject_of(i) or i for i in record["ids_absent"]]))


def detection_subjects(record: Mapping[str, Any]) -> int:
    """The number of test subjects of a record with per-slice scores (0 without them)."""
    if "ids_present" not in record:
        return 0
    return len(np.unique(np.concatenate(_groups(record))))


def subject_resamples(record: Mapping[str, Any], observer: str = "cho", resamples: int = SUBJECT_RESAMPLES,
                      seed: int = 0) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Method -> (AUC, d') over the same ``resamples`` bootstrap resamples of the test subjects
    (:func:`taskloss.observers.grouped_bootstrap`: the per-slice scores held fixed); empty for a record
    without per-slice scores (made before they were kept)."""
    if "ids_present" not in record:
        return {}
    g_p, g_a = _groups(record)
    counts = group_draws(detection_subjects(record), resamples, seed)
    return {method: grouped_bootstrap(np.array(o[observer]["scores_present"]), np.array(o[observer]["scores_absent"]),
                                      g_p, g_a, counts=counts)
            for method, o in record["methods"].items()}


def subject_dprimes(record: Mapping[str, Any], method: str, observer: str = "cho") -> dict[str, float]:
    """Subject -> d' of ``method`` from that subject's slices' scores (:func:`taskloss.observers.dprime`),
    for subjects with at least 2 slices of each class whose scores vary."""
    g_p, g_a = _groups(record)
    scores = record["methods"][method][observer]
    present, absent = np.array(scores["scores_present"]), np.array(scores["scores_absent"])
    found = {}
    for subject in np.unique(np.concatenate([g_p, g_a])):
        try:
            found[str(subject)] = dprime(present[g_p == subject], absent[g_a == subject])[0]
        except InputError:  # fewer than 2 slices of a class, or scores that do not vary: no d'
            continue
    return found


def _interval(values: np.ndarray) -> tuple[float, float]:
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def detection_comparisons(record: Mapping[str, Any] | Sequence[Mapping[str, Any]],
                          families: Sequence[tuple[str, Sequence[str]]], observer: str = "cho",
                          alpha: float = 0.05) -> list[DetectionComparison]:
    """The declared comparisons on detectability: each family (baseline, methods) of the study's plans,
    every method's d' minus the baseline's per test subject (:func:`subject_dprimes`), the mean over
    subjects with its t interval and test (the subject is the unit, as in ``taskloss compare``), Holm
    within the family.

    ``record`` may be one ``detection.json`` or one per training seed (the replicates of a study run with
    ``seeds``): then each subject's difference is kept per seed and the interval is
    :func:`~taskloss.metrics.comparisons.subject_analysis`'s over subjects and seeds (a method is called
    only when every seed's difference has the sign of the mean).

    Empty for records without per-slice scores; a family whose baseline the records lack, or a method
    with fewer than 2 subjects, is skipped.
    """
    records = [record] if isinstance(record, Mapping) else list(record)
    if not records or any("ids_present" not in r for r in records):
        return []
    found: list[DetectionComparison] = []
    for baseline, members in families:
        methods = [m for m in members if all(m in r["methods"] for r in records)]
        if not all(baseline in r["methods"] for r in records) or not methods:
            continue
        base = [subject_dprimes(r, baseline, observer) for r in records]
        rows = []
        for method in methods:
            per_seed = [_differences(subject_dprimes(r, method, observer), b)
                        for r, b in zip(records, base, strict=True)]
            subjects = sorted(set().union(*per_seed))
            if len(subjects) < 2:
                continue
            table = np.array([[seed.get(s, np.nan) for seed in per_seed] for s in subjects])
            analysis = subject_analysis(table, alpha)
            rows.append((method, float(analysis.difference), float(analysis.ci_low), float(analysis.ci_high),
                         float(analysis.p), bool(analysis.seeds_agree), len(subjects)))
        if not rows:
            continue
        holm = multipletests([r[4] for r in rows], method="holm")[1]
        called = verdicts([r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], holm,
                          [r[5] for r in rows], alpha)
        found += [DetectionComparison(baseline, baseline, method, observer, "snr", difference, low, high, p,
                                      float(adjusted), str(verdict), n)
                  for (method, difference, low, high, p, _, n), adjusted, verdict
                  in zip(rows, holm, called, strict=True)]
    return found


def _differences(own: Mapping[str, float], base: Mapping[str, float]) -> dict[str, float]:
    """Subject -> d'(method) - d'(baseline), for subjects where both are defined."""
    return {s: own[s] - base[s] for s in own.keys() & base.keys()}


def write_detection_comparisons(path: Path, comparisons: Sequence[DetectionComparison]) -> None:
    """``results/detection_comparisons.csv``, one row per comparison (the fields of :class:`DetectionComparison`)."""
    names = [f.name for f in fields(DetectionComparison)]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=names)
        writer.writeheader()
        for comparison in comparisons:
            writer.writerow(asdict(comparison))


def _cell(value: float, interval: tuple[float, float], digits: int) -> str:
    return f"{value:.{digits}f} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def detection_section(record: Mapping[str, Any], labels: Callable[[str], str], psnr: Mapping[str, float],
                      comparisons: Sequence[DetectionComparison] = (), reference: str = "recnet",
                      task: str | None = None, families: Sequence[tuple[str, Sequence[str]]] | None = None
                      ) -> list[str]:
    """The report's lines: the detection table (bootstrap intervals over the test subjects where the
    record has per-slice scores of at least :data:`MIN_BOOTSTRAP_SUBJECTS` subjects, else the intervals
    over images), the declared comparisons, and where PSNR and the CHO's d' disagree with ``reference``.

    Args:
        record: ``results/detection.json``.
        labels: method key -> row label.
        psnr: method key -> mean test PSNR (the image metrics' table).
        comparisons: :func:`detection_comparisons` of the study's families.
        reference: the method the disagreements are stated against.
        task: the sentence that describes the signal and the images (default: the csmri disc's, from the
            record's settings).
        families: (baseline, methods) pairs: the disagreements are stated within each family against its
            baseline instead of every method against ``reference``.
    """
    s = record["settings"]
    subjects = detection_subjects(record)
    by_subject = subjects >= MIN_BOOTSTRAP_SUBJECTS
    resampled = {observer: subject_resamples(record, observer) for observer in OBSERVERS} if by_subject else {}
    few = (f"{subjects} test subjects are too few for a bootstrap over subjects (at least {MIN_BOOTSTRAP_SUBJECTS})"
           if subjects else "this record keeps no per-slice scores")
    unit = (f"95 % bootstrap intervals over the {subjects} test subjects (the per-slice scores held fixed; "
            "DeLong's and the normal-theory intervals over images are in detection.json)" if by_subject else
            f"95 % over images (DeLong for AUC, normal theory for d'), not over subjects: {few}")
    task = task or (f"a disc of radius {s['size']:g} px (edge {s['edge']:g} px), contrast {record['contrast']:.4g} "
                    "(set on the validation ground truth so that the CHO reaches AUC "
                    f"{s['target_auc']:g}), in {record['n_present']} test slices against {record['n_absent']} without")
    lines = [f"Detection task (model observers): {task}; {s['roi']} x {s['roi']} px ROIs at known locations; "
             f"CHO with {s['n_channels']} Laguerre-Gauss channels "
             f"(width {s['channel_width']:g} px) and NPW, templates fitted on one half and scored on the other. "
             f"Intervals: {unit}.", "",
             "| Method | CHO AUC | CHO d' | NPW AUC | NPW d' |", "|---|---|---|---|---|"]
    intervals: dict[str, tuple[float, float]] = {}
    order = [m for m in psnr if m in record["methods"]] + [m for m in record["methods"] if m not in psnr]
    for method in order:
        scores, cells = record["methods"][method], []
        for observer in OBSERVERS:
            o = scores[observer]
            auc_ci, snr_ci = ((_interval(resampled[observer][method][0]), _interval(resampled[observer][method][1]))
                              if by_subject else (tuple(o["auc_ci"]), tuple(o["snr_ci"])))
            if observer == "cho":
                intervals[method] = snr_ci
            cells += [_cell(o["auc"], auc_ci, 3), _cell(o["snr"], snr_ci, 2)]
        lines.append(f"| {labels(method)} | " + " | ".join(cells) + " |")
    unscored = record.get("unscored", {})
    lines += ["", *(f"- Not scored: {labels(method)} ({reason})." for method, reason in unscored.items())] \
        if unscored else []
    lines += ["", *comparison_lines(comparisons, labels)]
    if not comparisons and "ids_present" in record:
        lines += [NO_DETECTION_COMPARISON, ""]
    for baseline, members in families or [(reference, list(psnr))]:
        called = {c.method: c for c in comparisons if c.baseline == baseline}
        within = {m: psnr[m] for m in (baseline, *members) if m in psnr}
        lines += disagreements(record, labels, within, intervals, baseline, called)
    return lines


DETECTION_TRADEOFF = "tradeoff_detection.png"
"""``results/tradeoff_detection.png``: every method's PSNR against its CHO d' (a study's detection figure)."""


def report_detection(results: Path, labels: Callable[[str], str], psnr: Mapping[str, float],
                     families: Sequence[tuple[str, Sequence[str]]],
                     task: Callable[[Mapping[str, Any]], str] | None = None,
                     reference: str | None = None) -> tuple[dict[str, Any], list[str]] | None:
    """A study's detection report from ``results/detection.json``: the declared comparisons of ``families``
    (written to ``results/detection_comparisons.csv``) and the section of :func:`detection_section`, the
    disagreements with PSNR within each family, or against ``reference`` when it is given; ``task``
    makes the sentence on the signal from the record (default: the disc's).

    Returns:
        The record and the section's lines; None without a record.
    """
    path = results / DETECTION_FILE
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    comparisons = detection_comparisons(record, families)
    if comparisons:
        write_detection_comparisons(results / DETECTION_COMPARISONS_FILE, comparisons)
    sentence = None if task is None else task(record)
    if reference is not None:
        return record, detection_section(record, labels, psnr, comparisons, reference, task=sentence)
    return record, detection_section(record, labels, psnr, comparisons, task=sentence, families=families)


def comparison_lines(comparisons: Sequence[DetectionComparison], labels: Callable[[str], str],
                     seeds: int = 1) -> list[str]:
    """The declared detection comparisons as a table (empty without any); ``seeds`` > 1: pooled over
    that many training seeds."""
    if not comparisons:
        return []
    first = comparisons[0]
    unit = ("t interval over subjects" if seeds == 1 else
            f"over the {seeds} training seeds too: interval over subjects and seeds, called only when every seed "
            "agrees in sign")
    lines = [f"Declared comparisons on the CHO's d' (method - baseline: the mean over the {first.subjects} test "
             f"subjects of each subject's d' difference, {unit}, Holm within each baseline's family):", "",
             "| Method | Baseline | Δ d' [95 % CI] | p (Holm) | Verdict |", "|---|---|---|---|---|"]
    for c in comparisons:
        lines.append(f"| {labels(c.method)} | {labels(c.baseline)} | {c.difference:+.2f} [{c.ci_low:+.2f}, "
                     f"{c.ci_high:+.2f}] | {c.p_holm:.3g} | {c.verdict} |")
    return [*lines, ""]


def disagreements(record: Mapping[str, Any], labels: Callable[[str], str], psnr: Mapping[str, float],
                  intervals: Mapping[str, tuple[float, float]], reference: str = "recnet",
                  compared: Mapping[str, DetectionComparison] | None = None) -> list[str]:
    """Where PSNR and the CHO's d' move in opposite directions against ``reference``: one line per method
    whose difference is settled, one line naming those where it is not, or one line saying they agree
    everywhere. Settled: the declared comparison with ``reference`` (``compared``, method -> comparison)
    called it; for a method without one, its d' interval (``intervals``, method -> (low, high)) lies
    apart from the reference's."""
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
        comparison = (compared or {}).get(method)
        if comparison is not None and comparison.verdict in ("higher", "lower"):
            settled.append(f"- PSNR and detectability disagree: {labels(method)} has {d_psnr:+.2f} dB PSNR but "
                           f"{d_snr:+.2f} CHO d' against {labels(reference)} (per subject {comparison.difference:+.2f} "
                           f"[{comparison.ci_low:+.2f}, {comparison.ci_high:+.2f}], Holm p {comparison.p_holm:.3g}).")
        elif comparison is None and (intervals[method][0] > intervals[reference][1]
                                     or intervals[method][1] < intervals[reference][0]):
            settled.append(f"- PSNR and detectability disagree: {labels(method)} has {d_psnr:+.2f} dB PSNR but "
                           f"{d_snr:+.2f} CHO d' against {labels(reference)}, the d' intervals apart.")
        else:
            unsettled.append(f"{labels(method)} ({d_psnr:+.2f} dB, d' {d_snr:+.2f})")
    if unsettled:
        settled.append(f"- PSNR and the CHO's d' move in opposite directions against {labels(reference)} for "
                       f"{'; '.join(unsettled)}, but not settled (the comparison is inconclusive, or the d' "
                       "intervals overlap).")
    return settled or [f"- PSNR and the CHO's d' order every method the same way against {labels(reference)}."]
