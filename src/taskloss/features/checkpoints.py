"""Reading a network's state dict from a checkpoint file, with one clear error for a wrong file.

Checkpoints published beside papers come in a few shapes: a bare state dict, ``{"state_dict": ...}``
(Tencent/MedicalNet's releases), and keys with the ``module.`` prefix ``nn.DataParallel`` adds.
:func:`read_state_dict` accepts all three and checks every tensor a network needs by key and shape,
ignoring the rest (e.g. a classification or segmentation head the feature network does not use). A missing batch-norm
step counter (``num_batches_tracked``, absent from files saved before PyTorch 0.4.1) is set to 0.
"""

from collections.abc import Mapping
from pathlib import Path

import torch

from taskloss.errors import DataError

DATA_PARALLEL_PREFIX = "module."
"""The prefix ``torch.nn.DataParallel`` puts before every key of the wrapped module's state dict."""
BATCH_COUNTER = "num_batches_tracked"
"""The batch-norm buffer that files saved before PyTorch 0.4.1 lack (filled with 0: unused in eval mode)."""


def read_state_dict(
    path: str | Path, expected: Mapping[str, torch.Size], *, network: str, fix: str
) -> dict[str, torch.Tensor]:
    """The tensors of ``expected`` from the checkpoint at ``path``.

    Args:
        path: a file written by ``torch.save`` holding a state dict or ``{"state_dict": ...}``;
            keys may carry the ``module.`` prefix of ``nn.DataParallel``.
        expected: key -> shape of every tensor the network needs (keys without prefix).
        network: the network's name, for messages (e.g. "EfficientNet-Lite0").
        fix: what to do instead, for messages (e.g. "pass the file of the efficientnet-lite0 package").

    Returns:
        Dict key -> tensor (on the CPU) for exactly the keys of ``expected``.

    Raises:
        DataError: when the file cannot be read, holds no state dict, lacks a key, or a tensor has
            another shape.

    Examples:
        >>> import tempfile, torch
        >>> from pathlib import Path
        >>> path = Path(tempfile.mkdtemp()) / "net.pth"
        >>> torch.save({"state_dict": {"module.conv.weight": torch.ones(2, 1)}}, path)
        >>> state = read_state_dict(path, {"conv.weight": torch.Size([2, 1])}, network="Net", fix="retrain")
        >>> list(state), state["conv.weight"].shape
        (['conv.weight'], torch.Size([2, 1]))
    """
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch.load raises many types (pickle, zip, EOF) for bad files
        raise DataError(f"cannot read {network} weights file {path} ({type(error).__name__}: "
                        f"{' '.join(str(error).split())[:200]}); the file is corrupt or not a PyTorch "
                        f"checkpoint: {fix}") from None
    if isinstance(loaded, Mapping) and isinstance(loaded.get("state_dict"), Mapping):
        loaded = loaded["state_dict"]
    if not isinstance(loaded, Mapping):
        raise DataError(f"{network} weights file {path} holds a {type(loaded).__name__}, not a state dict; {fix}")
    state = {str(key).removeprefix(DATA_PARALLEL_PREFIX): value for key, value in loaded.items()}
    for key in expected:  # checkpoints saved before PyTorch 0.4.1 lack the batch-norm step counter
        if key.endswith(BATCH_COUNTER) and key not in state:
            state[key] = torch.tensor(0)
    missing = [key for key in expected if key not in state]
    if missing:
        raise DataError(f"{network} weights file {path} lacks {len(missing)} of the {len(expected)} tensors "
                        f"the network needs (first: {missing[0]!r}); {fix}")
    for key, shape in expected.items():
        if tuple(state[key].shape) != tuple(shape):
            raise DataError(f"{network} weights file {path}: {key} has shape {tuple(state[key].shape)}, the "
                            f"network needs {tuple(shape)}; {fix}")
    return {key: state[key] for key in expected}
