"""The configuration reference: every key of ``goldwatch.toml``, walked from the pydantic models in
:mod:`goldwatch.config` (type, default, constraints and the field's ``description``).

>>> from goldwatch.config import GoldwatchConfig
>>> keys = {k.path: k for k in config_keys(GoldwatchConfig)}
>>> k = keys["detectors.p_threshold"]
>>> k.type, k.default, k.constraints
('float', '0.05', '> 0, < 1')
>>> keys["alerts.webhooks[].name"].table
'[[alerts.webhooks]]'
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import json
import types
import typing
from collections.abc import Iterator
from pathlib import PurePath
from typing import Any, Literal, Union

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from goldwatch.reference._markdown import code, header, prose, table

__all__ = ["ConfigKey", "config_keys", "render_config"]


@dataclasses.dataclass(frozen=True)
class ConfigKey:
    """One key: where it lives (``table``, e.g. ``[alerts.pagerduty]``), its dotted ``path``, and what it takes."""

    table: str
    name: str
    path: str
    type: str
    default: str
    constraints: str
    description: str
    variant: str = ""  # for a list of tables of several kinds: which kind this key belongs to


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _models_in(typing.get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def _list_item(annotation: Any) -> Any | None:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _list_item(typing.get_args(annotation)[0])
    if origin in (list, tuple, collections.abc.Sequence):
        args = typing.get_args(annotation)
        return args[0] if args else Any
    return None


def type_name(annotation: Any) -> str:
    """A TOML-minded name for ``annotation``: ``float``, ``"a" | "b"``, ``list of string``, ``path``..."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return type_name(typing.get_args(annotation)[0])
    if origin is Literal:
        return " | ".join(json.dumps(v) for v in typing.get_args(annotation))
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return " | ".join(type_name(a) for a in args)
    item = _list_item(annotation)
    if item is not None:
        return f"list of {type_name(item)}"
    if origin is dict:
        _key, value = typing.get_args(annotation) or (str, Any)
        return f"table of {type_name(value)}"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "table"
        if issubclass(annotation, bool):
            return "boolean"
        if issubclass(annotation, int):
            return "integer"
        if issubclass(annotation, float):
            return "float"
        if issubclass(annotation, str):
            return "string"
        if issubclass(annotation, PurePath):
            return "path"
        if issubclass(annotation, enum.Enum):
            return " | ".join(json.dumps(m.value) for m in annotation)
        return annotation.__name__
    if annotation is Any:
        return "any"
    return str(annotation).replace("typing.", "")


def _toml(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (str, PurePath)):
        return json.dumps(str(value))
    if isinstance(value, enum.Enum):
        return _toml(value.value)
    if isinstance(value, BaseModel):
        return "(table)"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return str(value)


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        return _toml(field.default_factory())  # type: ignore[call-arg]
    if field.default is PydanticUndefined:
        return "(required)"
    return _toml(field.default)


_OPS = ((annotated_types.Gt, "gt", ">"), (annotated_types.Ge, "ge", ">="), (annotated_types.Lt, "lt", "<"),
        (annotated_types.Le, "le", "<="), (annotated_types.MinLen, "min_length", "length >="),
        (annotated_types.MaxLen, "max_length", "length <="))


def _constraints(field: FieldInfo) -> str:
    found = []
    for meta in field.metadata:
        for kind, attr, symbol in _OPS:
            if isinstance(meta, kind):
                found.append(f"{symbol} {getattr(meta, attr)}")
        pattern = getattr(meta, "pattern", None)
        if isinstance(pattern, str):
            found.append(f"matches {pattern}")
    return ", ".join(found)


def _variant(model: type[BaseModel]) -> str:
    """How a model among several in one list is told apart: its literal discriminator, e.g. ``kind = "files"``."""
    for name, field in model.model_fields.items():
        if typing.get_origin(field.annotation) is Literal and len(typing.get_args(field.annotation)) == 1:
            return f"{name} = {json.dumps(typing.get_args(field.annotation)[0])}"
    return model.__name__


def _description(model: type[BaseModel], name: str, field: FieldInfo) -> str:
    """The field's description, or the one of the field it re-declares (a subclass changing only a default)."""
    if field.description:
        return field.description.strip()
    for base in model.__mro__[1:]:
        inherited = getattr(base, "model_fields", {}).get(name)
        if inherited is not None and inherited.description:
            return str(inherited.description).strip()
    return ""


def config_keys(model: type[BaseModel], prefix: str = "", table_name: str = "",
                defaults: BaseModel | None = None) -> Iterator[ConfigKey]:
    """Every leaf key of ``model``, depth first, in declaration order; sub-tables after their parent's keys.

    ``defaults``: the instance a parent table gives as this table's default (its values are the defaults here,
    e.g. a readiness check's shorter interval), else the model's own field defaults."""
    nested: list[tuple[str, FieldInfo, list[type[BaseModel]], bool, BaseModel | None]] = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        models = _models_in(field.annotation)
        item = _list_item(field.annotation)
        item_models = _models_in(item) if item is not None else []
        if models or item_models:
            given = getattr(defaults, name, None) if defaults is not None else field.default
            nested.append((key, field, models or item_models, bool(item_models),
                           given if isinstance(given, BaseModel) else None))
            continue
        default = _toml(getattr(defaults, name)) if defaults is not None else _default(field)
        yield ConfigKey(
            table=table_name or "(top level)", name=key, path=f"{prefix}{key}", type=type_name(field.annotation),
            default=default, constraints=_constraints(field), description=_description(model, name, field),
        )
    for key, _field, models, is_list, given in nested:
        dotted = f"{prefix}{key}"
        sub_table = f"[[{dotted.replace('[]', '')}]]" if is_list else f"[{dotted.replace('[]', '')}]"
        sub_prefix = f"{dotted}[]." if is_list else f"{dotted}."
        for sub in models:
            sub_defaults = given if isinstance(given, sub) else None
            for found in config_keys(sub, sub_prefix, sub_table, sub_defaults):
                yield dataclasses.replace(found, variant=found.variant or (_variant(sub) if len(models) > 1 else ""))


def _section_doc(model: type[BaseModel]) -> str:
    doc = (model.__doc__ or "").strip()
    if not doc or doc.startswith(("Usage docs", "!!! abstract")):  # pydantic's own BaseModel docstring
        return ""
    return prose(doc.split("\n\n")[0])


def _model_for_table(root: type[BaseModel], path: str) -> list[type[BaseModel]]:
    models = [root]
    for part in [p for p in path.replace("[]", "").split(".") if p]:
        found: list[type[BaseModel]] = []
        for model in models:
            field = model.model_fields.get(part)
            if field is None:
                continue
            item = _list_item(field.annotation)
            found += _models_in(field.annotation) or (_models_in(item) if item is not None else [])
        models = found
    return models


def render_config() -> str:
    from goldwatch.config import GoldwatchConfig

    keys = list(config_keys(GoldwatchConfig))
    out = [header("Configuration reference",
                  "Every key of `goldwatch.toml` (or `--config PATH`, or `$GOLDWATCH_CONFIG`), with its type, "
                  "default and meaning. Every key is optional: an empty file is the defaults. Unknown keys and "
                  "wrong types are refused, all problems at once, with their key paths (`goldwatch config check`). "
                  "Secrets are never written in the file: a `*_env` key names an environment variable and a "
                  "`*_file` key a file that holds them.")]
    tables: dict[str, list[ConfigKey]] = {}
    for key in keys:
        tables.setdefault(key.table, []).append(key)
    out.append("\n## Tables\n\n" + "\n".join(f"- `{name}`" for name in tables) + "\n")
    for name, rows in tables.items():
        out.append(f"\n## `{name}`\n")
        path = name.strip("[]")
        models = _model_for_table(GoldwatchConfig, path) if name != "(top level)" else [GoldwatchConfig]
        docs = [d for d in dict.fromkeys(_section_doc(m) for m in models) if d]
        if docs:
            out.append("\n" + "\n\n".join(docs) + "\n")
        with_variant = any(k.variant for k in rows)
        headings = ["key", *(["kind"] if with_variant else []), "type", "default", "meaning"]
        out.append("\n" + table(headings, (
            [code(k.name), *([k.variant] if with_variant else []), k.type + (f" ({k.constraints})" if k.constraints
                                                                            else ""), code(k.default)
             if not k.default.startswith("(") else k.default, k.description or "(undocumented)"]
            for k in rows)))
    return "".join(out)


def undocumented_keys() -> list[str]:
    """Keys whose field has no description (a test keeps this empty)."""
    from goldwatch.config import GoldwatchConfig

    return [k.path for k in config_keys(GoldwatchConfig) if not k.description]

