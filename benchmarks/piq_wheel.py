"""Import piq 0.8.0's own code from its unpacked wheel, without torchvision (reference values only).

piq cannot be installed here: its package ``__init__`` imports every module, and ``perceptual.py``
and ``feature_extractors/fid_inception.py`` import torchvision, whose wheel needs CUDA. HaarPSI and
VSI need torch alone, so a stand-in ``torchvision`` module is placed in ``sys.modules`` for those
unrelated imports only (calling anything of it raises). Get the wheel with
``pip download piq==0.8.0 --no-deps`` and unpack it (``python -m zipfile -e piq-0.8.0-py3-none-any.whl DIR``).
"""

import importlib
import sys
import types
from pathlib import Path

import torch

PIQ_VERSION = "0.8.0"


def _unavailable(*args: object, **kwargs: object) -> None:
    raise RuntimeError("torchvision is a stand-in here: piq's networks are not available")


class _Unavailable(torch.nn.Module):
    def __init__(self, *args: object, **kwargs: object) -> None:
        _unavailable()


def load_piq(unpacked: str | Path) -> types.ModuleType:
    """piq imported from the folder ``unpacked`` (which holds ``piq/``), with a torchvision stand-in.

    Raises:
        FileNotFoundError: when the folder holds no ``piq/__init__.py``.
        RuntimeError: when the piq found is not version :data:`PIQ_VERSION`.
    """
    folder = Path(unpacked)
    if not (folder / "piq" / "__init__.py").is_file():
        raise FileNotFoundError(f"no unpacked piq wheel in {folder}: pip download piq=={PIQ_VERSION} --no-deps, "
                                "then python -m zipfile -e piq-*.whl DIR")
    if "torchvision" not in sys.modules:
        stub = types.ModuleType("torchvision")
        models = types.ModuleType("torchvision.models")
        utils = types.ModuleType("torchvision.models.utils")
        inception = types.ModuleType("torchvision.models.inception")
        models.vgg16 = models.vgg19 = models.inception_v3 = utils.load_state_dict_from_url = _unavailable
        # fid_inception.py subclasses these at import time; instantiating them raises
        inception.InceptionA = inception.InceptionC = inception.InceptionE = _Unavailable
        stub.models, models.utils, models.inception = models, utils, inception
        sys.modules.update({"torchvision": stub, "torchvision.models": models, "torchvision.models.utils": utils,
                            "torchvision.models.inception": inception})
    sys.path.insert(0, str(folder))
    try:
        piq = importlib.import_module("piq")
    finally:
        sys.path.remove(str(folder))
    if piq.__version__ != PIQ_VERSION:
        raise RuntimeError(f"piq {piq.__version__} found in {folder}; the references are of piq {PIQ_VERSION}")
    return piq
