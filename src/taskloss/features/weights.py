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

The same order serves every weights file a perception network needs (:class:`WeightsSource`):
torchvision's AlexNet and VGG-16 checkpoints (LPIPS, DISTS) with their own environment variables,
and files that ship inside PyPI wheels but no library of ours loads (LPIPS's linear heads, DISTS's
alpha and beta), which are also looked for in the installed packages that ship them (found without
importing them) and never downloaded.
"""

import os
from dataclasses import dataclass
from importlib import util
from pathlib import Path

import torch

from taskloss.errors import DataError, MissingWeightsError

TORCHVISION_URL = "https://download.pytorch.org/models/{file_name}"
"""Where torchvision's ImageNet checkpoints are published (and torch hub downloads them from)."""


@dataclass(frozen=True)
class WeightsSource:
    """A weights file: its name, where it is looked for, and how a user gets it.

    Attributes:
        network: the network's name in messages, e.g. "VGG-19".
        what: what the file holds, e.g. "ImageNet weights".
        file_name: the file's name, e.g. ``vgg19-dcbb9e9d.pth``.
        env: the environment variable that may hold its path.
        obtain: how to get the file on a connected machine (one clause for messages).
        hash_prefix: for a torch hub download: the start of the file's sha256 (torchvision puts it in
            the name); None for files that are never downloaded.
        packaged: (package, path inside it) of installed packages that ship the file.
        alternative: what to do instead, the end of the missing-file message (may be empty).
    """

    network: str
    what: str
    file_name: str
    env: str
    obtain: str
    hash_prefix: str | None = None
    packaged: tuple[tuple[str, str], ...] = ()
    alternative: str = ""

    @property
    def url(self) -> str | None:
        """The torch hub download address, for a file that has a ``hash_prefix``."""
        return TORCHVISION_URL.format(file_name=self.file_name) if self.hash_prefix else None


def torchvision_source(network: str, file_name: str, env: str) -> WeightsSource:
    """The :class:`WeightsSource` of torchvision's ImageNet checkpoint ``file_name`` (hash in its name)."""
    return WeightsSource(
        network=network, what="ImageNet weights", file_name=file_name, env=env,
        obtain=f"download it on a connected machine from {TORCHVISION_URL.format(file_name=file_name)}",
        hash_prefix=file_name.removesuffix(".pth").rsplit("-", 1)[1],
        alternative="or use weights='random' for an ablation without ImageNet weights")


VGG19_FILE_NAME = "vgg19-dcbb9e9d.pth"
VGG19_URL = TORCHVISION_URL.format(file_name=VGG19_FILE_NAME)
VGG19_HASH_PREFIX = "dcbb9e9d"
WEIGHTS_ENV = "TASKLOSS_VGG19_WEIGHTS"
VGG19_WEIGHTS = torchvision_source("VGG-19", VGG19_FILE_NAME, WEIGHTS_ENV)
VGG16_WEIGHTS = torchvision_source("VGG-16", "vgg16-397923af.pth", "TASKLOSS_VGG16_WEIGHTS")
"""torchvision's ImageNet VGG-16 (``torchvision.models.vgg16``, 528 MB), the backbone of LPIPS-VGG and DISTS."""
ALEXNET_WEIGHTS = torchvision_source("AlexNet", "alexnet-owt-7be5be79.pth", "TASKLOSS_ALEXNET_WEIGHTS")
"""torchvision's ImageNet AlexNet (``torchvision.models.alexnet``, 233 MB), the backbone of LPIPS-Alex."""


LPIPS_HEADS_WEIGHTS = {
    backbone: WeightsSource(
        network=f"LPIPS-{name}", what="linear heads (LPIPS v0.1)", file_name=f"{backbone}.pth",
        env=f"TASKLOSS_LPIPS_{backbone.upper()}_HEADS",
        obtain="pip install lpips or torchmetrics, whose wheels ship it",
        packaged=(("lpips", f"weights/v0.1/{backbone}.pth"),
                  ("torchmetrics", f"functional/image/lpips_models/{backbone}.pth")))
    for backbone, name in (("alex", "Alex"), ("vgg", "VGG"))}
"""The learned 1x1 heads of LPIPS v0.1 (Zhang et al. 2018), keys ``lin{k}.model.1.weight`` of shape (1, C_k, 1, 1),
by backbone ("alex", "vgg"): shipped in the ``lpips`` wheel (``lpips/weights/v0.1/``) and in torchmetrics'."""
DISTS_WEIGHTS = WeightsSource(
    network="DISTS", what="alpha and beta", file_name="weights.pt", env="TASKLOSS_DISTS_WEIGHTS",
    obtain="pip install torchmetrics or DISTS_pytorch, whose wheels ship it",
    packaged=(("torchmetrics", "functional/image/dists_models/weights.pt"), ("DISTS_pytorch", "weights.pt")))
"""The learned weights of DISTS (Ding et al. 2020), keys ``alpha`` and ``beta`` of shape (1, 1475, 1, 1): shipped in
the DISTS_pytorch wheel and in torchmetrics' (``functional/image/dists_models/weights.pt``)."""


def hub_cache_path(file_name: str = VGG19_FILE_NAME) -> Path:
    """Where torch hub (and torchvision) keep a file: ``<hub dir>/checkpoints/<file name>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / file_name


def _how_to_provide(source: WeightsSource, argument: str) -> str:
    ways = [f"pass {argument}='/path/to/{source.file_name}'",
            f"set the environment variable {source.env}=/path/to/{source.file_name}"]
    if source.url:
        ways.append(f"copy it to {hub_cache_path(source.file_name)}")
    if source.packaged:
        ways.append(f"install a package that ships it ({', '.join(name for name, _ in source.packaged)})")
    ending = f"; {source.alternative}" if source.alternative else ""
    owner = "torchvision's " if source.url else ""
    return (f"provide {owner}{source.file_name} ({source.obtain}) in one of these ways: "
            f"{', '.join(ways[:-1])}, or {ways[-1]}{ending}")


def packaged_path(source: WeightsSource) -> Path | None:
    """The first existing copy of the file inside an installed package of ``source.packaged``, or None.

    The packages are located with :func:`importlib.util.find_spec`, which does not import them.
    """
    for package, inside in source.packaged:
        spec = util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec is not None else []:
            candidate = Path(folder) / inside
            if candidate.is_file():
                return candidate
    return None


def resolve_weights(source: WeightsSource, weights_path: str | os.PathLike[str] | None = None, *,
                    argument: str = "weights_path") -> Path:
    """Path of the file of ``source``, found (or downloaded) in the order of the module docstring.

    Args:
        source: the file.
        weights_path: an explicit file; it must exist (no fallback to the other sources).
        argument: the name of the caller's argument that takes the path, for messages.

    Returns:
        Path of an existing file.

    Raises:
        MissingWeightsError: when the explicit or environment path does not exist, or when no
            file is found (and, for a downloadable file, the download fails); the message lists the
            ways to provide it.

    Examples:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / VGG16_WEIGHTS.file_name
        >>> _ = path.write_bytes(b"")
        >>> resolve_weights(VGG16_WEIGHTS, path) == path
        True
    """
    for name, value in ((argument, weights_path), (source.env, os.environ.get(source.env))):
        if value:
            path = Path(value).expanduser()
            if not path.is_file():
                raise MissingWeightsError(f"{name}={str(value)!r} is not a file; "
                                          f"{_how_to_provide(source, argument)}")
            return path
    cached = hub_cache_path(source.file_name)
    if source.url and cached.is_file():
        return cached
    packaged = packaged_path(source)
    if packaged is not None:
        return packaged
    if not source.url:
        raise MissingWeightsError(f"{source.network} {source.what} {source.file_name} were not found; "
                                  f"{_how_to_provide(source, argument)}")
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(source.url, str(cached), hash_prefix=source.hash_prefix, progress=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a hash mismatch a RuntimeError
        reason = " ".join(str(error).split())
        raise MissingWeightsError(f"{source.network} {source.what} {source.file_name} were not found and "
                                  f"could not be downloaded ({reason}); "
                                  f"{_how_to_provide(source, argument)}") from None
    return cached


def resolve_vgg19_weights(weights_path: str | os.PathLike[str] | None = None) -> Path:
    """Path of the ImageNet VGG-19 weights (:func:`resolve_weights` of :data:`VGG19_WEIGHTS`).

    Args:
        weights_path: an explicit file; it must exist (no fallback to the other sources).

    Returns:
        Path of an existing file.

    Raises:
        MissingWeightsError: when the explicit or environment path does not exist, or when no
            file is found and the download fails; the message lists the ways to provide it.
    """
    return resolve_weights(VGG19_WEIGHTS, weights_path)


def load_features_state_dict(path: Path, expected: dict[str, torch.Size],
                             source: WeightsSource = VGG19_WEIGHTS) -> dict[str, torch.Tensor]:
    """Load the ``features.*`` tensors of a torchvision-layout checkpoint; other keys are ignored.

    Args:
        path: a file written by ``torch.save`` holding a state dict (or ``{"state_dict": ...}``).
        expected: key -> shape of every tensor the network needs.
        source: the checkpoint's :class:`WeightsSource`, named in messages.

    Returns:
        Dict key -> tensor (on CPU) for exactly the keys of ``expected``.

    Raises:
        DataError: when the file cannot be read or lacks a key or has a wrong shape.
    """
    return load_tensors(path, expected, source, provide=f"torchvision's {source.file_name}",
                        keys="features.N.weight and features.N.bias")


def load_tensors(path: Path, expected: dict[str, torch.Size], source: WeightsSource, *, provide: str,
                 keys: str) -> dict[str, torch.Tensor]:
    """Load the tensors ``expected`` names from a state-dict file; other keys are ignored.

    Args:
        path: a file written by ``torch.save`` holding a state dict (or ``{"state_dict": ...}``); tensors saved
            on CUDA are mapped to the CPU.
        expected: key -> shape of every tensor needed.
        source: the file's :class:`WeightsSource`, named in messages.
        provide: what to pass instead, for messages, e.g. "torchvision's vgg16-397923af.pth".
        keys: the keys the right file holds, for messages, e.g. "features.N.weight and features.N.bias".

    Returns:
        Dict key -> tensor (on CPU) for exactly the keys of ``expected``.

    Raises:
        DataError: when the file cannot be read or lacks a key or has a wrong shape.
    """
    network, file_name = source.network, source.file_name
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many types (pickle, zip, EOF) for bad files
        raise DataError(f"cannot read weights file {path} ({type(error).__name__}: "
                        f"{' '.join(str(error).split())[:200]}); the file is corrupt or not a "
                        f"PyTorch checkpoint: download {file_name} again") from None
    if isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise DataError(f"weights file {path} holds a {type(loaded).__name__}, not a state dict; "
                        f"pass {provide}")
    missing = [key for key in expected if key not in loaded]
    if missing:
        raise DataError(f"weights file {path} lacks {len(missing)} of the {len(expected)} {network} "
                        f"tensors (first: {missing[0]!r}); pass {provide}, whose keys are {keys}")
    for key, shape in expected.items():
        if not isinstance(loaded[key], torch.Tensor) or loaded[key].shape != shape:
            found = tuple(loaded[key].shape) if isinstance(loaded[key], torch.Tensor) else type(loaded[key]).__name__
            raise DataError(f"weights file {path}: {key} has shape {found}, "
                            f"{network} needs {tuple(shape)}; pass {provide}")
    return {key: loaded[key] for key in expected}


def load_torchvision_features(features: torch.nn.Sequential, source: WeightsSource,
                              weights_path: str | os.PathLike[str] | None = None) -> Path:
    """Fill ``features`` (numbered as torchvision's ``model.features``) from the checkpoint of ``source``.

    The file is found by :func:`resolve_weights`; its ``features.N.*`` tensors must match the
    parameters of ``features`` (buffers outside the state dict, e.g. fixed pooling filters, are not
    read); ``classifier.*`` keys are ignored.

    Returns:
        The path of the file loaded.

    Raises:
        MissingWeightsError: when the file is not found (see :func:`resolve_weights`).
        DataError: when it is corrupt or is not the network's (a missing key or a wrong shape).
    """
    path = resolve_weights(source, weights_path)
    expected = {f"features.{key}": value.shape for key, value in features.state_dict().items()}
    state = load_features_state_dict(path, expected, source)
    features.load_state_dict({key.removeprefix("features."): value for key, value in state.items()})
    return path
