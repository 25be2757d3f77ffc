"""Building blocks shared by the networks: padded convolutions, normalisation, activations, inits.

All blocks work on images (B, C, H, W); :func:`norm_layer` and :func:`conv_norm_act` also build
the 3-D blocks of volumes (B, C, D, H, W) with ``spatial_dims=3``. Options are validated here and
raise :class:`taskloss.errors.ConfigError` naming the option and its accepted values.
"""

from collections.abc import Collection, Sequence
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from taskloss.errors import ConfigError

Norm = Literal["batch", "instance", "layer", "none"]
PaddingMode = Literal["zeros", "reflect"]

NORMS: tuple[str, ...] = ("batch", "instance", "layer", "none")
PADDING_MODES: tuple[str, ...] = ("zeros", "reflect")


def check_choice(value: object, name: str, choices: Collection[object]) -> None:
    """Raise :class:`ConfigError` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name}={value!r} is not supported; use one of "
                          f"{', '.join(repr(c) for c in choices)}")


def check_widths(widths: Sequence[int], name: str, min_length: int = 1) -> tuple[int, ...]:
    """Check a channel schedule: at least ``min_length`` positive integers; returns it as a tuple."""
    values = tuple(widths)
    if len(values) < min_length or not all(isinstance(w, int) and w > 0 for w in values):
        raise ConfigError(f"{name} must be a sequence of at least {min_length} positive integers, "
                          f"got {widths!r}")
    return values


def check_positive(value: int, name: str, minimum: int = 1) -> None:
    """Raise :class:`ConfigError` unless the integer ``value`` is at least ``minimum``."""
    if not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


class PaddedConv2d(nn.Conv2d):
    """Convolution with TensorFlow-style "same" padding, for odd and even kernels, stride 1 or 2.

    Each spatial axis gets ``ceil((kernel_size - 1) / stride)`` padding in total, the smaller half
    before (top/left), as TensorFlow's ``padding="SAME"`` and Seitzer et al.'s code do; a size ``n``
    becomes ``n // stride`` for the strides 1 and 2 used here (``n / stride`` for the multiples the
    networks require). Written by hand because ``nn.Conv2d(padding="same")`` only supports stride 1
    and copies the input with a warning for even kernels; this class uses ``nn.Conv2d``'s own
    symmetric padding whenever it can and pads once with ``F.pad`` otherwise. It is an
    ``nn.Conv2d``, so its parameters are named ``weight`` and ``bias`` and FLOP counters see it.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: square kernel size, odd or even.
        stride: stride, 1 or 2.
        bias: add a learnable bias (leave it out before a normalisation, which cancels it).
        padding_mode: ``"zeros"`` or ``"reflect"``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        *,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
    ) -> None:
        check_choice(padding_mode, "padding_mode", PADDING_MODES)
        check_choice(stride, "stride", (1, 2))
        total = -(-(kernel_size - 1) // stride)
        before, after = total // 2, total - total // 2
        symmetric = before == after
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         padding=before if symmetric else 0, bias=bias, padding_mode=padding_mode)
        self.largest_pad = after
        self._total_pad = total
        self._asymmetric_pad = None if symmetric else (before, after, before, after)

    def output_size(self, size: int) -> int | None:
        """Output height or width for an input ``size``; None when the input is too small.

        Too small: the output would be empty, or reflection padding would need more pixels than
        the input has (PyTorch requires the pad to be smaller than the padded size).
        """
        if self.padding_mode == "reflect" and size <= self.largest_pad:
            return None
        out = (size + self._total_pad - self.kernel_size[0]) // self.stride[0] + 1
        return out if out >= 1 else None

    def forward(self, x: Tensor) -> Tensor:
        """Convolve ``x`` (B, C_in, H, W) into (B, C_out, H // stride, W // stride)."""
        if self._asymmetric_pad is not None:
            mode = "constant" if self.padding_mode == "zeros" else self.padding_mode
            x = F.pad(x, self._asymmetric_pad, mode=mode)
        return super().forward(x)


def norm_layer(kind: Norm, channels: int, spatial_dims: int = 2) -> nn.Module:
    """A normalisation layer for ``channels`` feature maps.

    Args:
        kind: ``"batch"`` (BatchNorm2d); ``"instance"`` (InstanceNorm2d without affine parameters,
            as pix2pix/CycleGAN); ``"layer"`` (layer norm over (C, H, W) of each sample with a
            per-channel scale and shift, as Chen & Koltun's CRN: exactly ``GroupNorm`` with one
            group); ``"none"`` (identity).
        channels: number of feature maps.
        spatial_dims: 2, or 3 for the 3-D versions (BatchNorm3d, InstanceNorm3d).
    """
    check_choice(kind, "norm", NORMS)
    check_choice(spatial_dims, "spatial_dims", (2, 3))
    if kind == "batch":
        return nn.BatchNorm2d(channels) if spatial_dims == 2 else nn.BatchNorm3d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels) if spatial_dims == 2 else nn.InstanceNorm3d(channels)
    if kind == "layer":
        return nn.GroupNorm(1, channels)
    return nn.Identity()


def activation(negative_slope: float) -> nn.Module:
    """ReLU for ``negative_slope == 0``, else LeakyReLU with that slope (both in place)."""
    if negative_slope < 0:
        raise ConfigError(f"negative_slope must be >= 0, got {negative_slope}")
    if negative_slope == 0:
        return nn.ReLU(inplace=True)
    return nn.LeakyReLU(negative_slope, inplace=True)


def conv_norm_act(
    in_channels: int,
    out_channels: int,
    kernel_size: int,
    *,
    stride: int = 1,
    norm: Norm = "batch",
    negative_slope: float = 0.0,
    padding_mode: PaddingMode = "zeros",
    spatial_dims: int = 2,
) -> nn.Sequential:
    """Convolution ("same" padded), normalisation, (leaky) ReLU; the conv has a bias only without norm.

    With ``spatial_dims=3`` the convolution is an ``nn.Conv3d`` of stride 1 and an odd kernel,
    padded symmetrically by ``kernel_size // 2`` ("same"); other 3-D settings raise ConfigError.
    """
    norm_block = norm_layer(norm, out_channels, spatial_dims)
    if spatial_dims == 2:
        conv: nn.Module = PaddedConv2d(in_channels, out_channels, kernel_size, stride, bias=norm == "none",
                                       padding_mode=padding_mode)
    else:
        check_choice(padding_mode, "padding_mode", PADDING_MODES)
        if kernel_size % 2 == 0 or stride != 1:
            raise ConfigError(f"3-D convolutions take an odd kernel_size and stride 1 here, got kernel_size="
                              f"{kernel_size}, stride={stride}; use e.g. kernel_size=3")
        conv = nn.Conv3d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=norm == "none",
                         padding_mode=padding_mode)
    return nn.Sequential(conv, norm_block, activation(negative_slope))


def init_normal_(module: nn.Module, std: float, *, truncated: bool = False) -> None:
    """DCGAN-style initialisation of every convolution, linear and batch-norm layer in ``module``.

    Weights of convolutions (also transposed) and linear layers ~ N(0, std^2) (truncated at 2 std,
    as TensorFlow's ``truncated_normal_initializer``, when ``truncated``), their biases 0;
    batch-norm scales ~ N(1, 0.02^2), shifts 0.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            if truncated:
                nn.init.trunc_normal_(layer.weight, std=std, a=-2 * std, b=2 * std)
            else:
                nn.init.normal_(layer.weight, 0.0, std)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, 0.02)
            nn.init.zeros_(layer.bias)
