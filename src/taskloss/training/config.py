"""Typed, validated settings of one training run (loaded from YAML or built in code), and YAML loading.

The models are :class:`taskloss.config.StrictModel`: unknown keys and wrong types are errors that
name the key, raised as :class:`taskloss.errors.ConfigError`.
"""

import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from taskloss.config import StrictModel
from taskloss.errors import ConfigError


class OptimizerConfig(StrictModel):
    """Adam settings and an optional step schedule (lr times ``gamma`` every ``step_epochs``)."""

    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = Field(0.0, ge=0)
    step_epochs: int | None = Field(None, gt=0)
    gamma: float = Field(0.5, gt=0, le=1)


class TrainingConfig(StrictModel):
    """How a run trains: length, batch, hardware, seeding, checkpoints and logging.

    Attributes:
        epochs: passes over the training split.
        batch_size: images per device and step (the global batch is ``batch_size * devices``).
        seed: seeds weights, data order, masks and dropout; recorded in the run folder.
        accelerator: "cpu", "cuda" or "auto" (CUDA when available).
        devices: number of devices (processes); > 1 trains with DDP.
        num_nodes: nodes for multi-node DDP (launched by torchrun or a cluster scheduler).
        precision: "auto" (bf16-mixed on CUDA with bf16 support, else 16-mixed on CUDA, 32-true on
            CPU), or a Lightning precision string.
        num_workers: DataLoader worker processes per device.
        checkpoint_every_steps: also write ``last.ckpt`` every this many steps (mid-epoch resume);
            None writes it at the end of each epoch only.
        log_every_steps: training losses go to the CSV and TensorBoard logs every this many steps.
        monitor: validation metric that selects ``best.ckpt`` (mean over the validation split);
            None makes ``best.ckpt`` the last epoch (e.g. for adversarial training, whose
            validation metrics do not measure what it optimises).
        monitor_mode: "min" or "max" for ``monitor``.
        grad_clip: clip gradients to this global norm; None for no clipping.
        progress: show progress bars.
        deterministic: ask torch for deterministic algorithms (CUDA; CPU kernels already are).
    """

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(4, ge=1)
    seed: int = 0
    accelerator: Literal["auto", "cpu", "cuda"] = "auto"
    devices: int = Field(1, ge=1)
    num_nodes: int = Field(1, ge=1)
    precision: Literal["auto", "32-true", "64-true", "16-mixed", "bf16-mixed"] = "auto"
    num_workers: int = Field(0, ge=0)
    checkpoint_every_steps: int | None = Field(None, ge=1)
    log_every_steps: int = Field(10, ge=1)
    monitor: str | None = "loss"
    monitor_mode: Literal["min", "max"] = "min"
    grad_clip: float | None = Field(None, gt=0)
    progress: bool = True
    deterministic: bool = False
    optimizer: OptimizerConfig = OptimizerConfig()


class _DuplicateKey(yaml.YAMLError):
    """A mapping repeats a key; the message names it and its line."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error.

    PyYAML keeps the last value of a repeated key silently; a config that sets ``epochs`` twice
    would then train with a value its author may not have meant.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise _DuplicateKey(f"key {key!r} is given twice (line {key_node.start_mark.line + 1}); "
                                    "keep one of them")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: builds plain data only


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, with one clear error for a missing, unreadable or malformed file.

    Raises:
        ConfigError: the path is missing or a folder; the file is unreadable, not UTF-8 or not
            YAML; a key is repeated; a number is NaN or infinite; the top level is not a mapping.
    """
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; pass the path of a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass the path of a YAML file")
    try:
        data = _parse_yaml(path.read_text(encoding="utf-8"))
    except _DuplicateKey as error:
        raise ConfigError(f"config file {path}: {error}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}".replace("\n", " ")) from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; save it as a UTF-8 YAML file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values, got "
                          f"{type(data).__name__}")
    check_finite_numbers(data, f"config file {path}")
    return data


def check_finite_numbers(data: Any, source: str, key: str = "") -> None:
    """Raise :class:`ConfigError` naming the first key whose value is a NaN or infinite number."""
    if isinstance(data, dict):
        for name, value in data.items():
            check_finite_numbers(value, source, f"{key}.{name}" if key else str(name))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            check_finite_numbers(value, source, f"{key}[{index}]")
    elif isinstance(data, float) and not math.isfinite(data):
        raise ConfigError(f"{source}: {key or 'value'} is {data}; numbers must be finite, give a number "
                          "such as 0.001")


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.sub=value`` overrides (values parsed as YAML) to a nested mapping, in place."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {override!r} is not of the form key=value (e.g. "
                              "training.epochs=5)")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {override!r}: {part} is a value, not a section")
            node = child
        try:
            node[parts[-1]] = _parse_yaml(raw)
        except yaml.YAMLError as error:  # (a repeated key included)
            raise ConfigError(f"override {override!r}: the value is not valid YAML ({error}); quote "
                              "it or fix it".replace("\n", " ")) from None
        check_finite_numbers(node[parts[-1]], f"override {override!r}", key)
    return data
