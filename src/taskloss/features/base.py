"""The contract of a perception network, and a base class for sequential (VGG-style) ones.

A perception network maps images to named feature maps. :class:`FeatureNetwork` is what
:class:`taskloss.losses.PerceptualLoss` needs from one:

- ``layer_names``: the addressable layers, ordered from shallow to deep;
- ``layer_aliases``: other accepted names, each mapped to one of ``layer_names`` (may be empty);
- ``input_spec``: how the network expects its input (:class:`InputSpec`: channel count and the
  per-channel normalisation applied to images scaled to [0, 1]);
- ``description``: one line for reports saying which network and which weights;
- ``min_input_size(layers)``: the smallest height and width the requested layers accept;
- ``network(x, layers)``: a dict of the requested layers' activations, computed no deeper than
  the deepest of them.

:class:`SequentialFeatureExtractor` implements all of it for any network written as one
``nn.Sequential`` (VGG-19 here, the shipped domain network); any other ``nn.Module`` that provides
the same members works too.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import nn

from taskloss.errors import InputError


@dataclass(frozen=True)
class InputSpec:
    """How a perception network expects its input.

    Images are first scaled to [0, 1] (from the range the caller declares), single-channel images
    are repeated to ``channels`` channels, then each channel c is normalised as
    ``(x - mean[c]) / std[c]``.

    Attributes:
        channels: number of input channels (3 for ImageNet networks, 1 for grayscale ones).
        mean: per-channel mean, ``channels`` values.
        std: per-channel standard deviation, ``channels`` values, each > 0.
    """

    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __post_init__(self) -> None:
        if self.channels < 1 or len(self.mean) != self.channels or len(self.std) != self.channels:
            raise InputError(f"InputSpec needs channels >= 1 and one mean and std per channel, got "
                             f"channels={self.channels}, mean={self.mean}, std={self.std}")
        if min(self.std) <= 0:
            raise InputError(f"InputSpec std must be > 0 for every channel, got {self.std}")


IMAGENET_INPUT = InputSpec(channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
"""RGB in [0, 1] normalised by the ImageNet statistics (torchvision's pretrained networks)."""


@runtime_checkable
class FeatureNetwork(Protocol):
    """What a perception network provides (see the module docstring)."""

    layer_names: tuple[str, ...]
    layer_aliases: Mapping[str, str]
    input_spec: InputSpec
    description: str

    def min_input_size(self, layers: Sequence[str]) -> int:
        """Smallest height and width (pixels) for which ``layers`` are defined."""
        ...

    def __call__(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` (canonical names as keys) for prepared input ``x``."""
        ...


def prepare_input(
    images: torch.Tensor, input_range: tuple[float, float], spec: InputSpec
) -> torch.Tensor:
    """Turn images into a network's input: scale to [0, 1], repeat grayscale, normalise.

    Computes ``((images - low) / (high - low) - mean[c]) / std[c]`` as one fused affine map
    into a new tensor; ``images`` is never modified. Values outside ``input_range`` are mapped
    linearly, not clipped (clipping would cut the gradient).

    Args:
        images: (N, C, H, W) or volumes (N, C, D, H, W) with C = 1 (repeated to ``spec.channels``)
            or C = ``spec.channels``.
        input_range: (low, high), the intensities that map to 0 and 1; low < high.
        spec: the network's :class:`InputSpec`.

    Returns:
        Tensor (N, spec.channels, *spatial), dtype and device of ``images``.
    """
    low, high = input_range
    channels = images.shape[1]
    if channels not in (1, spec.channels):
        raise InputError(f"the perception network takes 1 or {spec.channels} channels, got "
                         f"{channels}; pass each channel as its own image")
    mean = torch.tensor(spec.mean, dtype=torch.float64)
    std = torch.tensor(spec.std, dtype=torch.float64)
    scale = 1.0 / ((high - low) * std)
    shift = -(low / (high - low) + mean) / std
    shape = (1, spec.channels) + (1,) * (images.ndim - 2)
    scale = scale.to(dtype=images.dtype, device=images.device).reshape(shape)
    shift = shift.to(dtype=images.dtype, device=images.device).reshape(shape)
    # expand() repeats the grayscale channel without copying; addcmul writes one new tensor.
    return torch.addcmul(shift, images.expand(-1, spec.channels, *images.shape[2:]), scale)


def resolve_layers(network: FeatureNetwork, layers: Sequence[str]) -> tuple[str, ...]:
    """Canonical names of ``layers`` (aliases resolved), without repeats, ordered shallow to deep.

    Args:
        network: the perception network whose ``layer_names`` and ``layer_aliases`` apply.
        layers: names or aliases.

    Raises:
        InputError: for an empty list or an unknown name (the message lists the valid ones).
    """
    if isinstance(layers, str) or len(layers) == 0:
        raise InputError(f"layers must be a non-empty list of names, got {layers!r}; choose from "
                         f"{', '.join(network.layer_names)}")
    resolved = set()
    for name in layers:
        canonical = network.layer_aliases.get(name, name)
        if canonical not in network.layer_names:
            raise InputError(f"layer {name!r} is not a layer of {network.description}; choose from "
                             f"{', '.join(network.layer_names)}")
        resolved.add(canonical)
    return tuple(name for name in network.layer_names if name in resolved)


class SequentialFeatureExtractor(nn.Module):
    """A perception network written as one ``nn.Sequential`` with named taps.

    The state dict holds ``features.N.*`` (torchvision's layout for VGG). A forward pass runs the
    layers only up to the deepest requested tap.

    Args:
        features: the layers, in order.
        taps: layer name -> index in ``features`` whose output is that layer's activation.
        input_spec: how the network expects its input.
        description: one line for reports (network and weights).
        aliases: other accepted names -> a name in ``taps``.
    """

    def __init__(
        self,
        features: nn.Sequential,
        taps: Mapping[str, int],
        *,
        input_spec: InputSpec,
        description: str,
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        if not taps or max(taps.values()) >= len(features) or min(taps.values()) < 0:
            raise ValueError(f"taps must index into the {len(features)} layers, got {dict(taps)}")
        self.features = features
        self.layer_names: tuple[str, ...] = tuple(sorted(taps, key=taps.__getitem__))
        self.layer_aliases: dict[str, str] = dict(aliases or {})
        self.input_spec = input_spec
        self.description = description
        self._taps = dict(taps)
        # Smallest input side for which each layer's output has at least one pixel (min_input_size).
        self._strides = minimum_input_sizes(features)

    def min_input_size(self, layers: Sequence[str]) -> int:
        """Smallest height and width for which every layer of ``layers`` has at least 1 pixel
        (:func:`minimum_input_sizes`)."""
        deepest = self._taps[resolve_layers(self, layers)[-1]]
        return self._strides[deepest]

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Activations of ``layers``, computed no deeper than the deepest of them.

        Args:
            x: prepared input (N, input_spec.channels, H, W) (see :func:`prepare_input`).
            layers: names or aliases of the layers to return.

        Returns:
            Dict canonical name -> activation (N, C_l, H_l, W_l), ordered shallow to deep.
        """
        names = resolve_layers(self, layers)
        wanted = {self._taps[name]: name for name in names}
        deepest = max(wanted)
        size = self._strides[deepest]
        if min(x.shape[-2:]) < size:
            raise InputError(f"input of size {tuple(x.shape[-2:])} is too small for layer "
                             f"{wanted[deepest]!r} of {self.description}, which needs at least "
                             f"{size} x {size} pixels; use larger images or shallower layers")
        outputs = {}
        for index in range(deepest + 1):
            x = self.features[index](x)
            if index in wanted:
                outputs[wanted[index]] = x
        return outputs


def minimum_input_sizes(features: nn.Sequential) -> list[int]:
    """For each layer of ``features``, the smallest input height and width that give it >= 1 output pixel.

    Walks back from the layer: a layer with kernel k, stride s, padding p and dilation d (convolution,
    max, average or L2 pooling) gives ``n`` output pixels from ``(n - 1) s + d (k - 1) + 1 - 2 p`` input
    pixels (at least 1), the inverse of ``floor((n_in + 2 p - d (k - 1) - 1) / s) + 1`` (PyTorch's
    output size with ``ceil_mode=False``); layers without a kernel keep the size. Each spatial axis is
    walked on its own and the larger size kept. The product of the strides (the former rule) is right
    for VGG's 2 x 2 pools but wrong for overlapping pools and large strided kernels such as AlexNet's
    (its conv1 needs 7 pixels and its conv5 31, not 4 and 16).

    Raises:
        ValueError: for a pooling layer with ``ceil_mode=True`` (not modelled).
    """
    geometry = [_geometry(layer) for layer in features]
    sizes = []
    for last in range(len(features)):
        per_axis = []
        for axis in range(2):
            size = 1
            for layer in reversed(geometry[:last + 1]):
                kernel, stride, padding, dilation = layer[axis]
                size = max(1, (size - 1) * stride + dilation * (kernel - 1) + 1 - 2 * padding)
            per_axis.append(size)
        sizes.append(max(per_axis))
    return sizes


_NO_KERNEL = ((1, 1, 0, 1), (1, 1, 0, 1))


def _geometry(layer: nn.Module) -> tuple[tuple[int, int, int, int], ...]:
    """(kernel, stride, padding, dilation) of ``layer`` for the height and the width axis."""
    if not hasattr(layer, "kernel_size"):
        return _NO_KERNEL
    if getattr(layer, "ceil_mode", False):
        raise ValueError(f"{layer} has ceil_mode=True, which minimum_input_sizes does not model")
    if getattr(layer, "padding", 0) == "same":  # stride-1 convolutions whose output keeps the input size
        return _NO_KERNEL
    values = [getattr(layer, name, default) for name, default in
              (("kernel_size", 1), ("stride", 1), ("padding", 0), ("dilation", 1))]
    values = [0 if value == "valid" else value for value in values]
    return tuple(tuple(int(value[axis] if isinstance(value, tuple | list) else value) for value in values)
                 for axis in range(2))
