"""The one configuration system: typed, validated settings (pydantic), and their one-line errors.

Every taskloss config (a run, a study file, a dataset, DLMRI, the domain network's training) is a
:class:`StrictModel`, declared next to what it configures. Unknown keys, wrong types, bad values and
NaN or infinite numbers are errors that name the key; a config read from YAML or a mapping goes
through :func:`validate_config`, and a bad setting is one :class:`~taskloss.errors.ConfigError` of the
shape ``<where>: <key>: <problem>`` (several problems joined by ``; ``).

This module is of the lowest layer: data, baselines and training import it.
"""

from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Tag, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from taskloss.errors import ConfigError

__all__ = ["StrictModel", "check_section", "format_validation_error", "tag", "validate_config", "validation_problems"]

ModelT = TypeVar("ModelT", bound=BaseModel)


def format_validation_error(error: ValidationError, source: str) -> str:
    """One line for all problems: ``source: key.path: problem; key.path: problem``.

    An unknown key names the keys of its section (:class:`StrictModel` checks them); a validator's
    own message (a ``ValueError``) is given as it is, after its key (none for a check of several keys).
    """
    return f"{source}: {validation_problems(error)}"


def validation_problems(error: ValidationError, root: str = "(root)") -> str:
    """The problems of ``error`` joined by ``; `` (see :func:`format_validation_error`); ``root`` names
    the top level (empty: the problem alone)."""
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"] if not str(part).startswith(UNION_TAG))
        where = key or root
        if item["type"] == "value_error":  # a validator's own message, without pydantic's "Value error, "
            problems.append(f"{key}: {item['ctx']['error']}" if key else str(item["ctx"]["error"]))
        elif item["type"] in SECTION_TYPES:  # pydantic's text names the model class, not what to write
            problems.append(f"{where or '(root)'}: {_short(item['input'])} is not a section; give its keys "
                            "as a mapping (key: value)")
        elif item["type"] == UNKNOWN_KEY:
            problems.append(f"{where}: {item['msg']}" if where else item["msg"])
        else:
            problems.append(f"{where or '(root)'}: {item['msg']}")
    return "; ".join(problems)


UNION_TAG = "|"
"""First character of the tags of this project's discriminated unions (:func:`tag`): pydantic puts the
tag of the member it tried into an error's location, which is not a key of the file, so messages leave it out."""


def tag(name: str) -> Tag:
    """The :class:`pydantic.Tag` ``name`` of a member of a discriminated union, left out of error messages."""
    return Tag(f"{UNION_TAG}{name}")


UNKNOWN_KEY = "unknown_key"
"""The error type of :class:`StrictModel`'s unknown-key check."""
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
        raise ValueError(validation_problems(error, root="")) from None


class StrictModel(BaseModel):
    """Base of every taskloss config: unknown keys and NaN/infinite numbers are errors; assignments are validated.

    Settings from a file or a mapping go through :func:`validate_config` (a :class:`ConfigError`
    naming the source and the key). Built in code (``Model(key=value)``), a bad setting raises
    pydantic's ``ValidationError`` (a ``ValueError``); the command line prints either as one line.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        """An unknown key is an error naming it and this section's keys. Checked here rather than
        by pydantic's ``extra="forbid"`` (kept as the backstop), whose error does not say which
        model it came from: under a field typed as a union of sections (a study file's ``data:``)
        the keys to suggest could not be told apart."""
        if isinstance(data, Mapping):
            unknown = [key for key in data if key not in cls.model_fields]
            if unknown:
                raise PydanticCustomError(UNKNOWN_KEY, "unknown key {key}; choose one of {choices}",
                                          {"key": repr(unknown[0]), "choices": ", ".join(cls.model_fields)})
        return data


def validate_config(model: type[ModelT], data: Mapping[str, Any], source: str) -> ModelT:
    """Validate a mapping into ``model``; problems become one :class:`ConfigError` naming ``source`` and the keys."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ConfigError(format_validation_error(error, source)) from None


def _distinct_seeds(seeds: list[int]) -> list[int]:
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {seeds} repeat a seed; give each seed once")
    return seeds


Seeds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1), AfterValidator(_distinct_seeds)]
"""A study file's ``seeds:``: distinct non-negative training seeds, at least one
(:mod:`taskloss.studies.seeds`)."""
