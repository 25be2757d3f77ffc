"""The one configuration system (taskloss.config): unknown keys and other problems as one line."""

import importlib
import pkgutil
from typing import Any

import pytest
from pydantic import Field, field_validator

import taskloss
from taskloss.config import StrictModel, check_section, validate_config
from taskloss.errors import ConfigError


class Inner(StrictModel):
    seed: int = 0


class Paired(StrictModel):
    path: str
    normalize: str = "target"


class Kspace(StrictModel):
    path: str
    acceleration: float = 4.0


class Outer(StrictModel):
    task: str = "paired"
    inner: Inner = Inner()
    data: Paired | Kspace | None = None
    kept: dict[str, Any] = Field(default_factory=dict)

    @field_validator("data", mode="before")
    @classmethod
    def _by_task(cls, value: Any, info: Any) -> Any:
        model = Kspace if info.data.get("task") == "kspace" else Paired
        return model.model_validate(value)

    @field_validator("kept")
    @classmethod
    def _kept(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_section(Inner, value)
        return value


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as error:
        validate_config(Outer, data, "s.yaml")
    return str(error.value)


@pytest.mark.parametrize(("data", "line"), [
    ({"tsk": "x"}, "s.yaml: (root): unknown key 'tsk'; choose one of task, inner, data, kept"),
    ({"inner": {"sed": 1}}, "s.yaml: inner: unknown key 'sed'; choose one of seed"),
    # a section typed as a union: the keys of the model the validator chose, not of the union's first
    ({"task": "kspace", "data": {"path": "p", "normalize": "each"}},
     "s.yaml: data: unknown key 'normalize'; choose one of path, acceleration"),
    ({"data": {"path": "p", "acceleration": 4}}, "s.yaml: data: unknown key 'acceleration'; choose one of path, "
                                                 "normalize"),
    # a section kept as a mapping and checked inside the outer validator: its key in front
    ({"kept": {"sed": 1}}, "s.yaml: kept: unknown key 'sed'; choose one of seed"),
    ({"inner": 3}, "s.yaml: inner: 3 is not a section; give its keys as a mapping (key: value)"),
    ({"inner": {"seed": "x"}, "tsk": 1}, "s.yaml: (root): unknown key 'tsk'; choose one of task, inner, data, "
                                         "kept"),
    ({"inner": {"seed": "x"}}, "s.yaml: inner.seed: Input should be a valid integer, unable to parse string as "
                               "an integer"),
])
def test_a_bad_setting_is_one_line_naming_its_key(data: dict[str, Any], line: str) -> None:
    assert _error(data) == line


def _strict_models() -> list[type[StrictModel]]:
    for module in pkgutil.walk_packages(taskloss.__path__, "taskloss."):
        importlib.import_module(module.name)
    found, todo = [], list(StrictModel.__subclasses__())
    while todo:
        model = todo.pop()
        found.append(model)
        todo.extend(model.__subclasses__())
    return sorted({m for m in found if m.__module__.startswith("taskloss.")}, key=lambda m: m.__qualname__)


def test_every_config_of_the_package_names_its_own_keys_for_an_unknown_one() -> None:
    models = _strict_models()
    assert len(models) > 20  # the package's configs were found (run, study file, data, DLMRI, ...)
    for model in models:
        with pytest.raises(ConfigError) as error:
            validate_config(model, {"zz_not_a_key": 1}, "f.yaml")
        assert str(error.value) == (f"f.yaml: (root): unknown key 'zz_not_a_key'; choose one of "
                                    f"{', '.join(model.model_fields)}"), model.__qualname__
