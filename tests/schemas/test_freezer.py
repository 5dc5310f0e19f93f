"""Publish's one-walk check-and-freeze: only ever the answer freeze() and the schema give."""

from __future__ import annotations

from typing import Any

import pytest

from mnemo_events._frozen import FrozenDict, freeze
from mnemo_events.event_bus import EventBus
from mnemo_events.exceptions import EventValidationError
from mnemo_events.schemas import SchemaRegistry, default_registry
from mnemo_events.schemas._fastpath import compile_freezer
from tests.helpers.payloads import VALID_PAYLOADS

_HUGE = 2**64


def _full_path(event_type: str, data: Any, max_bytes: int) -> FrozenDict | None:
    """What publish's full path decides: the frozen payload, or None when it refuses."""
    try:
        frozen = freeze(data, "data", max_bytes)
    except TypeError:
        return None
    valid, _ = default_registry.validate(event_type, frozen)
    return frozen if valid else None


class _Impostor:
    """A key that hashes and compares like a str but is none: JSON cannot carry it."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __hash__(self) -> int:
        return hash(self.text)

    def __eq__(self, other: object) -> bool:
        return other == self.text


def _variants(event_type: str) -> list[dict[str, Any]]:
    """Payloads around a valid one: every field dropped, retyped or made awkward."""
    valid = VALID_PAYLOADS[event_type]
    odd: list[Any] = [
        None, True, False, 0, -1, 1, 2.5, 1e308, float("nan"), float("inf"), -_HUGE, _HUGE,
        "", "x", "café", "\ud800", "hot", "cold", [], ["a"], [1], {}, {"a": 1}, (1,), b"x",
    ]  # fmt: skip
    out: list[dict[str, Any]] = [dict(valid), {}]
    for field in valid:
        out.append({k: v for k, v in valid.items() if k != field})
        out += [{**valid, field: value} for value in odd]
    out += [{**valid, "bogus": value} for value in odd[:6]]
    out.append({**valid, 1: "non-string key"})  # type: ignore[dict-item]
    out.append({**valid, "clé": "non-ASCII key"})
    out.append({_Impostor(k): v for k, v in valid.items()})  # type: ignore[misc]
    return out


class TestAgreement:
    @pytest.mark.parametrize("event_type", sorted(VALID_PAYLOADS))
    def test_the_walk_vouches_only_for_what_the_full_path_accepts(self, event_type: str) -> None:
        """A non-None answer is exactly the full path's frozen payload, and it is valid."""
        freezer = default_registry.freezer_of(event_type)
        assert freezer is not None
        vouched = 0
        for data in _variants(event_type):
            frozen = freezer(data, 1_048_576)
            expected = _full_path(event_type, data, 1_048_576)
            if frozen is not None:
                vouched += 1
                assert expected is not None, data
                assert type(frozen) is FrozenDict, data
                assert frozen == expected, data
                assert frozen is not data
        assert vouched >= 1  # not vacuous: some variants took the walk

    @pytest.mark.parametrize("event_type", sorted(VALID_PAYLOADS))
    def test_flat_valid_payloads_take_the_walk(self, event_type: str) -> None:
        """A valid payload of flat ASCII scalars is vouched for (the fast path is used)."""
        flat = {k: v for k, v in VALID_PAYLOADS[event_type].items() if type(v) is not list}
        assert default_registry.freezer_of(event_type) is not None
        assert default_registry.freezer_of(event_type)(flat, 1_048_576) == flat  # type: ignore[misc]

    def test_a_payload_near_the_size_limit_takes_the_full_path(self) -> None:
        """The walk leaves the exact size check to freeze(), which names the limit."""
        freezer = default_registry.freezer_of("memory.deleted")
        assert freezer is not None
        assert freezer({"memory_id": "m" * 100}, 200) is None
        assert freezer({"memory_id": "m" * 10}, 1000) == {"memory_id": "m" * 10}


class TestCompiling:
    @pytest.mark.parametrize(
        "schema",
        [
            {"type": "array"},
            {"type": "object", "minProperties": 1},
            {"type": "object", "additionalProperties": {"type": "string"}},
            {"type": "object", "properties": {"a": {"pattern": "^x"}}},
            {"type": "object", "required": "a"},
        ],
    )
    def test_schemas_beyond_the_subset_get_no_walk(self, schema: dict[str, Any]) -> None:
        """Only flat object schemas of the compiled subset get a freezer."""
        assert compile_freezer(schema) is None

    def test_enum_bounds_and_closed_objects(self) -> None:
        """Enums, numeric bounds, required and closed properties are all applied."""
        freezer = compile_freezer(
            {
                "type": "object",
                "properties": {
                    "k": {"enum": ["a", "b"]},
                    "n": {"type": "number", "minimum": 0, "maximum": 1},
                    "i": {"type": "integer"},
                },
                "required": ["k"],
                "additionalProperties": False,
            }
        )
        assert freezer is not None
        assert freezer({"k": "a", "n": 0.5, "i": 3}, 1000) == {"k": "a", "n": 0.5, "i": 3}
        for bad in ({"k": "c"}, {"n": 0.5}, {"k": "a", "n": 2}, {"k": "a", "i": True}):
            assert freezer(bad, 1000) is None
        assert freezer({"k": "a", "z": 1}, 1000) is None

    def test_enum_and_type_sets_agree_with_the_full_path_on_every_scalar(self) -> None:
        """One set per property answers types and enum strings: it never vouches for a scalar
        the full path refuses, and it does vouch for the exact types and enum strings."""
        registry = SchemaRegistry(builtins=False)
        registry.register(
            "app.kinds",
            {
                "type": "object",
                "properties": {
                    "k": {"enum": ["1", "True", "None", "str", "int"]},
                    "s": {"type": "string"},
                    "o": {"type": ["integer", "null"]},
                    "n": {"type": "number", "maximum": 1},
                },
            },
        )
        freezer = registry.freezer_of("app.kinds")
        assert freezer is not None
        scalars: list[Any] = [None, True, False, 0, 1, 1.0, 2.5, "", "1", "True", "None", "str"]
        for field in ("k", "s", "o", "n"):
            for value in scalars:
                data = {field: value}
                valid, _ = registry.validate("app.kinds", freeze(data, "data"))
                assert freezer(data, 1_000) is None or valid, data
        for data in ({"k": "1"}, {"k": "str"}, {"s": ""}, {"o": None}, {"o": 1}, {"n": 0.5}):
            assert freezer(data, 1_000) == data
        for data in ({"k": 1}, {"k": True}, {"k": None}, {"s": None}, {"o": "1"}, {"n": 2}):
            assert freezer(data, 1_000) is None

    def test_a_replaced_schema_replaces_the_walk(self) -> None:
        """Re-registering a type recompiles its freezer; unregistering drops it."""
        registry = SchemaRegistry(builtins=False)
        registry.register("app.thing", {"type": "object", "properties": {"n": {"type": "string"}}})
        first = registry.freezer_of("app.thing")
        assert first is not None
        assert first({"n": "x"}, 1000) == {"n": "x"}
        registry.register(
            "app.thing", {"type": "object", "properties": {"n": {"type": "integer"}}}, replace=True
        )
        second = registry.freezer_of("app.thing")
        assert second is not None
        assert second({"n": "x"}, 1000) is None
        registry.register("app.thing", {"type": "object", "minProperties": 1}, replace=True)
        assert registry.freezer_of("app.thing") is None
        registry.register("app.thing", {"type": "object"}, replace=True)
        registry.unregister("app.thing")
        assert registry.freezer_of("app.thing") is None


class TestPublish:
    async def test_published_payloads_are_frozen_copies(self) -> None:
        """A payload published through the walk is a read-only copy, not the caller's dict."""
        data = {"memory_id": "mem_1", "content": "c", "tier": "hot"}
        async with EventBus() as bus:
            event = await bus.publish("memory.created", data)
        assert type(event.data) is FrozenDict
        assert event.data == data
        data["tier"] = "cold"
        assert event.data["tier"] == "hot"
        with pytest.raises(TypeError, match="read-only"):
            event.data["tier"] = "warm"  # type: ignore[index,unused-ignore]

    @pytest.mark.parametrize(
        "data",
        [
            {"memory_id": "m", "content": "c", "tier": "lukewarm"},
            {"memory_id": "m", "content": float("nan"), "tier": "hot"},
            {"memory_id": "m", "content": "\ud800", "tier": "hot"},
            {"memory_id": "m", "content": "c", "tier": "hot", "eig": 2},
            {"memory_id": "m", "content": "c"},
        ],
    )
    async def test_refusals_are_those_of_the_full_path(self, data: dict[str, Any]) -> None:
        """A payload the walk cannot vouch for raises what freeze() or the schema says."""
        try:
            frozen = freeze(data, "data")
        except TypeError as err:
            expected = [str(err)]
        else:
            expected = default_registry.validate("memory.created", frozen)[1]
        async with EventBus() as bus:
            with pytest.raises(EventValidationError) as info:
                await bus.publish("memory.created", data)
        assert info.value.errors == expected

    async def test_metadata_is_still_checked(self) -> None:
        """Bad metadata beside a valid payload is refused, naming ``metadata``."""
        async with EventBus() as bus:
            with pytest.raises(EventValidationError, match="metadata"):
                await bus.publish("memory.deleted", {"memory_id": "m"}, {"at": float("inf")})
