"""Signals for detection tasks: a low-contrast lesion or line inserted at known locations (signal known exactly).

A detection task needs every image twice: with the signal (signal-present) and without it
(signal-absent). :func:`insert_signals` adds a :class:`Signal` to each image at a location drawn from
a seed (or given), so that an ROI of ``roi_size`` centred on the signal lies inside the image;
:func:`cut_rois` cuts those ROIs, ready for :func:`taskloss.observers.detectability`, whose CHO
channels are centred on the ROI's centre ``((h - 1) / 2, (w - 1) / 2)``: on an even side the signal
sits between two pixels, as the channels do.

Signal shapes (``contrast`` is the peak value added, in the images' units; negative for a dark
signal):

- ``"gaussian"``: ``contrast * exp(-r^2 / (2 size^2))``, a nodule of standard deviation ``size`` px;
- ``"disc"``: ``contrast * erfc((r - size) / (sqrt(2) edge)) / 2``, a disc of radius ``size`` px
  whose edge is blurred by a Gaussian of standard deviation ``edge`` px (a lesion, as the discs of
  the MITA low-contrast phantom);
- ``"line"``: ``contrast * exp(-d^2 / (2 width^2))`` with d the distance to a segment of length
  ``size`` px at ``angle`` degrees (counter-clockwise from the x axis, rows pointing down): a thin
  fracture line.

Choosing the contrast (so that the task is not at ceiling, e.g. AUC 0.8-0.9 on the ground truth):

- analytically, in white Gaussian noise of standard deviation sigma every signal-aware linear
  observer reaches ``d' = |s| / sigma`` (Barrett & Myers, Foundations of Image Science, 2004,
  ch. 13), so :func:`white_noise_contrast` returns ``d' sigma / |s_1|`` with ``s_1`` the signal of
  contrast 1 on the ROI;
- on real backgrounds (anatomy, correlated noise) :func:`calibrate_contrast` solves
  ``d'(contrast) = target`` for a model observer on a calibration set of images;
- :func:`dprime_for_auc` turns a target AUC into d' (``d' = sqrt(2) Phi^-1(AUC)``, Gaussian scores).

Everything is NumPy float64 and deterministic from ``seed``; a study calls :func:`insert_signals`
on its clean test images before it simulates their acquisition, so that both versions get their
own noise.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import optimize, special, stats

from taskloss.errors import InputError

SIGNAL_KINDS = ("gaussian", "disc", "line")


@dataclass(frozen=True)
class Signal:
    """A signal's shape and contrast (see the module's docstring for each profile).

    Attributes:
        kind: "gaussian", "disc" or "line".
        size: gaussian: standard deviation; disc: radius; line: length; pixels, > 0.
        contrast: peak value added to the image, in the images' units (nonzero; negative for dark).
        edge: disc only: standard deviation of the edge blur in pixels, > 0.
        width: line only: standard deviation of the line's cross-section in pixels, > 0.
        angle: line only: direction in degrees, counter-clockwise from the x axis (rows point down).
    """

    kind: str
    size: float
    contrast: float
    edge: float = 1.0
    width: float = 1.0
    angle: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in SIGNAL_KINDS:
            raise InputError(f"signal kind {self.kind!r} is unknown; use one of {', '.join(SIGNAL_KINDS)}")
        for name in ("size", "edge", "width"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"signal {name} must be a finite number of pixels > 0, got {value}")
        if not math.isfinite(self.contrast) or self.contrast == 0:
            raise InputError(f"signal contrast must be a finite nonzero number, got {self.contrast}; pick one with "
                             "white_noise_contrast or calibrate_contrast")
        if not math.isfinite(self.angle):
            raise InputError(f"signal angle must be a finite number of degrees, got {self.angle}")

    def with_contrast(self, contrast: float) -> "Signal":
        """The same shape with another contrast."""
        return Signal(self.kind, self.size, contrast, self.edge, self.width, self.angle)

    def render(self, shape: tuple[int, int], centre: tuple[float, float]) -> np.ndarray:
        """The signal on a pixel grid.

        Args:
            shape: (H, W) of the grid.
            centre: (y, x) of the signal's centre in pixel coordinates (row 0, column 0 is pixel
                (0, 0)); need not be an integer.

        Returns:
            (H, W) float64; 0 far from the centre, ``contrast`` at the peak (the disc: about
            ``contrast`` inside once the radius is a few edges wide).

        Examples:
            >>> image = Signal("gaussian", 1.0, 0.5).render((9, 9), (4.0, 4.0))
            >>> float(image[4, 4]), bool(image[0, 0] < 1e-3)
            (0.5, True)
        """
        y = np.arange(shape[0], dtype=np.float64)[:, None] - centre[0]
        x = np.arange(shape[1], dtype=np.float64)[None, :] - centre[1]
        if self.kind == "gaussian":
            return self.contrast * np.exp(-(x**2 + y**2) / (2 * self.size**2))
        if self.kind == "disc":
            r = np.sqrt(x**2 + y**2)
            return self.contrast * special.erfc((r - self.size) / (math.sqrt(2) * self.edge)) / 2
        theta = math.radians(self.angle)
        along_x, along_y = math.cos(theta), -math.sin(theta)  # rows point down: y grows downwards
        t = np.clip(x * along_x + y * along_y, -self.size / 2, self.size / 2)
        d2 = (x - t * along_x) ** 2 + (y - t * along_y) ** 2
        return self.contrast * np.exp(-d2 / (2 * self.width**2))

    def roi(self, roi_size: tuple[int, int]) -> np.ndarray:
        """The signal centred on an ROI of ``roi_size`` (its centre ``((h - 1) / 2, (w - 1) / 2)``):
        the expected signal-present minus signal-absent ROI, the ``signal=`` of
        :func:`taskloss.observers.detectability`."""
        return self.render(roi_size, ((roi_size[0] - 1) / 2, (roi_size[1] - 1) / 2))


@dataclass(frozen=True, eq=False)
class SignalInsertion:
    """Images with and without a signal, and where it is.

    Attributes:
        present: images with the signal added (N, H, W), float64.
        absent: the same images without it (N, H, W), float64 (a copy of the input).
        locations: signal centre (y, x) in each image (N, 2), float64.
        signal: the :class:`Signal` inserted.
        roi_size: (h, w) of the ROI centred on each location that lies inside its image.
    """

    present: np.ndarray
    absent: np.ndarray
    locations: np.ndarray
    signal: Signal
    roi_size: tuple[int, int]


def insert_signals(images: object, signal: Signal, roi_size: tuple[int, int], *, seed: int = 0,
                   mask: object = None, locations: object = None) -> SignalInsertion:
    """Add ``signal`` to each image at a known location: a signal-present and a signal-absent version of each.

    Args:
        images: clean images (N, H, W), a NumPy array or tensor of real numbers.
        signal: the shape and contrast to insert.
        roi_size: (h, w) of the ROI that :func:`cut_rois` will cut around each signal; locations are
            drawn so that it lies inside the image, centred on the signal.
        seed: seed of the locations (each image's location is drawn uniformly among the allowed).
        mask: optional (H, W) or (N, H, W) booleans: a location must have its centre pixel (rounded
            down) in the mask (e.g. inside the anatomy).
        locations: optional (N, 2) centres (y, x) to use instead of drawing them; each must leave its
            ROI inside the image (``y - (h - 1) / 2`` an integer in [0, H - h], likewise x).

    Returns:
        A :class:`SignalInsertion`.

    Raises:
        InputError: images that are not (N, H, W) finite real numbers, an ROI larger than the images,
            a mask of another shape or with no allowed location in an image, locations of another
            shape or off the ROI grid.

    Examples:
        >>> inserted = insert_signals(np.zeros((3, 32, 32)), Signal("disc", 3.0, 0.1), (15, 15), seed=1)
        >>> inserted.present.shape, inserted.locations.shape, float(inserted.absent.max())
        ((3, 32, 32), (3, 2), 0.0)
    """
    stack = _as_images(images, "images")
    n, height, width = stack.shape
    h, w = _check_roi_size(roi_size, (height, width))
    if locations is None:
        allowed = _allowed_corners(mask, stack.shape, (h, w))
        rng = np.random.default_rng(seed)
        corners = np.array([np.argwhere(allowed[i])[rng.integers(int(allowed[i].sum()))] for i in range(n)])
        centres = corners + np.array([(h - 1) / 2, (w - 1) / 2])
    else:
        centres = np.asarray(locations, dtype=np.float64)
        if centres.shape != (n, 2):
            raise InputError(f"locations has shape {centres.shape}; expected ({n}, 2), one centre (y, x) per image")
        _corners(centres, (h, w), (height, width))
    present = stack.copy()
    for i, centre in enumerate(centres):
        present[i] += signal.render((height, width), (float(centre[0]), float(centre[1])))
    return SignalInsertion(present=present, absent=stack.copy(), locations=centres, signal=signal,
                           roi_size=(h, w))


def cut_rois(images: object, locations: object, roi_size: tuple[int, int]) -> object:
    """ROIs (N, h, w) centred on known signal locations (signal known exactly).

    Works on NumPy arrays and on tensors (then by slicing, so differentiable: the ROIs of a network's
    outputs carry its gradient, as :class:`taskloss.losses.ObserverLoss` needs).

    Args:
        images: (N, H, W) or (N, 1, H, W), an array or tensor.
        locations: (N, 2) centres (y, x), as :class:`SignalInsertion` gives them.
        roi_size: (h, w); each ROI's centre ``((h - 1) / 2, (w - 1) / 2)`` falls on its location.

    Returns:
        (N, h, w) (or (N, 1, h, w) for (N, 1, H, W) input), of the input's type.

    Raises:
        InputError: a rank other than 3 or 4 (with one channel), locations of another shape, an ROI
            that leaves the image or is not centred on a location (``y - (h - 1) / 2`` not an integer).

    Examples:
        >>> images = np.arange(2 * 6 * 6, dtype=float).reshape(2, 6, 6)
        >>> cut_rois(images, [(2.0, 2.5), (3.0, 3.5)], (3, 4)).shape
        (2, 3, 4)
    """
    shape = tuple(images.shape)
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[1] != 1):
        raise InputError(f"images has shape {shape}; expected (N, H, W) or (N, 1, H, W)")
    h, w = _check_roi_size(roi_size, shape[-2:])
    centres = np.asarray(locations, dtype=np.float64)
    if centres.shape != (shape[0], 2):
        raise InputError(f"locations has shape {centres.shape}; expected ({shape[0]}, 2), one centre (y, x) per image")
    corners = _corners(centres, (h, w), shape[-2:])
    rois = [images[i, ..., y:y + h, x:x + w] for i, (y, x) in enumerate(corners)]
    return torch.stack(rois) if isinstance(images, torch.Tensor) else np.stack(rois)


def dprime_for_auc(auc: float) -> float:
    """The d' of Gaussian scores of equal variance with area ``auc``: ``sqrt(2) Phi^-1(auc)``.

    Examples:
        >>> round(dprime_for_auc(0.85), 4)
        1.4657
    """
    if not 0 < auc < 1:
        raise InputError(f"auc must be in (0, 1), got {auc}; e.g. 0.85 for a task that is not at ceiling")
    return float(math.sqrt(2) * stats.norm.ppf(auc))


def white_noise_contrast(signal: Signal, roi_size: tuple[int, int], sigma: float, dprime: float) -> float:
    """The contrast at which the ideal linear observer reaches ``dprime`` in white Gaussian noise.

    In white noise of standard deviation sigma, Hotelling, NPW and (nearly) a well-matched CHO reach
    ``d' = |s| / sigma`` (Barrett & Myers 2004, ch. 13); ``s`` is ``contrast`` times the signal of
    contrast 1 on the ROI, so the contrast is ``d' sigma / |s_1|``, with the sign of ``signal.contrast``.

    Args:
        signal: the shape (its contrast gives only the sign).
        roi_size: (h, w) of the ROI the observer sees.
        sigma: the noise's standard deviation per pixel, > 0.
        dprime: the target d', > 0 (from an AUC: :func:`dprime_for_auc`).

    Examples:
        >>> c = white_noise_contrast(Signal("gaussian", 2.0, 1.0), (15, 15), sigma=0.1, dprime=1.5)
        >>> round(float(np.linalg.norm(Signal("gaussian", 2.0, c).roi((15, 15)))) / 0.1, 6)
        1.5
    """
    if not (sigma > 0 and dprime > 0 and math.isfinite(sigma) and math.isfinite(dprime)):
        raise InputError(f"sigma and dprime must be finite and > 0, got {sigma} and {dprime}")
    unit = signal.with_contrast(math.copysign(1.0, signal.contrast)).roi(roi_size)
    return math.copysign(dprime * sigma / float(np.linalg.norm(unit)), signal.contrast)


def calibrate_contrast(images: object, signal: Signal, roi_size: tuple[int, int], target_dprime: float, *,
                       observer: str = "cho", seed: int = 0, tolerance: float = 1e-3, mask: object = None,
                       **observer_options: object) -> float:
    """The contrast at which a model observer reaches ``target_dprime`` on a calibration set of images.

    The images are split in half (first half: signal-present, second: signal-absent, so the two
    classes have independent noise and backgrounds); locations are drawn once from ``seed``; d' of
    :func:`taskloss.observers.detectability` on the ROIs is then a function of the contrast alone,
    and Brent's method (:func:`scipy.optimize.brentq`) finds where it equals the target. The
    analytic white-noise contrast (with the images' own standard deviation) starts the bracket.

    Args:
        images: calibration images (N, H, W), N >= 8, each with its own noise (and background): e.g.
            reconstructions of the ground truth or noisy acquisitions of it, as the observer will see.
        signal: the shape to insert (its contrast gives only the sign).
        roi_size: (h, w) of the observer's ROI.
        target_dprime: the d' to reach, > 0 (e.g. ``dprime_for_auc(0.85)``).
        observer: an observer of :func:`taskloss.observers.detectability`.
        seed: seed of the locations and of the observer's split.
        tolerance: absolute tolerance on the contrast, as a fraction of the white-noise contrast.
        mask: optional (H, W) or (N, H, W) booleans where the signal's centre may lie (as in
            :func:`insert_signals`), e.g. inside the anatomy, as the task will place it.
        **observer_options: passed to :func:`taskloss.observers.detectability` (``channels``,
            ``channel_width``, ...).

    Returns:
        The contrast, with the sign of ``signal.contrast``.

    Raises:
        InputError: the bad inputs of :func:`insert_signals` and of the observer, or a target the
            observer does not reach below 64 times the white-noise contrast.
    """
    from taskloss.observers import detectability  # same layer as data; imported here to keep data light

    stack = _as_images(images, "images")
    if stack.shape[0] < 8:
        raise InputError(f"images holds {stack.shape[0]} images; calibration needs at least 8 (half with the signal)")
    if not (math.isfinite(target_dprime) and target_dprime > 0):
        raise InputError(f"target_dprime must be a finite number > 0, got {target_dprime}")
    half = stack.shape[0] // 2
    unit = signal.with_contrast(math.copysign(1.0, signal.contrast))
    masks = (None, None) if mask is None else (
        (mask, mask) if np.ndim(mask) == 2 else (np.asarray(mask)[:half], np.asarray(mask)[half:]))
    placed = insert_signals(stack[:half], unit, roi_size, seed=seed, mask=masks[0])
    background = cut_rois(placed.absent, placed.locations, placed.roi_size)
    shape_roi = cut_rois(placed.present, placed.locations, placed.roi_size) - background
    absent = cut_rois(stack[half:], insert_signals(stack[half:], unit, roi_size, seed=seed + 1,
                                                   mask=masks[1]).locations, roi_size)

    def deficit(contrast: float) -> float:
        return detectability(background + contrast * shape_roi, absent, observer, seed=seed,
                             **observer_options).snr - target_dprime

    if deficit(0.0) >= 0:
        raise InputError(f"the {observer} observer already reaches d' = {target_dprime} with no signal on these images "
                         "(the two halves differ); pass images of one kind, in random order")
    sigma = float(np.std(absent - absent.mean(axis=0)))
    start = white_noise_contrast(unit, roi_size, sigma, target_dprime) if sigma > 0 else 1.0
    high = abs(start)
    while deficit(math.copysign(high, start)) < 0:
        high *= 2
        if high > 64 * abs(start):
            raise InputError(f"the {observer} observer does not reach d' = {target_dprime} below contrast "
                             f"{high / 2:.4g} on these images; pick a larger signal or a lower target")
    magnitude = optimize.brentq(lambda c: deficit(math.copysign(c, start)), 0.0, high, xtol=tolerance * abs(start))
    return math.copysign(float(magnitude), signal.contrast)


def _as_images(images: object, name: str) -> np.ndarray:
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().double().numpy()
    array = np.asarray(images)
    if array.dtype.kind not in "fiub" or array.ndim != 3 or array.size == 0:
        raise InputError(f"{name} has shape {array.shape} and dtype {array.dtype}; expected real images (N, H, W) "
                         "(squeeze the channel axis of (N, 1, H, W) with x[:, 0])")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise InputError(f"{name} holds {int((~np.isfinite(array)).sum())} NaN or infinite values; pass finite images")
    return array


def _check_roi_size(roi_size: tuple[int, int], shape: tuple[int, ...]) -> tuple[int, int]:
    if len(roi_size) != 2 or any(int(s) != s or s < 1 for s in roi_size):
        raise InputError(f"roi_size={tuple(roi_size)!r} must be two positive integers (h, w)")
    h, w = int(roi_size[0]), int(roi_size[1])
    if h > shape[0] or w > shape[1]:
        raise InputError(f"roi_size ({h}, {w}) is larger than the images ({shape[0]} x {shape[1]}); pick a smaller ROI")
    return h, w


def _allowed_corners(mask: object, shape: tuple[int, int, int], roi: tuple[int, int]) -> np.ndarray:
    """(N, H - h + 1, W - w + 1) booleans: the ROI top-left corners whose centre pixel is in the mask."""
    n, height, width = shape
    h, w = roi
    allowed = np.ones((n, height - h + 1, width - w + 1), dtype=bool)
    if mask is None:
        return allowed
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    inside = np.asarray(mask, dtype=bool)
    if inside.shape not in ((height, width), shape):
        raise InputError(f"mask has shape {inside.shape}; expected ({height}, {width}) or {shape}")
    inside = np.broadcast_to(inside, shape)
    dy, dx = (h - 1) // 2, (w - 1) // 2  # the centre pixel, rounded down on an even side
    allowed &= inside[:, dy:dy + height - h + 1, dx:dx + width - w + 1]
    empty = np.flatnonzero(~allowed.reshape(n, -1).any(axis=1))
    if empty.size:
        raise InputError(f"mask leaves no location for a {h} x {w} ROI in image {int(empty[0])}; enlarge the mask "
                         "or pick a smaller ROI")
    return allowed


def _corners(centres: np.ndarray, roi: tuple[int, int], shape: tuple[int, ...]) -> np.ndarray:
    """Top-left corners (N, 2) of the ROIs centred on ``centres``; off the grid or outside is an InputError."""
    corners = centres - np.array([(roi[0] - 1) / 2, (roi[1] - 1) / 2])
    rounded = np.round(corners)
    bad = np.flatnonzero((np.abs(corners - rounded) > 1e-9).any(axis=1)
                         | (rounded < 0).any(axis=1) | (rounded[:, 0] > shape[0] - roi[0])
                         | (rounded[:, 1] > shape[1] - roi[1]))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"location {i} ({centres[i, 0]:g}, {centres[i, 1]:g}) is not the centre of a {roi[0]} x "
                         f"{roi[1]} ROI inside the {shape[0]} x {shape[1]} image (its corner must be a whole pixel "
                         "in the image); use the locations insert_signals gives for this roi_size")
    return rounded.astype(int)
