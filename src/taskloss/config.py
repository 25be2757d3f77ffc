"""The one configuration system: typed, validated settings (pydantic), and their one-line errors.

Every taskloss config (a run, a study file, a dataset, DLMRI, the domain network's training) is a
:class:`StrictModel`, declared next to what it configures. Unknown keys, wrong types, bad values and
NaN or infinite numbers are errors that name the key; a config read from YAML or a mapping goes
through :func:`validate_config`, and a bad setting is one :class:`~taskloss.errors.ConfigError` of the
shape ``<where>: <key>: <problem>`` (several problems joined by ``; ``).

This module is of the lowest layer: data, baselines and training import it.
"""

import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from taskloss.errors import ConfigError

__all__ = ["StrictModel", "check_section", "format_validation_error", "validate_config", "validation_problems"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def format_validation_error(error: ValidationError, source: str, model: type[BaseModel] | None = None) -> str:
    """One line for all problems: ``source: key.path: problem; key.path: problem``.

    An unknown key names the keys of its section when ``model`` is given (``(root)`` is the top
    level); a validator's own message (a ``ValueError``) is given as it is, after its key (none for
    a check of several keys).
    """
    return f"{source}: {validation_problems(error, model)}"


def validation_problems(error: ValidationError, model: type[BaseModel] | None = None, root: str = "(root)") -> str:
    """The problems of ``error`` joined by ``; `` (see :func:`format_validation_error`); ``root`` names
    the top level in an unknown-key problem (empty: the key alone)."""
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        if item["type"] == "extra_forbidden":
            section = ".".join(str(part) for part in loc[:-1]) or root
            choices = _section_keys(model, loc[:-1]) if model is not None else None
            advice = f"choose one of {', '.join(choices)}" if choices else "check the spelling; see the documented keys"
            problems.append(f"{section + ': ' if section else ''}unknown key {str(loc[-1])!r}; {advice}")
            continue
        key = ".".join(str(part) for part in loc)
        if item["type"] == "value_error":  # a validator's own message, without pydantic's "Value error, "
            problems.append(f"{key}: {item['ctx']['error']}" if key else str(item["ctx"]["error"]))
        elif item["type"] in SECTION_TYPES:  # pydantic's text names the model class, not what to write
            problems.append(f"{key or root or '(root)'}: {_short(item['input'])} is not a section; give its keys "
                            "as a mapping (key: value)")
        else:
            problems.append(f"{key or root or '(root)'}: {item['msg']}")
    return "; ".join(problems)


SECTION_TYPES = ("model_type", "model_attributes_type", "dict_type")
"""pydantic's error types of a value that should be a mapping (a section of keys) and is not."""
SHORT_VALUE = 40
"""Characters of a rejected value quoted in a message."""


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHORT_VALUE else text[: SHORT_VALUE - 3] + "..."


def check_section(model: type[ModelT], data: Any) -> ModelT:
    """Validate ``data`` into ``model`` inside another model's validator (a section kept as a mapping).

    Raises:
        ValueError: the problems, keys relative to the section; the outer model's error then puts
            the section's key in front (``file: data: unknown key 'sise'; choose one of ...``).
    """
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ValueError(validation_problems(error, model, root="")) from None


def _section_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The keys of the section of ``model`` at ``loc`` (field names, dict keys and list indices)."""
    annotation: Any = model
    for part in loc:
        if isinstance(part, int) or not _models(annotation):
            annotation = _items(annotation)  # a list index or a dict key
            continue
        fields = _models(annotation)[0].model_fields
        if part not in fields:
            return None
        annotation = fields[part].annotation
    found = _models(annotation)
    return list(found[0].model_fields) if found else None


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models an annotation names directly (``Model``, ``Model | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models(arg)]
    return []


def _items(annotation: Any) -> Any:
    """The value type of ``dict[K, V]``, ``list[V]`` or ``tuple[V, ...]`` (or of the one in a ``| None``)."""
    for candidate in (annotation, *typing.get_args(annotation)):
        args = typing.get_args(candidate)
        if typing.get_origin(candidate) in (dict, Mapping) and len(args) == 2:
            return args[1]
        if typing.get_origin(candidate) in (list, tuple) and args:
            return args[0]
    return None


class StrictModel(BaseModel):
    """Base of every taskloss config: unknown keys and NaN/infinite numbers are errors; assignments are validated.

    Settings from a file or a mapping go through :func:`validate_config` (a :class:`ConfigError`
    naming the source and the key). Built in code (``Model(key=value)``), a bad setting raises
    pydantic's ``ValidationError`` (a ``ValueError``); the command line prints either as one line.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


def validate_config(model: type[ModelT], data: Mapping[str, Any], source: str) -> ModelT:
    """Validate a mapping into ``model``; problems become one :class:`ConfigError` naming ``source`` and the keys."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source, model)) from None


def _distinct_seeds(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {seeds} repeat a seed; give each seed once")
    return seeds


Seeds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1), AfterValidator(_distinct_seeds)]
"""A study file's ``seeds:``: distinct non-negative training seeds, at least one
(:mod:`taskloss.studies.seeds`)."""
