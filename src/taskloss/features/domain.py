"""taskloss's domain perception network: a small VGG-style network trained on simulated anatomy.

ImageNet VGG-19 weights cannot be fetched on offline machines, so taskloss ships a perception
network of its own, trained by ``taskloss train-perception`` (:mod:`taskloss.training.perception`)
on the head simulator's tissue labels: from MR slices in two contrasts, CT slices and MR and X-ray
projections, it predicts every pixel's tissue composition (for a slice the tissue fractions of the
voxel; for a projection the share of each tissue along the ray), and, self-supervised, restores the
image from a noisy, blurred copy. Its features thus respond to what distinguishes anatomy in these
images (bone edges, tissue boundaries) and to fine intensity structure.

Layout: 4 blocks of two 3x3 convolutions with ReLU (16, 32, 64, 64 channels), max pooling
between blocks; layer names as VGG's (``convB_N`` after the ReLU, alias ``reluB_N``; ``poolB``).
Input: one channel in [0, 1], normalised by mean 0.5 and std 0.25. The weights file holds the
``features.*`` tensors only (the training head is not shipped), about 0.6 MB in float32. It is
kept narrow because it runs twice per training step of every perceptual-loss run.
"""

import hashlib
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from taskloss.errors import DataError, MissingWeightsError
from taskloss.features.base import InputSpec, SequentialFeatureExtractor

DOMAIN_BLOCKS: tuple[tuple[int, ...], ...] = ((16, 16), (32, 32), (64, 64), (64, 64))
DOMAIN_LAYERS: tuple[str, ...] = ("conv1_2", "conv2_2", "conv3_2", "conv4_2")
"""The default layer set of the perceptual loss on this network (CRN-style: second conv per block)."""
DOMAIN_INPUT = InputSpec(channels=1, mean=(0.5,), std=(0.25,))
WEIGHTS_NAME = "domain_perception.pt"


def shipped_weights_path() -> Path:
    """Where the package keeps the trained weights (``taskloss/features/assets/``)."""
    return Path(str(resources.files("taskloss.features") / "assets" / WEIGHTS_NAME))


def _build() -> tuple[nn.Sequential, dict[str, int], dict[str, str]]:
    layers: list[nn.Module] = []
    taps: dict[str, int] = {}
    aliases: dict[str, str] = {}
    in_channels = DOMAIN_INPUT.channels
    for block, widths in enumerate(DOMAIN_BLOCKS, start=1):
        for number, width in enumerate(widths, start=1):
            layers += [nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU()]
            taps[f"conv{block}_{number}"] = len(layers) - 1
            aliases[f"relu{block}_{number}"] = f"conv{block}_{number}"
            in_channels = width
        if block < len(DOMAIN_BLOCKS):
            layers.append(nn.MaxPool2d(2, 2))
            taps[f"pool{block}"] = len(layers) - 1
    return nn.Sequential(*layers), taps, aliases


class DomainFeatures(SequentialFeatureExtractor):
    """The domain perception network (see the module docstring).

    Args:
        weights_path: a weights file written by ``taskloss train-perception``; None for the shipped
            one. Ignored when ``random`` is True.
        random: seeded random weights (Kaiming uniform), e.g. before training or for ablations.
        seed: seed of the random weights.
    """

    def __init__(
        self, weights_path: str | Path | None = None, *, random: bool = False, seed: int = 0
    ) -> None:
        features, taps, aliases = _build()
        if random:
            generator = torch.Generator().manual_seed(seed)
            for module in features:
                if isinstance(module, nn.Conv2d):
                    bound = (6.0 / (module.in_channels * 9)) ** 0.5
                    with torch.no_grad():
                        module.weight.uniform_(-bound, bound, generator=generator)
                        module.bias.zero_()
            description = f"taskloss domain network (random weights, seed {seed})"
        else:
            path = Path(weights_path) if weights_path is not None else shipped_weights_path()
            state = _read_weights(path)
            features.load_state_dict({k.removeprefix("features."): v for k, v in state.items()})
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
            description = (f"taskloss domain network (VGG-style, 4 blocks, trained on simulated head "
                           f"tissue labels and image restoration; weights {path.name} sha256 {digest})")
        super().__init__(features, taps, input_spec=DOMAIN_INPUT, description=description, aliases=aliases)


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise MissingWeightsError(f"domain perception weights {path} are missing; run `taskloss "
                                  f"train-perception --out {path}` to train them (about 10 minutes on CPU)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a corrupt file
        raise DataError(f"domain perception weights {path} are corrupt ({type(error).__name__}); train "
                        "them again with `taskloss train-perception`") from None
    expected = {f"features.{k}" for k in _build()[0].state_dict()}
    if not isinstance(state, dict) or set(state) != expected:
        raise DataError(f"{path} is not a domain perception weights file (expected keys "
                        f"{sorted(expected)[:2]}...); train it with `taskloss train-perception`")
    return {k: v.float() for k, v in state.items()}


def load_domain_network(weights_path: str | Path | None = None) -> DomainFeatures:
    """The trained domain network (shipped weights unless ``weights_path`` is given)."""
    return DomainFeatures(weights_path)
