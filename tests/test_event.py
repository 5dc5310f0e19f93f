"""The Event object: ids, timestamps, immutability, strict JSON and the JSON round trip."""

from __future__ import annotations

import copy
import json
import pickle
import random
import re
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from mnemo_events._frozen import FrozenDict
from mnemo_events.event import Event, checked_event, fresh_event, new_event_id
from mnemo_events.event_bus import EventBus
from mnemo_events.exceptions import EventValidationError, InvalidEventTypeError


class TestCreate:
    def test_id_is_evt_and_a_uuid4_hex(self) -> None:
        """Ids are 'evt_' plus a version-4 UUID in hex, unique per event."""
        ids = {Event.create("a.b", {}).id for _ in range(1000)}
        assert len(ids) == 1000
        for event_id in list(ids)[:50]:
            assert re.fullmatch(r"evt_[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}", event_id)

    def test_published_at_is_timezone_aware_utc(self) -> None:
        """published_at is the current time in UTC, with its offset."""
        before = datetime.now(UTC)
        event = Event.create("a.b", {})
        assert event.published_at.tzinfo is not None
        assert event.published_at.utcoffset() == timedelta(0)
        assert before <= event.published_at <= datetime.now(UTC)

    def test_naive_timestamp_is_refused(self) -> None:
        """A naive published_at is refused: times are always comparable."""
        with pytest.raises(EventValidationError, match="timezone-aware"):
            Event.create("a.b", {}, published_at=datetime(2026, 1, 1))  # noqa: DTZ001

    @pytest.mark.parametrize("data", [None, [1, 2], "text", 3])
    def test_non_dict_data_is_refused(self, data: object) -> None:
        """data must be a dict; anything else is refused naming its type."""
        with pytest.raises(EventValidationError, match="data: expected a dict"):
            Event.create("a.b", data)  # type: ignore[arg-type]

    @pytest.mark.parametrize(
        ("data", "path"),
        [
            ({"when": datetime.now(UTC)}, "data.when"),
            ({"a": {"b": [1, object()]}}, r"data.a.b\[1\]"),
            ({1: "x"}, "non-string key"),
            ({"x": float("nan")}, "NaN"),
        ],
    )
    def test_values_json_cannot_carry_are_refused_with_their_path(
        self, data: dict[object, object], path: str
    ) -> None:
        """A value JSON cannot carry is refused with its path, before anything is published."""
        with pytest.raises(EventValidationError, match=path):
            Event.create("a.b", data)  # type: ignore[arg-type]

    def test_bad_type_is_refused(self) -> None:
        """A malformed event type is refused at creation."""
        with pytest.raises(InvalidEventTypeError):
            Event.create("memory.*", {})


class TestImmutability:
    def test_data_and_nested_values_are_read_only(self) -> None:
        """No handler can change the payload other subscribers see."""
        event = Event.create("a.b", {"tags": ["x"], "nested": {"k": 1}})
        with pytest.raises(TypeError, match="read-only"):
            event.data["new"] = 1  # type: ignore[index]
        with pytest.raises(TypeError, match="read-only"):
            event.data["tags"].append("y")
        with pytest.raises(TypeError, match="read-only"):
            event.data["nested"].update(k=2)
        with pytest.raises(TypeError, match="read-only"):
            event.metadata.clear()  # type: ignore[attr-defined]
        assert event.data == {"tags": ["x"], "nested": {"k": 1}}

    def test_fields_cannot_be_reassigned(self) -> None:
        """Reassigning a field is refused."""
        event = Event.create("a.b", {})
        with pytest.raises(AttributeError, match="immutable"):
            event.data = {}

    def test_publisher_mutation_after_create_does_not_leak(self) -> None:
        """The payload is copied: the publisher changing its dict later changes nothing."""
        payload = {"tags": ["a"]}
        event = Event.create("a.b", payload)
        payload["tags"].append("b")
        payload["x"] = 1  # type: ignore[assignment]
        assert event.data == {"tags": ["a"]}

    def test_copies_are_mutable(self) -> None:
        """dict(event.data), .copy() and to_dict() hand back mutable copies."""
        event = Event.create("a.b", {"tags": ["x"]})
        plain = event.to_dict()
        plain["data"]["tags"].append("y")
        mutable = event.data.copy()  # type: ignore[attr-defined]
        mutable["z"] = 1
        assert event.data == {"tags": ["x"]}

    def test_copy_and_pickle_keep_the_event(self) -> None:
        """Events survive copy.deepcopy and pickle unchanged."""
        event = Event.create("a.b", {"tags": ["x"], "n": {"k": 1}}, {"agent_id": "a"})
        assert copy.deepcopy(event) == event
        assert pickle.loads(pickle.dumps(event)) == event


class TestSerialisation:
    def test_round_trip_through_json(self) -> None:
        """to_dict() -> JSON -> from_dict() gives back an equal event."""
        event = Event.create(
            "memory.created", {"memory_id": "m1", "tags": ["a"], "x": 1.5}, {"agent_id": "a1"}
        )
        again = Event.from_dict(json.loads(json.dumps(event.to_dict())))
        assert again == event
        assert again.published_at == event.published_at

    def test_to_json_is_compact_and_stable(self) -> None:
        """to_json() encodes once and returns the same bytes every time."""
        event = Event.create("a.b", {"text": "héllo"})
        first = event.to_json()
        assert first is event.to_json()
        assert json.loads(first) == event.to_dict()
        assert "héllo".encode() in first

    def test_to_json_is_the_compact_json_of_to_dict(self) -> None:
        """to_json() is exactly the compact, non-ASCII-kept JSON of to_dict(), nested too."""
        data = {"t": "é\u2028😀", "tags": ["a", {"b": [1, 2.5, None, True]}], "n": {"x": {}}}
        event = Event.create("a.b", data, {"agent_id": "ü"})
        expected = json.dumps(
            event.to_dict(), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()
        assert event.to_json() == expected

    def test_from_dict_keeps_other_offsets(self) -> None:
        """An ISO timestamp with another offset is kept as an aware time."""
        stamp = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
        raw = {"id": "evt_1", "type": "a.b", "data": {}, "published_at": stamp.isoformat()}
        assert Event.from_dict(raw).published_at == stamp

    @pytest.mark.parametrize(
        ("raw", "message"),
        [
            ({"type": "a.b", "data": {}, "published_at": "2026-01-01T00:00:00+00:00"}, "id"),
            ({"id": "e", "type": "a.b", "data": {}}, "published_at: missing"),
            ({"id": "e", "type": "a.b", "data": {}, "published_at": "yesterday"}, "ISO 8601"),
            ({"id": "e", "type": "a.b", "data": [], "published_at": "2026-01-01T00:00Z"}, "dict"),
        ],
    )
    def test_from_dict_names_what_is_wrong(self, raw: dict[str, object], message: str) -> None:
        """A malformed dict is refused with the field named."""
        with pytest.raises(EventValidationError, match=message):
            Event.from_dict(raw)


def _nested(levels: int) -> dict[str, object]:
    """A dict ``levels`` deep: {"n": {"n": ... {}}}."""
    inner: dict[str, object] = {}
    for _ in range(levels - 1):
        inner = {"n": inner}
    return inner


def _nested_lists(levels: int) -> list[object]:
    """A list ``levels`` deep: [[[...]]]."""
    inner: list[object] = []
    for _ in range(levels - 1):
        inner = [inner]
    return inner


def _self_referencing() -> dict[str, object]:
    loop: dict[str, object] = {"name": "loop"}
    loop["self"] = loop
    return loop


HOSTILE = [
    pytest.param({"text": "\ud800"}, "lone surrogate", id="lone-surrogate"),
    pytest.param({"\udfff": 1}, "lone surrogate", id="lone-surrogate-key"),
    pytest.param({"x": float("inf")}, "inf, which JSON cannot carry", id="infinity"),
    pytest.param({"x": 1e999}, "inf, which JSON cannot carry", id="1e999"),
    pytest.param({"x": -1e999}, "-inf", id="minus-1e999"),
    pytest.param({"x": float("nan")}, "NaN", id="nan"),
    pytest.param({"x": [float("nan")]}, "NaN", id="nested-nan"),
    pytest.param({"x": 10**4_999}, "integer of about 5000 digits", id="5000-digit-int"),
    pytest.param({"x": -(10**4_999)}, "integer of about 5000 digits", id="minus-5000-digits"),
    pytest.param({"x": 2**64}, "outside the range", id="2**64"),
    pytest.param(_self_referencing(), "nested deeper than 64 levels", id="self-reference"),
    pytest.param(_nested(5_000), "nested deeper than 64 levels", id="5000-levels"),
    pytest.param(
        {"list": _nested_lists(5_000)},
        "nested deeper than 64 levels",
        id="5000-levels-of-lists",
    ),
]


class TestStrictJSON:
    @pytest.mark.parametrize(("data", "reason"), HOSTILE)
    async def test_publish_refuses_what_is_not_strict_json_quickly(
        self, data: dict[str, object], reason: str
    ) -> None:
        """publish refuses each hostile payload with EventValidationError, in milliseconds."""
        async with EventBus(validation="strict") as bus:
            seen: list[Event] = []
            bus.subscribe(">", seen.append)
            for event_type in ("a.b", "memory.created"):
                started = time.perf_counter()
                with pytest.raises(EventValidationError, match=reason):
                    await bus.publish(event_type, data)
                assert time.perf_counter() - started < 0.5  # generous; typically < 1 ms
                with pytest.raises(EventValidationError, match=reason):
                    await bus.publish_batch([(event_type, data)])
            await bus.flush()
            assert seen == []
            assert bus.get_metrics()["total_published"] == 0

    @pytest.mark.parametrize(("data", "reason"), HOSTILE)
    def test_event_create_refuses_them_too(self, data: dict[str, object], reason: str) -> None:
        """Event.create applies the same checks, to metadata as well as data."""
        with pytest.raises(EventValidationError, match=reason):
            Event.create("a.b", data)
        with pytest.raises(EventValidationError, match=reason):
            Event.create("a.b", {}, data)

    def test_the_limits_themselves_are_accepted(self) -> None:
        """64 levels, int64/uint64 bounds, astral characters and big finite floats pass."""
        data = {
            "deep": _nested(63),
            "ints": [-(2**63), 2**64 - 1],
            "text": "caf\u00e9 \U0001f600",
            "big": 1.7976931348623157e308,
        }
        event = Event.create("a.b", data)
        assert json.loads(event.to_json())["data"] == data

    async def test_payload_size_is_bounded_by_max_payload_bytes(self) -> None:
        """A payload over events.max_payload_bytes is refused naming its size and the limit."""
        async with EventBus(validation="off", max_payload_bytes=1_000) as bus:
            await bus.publish("a.b", {"text": "x" * 900})
            with pytest.raises(EventValidationError, match="over the limit of 1000"):
                await bus.publish("a.b", {"text": "x" * 1_001})
            with pytest.raises(EventValidationError, match="over the limit of 1000"):
                await bus.publish("a.b", {"list": ["\u00e9" * 100] * 10})
            with pytest.raises(EventValidationError, match="metadata is"):
                await bus.publish("a.b", {}, {"note": "y" * 2_000})


class TestPublishPath:
    @pytest.mark.parametrize("build", ["fresh_event", "checked_event"])
    def test_builds_the_event_the_constructor_builds(self, build: str) -> None:
        """publish's builders give a plain, immutable Event equal to the constructor's."""
        data = {"memory_id": "m", "n": 1}
        if build == "fresh_event":
            event = fresh_event("memory.deleted", data, {"agent_id": "a"})
        else:
            event = checked_event("memory.deleted", FrozenDict(data), {"agent_id": "a"})
        assert type(event) is Event
        twin = Event(event.id, event.type, data, {"agent_id": "a"}, event.published_at)
        assert event == twin
        assert repr(event) == repr(twin)
        assert event.to_json() == twin.to_json()
        assert pickle.loads(pickle.dumps(event)) == event
        assert re.fullmatch(r"evt_[0-9a-f]{12}4[0-9a-f]{3}[89ab][0-9a-f]{15}", event.id)
        with pytest.raises(AttributeError, match="immutable"):
            event.id = "evt_other"

    def test_ids_are_the_same_draws_in_the_same_format(self) -> None:
        """Every builder draws the id as "evt_%032x" of the masked 128 random bits did."""
        state = random.getstate()
        try:
            random.seed(1234)
            drawn = [new_event_id(), fresh_event("a.b", {}).id]
            drawn.append(checked_event("a.b", FrozenDict()).id)
            drawn.append(Event(type="a.b").id)
            random.seed(1234)
            clear, version = 0xFFFFFFFFFFFF0FFF3FFFFFFFFFFFFFFF, 0x40008000000000000000
            expected = ["evt_%032x" % ((random.getrandbits(128) & clear) | version) for _ in drawn]
        finally:
            random.setstate(state)
        assert drawn == expected
        assert (5).to_bytes(16).hex() == "0" * 31 + "5"  # zero-padded to 32 digits
