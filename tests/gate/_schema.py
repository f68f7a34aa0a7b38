"""A small JSON Schema checker for the keywords verdict.schema.json uses (jsonschema is not a dependency).

Supported: $ref (local), type (incl. lists), const, enum, required, properties, additionalProperties (bool or
schema), items, oneOf, minimum, pattern. An unknown keyword is an error, so the schema cannot quietly outgrow this
checker.
"""

from __future__ import annotations

import re
from typing import Any

_KNOWN = {"$schema", "$id", "$ref", "$defs", "title", "description", "type", "const", "enum", "required",
          "properties", "additionalProperties", "items", "oneOf", "minimum", "pattern"}
_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def errors(instance: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, path: str = "$") -> list[str]:
    root = root or schema
    unknown = set(schema) - _KNOWN
    if unknown:
        raise AssertionError(f"schema keyword(s) {unknown} not supported by the test checker")
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), ref
        return errors(instance, root["$defs"][ref.split("/")[-1]], root, path)
    found: list[str] = []
    if "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_TYPES[t](instance) for t in types):
            return [f"{path}: {instance!r} is not of type {types}"]
    if "const" in schema and instance != schema["const"]:
        found.append(f"{path}: {instance!r} != {schema['const']!r}")
    if "enum" in schema and instance not in schema["enum"]:
        found.append(f"{path}: {instance!r} not in {schema['enum']}")
    if "pattern" in schema and isinstance(instance, str) and not re.search(schema["pattern"], instance):
        found.append(f"{path}: {instance!r} does not match {schema['pattern']!r}")
    if "minimum" in schema and isinstance(instance, (int, float)) and instance < schema["minimum"]:
        found.append(f"{path}: {instance} < {schema['minimum']}")
    if "oneOf" in schema:
        matches = [s for s in schema["oneOf"] if not errors(instance, s, root, path)]
        if len(matches) != 1:
            found.append(f"{path}: matches {len(matches)} of oneOf")
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            if key not in instance:
                found.append(f"{path}: missing {key!r}")
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, value in instance.items():
            if key in props:
                found += errors(value, props[key], root, f"{path}.{key}")
            elif extra is False:
                found.append(f"{path}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                found += errors(value, extra, root, f"{path}.{key}")
    if isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            found += errors(item, schema["items"], root, f"{path}[{i}]")
    return found
