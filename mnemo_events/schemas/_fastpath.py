"""A fast "is this payload certainly valid?" check compiled from simple JSON Schemas.

``jsonschema`` is the authority, but its ``is_valid`` costs tens of microseconds for a
ten-field payload, which would cap the bus at some ten thousand events per second. This module
compiles the subset of JSON Schema our pydantic models produce (``type``, ``enum`` of strings,
``minimum``/``maximum`` and their exclusive forms, ``properties``, ``required``,
``additionalProperties``, ``items``, boolean schemas, annotations) into nested closures.

What matters is soundness: a ``True`` from a compiled check implies jsonschema also finds the
payload valid (both use the same type predicates). A ``False`` only means "ask jsonschema",
which then decides and lists the problems. (On the compiled keywords the two agree exactly;
the tests compare them.) A schema using any other keyword is
not compiled at all (:func:`compile_check` returns None).

For publish, :func:`compile_freezer` fuses the check with the strict-JSON copy of
:func:`~mnemo_events._frozen.freeze` for flat payloads: one walk that either returns the
frozen payload, valid on both counts, or says "take the full path" (which then raises the
same errors as without it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mnemo_events._frozen import INT_MAX, INT_MIN, PER_CHAR, PER_ITEM, FrozenDict

__all__ = ["TYPE_PREDICATES", "Check", "Freezer", "compile_check", "compile_freezer"]

Check = Callable[[Any], bool]


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value - value == 0  # finite: inf - inf is NaN


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, float) and value - value == 0 and value.is_integer()


TYPE_PREDICATES: Mapping[str, Check] = {
    "string": lambda value: isinstance(value, str),
    "number": _is_number,
    "integer": _is_integer,
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
    "array": lambda value: isinstance(value, (list, tuple)),
    # A dict (FrozenDict included) answers before the slower abstract-class check.
    "object": lambda value: isinstance(value, (dict, Mapping)),
}
"""What each JSON type accepts; shared with the jsonschema validator's type checker.

Stricter than plain JSON Schema: booleans are not numbers and numbers are finite. Looser:
any ``Mapping`` is an object and a ``tuple`` is an array, as ``Event.create`` accepts them.
"""

_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$comment",
        "title",
        "description",
        "default",
        "examples",
        "deprecated",
        "readOnly",
        "writeOnly",
        "format",
    }  # format is not asserted: no format checker is used
)
_BOUNDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
_STRUCTURE = ("type", "enum", "properties", "required", "additionalProperties", "items")
_KNOWN = _ANNOTATIONS.union(_BOUNDS, _STRUCTURE)


class _Unsupported(Exception):
    """The schema uses a keyword this module does not compile."""


def _all(checks: list[Check]) -> Check:
    if not checks:
        return lambda value: True
    if len(checks) == 1:
        return checks[0]
    first, rest = checks[0], _all(checks[1:])
    return lambda value: first(value) and rest(value)


def _type_check(expected: Any) -> Check:
    names = [expected] if isinstance(expected, str) else expected
    if not isinstance(names, list) or not names or not all(n in TYPE_PREDICATES for n in names):
        raise _Unsupported
    predicates = [TYPE_PREDICATES[name] for name in names]
    if len(predicates) == 1:
        return predicates[0]
    return lambda value: any(predicate(value) for predicate in predicates)


def _enum_check(values: Any) -> Check:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise _Unsupported
    allowed = frozenset(values)
    return lambda value: isinstance(value, str) and value in allowed


def _bounds_check(schema: Mapping[str, Any]) -> Check | None:
    """Every numeric bound of ``schema`` in one closure (for a value known to be a number)."""
    limits = {key: schema[key] for key in _BOUNDS if key in schema}
    if not limits:
        return None
    if not all(_is_number(bound) for bound in limits.values()):
        raise _Unsupported
    low, high = limits.get("minimum"), limits.get("maximum")
    above, below = limits.get("exclusiveMinimum"), limits.get("exclusiveMaximum")

    def within(value: Any) -> bool:
        return (
            (low is None or value >= low)
            and (high is None or value <= high)
            and (above is None or value > above)
            and (below is None or value < below)
        )

    return within


def _object_check(schema: Mapping[str, Any], *, must_be_object: bool) -> Check:
    properties = {name: _compile(sub) for name, sub in schema.get("properties", {}).items()}
    required = frozenset(schema.get("required", ()))
    additional = schema.get("additionalProperties", True)
    closed = additional is False
    if additional not in (True, False) and additional != {}:
        raise _Unsupported
    is_object = TYPE_PREDICATES["object"]

    def check(value: Any) -> bool:
        if not is_object(value):
            return not must_be_object  # object keywords do not apply to other types
        if not value.keys() >= required:
            return False
        for name, item in value.items():
            sub = properties.get(name)
            if sub is None:
                if closed:
                    return False
            elif not sub(item):
                return False
        return True

    return check


def _items_check(items: Any) -> Check:
    sub = _compile(items)
    is_array = TYPE_PREDICATES["array"]
    return lambda value: not is_array(value) or all(sub(item) for item in value)


def _compile(schema: Any) -> Check:
    if schema is True or schema == {}:
        return lambda value: True
    if schema is False:
        return lambda value: False
    if not isinstance(schema, Mapping) or not _KNOWN.issuperset(schema):
        raise _Unsupported
    checks: list[Check] = []
    typed = _type_check(schema["type"]) if "type" in schema else None
    if "enum" in schema:
        checks.append(_enum_check(schema["enum"]))
        if schema.get("type") == "string":
            typed = None  # a string enum already implies the type
    within = _bounds_check(schema)
    if within is not None and typed in (_is_number, _is_integer):
        number = typed
        checks.append(lambda value: number(value) and within(value))
        typed = None
    elif within is not None:
        checks.append(lambda value: not _is_number(value) or within(value))
    if {"properties", "required", "additionalProperties"} & schema.keys():
        must_be_object = schema.get("type") == "object"
        checks.append(_object_check(schema, must_be_object=must_be_object))
        if must_be_object:
            typed = None  # the object check refuses non-objects itself
    if "items" in schema:
        checks.append(_items_check(schema["items"]))
    if typed is not None:
        checks.insert(0, typed)
    return _all(checks)


def compile_check(schema: Mapping[str, Any]) -> Check | None:
    """A sound validity check for ``schema``, or None when it uses keywords not compiled."""
    try:
        return _compile(schema)
    except _Unsupported:
        return None


Freezer = Callable[[dict[str, Any], int], FrozenDict | None]
"""``freezer(data, max_bytes)``: ``data`` frozen, or None when the full path must decide."""

_SCALAR_KINDS: Mapping[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}
_ANY_SCALAR: frozenset[type] = frozenset({str, int, float, bool, type(None)})
_TOP_LEVEL = _ANNOTATIONS.union({"type", "properties", "required", "additionalProperties"})


class _Member:
    """How one property's value is accepted: by its Python type, from a set, or by a check."""

    __slots__ = ("allowed", "check", "free")

    def __init__(self, schema: Any) -> None:
        self.free: frozenset[type] = frozenset()
        """Exact types for which the value is valid whatever it is."""
        self.allowed: frozenset[str] | None = None
        """For a string enum: the strings accepted."""
        self.check: Check | None = None
        """Otherwise: the compiled check of the property's schema."""
        if schema is True or schema == {}:
            self.free = _ANY_SCALAR
            return
        if isinstance(schema, Mapping) and _ANNOTATIONS.union({"type"}).issuperset(schema):
            names = schema.get("type")
            names = [names] if isinstance(names, str) else names
            if isinstance(names, list) and names and all(n in TYPE_PREDICATES for n in names):
                self.free = frozenset(k for n in names for k in _SCALAR_KINDS.get(n, ()))
                return
        if (
            isinstance(schema, Mapping)
            and "enum" in schema
            and schema.get("type", "string") == "string"
            and _ANNOTATIONS.union({"type", "enum"}).issuperset(schema)
        ):
            _enum_check(schema["enum"])  # raises _Unsupported unless a list of strings
            self.allowed = frozenset(schema["enum"])
            return
        self.check = _compile(schema)


def _object_freezer(schema: Mapping[str, Any]) -> Freezer:
    if not _TOP_LEVEL.issuperset(schema) or schema.get("type", "object") != "object":
        raise _Unsupported
    properties = schema.get("properties", {})
    required = schema.get("required", [])
    additional = schema.get("additionalProperties", True)
    if not isinstance(properties, Mapping) or not isinstance(required, list):
        raise _Unsupported
    if not all(isinstance(name, str) for name in required):
        raise _Unsupported
    if additional not in (True, False) and additional != {}:
        raise _Unsupported
    if not all(name.isascii() for name in properties):
        raise _Unsupported  # a non-ASCII key needs freeze()'s surrogate check
    members = {name: _Member(sub) for name, sub in properties.items()}
    accepts_of = {
        name: member.free if member.allowed is None else member.allowed
        for name, member in members.items()
    }.get
    """Per property: the exact types valid whatever the value, or an enum's strings (a value
    that got past the strict-JSON test is a str, int, float, bool or None, and none of those
    equals a type, nor anything but a str equals a str: one set answers both questions);
    None for a key that is no property."""
    check_of = {name: member.check for name, member in members.items()}.get
    needed = tuple(required)
    closed = additional is False
    property_chars = sum(map(len, members))
    """An upper bound of the characters of the property names present (for the size bound)."""

    def freezer(value: dict[str, Any], max_bytes: int) -> FrozenDict | None:
        for name in needed:  # cheaper than value.keys() >= frozenset(needed)
            if name not in value:
                return None
        chars = property_chars
        for key, item in value.items():
            kind = type(item)
            # Strict JSON first, exactly as freeze()'s flat pass.
            if kind is str:
                if not item.isascii():
                    return None
                chars += len(item)
            elif kind is int:
                if not INT_MIN <= item <= INT_MAX:
                    return None
            elif kind is float:
                if item - item != 0:  # NaN or an infinity
                    return None
            elif kind is not bool and item is not None:
                return None  # containers and other types: the full path decides
            if type(key) is not str:  # freeze() refuses or copies other keys: it decides
                return None
            accepts = accepts_of(key)
            if accepts is None:  # not a property: an ASCII key, if allowed at all
                if closed or not key.isascii():
                    return None
                chars += len(key)
            elif kind not in accepts and item not in accepts:
                check = check_of(key)
                if check is None or not check(item):
                    return None
        if chars * PER_CHAR + len(value) * PER_ITEM > max_bytes:
            return None  # possibly too big: the full path measures it
        return FrozenDict(value)

    return freezer


def compile_freezer(schema: Mapping[str, Any]) -> Freezer | None:
    """A one-pass "strict JSON, valid against ``schema``, frozen" for flat payloads.

    The returned ``freezer(data, max_bytes)`` takes a plain ``dict`` and returns exactly what
    :func:`~mnemo_events._frozen.freeze` would (a :class:`~mnemo_events._frozen.FrozenDict`
    copy) when ``freeze`` would accept it *and* the schema holds; None in every other case
    (a nested value, a non-ASCII string, a float out of JSON, a size near the limit, a schema
    violation, ...), when the caller takes the full path, which decides and names the
    problem. Only object schemas of the compiled subset get one (None otherwise).
    """
    try:
        return _object_freezer(schema)
    except _Unsupported:
        return None
