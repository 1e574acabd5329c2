"""Check a request value against a botocore shape's constraints that botocore's own validator
skips: enum values, string lengths and patterns, list/map sizes, number ranges, plus required and
unknown members. Patterns follow Smithy semantics (ECMA-262, not implicitly anchored)."""

from __future__ import annotations

import re

from botocore.model import Shape


def violations(value, shape: Shape, path: str = "$") -> list[str]:
    found: list[str] = []
    _walk(value, shape, path, found)
    return found


def _size(value, shape: Shape, path: str, found: list[str], what: str) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and len(value) < low:
        found.append(f"{path}: {what} {len(value)} < min {low}")
    if high is not None and len(value) > high:
        found.append(f"{path}: {what} {len(value)} > max {high}")


def _walk(value, shape: Shape, path: str, found: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            found.append(f"{path}: expected a structure, got {type(value).__name__}")
            return
        for name in shape.required_members:
            if name not in value:
                found.append(f"{path}: missing required {name}")
        for name, item in value.items():
            if name not in shape.members:
                found.append(f"{path}: unknown member {name}")
            else:
                _walk(item, shape.members[name], f"{path}.{name}", found)
        if shape.metadata.get("union") and len(value) != 1:
            found.append(f"{path}: union needs exactly one member, got {sorted(value)}")
    elif kind == "list":
        _size(value, shape, path, found, "length")
        for i, item in enumerate(value):
            _walk(item, shape.member, f"{path}[{i}]", found)
    elif kind == "map":
        _size(value, shape, path, found, "entries")
        for key, item in value.items():
            _walk(key, shape.key, f"{path}<key {key}>", found)
            _walk(item, shape.value, f"{path}[{key}]", found)
    elif kind == "string":
        if not isinstance(value, str):
            found.append(f"{path}: expected a string, got {type(value).__name__}")
            return
        if shape.enum and value not in shape.enum:
            found.append(f"{path}: {value!r} not in enum {shape.enum}")
        _size(value, shape, path, found, "string length")
        pattern = shape.metadata.get("pattern")
        if pattern and not re.search(pattern, value):
            found.append(f"{path}: {value!r} does not match pattern {pattern}")
    elif kind in ("integer", "long", "float", "double"):
        low, high = shape.metadata.get("min"), shape.metadata.get("max")
        if low is not None and value < low:
            found.append(f"{path}: {value} < min {low}")
        if high is not None and value > high:
            found.append(f"{path}: {value} > max {high}")
