"""LPIPS and DISTS: learned perceptual distances with their published networks and weights, one value per image.

:class:`LPIPS` (Zhang et al., CVPR 2018, v0.1) taps AlexNet's five ReLUs or VGG-16's last ReLU of each block,
unit-normalises each position's channel vector, weighs the squared differences with the learned 1x1 heads and
averages over positions (:func:`taskloss.metrics.lpips.lpips_distance`). :class:`DISTS` (Ding et al., TPAMI
2020) compares channel means (texture) and correlations (structure) of the image and VGG-16's five stages
with L2 pooling, weighed by the learned alpha and beta (:func:`taskloss.metrics.dists.dists_distance`).

Input convention (both): images (N, 1 or 3, H, W) with intensities in ``data_range`` (a width L for [0, L],
or (low, high)), mapped linearly to [0, 1]; grayscale is repeated to RGB. LPIPS then maps [0, 1] to [-1, 1]
and applies its scaling layer ``(x - shift) / scale`` (:data:`LPIPS_SHIFT`, :data:`LPIPS_SCALE`), as
``lpips.LPIPS()(pred, target, normalize=True)`` does; that composition is exactly the ImageNet normalisation
``(u - mean) / std`` of u in [0, 1] (mean = (1 + shift) / 2, std = scale / 2), so the backbones get their
usual input (:data:`taskloss.features.base.IMAGENET_INPUT`). DISTS takes the [0, 1] image itself as its
stage 0 and its ImageNet-normalised copy into VGG-16, as DISTS_pytorch does.

Weights: the backbones are torchvision's ImageNet checkpoints (``alexnet-owt-7be5be79.pth``,
``vgg16-397923af.pth``), found from a path, an environment variable or the torch hub cache
(:mod:`taskloss.features.weights`), or seeded random weights for tests and ablations; the heads and alpha/beta
are the published files that the ``lpips``, ``torchmetrics`` and ``DISTS_pytorch`` wheels ship, found from a
path, an environment variable or an installed package, never downloaded.
"""

import os
from collections.abc import Sequence
from typing import Literal, TypeAlias

import torch
from torch import nn

from taskloss.errors import InputError
from taskloss.features.alexnet import LPIPS_ALEX_LAYERS, AlexNetFeatures
from taskloss.features.base import IMAGENET_INPUT, InputSpec, SequentialFeatureExtractor, prepare_input
from taskloss.features.vgg16 import LPIPS_VGG_LAYERS, VGG16Features
from taskloss.features.weights import (
    DISTS_WEIGHTS,
    LPIPS_HEADS_WEIGHTS,
    WeightsSource,
    load_tensors,
    resolve_weights,
)
from taskloss.metrics.dists import dists_distance
from taskloss.metrics.lpips import lpips_distance
from taskloss.validation import check_declared_range, check_image_pair

Backbone = Literal["alex", "vgg"]
Weights = Literal["imagenet", "random"]
DataRange: TypeAlias = float | tuple[float, float]

LPIPS_SHIFT = (-0.030, -0.088, -0.188)
"""The lpips package's ``ScalingLayer.shift`` (per RGB channel, on images in [-1, 1])."""
LPIPS_SCALE = (0.458, 0.448, 0.450)
"""The lpips package's ``ScalingLayer.scale``."""
LPIPS_CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
"""Channels of the five tapped layers per backbone (the shapes of the heads)."""
DISTS_CHANNELS = (3, 64, 128, 256, 512, 512)
"""Channels of DISTS's six stages: the RGB image, then VGG-16's conv1_2, conv2_2, conv3_3, conv4_3, conv5_3."""
UNIT_INPUT = InputSpec(channels=3, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
"""RGB in [0, 1], not normalised: DISTS's stage 0."""



def as_input_range(data_range: DataRange) -> tuple[float, float]:
    """``data_range`` as (low, high): a number L means [0, L].

    Raises:
        InputError: for a non-positive width or low >= high.
    """
    if isinstance(data_range, int | float):
        low, high = 0.0, float(data_range)
    elif isinstance(data_range, Sequence) and len(data_range) == 2:
        low, high = float(data_range[0]), float(data_range[1])
    else:
        raise InputError(f"data_range={data_range!r} must be a number L (images in [0, L]) or (low, high)")
    if not low < high:
        raise InputError(f"data_range={data_range!r} must have low < high (or L > 0), e.g. 1.0 for images in [0, 1]")
    return low, high


def check_distance_images(pred: object, target: object, input_range: tuple[float, float], *,
                          argument: str = "data_range") -> tuple[torch.Tensor, torch.Tensor]:
    """Check an image pair for LPIPS or DISTS: (B, 1 or 3, H, W), equal shapes, target within ``input_range``.

    Args:
        pred: the images scored.
        target: the references; they may leave ``input_range`` by at most 10 % of its width
            (:func:`taskloss.validation.check_declared_range`; ``pred`` may, e.g. a reconstruction's overshoot).
        input_range: (low, high).
        argument: the caller's name for the range (``data_range`` for the measures, ``input_range`` for the
            losses), named in messages.

    Raises:
        InputError: naming the problem and the fix.
    """
    pred_t, target_t = check_image_pair(pred, target, ndims=(4,))
    if pred_t.shape[1] not in (1, 3):
        raise InputError(f"LPIPS and DISTS take grayscale (1 channel) or RGB (3 channels) images, got "
                         f"{pred_t.shape[1]} channels; score each channel as its own grayscale image")
    advice = (f"pass the range your images are scaled to, e.g. {argument}=({{low:.4g}}, {{high:.4g}}) for a fixed "
              "intensity scale")
    check_declared_range(target_t, "target", input_range, advice, argument=argument)
    return pred_t, target_t


def _load_weight_file(source: WeightsSource, path: str | os.PathLike[str] | None, argument: str,
                      expected: dict[str, torch.Size], keys: str) -> dict[str, torch.Tensor]:
    resolved = resolve_weights(source, path, argument=argument)
    return load_tensors(resolved, expected, source, provide=f"the published {source.file_name}", keys=keys)


class LearnedDistance(nn.Module):
    """The parts LPIPS and DISTS share: a frozen backbone, its dtype, and the scoring of image pairs."""

    network: SequentialFeatureExtractor
    layers: tuple[str, ...]

    def _setup(self, network: SequentialFeatureExtractor, layers: tuple[str, ...]) -> None:
        self.network = network.requires_grad_(False).eval()
        self.layers = layers

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the network computes in (inputs are cast to it)."""
        return next(self.network.parameters()).dtype

    def min_input_size(self) -> int:
        """The smallest height and width the tapped layers accept."""
        return self.network.min_input_size(self.layers)

    def features(self, images: torch.Tensor, input_range: tuple[float, float]) -> list[torch.Tensor]:
        """The activations the distance compares, for checked images (N, 1 or 3, H, W) in ``input_range``."""
        raise NotImplementedError

    def distance(self, pred_features: list[torch.Tensor], target_features: list[torch.Tensor]) -> torch.Tensor:
        """The distance (N,) of two images' activations (from :meth:`features`)."""
        raise NotImplementedError

    def forward(self, pred: torch.Tensor, target: torch.Tensor, data_range: DataRange) -> torch.Tensor:
        """The distance of each image of ``pred`` to its reference.

        Args:
            pred: images (B, 1 or 3, H, W) in ``data_range``; gradients flow to them when they require grad.
            target: references, same shape, dtype and device.
            data_range: the intensity range: a number L (images in [0, L]) or (low, high), mapped to [0, 1].

        Returns:
            Tensor (B,) in ``pred``'s dtype; 0 for identical images.

        Raises:
            InputError: for mismatched or non-image tensors, other channel counts, targets far outside
                ``data_range``, or images smaller than :meth:`min_input_size`.
        """
        input_range = as_input_range(data_range)
        pred, target = check_distance_images(pred, target, input_range)
        value = self.distance(self.features(pred.to(self.dtype), input_range),
                              self.features(target.to(self.dtype), input_range))
        return value.to(pred.dtype)


class LPIPS(LearnedDistance):
    """LPIPS v0.1 (Zhang et al. 2018) with an AlexNet or VGG-16 backbone: lower is more similar.

    Args:
        backbone: "alex" (AlexNet, lpips's default) or "vgg" (VGG-16 with max pooling).
        weights: "imagenet" (torchvision's checkpoint of the backbone, see :class:`AlexNetFeatures` and
            :class:`VGG16Features`) or "random" (seeded; for tests and ablations).
        weights_path: the backbone's checkpoint file for "imagenet".
        heads_path: the linear heads (``alex.pth`` / ``vgg.pth`` of LPIPS v0.1); by default
            ``TASKLOSS_LPIPS_ALEX_HEADS`` / ``TASKLOSS_LPIPS_VGG_HEADS``, else the file the installed ``lpips``
            or ``torchmetrics`` package ships.
        seed: seed of the random backbone.

    Raises:
        MissingWeightsError: when a file is not found (the message says how to provide it).
        DataError: when a file is corrupt or not the expected one.

    Examples:
        >>> import torch
        >>> lpips = LPIPS("alex", weights="random")  # the shipped heads on a seeded backbone
        >>> x = torch.rand(2, 1, 40, 40, generator=torch.Generator().manual_seed(0))
        >>> lpips(x, x, data_range=1.0)
        tensor([0., 0.])
        >>> bool((lpips(x, x.flip(-1), data_range=1.0) > 0).all())
        True
    """

    def __init__(self, backbone: Backbone = "alex", weights: Weights = "imagenet", *,
                 weights_path: str | os.PathLike[str] | None = None,
                 heads_path: str | os.PathLike[str] | None = None, seed: int = 0) -> None:
        super().__init__()
        if backbone not in LPIPS_CHANNELS:
            raise InputError(f"backbone={backbone!r} is unknown; use 'alex' (AlexNet) or 'vgg' (VGG-16)")
        options = {"weights": weights, "weights_path": weights_path, "seed": seed}
        if backbone == "alex":
            self._setup(AlexNetFeatures(**options), LPIPS_ALEX_LAYERS)
        else:
            self._setup(VGG16Features(**options), LPIPS_VGG_LAYERS)
        self.backbone = backbone
        source = LPIPS_HEADS_WEIGHTS[backbone]
        expected = {f"lin{k}.model.1.weight": torch.Size((1, width, 1, 1))
                    for k, width in enumerate(LPIPS_CHANNELS[backbone])}
        state = _load_weight_file(source, heads_path, "heads_path", expected,
                                  "lin0.model.1.weight ... lin4.model.1.weight")
        for k, key in enumerate(expected):
            self.register_buffer(f"head{k}", state[key].flatten().float(), persistent=False)
        self.description = f"LPIPS v0.1 ({backbone}) on {self.network.description}"

    @property
    def heads(self) -> list[torch.Tensor]:
        """The learned weights (C_l,) of the five 1x1 heads, shallow to deep."""
        return [getattr(self, f"head{k}") for k in range(len(self.layers))]

    def features(self, images: torch.Tensor, input_range: tuple[float, float]) -> list[torch.Tensor]:
        """The five tapped activations of the backbone (see the module docstring for the input)."""
        activations = self.network(prepare_input(images, input_range, IMAGENET_INPUT), self.layers)
        return list(activations.values())

    def distance(self, pred_features: list[torch.Tensor], target_features: list[torch.Tensor]) -> torch.Tensor:
        """:func:`taskloss.metrics.lpips.lpips_distance` with the learned heads."""
        return lpips_distance(pred_features, target_features, self.heads)


class DISTS(LearnedDistance):
    """DISTS (Ding et al. 2020) on VGG-16 with L2 pooling: 0 for identical images, lower is more similar.

    Args:
        weights: "imagenet" (torchvision's ``vgg16-397923af.pth``, see :class:`VGG16Features`) or "random".
        weights_path: the VGG-16 checkpoint for "imagenet".
        alpha_beta_path: DISTS's ``weights.pt`` (alpha and beta); by default ``TASKLOSS_DISTS_WEIGHTS``, else
            the file the installed ``torchmetrics`` or ``DISTS_pytorch`` package ships.
        seed: seed of the random backbone.

    Raises:
        MissingWeightsError: when a file is not found (the message says how to provide it).
        DataError: when a file is corrupt or not the expected one.

    Examples:
        >>> import torch
        >>> dists = DISTS(weights="random")  # the shipped alpha and beta on a seeded VGG-16
        >>> x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> dists(x, x, data_range=1.0)
        tensor([0.])
        >>> bool(dists(x, 1 - x, data_range=1.0) > 0)
        True
    """

    def __init__(self, weights: Weights = "imagenet", *, weights_path: str | os.PathLike[str] | None = None,
                 alpha_beta_path: str | os.PathLike[str] | None = None, seed: int = 0) -> None:
        super().__init__()
        self._setup(VGG16Features(weights, weights_path=weights_path, pooling="l2", seed=seed), LPIPS_VGG_LAYERS)
        shape = torch.Size((1, sum(DISTS_CHANNELS), 1, 1))
        state = _load_weight_file(DISTS_WEIGHTS, alpha_beta_path, "alpha_beta_path",
                                  {"alpha": shape, "beta": shape}, "alpha and beta")
        self.register_buffer("alpha", state["alpha"].flatten().float(), persistent=False)
        self.register_buffer("beta", state["beta"].flatten().float(), persistent=False)
        self.description = f"DISTS on {self.network.description}"

    def features(self, images: torch.Tensor, input_range: tuple[float, float]) -> list[torch.Tensor]:
        """The image in [0, 1] (RGB) and VGG-16's five stages (see the module docstring for the input)."""
        activations = self.network(prepare_input(images, input_range, IMAGENET_INPUT), self.layers)
        return [prepare_input(images, input_range, UNIT_INPUT), *activations.values()]

    def distance(self, pred_features: list[torch.Tensor], target_features: list[torch.Tensor]) -> torch.Tensor:
        """:func:`taskloss.metrics.dists.dists_distance` with the learned alpha and beta."""
        return dists_distance(pred_features, target_features, list(self.alpha.split(DISTS_CHANNELS)),
                              list(self.beta.split(DISTS_CHANNELS)))
