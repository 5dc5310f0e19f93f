"""Readable messages for JSON Schema errors: the field path, what was expected, what came.

``jsonschema`` words its messages for schema authors (``'x' is a required property``); the
engine developer reading an :class:`~mnemo_events.exceptions.EventValidationError` wants
``data.memory_id: required field is missing``. Keywords without a dedicated wording fall back
to jsonschema's own message, still prefixed with the path.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError

__all__ = ["format_errors", "format_path"]

_ROOT = "data"
_TYPE_WORDS = {
    "string": "a string",
    "number": "a finite number (not a boolean)",
    "integer": "an integer (not a boolean)",
    "boolean": "a boolean",
    "array": "a list",
    "object": "an object",
    "null": "null",
}
_BOUNDS = {
    "minimum": ">=",
    "maximum": "<=",
    "exclusiveMinimum": ">",
    "exclusiveMaximum": "<",
}


def format_path(path: Iterable[str | int]) -> str:
    """``data.tags[2]`` for the path ``("tags", 2)``; ``data`` for the payload itself."""
    text = _ROOT
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _shown(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{text} ({type(value).__name__})"


def _choices(values: Iterable[Any]) -> str:
    return ", ".join(repr(value) for value in values)


def _type(expected: Any, instance: Any) -> str:
    names = [expected] if isinstance(expected, str) else list(expected)
    words = " or ".join(_TYPE_WORDS.get(name, name) for name in names)
    return f"expected {words}, got {_shown(instance)}"


def _enum(expected: Any, instance: Any) -> str:
    return f"expected one of {_choices(expected)}, got {_shown(instance)}"


def _const(expected: Any, instance: Any) -> str:
    return f"expected {expected!r}, got {_shown(instance)}"


def _bound(sign: str) -> Callable[[Any, Any], str]:
    return lambda expected, instance: f"expected a value {sign} {expected}, got {_shown(instance)}"


_WORDINGS: Mapping[str, Callable[[Any, Any], str]] = {
    "type": _type,
    "enum": _enum,
    "const": _const,
    **{keyword: _bound(sign) for keyword, sign in _BOUNDS.items()},
}


def _required(path: list[str | int], required: Any, instance: Any) -> list[str]:
    missing = [name for name in required if name not in instance]
    return [f"{format_path([*path, name])}: required field is missing" for name in missing]


def _unknown_fields(path: list[str | int], schema: Any, instance: Any) -> list[str]:
    known = list(schema.get("properties", {})) if isinstance(schema, Mapping) else []
    patterns = schema.get("patternProperties", {}) if isinstance(schema, Mapping) else {}
    allowed = f"allowed: {', '.join(known)}" if known else "no fields are allowed"
    extras = [
        name
        for name in instance
        if name not in known and not any(re.search(pattern, name) for pattern in patterns)
    ]
    return [f"{format_path([*path, name])}: unknown field ({allowed})" for name in extras]


def _messages(error: ValidationError) -> list[str]:
    keyword = str(error.validator)
    expected: Any = error.validator_value
    instance: Any = error.instance
    path = list(error.absolute_path)
    if keyword == "required":
        return _required(path, expected, instance)
    if keyword == "additionalProperties" and expected is False:
        return _unknown_fields(path, error.schema, instance)
    wording = _WORDINGS.get(keyword)
    detail = wording(expected, instance) if wording is not None else error.message
    return [f"{format_path(path)}: {detail}"]


def format_errors(errors: Iterable[ValidationError]) -> list[str]:
    """One message per problem, sorted (so by field path), duplicates dropped.

    A value breaking both ``type`` and ``enum`` (``tier: 1``) gets only the enum message,
    which already says what is expected.
    """
    errors = list(errors)
    listed = {tuple(e.absolute_path) for e in errors if e.validator in ("enum", "const")}
    found: set[str] = set()
    for error in errors:
        if error.validator == "type" and tuple(error.absolute_path) in listed:
            continue
        found.update(_messages(error) or [f"{format_path(error.absolute_path)}: {error.message}"])
    return sorted(found)
