"""The schema registry: event type -> JSON Schema -> a compiled, cached validator.

Each registered type holds one JSON Schema (draft 2020-12), generated from its pydantic model
or given as a dict, and one ``jsonschema`` validator compiled from it at registration. The
validator's type checker is stricter than JSON's defaults in one way and looser in two, to
match what :class:`~mnemo_events.event.Event` carries:

- a number must be finite and not a boolean (``True`` is not ``1``; JSON has no ``NaN``);
- any ``Mapping`` is an object and a ``tuple`` is an array (``Event.create`` accepts both).

:func:`validate_event` runs on every publish. A valid payload of a simple schema (all the
built-in ones) is accepted by a compiled fast check (``_fastpath``, 2-3 us); jsonschema
(tens of us) runs only when that check cannot vouch for the payload, and decides.
"""

from __future__ import annotations

import copy
import difflib
import functools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel
from pydantic.errors import PydanticUserError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from mnemo_events._log import logger
from mnemo_events.exceptions import SchemaRegistrationError
from mnemo_events.patterns import validate_event_type
from mnemo_events.schemas._fastpath import (
    TYPE_PREDICATES,
    Check,
    Freezer,
    compile_check,
    compile_freezer,
)
from mnemo_events.schemas._messages import format_errors
from mnemo_events.schemas._models import BUILTIN_MODELS

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

__all__ = [
    "DIALECT",
    "SchemaRegistry",
    "default_registry",
    "get_json_schema",
    "get_model",
    "is_registered",
    "list_event_types",
    "model_json_schema",
    "register_event_type",
    "suggest_event_types",
    "unregister_event_type",
    "validate_event",
]

DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
"""The JSON Schema dialect of every registered schema."""


def _checker_function(predicate: Check) -> Callable[[object, Any], bool]:
    return lambda _checker, instance: predicate(instance)


@functools.cache
def _validator_class() -> Any:
    """The 2020-12 validator class with our type predicates, built on first use.

    jsonschema is imported here, not at module import: valid payloads of the built-in types
    never need it, and it costs a tenth of a second to import.
    """
    from jsonschema import Draft202012Validator
    from jsonschema.validators import extend

    # The fast path and jsonschema share the type predicates, so they agree on what a type is.
    checker = Draft202012Validator.TYPE_CHECKER.redefine_many(
        {name: _checker_function(predicate) for name, predicate in TYPE_PREDICATES.items()}
    )
    return extend(Draft202012Validator, type_checker=checker)  # type: ignore[no-untyped-call]


class _OmittableOptionals(GenerateJsonSchema):
    """Schema generator where a field defaulting to ``None`` may be omitted, not be ``null``.

    Our models use ``None`` for "not sent" (``to_data`` drops it), so the wire contract is
    "absent or a value". Field titles are dropped: they only repeat the field names.
    """

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        inner = schema["schema"]
        if schema.get("default", ...) is None and inner["type"] == "nullable":
            return self.generate_inner(inner["schema"])
        return super().default_schema(schema)

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def model_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) the registry derives from a pydantic model."""
    schema = model.model_json_schema(schema_generator=_OmittableOptionals)
    return {"$schema": DIALECT, **schema}


class _Entry:
    """One registered type: its schema, fast check, model, and jsonschema validator."""

    __slots__ = ("_validator", "check", "freezer", "model", "schema")

    def __init__(self, schema: dict[str, Any], model: type[BaseModel] | None) -> None:
        self.schema = schema
        self.model = model
        self.check: Check | None = compile_check(schema)
        """Sound fast check (True means valid); None when the schema is beyond its subset."""
        self.freezer: Freezer | None = compile_freezer(schema) if self.check else None
        """Publish's one-walk check-and-freeze of flat payloads (see ``compile_freezer``)."""
        self._validator: Validator | None = None
        if self.check is None:
            self._validator = _validator_class()(schema)

    @property
    def validator(self) -> Validator:
        """The jsonschema validator, compiled on first use and kept."""
        if self._validator is None:
            self._validator = _validator_class()(self.schema)
        return self._validator


def _schema_from(event_type: str, model_or_schema: object) -> tuple[dict[str, Any], Any]:
    if isinstance(model_or_schema, type) and issubclass(model_or_schema, BaseModel):
        try:
            return model_json_schema(model_or_schema), model_or_schema
        except PydanticUserError as err:
            raise SchemaRegistrationError(
                f"cannot derive a JSON Schema for {event_type!r} from "
                f"{model_or_schema.__name__}: {err}"
            ) from err
    if isinstance(model_or_schema, Mapping):
        schema = copy.deepcopy(dict(model_or_schema))
        dialect = schema.setdefault("$schema", DIALECT)
        if dialect != DIALECT:
            raise SchemaRegistrationError(
                f"schema for {event_type!r} declares $schema {dialect!r}; only {DIALECT} "
                "(draft 2020-12) is supported"
            )
        from jsonschema.exceptions import SchemaError

        try:
            _validator_class().check_schema(schema)
        except SchemaError as err:
            where = "/".join(map(str, err.absolute_path)) or "(root)"
            raise SchemaRegistrationError(
                f"schema for {event_type!r} is not valid JSON Schema 2020-12 at {where}: "
                f"{err.message}"
            ) from None
        return schema, None
    raise SchemaRegistrationError(
        f"cannot register {event_type!r}: expected a pydantic model class or a JSON Schema "
        f"dict, got {type(model_or_schema).__name__}"
    )


class SchemaRegistry:
    """Event types and their payload schemas; validates payloads against them.

    Args:
        builtins: start with the 15 built-in event types (default) or empty.
    """

    def __init__(self, *, builtins: bool = True) -> None:
        self._entries: dict[str, _Entry] = {}
        self._freezers: dict[str, Freezer] = {}
        self.freezer_of: Callable[[str], Freezer | None] = self._freezers.get
        """The one-walk check-and-freeze of a registered type, or None: ``freezer(data,
        max_bytes)`` returns ``data`` frozen when it is strict JSON, valid and flat, else None
        (then :func:`~mnemo_events._frozen.freeze` and :meth:`validate` decide). A bound
        ``dict.get``, for publish's hot path."""
        if builtins:
            for event_type, model in BUILTIN_MODELS.items():
                self.register(event_type, model)

    def register(self, event_type: str, model_or_schema: object, *, replace: bool = False) -> None:
        """Register ``event_type`` with a pydantic model class or a JSON Schema dict.

        The schema is copied and compiled once, here. Re-registering a type raises unless
        ``replace`` is true.

        Raises:
            InvalidEventTypeError: the name is not a well-formed dotted event type.
            SchemaRegistrationError: the schema is invalid, or the type is already registered.
        """
        validate_event_type(event_type)
        if event_type in self._entries and not replace:
            raise SchemaRegistrationError(
                f"event type {event_type!r} is already registered; pass replace=True to "
                "replace its schema"
            )
        schema, model = _schema_from(event_type, model_or_schema)
        entry = self._entries[event_type] = _Entry(schema, model)
        if entry.freezer is None:
            self._freezers.pop(event_type, None)
        else:
            self._freezers[event_type] = entry.freezer

    def unregister(self, event_type: str) -> bool:
        """Forget ``event_type``; False when it was not registered."""
        self._freezers.pop(event_type, None)
        return self._entries.pop(event_type, None) is not None

    def is_registered(self, event_type: str) -> bool:
        """Whether ``event_type`` has a schema (False for anything but a registered str)."""
        return isinstance(event_type, str) and event_type in self._entries

    def event_types(self) -> list[str]:
        """The registered event types, in registration order."""
        return list(self._entries)

    def json_schema(self, event_type: str | None = None) -> dict[str, Any]:
        """A copy of one type's JSON Schema, or of all of them keyed by type when None.

        Raises:
            KeyError: ``event_type`` is not registered (the message suggests close names).
        """
        if event_type is None:
            return {name: copy.deepcopy(dict(e.schema)) for name, e in self._entries.items()}
        entry = self._entries.get(event_type)
        if entry is None:
            raise KeyError(self._unknown(event_type))
        return copy.deepcopy(dict(entry.schema))

    def model(self, event_type: str) -> type[BaseModel] | None:
        """The pydantic model of ``event_type``, None when it was registered as a dict."""
        entry = self._entries.get(event_type)
        return entry.model if entry is not None else None

    def event_types_for(self, model: type[BaseModel]) -> list[str]:
        """The event types registered with exactly this pydantic model class."""
        return [name for name, entry in self._entries.items() if entry.model is model]

    def validate(self, event_type: str, data: Any) -> tuple[bool, list[str]]:
        """Check ``data`` against the schema of ``event_type``.

        Returns:
            ``(True, [])``, or ``(False, messages)`` with every problem at once, each naming
            its field path (``data.tags[1]``) and what was expected. For an unregistered type,
            one message suggesting the closest registered names.
        """
        entry = self._entries.get(event_type) if isinstance(event_type, str) else None
        if entry is None:
            return False, [self._unknown(event_type)]
        if entry.check is not None and entry.check(data):
            return True, []
        errors = list(entry.validator.iter_errors(data))
        if not errors:
            return True, []
        return False, format_errors(errors)

    def suggest(self, event_type: str, n: int = 3) -> list[str]:
        """Up to ``n`` registered types closest to ``event_type``, best first."""
        if not isinstance(event_type, str):
            return []
        return difflib.get_close_matches(event_type, self._entries, n=n, cutoff=0.6)

    def _unknown(self, event_type: object) -> str:
        if not isinstance(event_type, str):
            return f"event type must be a str, got {type(event_type).__name__}"
        close = self.suggest(event_type)
        hint = (
            f"did you mean {' or '.join(map(repr, close))}?"
            if close
            else "see list_event_types() for the registered ones"
        )
        return f"event type {event_type!r} has no registered schema; {hint}"


default_registry = SchemaRegistry()
"""The process-wide registry the module functions (and the bus) use."""
_unregistered_warned: set[str] = set()
_log = logger("schemas")


def validate_event(event_type: str, data: Any) -> tuple[bool, list[str]]:
    """Check a payload against its type's schema; see :meth:`SchemaRegistry.validate`.

    A well-formed type with no registered schema is valid, ``(True, [])``, as in MnemoCore
    and as ``publish`` treats it; its first check logs ``schemas.unregistered_type`` with
    the closest registered names. ``default_registry.validate`` is the strict form.
    """
    if (
        isinstance(event_type, str)
        and not default_registry.is_registered(event_type)
        and _well_formed(event_type)
    ):
        if event_type not in _unregistered_warned and len(_unregistered_warned) < 1_000:
            _unregistered_warned.add(event_type)
            _log.warning(
                "schemas.unregistered_type",
                event_type=event_type,
                closest=default_registry.suggest(event_type),
            )
        return True, []
    return default_registry.validate(event_type, data)


def _well_formed(event_type: str) -> bool:
    try:
        validate_event_type(event_type)
    except ValueError:
        return False
    return True


def is_registered(event_type: str) -> bool:
    """Whether ``event_type`` has a schema in the default registry."""
    return default_registry.is_registered(event_type)


def suggest_event_types(event_type: str, n: int = 3) -> list[str]:
    """Up to ``n`` registered types closest to ``event_type`` (typo hints), best first."""
    return default_registry.suggest(event_type, n)


def list_event_types() -> list[str]:
    """The registered event types, built-in ones first, in registration order."""
    return default_registry.event_types()


def get_json_schema(event_type: str | None = None) -> dict[str, Any]:
    """A copy of one type's JSON Schema, or of all of them keyed by type when None.

    Raises:
        KeyError: ``event_type`` is not registered (the message suggests close names).
    """
    return default_registry.json_schema(event_type)


def get_model(event_type: str) -> type[BaseModel] | None:
    """The pydantic model of ``event_type``, None for dict-registered or unknown types."""
    return default_registry.model(event_type)


def register_event_type(event_type: str, model_or_schema: object, *, replace: bool = False) -> None:
    """Register an application's own event type in the default registry.

    Args:
        event_type: a dotted name such as ``"billing.invoice_paid"``.
        model_or_schema: a pydantic model class or a JSON Schema (draft 2020-12) dict.
        replace: allow replacing an existing registration.

    Raises:
        InvalidEventTypeError: the name is not a well-formed dotted event type.
        SchemaRegistrationError: the schema is invalid, or the type is already registered.
    """
    default_registry.register(event_type, model_or_schema, replace=replace)


def unregister_event_type(event_type: str) -> bool:
    """Remove a type from the default registry; False when it was not registered."""
    return default_registry.unregister(event_type)
