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


MAX_CONFIG_BYTES = 1 << 20
"""Largest config or study file read, 1 MiB. The shipped study files are at most 5 KB (csmri-small)
and a study of a hundred networks and losses stays under 50 KB; anything larger is not a
hand-written file."""
MAX_YAML_ALIASES = 1000
"""Most aliases (``*name``) one YAML text may use. A study file shares a few sections by anchor
(a network's options, a discriminator); an alias bomb ("billion laughs") needs many more."""
MAX_YAML_NODES = 100_000
"""Most values (keys, scalars, lists and mappings) one YAML text may hold once its aliases are
expanded. The shipped study files hold at most 356 (csmri-small); the 1 KB alias bomb of 9 levels
x 9 aliases holds more than 9**9 (387 million) and would take minutes and gigabytes to walk."""
MAX_YAML_DEPTH = 64
"""Deepest nesting, counting the top-level mapping and the values at the bottom. The shipped study
files reach 7 (csmri's ``runs.refinement.training.optimizer.betas[0]``); a study file of networks
and losses reaches 8 (``losses.<name>.adversarial.discriminator.optimizer.betas[0]``). PyYAML
builds nested values recursively, so thousands of levels would exhaust Python's stack."""
MERGE_TAG = "tag:yaml.org,2002:merge"
"""The tag of YAML's merge key ``<<`` (https://yaml.org/type/merge.html), which the loader supports."""


class _YAMLLimit(yaml.YAMLError):
    """A YAML text past one of the limits above, or a key that cannot be a key; the message says which."""


class _BoundedLoader(yaml.SafeLoader):
    """YAML's safe loader with limits (:data:`MAX_YAML_ALIASES`, :data:`MAX_YAML_NODES`,
    :data:`MAX_YAML_DEPTH`), and a key given twice in one mapping an error.

    PyYAML keeps the last value of a repeated key silently; a config that sets ``epochs`` twice
    would then train with a value its author may not have meant. Merge keys (``<<: *base``) work
    as YAML defines them: the mapping's own keys override the merged ones, which is not a repeat.
    PyYAML has no limits of its own (its issue #37); they are checked on the composed node graph,
    before any value is built.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:  # type: ignore[override]
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_YAML_ALIASES:
                raise _YAMLLimit(f"it uses more than {MAX_YAML_ALIASES} aliases (*name); write the values out or "
                                 "share fewer sections")
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise _YAMLLimit(f"it nests sections or lists more than {MAX_YAML_DEPTH} levels deep; a study file "
                                 "needs at most 8, flatten it")
            return super().compose_node(parent, index)  # type: ignore[no-untyped-call]
        finally:
            self._depth -= 1

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()  # type: ignore[no-untyped-call]
        if node is not None:
            count = _expanded_nodes(node)
            if count > MAX_YAML_NODES:
                raise _YAMLLimit(f"its aliases expand to {count:.3g} values, more than {MAX_YAML_NODES:,}; it looks "
                                 "like an alias bomb, write the values out instead")
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if not isinstance(key, str | int | float | bool) and key is not None:
                raise _YAMLLimit(f"a key (line {key_node.start_mark.line + 1}) is a {type(key).__name__}; keys are "
                                 "names")
            if key in seen:
                raise _YAMLLimit(f"key {key!r} is given twice (line {key_node.start_mark.line + 1}); keep one of them")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _expanded_nodes(root: yaml.Node) -> int:
    """Values of the node graph with every alias expanded: counted per distinct node (memoised),
    in time proportional to the nodes written, not to their expansion. Without recursion: the
    graph is at most :data:`MAX_YAML_DEPTH` deep, but an iterative walk needs no such argument."""
    counts: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in counts:
            continue
        children = _children(node)
        if children_done or not children:
            counts[id(node)] = 1 + sum(counts[id(child)] for child in children)
            continue
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in counts)
    return counts[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_BoundedLoader)  # a SafeLoader: builds plain data only


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, with one clear error for a missing, unreadable, malformed or oversized file.

    Merge keys (``<<: *anchor``) work as YAML defines them.

    Raises:
        ConfigError: the path is missing or a folder; the file is over :data:`MAX_CONFIG_BYTES`,
            unreadable, not UTF-8 or not YAML; it passes :data:`MAX_YAML_ALIASES`,
            :data:`MAX_YAML_NODES` or :data:`MAX_YAML_DEPTH`; a key is repeated; a number is NaN
            or infinite; the top level is not a mapping.

    Examples:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "run.yaml"
        ...     _ = path.write_text("base: &b {epochs: 2, seed: 1}\\ntraining: {<<: *b, seed: 3}\\n")
        ...     load_yaml(path)["training"]
        {'epochs': 2, 'seed': 3}
    """
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; pass the path of a YAML file")
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass the path of a YAML file")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config file {path} is {size / 2**20:.1f} MiB, more than a config file's "
                          f"{MAX_CONFIG_BYTES >> 20} MiB; pass the YAML study or run file, not data")
    try:
        data = _parse_yaml(path.read_text(encoding="utf-8"))
    except _YAMLLimit as error:
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
