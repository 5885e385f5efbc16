"""Pydantic's errors as `<key path>: <what is wrong>` lines, in the config's own spelling."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from ml_platform.infra.config.pools import POOL_MODELS
from ml_platform.infra.config.stack import StackConfig


def _path(location: tuple[Any, ...]) -> str:
    path = ""
    for part in _without_pool_tag(location):
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _describe_all(error: Mapping[str, Any]) -> list[tuple[str, str]]:
    """One pydantic error as (key path, message) pairs: several for an object's _fail_all, else one."""
    if error["type"] == "mlplatform_many":
        base = _path(tuple(error["loc"]))
        return [(f"{base}.{sub}" if sub else base, message) for sub, message in error["ctx"]["items"]]
    return [_describe(error)]


def _describe(error: Mapping[str, Any]) -> tuple[str, str]:
    """Turn one pydantic error into (key path, message) in the platform's words."""
    location = tuple(error["loc"])
    kind = error["type"]
    given = error.get("input")
    if kind == "extra_forbidden":
        parent_model = _model_at(location[:-1])
        allowed = sorted(parent_model.model_fields) if parent_model else []
        hint = difflib.get_close_matches(str(location[-1]), allowed, n=1)
        return _path(location), "unknown key" + (f"; did you mean '{hint[0]}'?" if hint else f"; allowed: {', '.join(allowed)}")
    if kind == "missing":
        return _path(location), "required key is missing"
    if kind == "literal_error":
        return _path(location), f"{given!r} is not allowed; expected {error['ctx']['expected']}"
    if kind in ("int_type", "bool_type", "string_type", "list_type", "dict_type", "model_type", "model_attributes_type", "float_type"):
        expected = {
            "int_type": "an integer",
            "bool_type": "true or false",
            "string_type": "a string",
            "list_type": "a list",
            "dict_type": "an object",
            "model_type": "an object",
            "model_attributes_type": "an object",
            "float_type": "a number",
        }[kind]
        hint = f' (quote it: "{given}")' if kind == "string_type" and isinstance(given, int | float) and not isinstance(given, bool) else ""
        return _path(location), f"expected {expected}, got {type(given).__name__} {given!r}{hint}"
    if kind == "mlplatform":
        return _path(location), error["msg"]
    if kind == "pool_kind":
        return _path((*location, "kind")), f"{given.get('kind')!r} is not allowed; expected 'managed' or 'karpenter'"
    return _path(location), f"{error['msg']} (got {given!r})"


def _without_pool_tag(location: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pydantic puts the union tag in the location (nodePools.gpu.karpenter.limits); users never write it."""
    if len(location) > 2 and location[0] == "nodePools" and location[2] in POOL_MODELS:
        return location[:2] + location[3:]
    return location


def _model_at(location: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that owns the fields at `location`, following dict and list nesting."""
    model: Any = StackConfig
    for index, part in enumerate(location):
        if index == 2 and location[0] == "nodePools" and part in POOL_MODELS:
            model = POOL_MODELS[part]
            continue
        annotation = (
            model.model_fields[part].annotation
            if isinstance(part, str) and hasattr(model, "model_fields") and part in model.model_fields
            else None
        )
        if annotation is None:
            # inside a dict or list: keep the model of the values / items
            continue
        model = _inner_model(annotation)
        if model is None:
            return None
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in getattr(annotation, "__args__", ()):
        found = _inner_model(argument)
        if found is not None:
            return found
    return None
