"""MedicalNet's 3-D ResNet-10 and ResNet-50 (Chen, Ma & Zheng 2019, "Med3D") as perception networks.

Med3D trained 3-D ResNets on 23 segmentation data sets (CT and MR) with a shared encoder; the
encoders serve as 3-D feature networks (MONAI offers them for its perceptual loss). The
architecture is that of Tencent/MedicalNet's ``models/resnet.py``: a 7 x 7 x 7 convolution of
stride 2, batch norm, ReLU and 3 x 3 x 3 max pooling of stride 2; ``layer1`` ... ``layer4`` of
basic blocks (ResNet-10: one per layer) or bottlenecks (ResNet-50: 3, 4, 6, 3), ``layer2`` of stride
2, ``layer3`` and ``layer4`` of stride 1 with dilation 2 and 4; projection shortcuts (their
shortcut type "B", a 1 x 1 x 1 convolution without bias and batch norm, as the released ResNet-10
and ResNet-50 files use). State-dict keys follow theirs (and MONAI's): ``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.bn1``, ``layer2.0.downsample.0``, ...; the released files wrap them
in ``{"state_dict": ...}`` with ``nn.DataParallel``'s ``module.`` prefix, which the loader removes;
their segmentation head (``conv_seg``) is ignored.

No weights ship with taskloss and none are downloaded: pass the file (``resnet_10.pth``,
``resnet_10_23dataset.pth``, ``resnet_50.pth`` or ``resnet_50_23dataset.pth`` of the MedicalNet
release) as ``weights_path``, or use ``weights="random"``.

Input: one channel. MedicalNet z-scored each volume over its non-zero voxels, which no fixed affine
map reproduces; :data:`MEDICALNET_INPUT` maps [0, 1] to [-2, 2] (mean 0.5, std 0.25), the spread of a
z-scored volume; pass ``input_spec`` with your data's mean and std (on the [0, 1] scale) to match
theirs more closely. Layers: ``conv1`` (after its ReLU, stride 2), ``layer1`` (stride 4, after the
pooling), ``layer2`` ... ``layer4`` (stride 8).
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from taskloss.errors import InputError, MissingWeightsError
from taskloss.features.base import InputSpec, resolve_layers
from taskloss.features.checkpoints import read_state_dict
from taskloss.validation import check_float_tensor

Weights = Literal["medicalnet", "random"]

MEDICALNET_INPUT = InputSpec(channels=1, mean=(0.5,), std=(0.25,))
"""One channel in [0, 1] mapped to [-2, 2] (see the module docstring)."""
MEDICALNET_LAYERS: tuple[str, ...] = ("conv1", "layer1", "layer2", "layer3", "layer4")
"""Every addressable layer, shallow to deep; also the perceptual loss's default."""
MEDICALNET_URL = "https://github.com/Tencent/MedicalNet"
_LAYER_PLANES = (64, 128, 256, 512)
_LAYER_STRIDE_DILATION = ((1, 1), (2, 1), (1, 2), (1, 4))
_LAYER_TOTAL_STRIDE = {"conv1": 2, "layer1": 4, "layer2": 8, "layer3": 8, "layer4": 8}


def _conv3(in_channels: int, out_channels: int, stride: int = 1, dilation: int = 1) -> nn.Conv3d:
    return nn.Conv3d(in_channels, out_channels, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


class BasicBlock3d(nn.Module):
    """Two 3 x 3 x 3 convolutions with batch norm and a shortcut (ResNet-10/18/34)."""

    expansion = 1

    def __init__(self, in_channels: int, planes: int, stride: int, dilation: int,
                 downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = _conv3(in_channels, planes, stride, dilation)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3(planes, planes, dilation=dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, C, D, H, W) to (N, planes, D / stride, H / stride, W / stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class Bottleneck3d(nn.Module):
    """1 x 1 x 1, 3 x 3 x 3, 1 x 1 x 1 convolutions with batch norm and a shortcut (ResNet-50 and deeper)."""

    expansion = 4

    def __init__(self, in_channels: int, planes: int, stride: int, dilation: int,
                 downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = _conv3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map (N, C, D, H, W) to (N, 4 planes, D / stride, H / stride, W / stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class MedicalNetResNet(nn.Module):
    """A MedicalNet 3-D ResNet encoder as a perception network (see the module docstring).

    Args:
        block: :class:`BasicBlock3d` or :class:`Bottleneck3d`.
        blocks: blocks in ``layer1`` ... ``layer4``.
        name: the network's name for descriptions and messages, e.g. "MedicalNet ResNet-10".
        weights: "medicalnet" (the file at ``weights_path``) or "random" (Kaiming-normal, seeded).
        weights_path: a MedicalNet checkpoint (required for "medicalnet").
        seed: seed of the random weights.
        input_spec: the normalisation of inputs scaled to [0, 1].

    The network is built in eval mode (batch norm uses its running statistics).

    Raises:
        MissingWeightsError: for "medicalnet" without an existing ``weights_path``.
        DataError: when the file is not a checkpoint of this architecture.
    """

    spatial_dims = 3

    def __init__(
        self,
        block: type[BasicBlock3d] | type[Bottleneck3d],
        blocks: Sequence[int],
        name: str,
        weights: Weights = "medicalnet",
        *,
        weights_path: str | Path | None = None,
        seed: int = 0,
        input_spec: InputSpec = MEDICALNET_INPUT,
    ) -> None:
        super().__init__()
        if input_spec.channels != 1:
            raise InputError(f"{name} takes one input channel; pass an input_spec with channels=1")
        self.conv1 = nn.Conv3d(1, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(3, stride=2, padding=1)
        channels = 64
        for index, (planes, count, (stride, dilation)) in enumerate(
                zip(_LAYER_PLANES, blocks, _LAYER_STRIDE_DILATION, strict=True), start=1):
            downsample = None
            if stride != 1 or channels != planes * block.expansion:
                downsample = nn.Sequential(nn.Conv3d(channels, planes * block.expansion, 1, stride=stride, bias=False),
                                           nn.BatchNorm3d(planes * block.expansion))
            layer = [block(channels, planes, stride, dilation, downsample)]
            channels = planes * block.expansion
            layer += [block(channels, planes, 1, dilation, None) for _ in range(count - 1)]
            self.add_module(f"layer{index}", nn.Sequential(*layer))
        self.name = name
        self.layer_names: tuple[str, ...] = MEDICALNET_LAYERS
        self.layer_aliases: dict[str, str] = {}
        self.input_spec = input_spec
        self.description = f"{name}, {self._load(weights, weights_path, seed)}"
        self.eval()  # a perception network: batch norm uses the checkpoint's running statistics

    def _load(self, weights: str, weights_path: str | Path | None, seed: int) -> str:
        if weights == "random":
            if weights_path is not None:
                raise InputError("weights_path is given but weights='random'; use weights='medicalnet' to load "
                                 "the file, or drop weights_path")
            generator = torch.Generator().manual_seed(seed)
            for module in self.modules():
                if isinstance(module, nn.Conv3d):
                    nn.init.kaiming_normal_(module.weight, mode="fan_out", generator=generator)
            return f"random weights (seed {seed})"
        if weights != "medicalnet":
            raise InputError(f"weights={weights!r} is unknown; use 'medicalnet' (with weights_path) or 'random'")
        if weights_path is None or not Path(weights_path).expanduser().is_file():
            given = "no weights_path was given" if weights_path is None else f"weights_path={str(weights_path)!r} " \
                                                                             "is not a file"
            raise MissingWeightsError(f"{self.name} needs MedicalNet's weights and {given}; taskloss ships and "
                                      f"downloads none: get resnet_10.pth / resnet_50.pth (or the _23dataset "
                                      f"files) from {MEDICALNET_URL} on a connected machine and pass "
                                      f"weights_path='/path/to/file.pth', or use weights='random'")
        path = Path(weights_path).expanduser()
        expected = {key: value.shape for key, value in self.state_dict().items()}
        self.load_state_dict(read_state_dict(path, expected, network=self.name, fix=(
            f"pass a MedicalNet checkpoint of the same depth from {MEDICALNET_URL}")))
        return f"MedicalNet weights ({path.name})"

    def min_input_size(self, layers: Sequence[str]) -> int:
        """Smallest depth, height and width at which the deepest of ``layers`` has one voxel per stride."""
        return _LAYER_TOTAL_STRIDE[resolve_layers(self, layers)[-1]]

    def forward(self, x: torch.Tensor, layers: Sequence[str]) -> dict[str, torch.Tensor]:
        """Activations of ``layers`` for prepared volumes, computed no deeper than the deepest of them.

        Args:
            x: prepared input (N, 1, D, H, W) (see :func:`taskloss.features.prepare_input`).
            layers: names among ``conv1``, ``layer1`` ... ``layer4``.

        Returns:
            Dict name -> activation (N, C_l, D_l, H_l, W_l), ordered shallow to deep.

        Raises:
            InputError: for an image (N, C, H, W) instead of a volume, or a volume too small for the layers.
        """
        wanted = resolve_layers(self, layers)
        if isinstance(x, torch.Tensor) and x.ndim == 4:
            raise InputError(f"{self.name} is a 3-D network and takes volumes (N, 1, D, H, W), got an image batch "
                             f"of shape {tuple(x.shape)}; pass volumes with spatial_dims=3, or use a 2-D network "
                             "(e.g. network='efficientnet_lite0') for images")
        check_float_tensor(x, f"{self.name} input", ndims=(5,))
        needed = self.min_input_size(wanted)
        if min(x.shape[2:]) < needed:
            raise InputError(f"volume of size {tuple(x.shape[2:])} is too small for layer {wanted[-1]!r} of "
                             f"{self.name}, which needs at least {needed} voxels along each axis; use larger "
                             "volumes or shallower layers")
        outputs: dict[str, torch.Tensor] = {}
        x = self.relu(self.bn1(self.conv1(x)))
        stages = [("conv1", None), ("layer1", self.layer1), ("layer2", self.layer2), ("layer3", self.layer3),
                  ("layer4", self.layer4)]
        for name, stage in stages:
            if stage is not None:
                x = stage(self.maxpool(x) if name == "layer1" else x)
            if name in wanted:
                outputs[name] = x
            if name == wanted[-1]:
                break
        return outputs


class MedicalNetResNet10(MedicalNetResNet):
    """MedicalNet's 3-D ResNet-10 (one basic block per layer, 14.36 M parameters).

    Args:
        weights: "medicalnet" (``weights_path`` required) or "random".
        weights_path: ``resnet_10.pth`` or ``resnet_10_23dataset.pth`` of the MedicalNet release.
        seed: seed of the random weights.
        input_spec: the normalisation of inputs scaled to [0, 1].

    Examples:
        >>> import torch
        >>> net = MedicalNetResNet10("random")
        >>> features = net(torch.zeros(1, 1, 8, 8, 8), ["conv1", "layer4"])
        >>> {name: tuple(f.shape) for name, f in features.items()}
        {'conv1': (1, 64, 4, 4, 4), 'layer4': (1, 512, 1, 1, 1)}
    """

    def __init__(self, weights: Weights = "medicalnet", *, weights_path: str | Path | None = None, seed: int = 0,
                 input_spec: InputSpec = MEDICALNET_INPUT) -> None:
        super().__init__(BasicBlock3d, (1, 1, 1, 1), "MedicalNet ResNet-10", weights, weights_path=weights_path,
                         seed=seed, input_spec=input_spec)


class MedicalNetResNet50(MedicalNetResNet):
    """MedicalNet's 3-D ResNet-50 (bottlenecks 3, 4, 6, 3; 46.16 M parameters).

    Args:
        weights: "medicalnet" (``weights_path`` required) or "random".
        weights_path: ``resnet_50.pth`` or ``resnet_50_23dataset.pth`` of the MedicalNet release.
        seed: seed of the random weights.
        input_spec: the normalisation of inputs scaled to [0, 1].

    Examples:
        >>> MedicalNetResNet50("random").layer4[0].conv3.out_channels
        2048
    """

    def __init__(self, weights: Weights = "medicalnet", *, weights_path: str | Path | None = None, seed: int = 0,
                 input_spec: InputSpec = MEDICALNET_INPUT) -> None:
        super().__init__(Bottleneck3d, (3, 4, 6, 3), "MedicalNet ResNet-50", weights, weights_path=weights_path,
                         seed=seed, input_spec=input_spec)
