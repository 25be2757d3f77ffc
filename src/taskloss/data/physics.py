"""Imaging physics of the simulated head: tissue properties, MR signal, X-ray attenuation, noise.

Tissues are the channels of a phantom's fraction volume (see :mod:`taskloss.data.phantoms`), in the
order of :class:`Tissue`. Each voxel holds the fraction of each tissue (partial volume), so every
physical quantity of a voxel is the fraction-weighted sum of the tissues' values; the functions here
are those weighted sums, batched and vectorised.

Units: T1, T2, TR, TE in milliseconds; proton density relative to CSF (1.0); CT numbers in Hounsfield
units; linear attenuation coefficients in 1/mm.
"""

from dataclasses import dataclass
from enum import Enum, IntEnum

import torch

from taskloss.data.fields import smooth_field
from taskloss.errors import InputError

MU_WATER_PER_MM = 0.019
"""Linear attenuation of water at about 70 keV: 0.19 /cm (NIST XCOM: 0.193 cm^2/g), in 1/mm."""


class Tissue(IntEnum):
    """Tissue classes of the head phantoms; the value is the channel of the fraction volume."""

    AIR = 0
    SKIN = 1
    """Skin and muscle (scalp, neck)."""
    FAT = 2
    CORTICAL_BONE = 3
    MARROW = 4
    """Diploe: the marrow between the inner and outer tables of the skull."""
    CSF = 5
    GREY_MATTER = 6
    WHITE_MATTER = 7
    LESION = 8
    """An enhancing lesion (the region of interest scored by SIS)."""
    TOOTH = 9
    """Teeth (enamel and dentine): the densest tissue of the head."""


N_TISSUES = len(Tissue)

BONE_TISSUES: frozenset[Tissue] = frozenset({Tissue.CORTICAL_BONE, Tissue.MARROW, Tissue.TOOTH})
"""The tissues that are bone (mineralised, HU >= 300): their summed fraction is a voxel's bone share,
e.g. for bone masks of projections."""


def bone_fraction(fractions: torch.Tensor) -> torch.Tensor:
    """Bone share of every voxel: the summed fractions of :data:`BONE_TISSUES`.

    Args:
        fractions: tissue fractions (N_TISSUES, *spatial), e.g. a phantom's (N_TISSUES, D, H, W).

    Returns:
        (1, *spatial) in [0, 1], dtype of ``fractions``.
    """
    if fractions.shape[0] != N_TISSUES:
        raise InputError(f"fractions must be (N_TISSUES={N_TISSUES}, ...), got shape {tuple(fractions.shape)}; "
                         "give one phantom's fractions")
    return fractions[sorted(BONE_TISSUES)].sum(dim=0, keepdim=True)


@dataclass(frozen=True)
class TissueProperties:
    """MR and CT properties of one tissue.

    Attributes:
        t1: longitudinal relaxation time, ms.
        t2: transverse relaxation time, ms.
        pd: proton density relative to CSF.
        hu: CT number, Hounsfield units.
    """

    t1: float
    t2: float
    pd: float
    hu: float


# Midpoints of the 1.5 T literature ranges (T1, T2, PD) and of clinical head CT (HU). Cortical bone
# is dense compact bone, 1800 HU (the range is 1000-1900 HU; the skull's tables and the mandible's
# cortex lie near its top), so mu = 2.8 mu_water. Teeth (enamel over dentine) are denser still,
# 2500 HU (dental CT: dentine ~2000, enamel ~3000). Cortical bone and teeth have no usable T1; their
# T2 of about 0.5 ms removes their signal at any clinical TE, so the T1 chosen (1000 ms) does not
# matter. Air has no protons (PD 0), so its relaxation times do not matter either. The lesion is an
# enhancing lesion after gadolinium (T1 shortened to 300 ms): bright on T1-weighted images, like the
# scar in the late-gadolinium-enhancement data of Seitzer et al.
TISSUE_PROPERTIES: dict[Tissue, TissueProperties] = {
    Tissue.AIR: TissueProperties(t1=1000.0, t2=1.0, pd=0.0, hu=-1000.0),
    Tissue.SKIN: TissueProperties(t1=875.0, t2=47.5, pd=0.7, hu=45.0),
    Tissue.FAT: TissueProperties(t1=275.0, t2=80.0, pd=0.95, hu=-100.0),
    Tissue.CORTICAL_BONE: TissueProperties(t1=1000.0, t2=0.5, pd=0.05, hu=1800.0),
    Tissue.MARROW: TissueProperties(t1=450.0, t2=105.0, pd=0.8, hu=450.0),
    Tissue.CSF: TissueProperties(t1=4000.0, t2=1850.0, pd=1.0, hu=10.0),
    Tissue.GREY_MATTER: TissueProperties(t1=1025.0, t2=95.0, pd=0.8, hu=37.5),
    Tissue.WHITE_MATTER: TissueProperties(t1=700.0, t2=75.0, pd=0.675, hu=27.5),
    Tissue.LESION: TissueProperties(t1=300.0, t2=80.0, pd=0.8, hu=40.0),
    Tissue.TOOTH: TissueProperties(t1=1000.0, t2=0.5, pd=0.05, hu=2500.0),
}
"""Default properties of every tissue."""


def property_table(properties: dict[Tissue, TissueProperties] | None = None) -> torch.Tensor:
    """Tissue properties as a float64 table of shape (N_TISSUES, 4), columns (T1, T2, PD, HU)."""
    properties = TISSUE_PROPERTIES if properties is None else properties
    missing = [t.name for t in Tissue if t not in properties]
    if missing:
        raise InputError(f"tissue properties lack {missing}; give a TissueProperties for every "
                         "taskloss.data.physics.Tissue")
    return torch.tensor([[properties[t].t1, properties[t].t2, properties[t].pd, properties[t].hu]
                         for t in Tissue], dtype=torch.float64)


class Weighting(str, Enum):
    """Spin-echo contrast presets (name -> TR, TE in ms)."""

    T1 = "t1"
    T2 = "t2"
    PD = "pd"


@dataclass(frozen=True)
class SpinEcho:
    """A spin-echo sequence: repetition time ``tr`` and echo time ``te``, both in ms (> 0)."""

    tr: float
    te: float

    def __post_init__(self) -> None:
        if self.tr <= 0 or self.te <= 0 or self.te >= self.tr:
            raise InputError(f"spin echo needs 0 < TE < TR (ms), got TR={self.tr}, TE={self.te}")

    @classmethod
    def preset(cls, weighting: Weighting | str) -> "SpinEcho":
        """The clinical 1.5 T preset of a weighting: T1 (500/15), T2 (4000/100), PD (3000/15)."""
        presets = {Weighting.T1: cls(500.0, 15.0), Weighting.T2: cls(4000.0, 100.0),
                   Weighting.PD: cls(3000.0, 15.0)}
        try:
            return presets[Weighting(weighting)]
        except ValueError:
            raise InputError(f"unknown MR weighting {weighting!r}; use one of "
                             f"{[w.value for w in Weighting]}") from None


def spin_echo_signal(table: torch.Tensor, sequence: SpinEcho) -> torch.Tensor:
    """Spin-echo signal of each tissue, ``S = PD (1 - exp(-TR/T1)) exp(-TE/T2)``.

    Args:
        table: tissue properties (..., N_TISSUES, 4) as from :func:`property_table`.
        sequence: the TR and TE.

    Returns:
        Signal per tissue (..., N_TISSUES), in [0, PD].
    """
    t1, t2, pd = table[..., 0], table[..., 1], table[..., 2]
    return pd * (1 - torch.exp(-sequence.tr / t1)) * torch.exp(-sequence.te / t2)


def hu_to_attenuation(hu: torch.Tensor) -> torch.Tensor:
    """Linear attenuation in 1/mm from CT numbers, ``mu = mu_water (1 + HU / 1000)``, >= 0."""
    return MU_WATER_PER_MM * (1 + hu / 1000).clamp(min=0)


def attenuation(table: torch.Tensor) -> torch.Tensor:
    """Linear attenuation per tissue in 1/mm (:func:`hu_to_attenuation` of the HU column).

    Args:
        table: tissue properties (..., N_TISSUES, 4) as from :func:`property_table`.

    Returns:
        Attenuation per tissue (..., N_TISSUES), 1/mm.
    """
    return hu_to_attenuation(table[..., 3])


def mix(fractions: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Fraction-weighted sum of per-tissue values: the partial-volume value of each voxel.

    Args:
        fractions: tissue fractions (B, N_TISSUES, *spatial), summing to 1 over the channels.
        values: one value per tissue and batch item, (B, N_TISSUES) (or (N_TISSUES,) for all).

    Returns:
        (B, 1, *spatial), dtype of ``fractions``.
    """
    values = values.to(fractions).expand(fractions.shape[0], -1)
    weights = values.reshape(*values.shape, *([1] * (fractions.ndim - 2)))
    return (fractions * weights).sum(dim=1, keepdim=True)


def xray_line_integral(
    line_integral: torch.Tensor, photons: float | None, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Measured X-ray line integral ``-ln(I / I0)`` with ``I = I0 exp(-p)`` and Poisson noise.

    Args:
        line_integral: noiseless line integral ``p`` of attenuation (dimensionless, >= 0), any shape.
        photons: ``I0``, the photons per detector pixel without an object; ``None`` for no noise.
        generator: random generator of the Poisson draw.

    Returns:
        The measured line integral, same shape; a pixel that counts no photon is given half a
        photon (the usual log-of-zero guard), and values are clamped at 0 (photon counts above
        ``I0`` in air).
    """
    if photons is None:
        return line_integral
    if photons <= 0:
        raise InputError(f"photons (I0) must be > 0 or None for no noise, got {photons}")
    counts = torch.poisson(photons * torch.exp(-line_integral), generator=generator)
    return (-torch.log(counts.clamp(min=0.5) / photons)).clamp(min=0)


def rician(
    signal: torch.Tensor, sigma: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Magnitude of ``signal`` plus complex Gaussian noise of standard deviation ``sigma`` per part.

    ``|s + n_re + i n_im|`` with independent ``n ~ N(0, sigma^2)``: Rician for a real ``s >= 0``.
    ``sigma = 0`` returns ``|signal|``.

    Args:
        signal: real or complex signal, any shape.
        sigma: noise standard deviation of each of the real and imaginary parts, >= 0; a number
            or a tensor broadcasting against ``signal``.
        generator: random generator.

    Returns:
        Real tensor of the shape of ``signal``, >= 0.
    """
    return add_complex_noise(signal, sigma, generator).abs()


def add_complex_noise(
    signal: torch.Tensor, sigma: float | torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``signal + n_re + i n_im`` with independent ``N(0, sigma^2)`` parts; a complex tensor.

    ``sigma`` is a number or a tensor that broadcasts against ``signal`` (e.g. one per image).
    """
    sigma_t = torch.as_tensor(sigma)
    if bool((sigma_t < 0).any()):
        raise InputError(f"noise sigma must be >= 0, got {sigma}")
    signal = signal if signal.is_complex() else torch.complex(signal, torch.zeros_like(signal))
    if not bool((sigma_t > 0).any()):
        return signal
    real = signal.real.dtype
    noise = torch.randn((*signal.shape, 2), generator=generator, dtype=real, device=signal.device)
    return signal + sigma * torch.view_as_complex(noise)


def mr_volume(
    fractions: torch.Tensor,
    table: torch.Tensor,
    sequence: SpinEcho,
    bias: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Noise-free spin-echo MR volume of a phantom, times a smooth multiplicative bias field.

    Args:
        fractions: tissue fractions (N_TISSUES, D, H, W).
        table: the subject's tissue properties (N_TISSUES, 4).
        sequence: TR and TE.
        bias: strength of the bias field ``exp(bias * g)``, ``g`` a smooth standard-normal field on
            4 control points per axis (0.2 gives about +-20 %); 0 for none.
        generator: random generator of the bias field (needed when ``bias > 0``).

    Returns:
        Signal (1, D, H, W) float32, in [0, max PD * max bias].
    """
    signal = mix(fractions[None], spin_echo_signal(table, sequence)[None])[0]
    if bias < 0:
        raise InputError(f"bias must be >= 0, got {bias}")
    if bias == 0:
        return signal
    if generator is None:
        raise InputError("a bias field needs a random generator (pass generator=...)")
    return signal * torch.exp(bias * smooth_field(signal.shape[1:], 4, generator))


def attenuation_volume(fractions: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """Linear attenuation of every voxel of a phantom, (1, D, H, W) float32, 1/mm."""
    return mix(fractions[None], attenuation(table)[None])[0]


def gaussian_blur(images: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W) images, reflected borders, kernel to 3 sigma.

    ``sigma_px`` <= 0 returns the images unchanged. Differentiable.
    """
    if sigma_px <= 0:
        return images
    radius = max(1, min(int(3 * sigma_px + 0.5), min(images.shape[-2:]) - 1))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma_px) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = torch.nn.functional.pad(images, (radius, radius, radius, radius), mode="reflect")
    rows = torch.nn.functional.conv2d(padded, kernel.reshape(1, 1, 1, -1).expand(channels, 1, 1, -1),
                                      groups=channels)
    return torch.nn.functional.conv2d(rows, kernel.reshape(1, 1, -1, 1).expand(channels, 1, -1, 1),
                                      groups=channels)


FWHM_PER_SIGMA = 2.0 * (2.0 * torch.log(torch.tensor(2.0))).sqrt().item()
"""A Gaussian's full width at half maximum over its sigma, 2 sqrt(2 ln 2) = 2.355."""


def detector_blur(line_integral: torch.Tensor, fwhm_mm: float, pixel_mm: float) -> torch.Tensor:
    """Blur of the detector (scintillator light spread) and focal spot, applied to the intensity.

    The blur acts on what the detector measures, ``I / I0 = exp(-p)``, not on the line integral
    ``p``; the result is ``-ln`` of the blurred intensity.

    Args:
        line_integral: (N, C, H, W) measured line integrals ``p`` (>= 0).
        fwhm_mm: full width at half maximum of the Gaussian point spread, mm at the isocentre
            (a flat-panel detector and a 0.6 mm focal spot: about 0.5 mm); 0 for none.
        pixel_mm: detector pixel pitch at the isocentre, mm.

    Returns:
        The blurred line integrals, same shape, >= 0.
    """
    if fwhm_mm < 0 or pixel_mm <= 0:
        raise InputError(f"detector blur needs fwhm_mm >= 0 and pixel_mm > 0, got {fwhm_mm} and {pixel_mm}")
    if fwhm_mm == 0:
        return line_integral
    intensity = gaussian_blur(torch.exp(-line_integral), fwhm_mm / FWHM_PER_SIGMA / pixel_mm)
    return (-torch.log(intensity.clamp(min=torch.finfo(intensity.dtype).tiny))).clamp(min=0)


@dataclass(frozen=True)
class RadiographDisplay:
    """How a radiograph is displayed: the processing of computed and digital radiography.

    The displayed value is the log-transformed intensity ``p = -ln(I / I0)`` (negative display:
    bone, which lets fewer photons through, is bright; air is black), with its large-scale
    variation (the head's thickness) compressed by an unsharp mask, ``p - compression * G * p`` with
    ``G`` a Gaussian of ``kernel_mm`` (the dynamic-range compression of CR/DX processing, such as
    multi-scale contrast equalisation), then windowed: 0 at the lowest value, 1 at the
    ``window_quantile`` of the pixels inside the object (above 5 % of the largest line integral).

    Attributes:
        compression: share of the large-scale variation removed, in [0, 1); 0 shows ``p`` as it is.
        kernel_mm: sigma of the large-scale Gaussian, mm at the isocentre.
        window_quantile: quantile of the object's pixels shown as white, in (0.5, 1].
    """

    compression: float = 0.7
    kernel_mm: float = 30.0
    window_quantile: float = 0.995

    def __post_init__(self) -> None:
        if not 0 <= self.compression < 1 or self.kernel_mm <= 0 or not 0.5 < self.window_quantile <= 1:
            raise InputError("radiograph display needs 0 <= compression < 1, kernel_mm > 0 and "
                             f"0.5 < window_quantile <= 1, got {self.compression}, {self.kernel_mm}, "
                             f"{self.window_quantile}")

    def __call__(self, line_integral: torch.Tensor, pixel_mm: float,
                 window: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
        """Display images of line integrals (N, 1, H, W) >= 0 with pixels of ``pixel_mm``: (N, 1, H, W)
        in [0, 1]; ``window`` (low, high), each (N,), replaces the images' own (:meth:`window`), e.g. to
        show an image with an inserted signal exactly as the image without it."""
        processed = self._processed(line_integral, pixel_mm)
        low, high = self.window(line_integral, pixel_mm) if window is None else window
        shape = (-1,) + (1,) * (line_integral.ndim - 1)
        span = (high - low).clamp(min=torch.finfo(processed.dtype).tiny)
        return ((processed - low.reshape(shape)) / span.reshape(shape)).clamp(0, 1)

    def _processed(self, line_integral: torch.Tensor, pixel_mm: float) -> torch.Tensor:
        if pixel_mm <= 0:
            raise InputError(f"pixel_mm must be > 0, got {pixel_mm}")
        if self.compression > 0:
            return line_integral - self.compression * gaussian_blur(line_integral, self.kernel_mm / pixel_mm)
        return line_integral

    def window(self, line_integral: torch.Tensor, pixel_mm: float) -> tuple[torch.Tensor, torch.Tensor]:
        """The display window of each image, (low, high), each (N,): the lowest processed value (>= 0) and
        the ``window_quantile`` of the processed values inside the object."""
        flat, values = self._processed(line_integral, pixel_mm).flatten(1), line_integral.flatten(1)
        inside = values > 0.05 * values.amax(dim=1, keepdim=True)
        low = flat.amin(dim=1).clamp(min=0)
        high = torch.stack([row[mask].quantile(self.window_quantile) if bool(mask.any()) else row.max()
                            for row, mask in zip(flat, inside, strict=True)])
        return low, high
