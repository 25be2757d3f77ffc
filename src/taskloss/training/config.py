"""Typed, validated settings of one training run (loaded from YAML or built in code).

Unknown keys and wrong types are errors that name the key (pydantic ``extra="forbid"``), raised as
:class:`taskloss.errors.ConfigError`.
"""

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskloss.errors import ConfigError


class StrictModel(BaseModel):
    """Base of every taskloss config: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


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


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line per problem: ``source: key.path: message``."""
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(root)"
        message = "unknown key (check the spelling; see the documented keys)" if item[
            "type"] == "extra_forbidden" else item["msg"]
        problems.append(f"{key}: {message}")
    return f"{source}: " + "; ".join(problems)


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, with one clear error for a missing, unreadable or malformed file."""
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass the path of a YAML file")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}".replace("\n", " ")) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of keys to values, got "
                          f"{type(data).__name__}")
    return data


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
        node[parts[-1]] = yaml.safe_load(raw)
    return data
