"""Typed events: publish a payload model, receive one.

``bus.publish(MemoryCreated(...))`` publishes under the one event type registered with that
model; ``bus.publish("memory.created", MemoryCreated(...))`` checks the model is the type's.
A handler whose first parameter is annotated with a registered model
(``async def on_created(payload: MemoryCreated)``) is called with the model built from the
event's data instead of the raw :class:`~mnemo_events.event.Event`.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel

from mnemo_events._frozen import thaw
from mnemo_events.event import Event
from mnemo_events.exceptions import EventValidationError, InvalidEventTypeError

__all__ = ["model_payload", "once_handler", "typed_handler"]


def _data_of(model: BaseModel) -> dict[str, Any]:
    to_data = getattr(model, "to_data", None)
    if callable(to_data):
        data: dict[str, Any] = to_data()
        return data
    return model.model_dump(mode="json", exclude_none=True)


def model_payload(event_type: Any, data: Any) -> tuple[str, Mapping[str, Any]]:
    """``(event_type, data)`` for ``publish`` with pydantic models turned into payloads.

    Anything that is not a model passes through unchanged (the usual checks then apply).

    Raises:
        InvalidEventTypeError: a model registered with no event type, or with several.
        EventValidationError: ``data`` is a model of another type than ``event_type``'s.
    """
    from mnemo_events import schemas

    if isinstance(event_type, BaseModel):
        model = event_type
        types = schemas.default_registry.event_types_for(type(model))
        if len(types) != 1:
            found = f"is registered with {types}" if types else "is not registered"
            raise InvalidEventTypeError(
                f"cannot publish a {type(model).__name__} alone: the model {found}; "
                "pass the event type first (publish(event_type, model))"
            )
        if data is not None:
            raise TypeError("publish(model) takes no data: the model is the payload")
        return types[0], _data_of(model)
    if isinstance(data, BaseModel):
        expected = schemas.get_model(event_type) if isinstance(event_type, str) else None
        if expected is not None and not isinstance(data, expected):
            raise EventValidationError(
                str(event_type),
                [f"data: expected a {expected.__name__} model, got {type(data).__name__}"],
            )
        return event_type, _data_of(data)
    return event_type, data


def _annotated_model(handler: Callable[..., Any]) -> type[BaseModel] | None:
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):
        return None
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if not positional:
        return None
    annotation = positional[0].annotation
    if isinstance(annotation, str):  # `from __future__ import annotations` in the caller
        target = handler if inspect.isroutine(handler) else type(handler).__call__
        try:
            annotation = typing.get_type_hints(target).get(positional[0].name)
        except Exception:  # an unresolvable forward reference: not a model we can know
            return None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def typed_handler(handler: Callable[..., Any]) -> Callable[[Event], Any]:
    """``handler`` itself, or, when its first parameter is annotated with a registered
    payload model, a wrapper calling it with that model built from the event's data.

    Raises:
        TypeError: the annotated model is registered with no event type.
    """
    from mnemo_events import schemas

    model = _annotated_model(handler)
    if model is None:
        return handler
    if not schemas.default_registry.event_types_for(model):
        raise TypeError(
            f"handler {getattr(handler, '__qualname__', handler)!r} takes a {model.__name__}, "
            "which no event type is registered with (see register_event_type)"
        )
    build = model.model_validate

    def payload(event: Event) -> BaseModel:
        data = event.data
        return build(thaw(data) if isinstance(data, Mapping) else data)

    if inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
        getattr(handler, "__call__", None)  # noqa: B004 (an object with an async __call__)
    ):

        async def call_async(event: Event) -> Any:
            return await handler(payload(event))

        return functools.update_wrapper(call_async, handler)

    def call(event: Event) -> Any:
        return handler(payload(event))

    return functools.update_wrapper(call, handler)


def once_handler(end: Callable[[], object], handler: Callable[[Event], Any]) -> Callable[..., Any]:
    """A wrapper calling ``handler`` for the first event only, calling ``end()`` (which
    unsubscribes) just before; later events already queued are skipped."""
    fired = False

    def first() -> bool:
        nonlocal fired
        if fired:
            return False
        fired = True
        end()
        return True

    if inspect.iscoroutinefunction(handler):

        async def call_async(event: Event) -> Any:
            return await handler(event) if first() else None

        return functools.update_wrapper(call_async, handler)

    def call(event: Event) -> Any:
        return handler(event) if first() else None

    return functools.update_wrapper(call, handler)
