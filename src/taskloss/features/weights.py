"""Finding and loading torchvision's ImageNet VGG-19 weights, offline first.

No package ships these weights and taskloss never depends on torchvision, so the file
``vgg19-dcbb9e9d.pth`` (torchvision's checkpoint, 548 MB, keys ``features.N.weight`` and
``classifier.N.weight``) is looked for, in order:

1. an explicit ``weights_path`` argument;
2. the environment variable ``TASKLOSS_VGG19_WEIGHTS``;
3. the torch hub cache, ``<torch.hub.get_dir()>/checkpoints/vgg19-dcbb9e9d.pth``, where
   torchvision itself stores it (so a machine that ever ran torchvision's VGG-19 has it);
4. a download into that cache through ``torch.hub`` (checked against the hash in the name).

When none of them works (offline, no file), one :class:`MissingWeightsError` names the file and
every way to provide it.
"""

import os
from pathlib import Path

import torch

from taskloss.errors import DataError, MissingWeightsError

VGG19_FILE_NAME = "vgg19-dcbb9e9d.pth"
VGG19_URL = f"https://download.pytorch.org/models/{VGG19_FILE_NAME}"
VGG19_HASH_PREFIX = "dcbb9e9d"
WEIGHTS_ENV = "TASKLOSS_VGG19_WEIGHTS"


def hub_cache_path() -> Path:
    """Where torch hub (and torchvision) keep the file: ``<hub dir>/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILE_NAME


def _how_to_provide() -> str:
    return (f"provide torchvision's {VGG19_FILE_NAME} (download it on a connected machine from "
            f"{VGG19_URL}) in one of these ways: pass weights_path='/path/to/{VGG19_FILE_NAME}', "
            f"set the environment variable {WEIGHTS_ENV}=/path/to/{VGG19_FILE_NAME}, or copy it to "
            f"{hub_cache_path()}; or use weights='random' for an ablation without ImageNet weights")


def resolve_vgg19_weights(weights_path: str | os.PathLike[str] | None = None) -> Path:
    """Path of the ImageNet VGG-19 weights, found (or downloaded) in the documented order.

    Args:
        weights_path: an explicit file; it must exist (no fallback to the other sources).

    Returns:
        Path of an existing file.

    Raises:
        MissingWeightsError: when the explicit or environment path does not exist, or when no
            file is found and the download fails; the message lists the ways to provide it.
    """
    for source, value in (("weights_path", weights_path), (WEIGHTS_ENV, os.environ.get(WEIGHTS_ENV))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise MissingWeightsError(f"{source}={str(value)!r} is not a file; "
                                          f"{_how_to_provide()}")
            return path
    cached = hub_cache_path()
    if cached.is_file():
        return cached
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(VGG19_URL, str(cached), hash_prefix=VGG19_HASH_PREFIX,
                                       progress=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a hash mismatch a RuntimeError
        reason = " ".join(str(error).split())
        raise MissingWeightsError(f"VGG-19 ImageNet weights {VGG19_FILE_NAME} were not found and "
                                  f"could not be downloaded ({reason}); {_how_to_provide()}") from None
    return cached


def load_features_state_dict(path: Path, expected: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """Load the ``features.*`` tensors of a torchvision-layout checkpoint; other keys are ignored.

    Args:
        path: a file written by ``torch.save`` holding a state dict (or ``{"state_dict": ...}``).
        expected: key -> shape of every tensor the network needs.

    Returns:
        Dict key -> tensor (on CPU) for exactly the keys of ``expected``.

    Raises:
        DataError: when the file cannot be read or lacks a key or has a wrong shape.
    """
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many types (pickle, zip, EOF) for bad files
        raise DataError(f"cannot read weights file {path} ({type(error).__name__}: "
                        f"{' '.join(str(error).split())[:200]}); the file is corrupt or not a "
                        f"PyTorch checkpoint: download {VGG19_FILE_NAME} again") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise DataError(f"weights file {path} holds a {type(loaded).__name__}, not a state dict; "
                        f"pass torchvision's {VGG19_FILE_NAME}")
    missing = [key for key in expected if key not in loaded]
    if missing:
        raise DataError(f"weights file {path} lacks {len(missing)} of the {len(expected)} VGG-19 "
                        f"tensors (first: {missing[0]!r}); pass torchvision's {VGG19_FILE_NAME}, "
                        "whose keys are features.N.weight and features.N.bias")
    for key, shape in expected.items():
        if loaded[key].shape != shape:
            raise DataError(f"weights file {path}: {key} has shape {tuple(loaded[key].shape)}, "
                            f"VGG-19 needs {tuple(shape)}; pass torchvision's {VGG19_FILE_NAME}")
    return {key: loaded[key] for key in expected}
