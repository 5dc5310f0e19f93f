"""The payload schemas: models, JSON Schema registry, validation messages and OpenAPI export."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from types import MappingProxyType
from typing import Any

import pydantic
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate as validate_openapi
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from mnemo_events.event import Event
from mnemo_events.exceptions import InvalidEventTypeError, SchemaRegistrationError
from mnemo_events.schemas import (
    BUILTIN_MODELS,
    DIALECT,
    MemoryCreated,
    SchemaRegistry,
    default_registry,
    export_openapi_spec,
    get_json_schema,
    get_model,
    is_registered,
    list_event_types,
    register_event_type,
    suggest_event_types,
    unregister_event_type,
    validate_event,
)
from mnemo_events.schemas._fastpath import compile_check
from mnemo_events.webhooks.signature import StandardWebhookSignature, WebhookSignature
from tests.helpers.payloads import VALID_PAYLOADS

FULL = VALID_PAYLOADS

REQUIRED: dict[str, list[str]] = {
    "memory.created": ["memory_id", "content", "tier"],
    "memory.accessed": ["memory_id", "query"],
    "memory.deleted": ["memory_id"],
    "memory.consolidated": ["memory_id", "from_tier", "to_tier"],
    "consolidation.started": ["cycle_id"],
    "consolidation.completed": ["cycle_id", "duration_seconds"],
    "contradiction.detected": ["group_id", "memory_a_id", "memory_b_id"],
    "contradiction.resolved": ["group_id"],
    "dream.started": ["session_id", "trigger"],
    "dream.completed": ["session_id", "duration_seconds"],
    "dream.failed": ["session_id", "error"],
    "synapse.formed": ["synapse_id", "neuron_a_id", "neuron_b_id"],
    "synapse.fired": ["synapse_id", "source_id", "target_id"],
    "gap.detected": ["gap_id", "query"],
    "gap.filled": ["gap_id", "memory_id"],
}

# One invalid payload per type, and the message it must produce.
INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("memory.created", {"memory_id": "m", "content": "c", "tier": "lukewarm"}, "data.tier"),
    ("memory.accessed", {"memory_id": "m", "query": "q", "rank": 0}, "data.rank"),
    ("memory.deleted", {"memory_id": "m", "reason": "boredom"}, "data.reason"),
    ("memory.consolidated", {"memory_id": "m", "from_tier": "hot"}, "data.to_tier"),
    ("consolidation.started", {"memories_queued": 3}, "data.cycle_id"),
    ("consolidation.completed", {"cycle_id": "c", "duration_seconds": -1}, "data.duration"),
    ("contradiction.detected", {"group_id": "g", "memory_a_id": "a", "memory_b_id": 2}, "_b_id"),
    ("contradiction.resolved", {"group_id": "g", "resolution_type": "vote"}, "resolution_type"),
    ("dream.started", {"session_id": "d", "trigger": "idle", "stages_enabled": ["nap"]}, "[0]"),
    ("dream.completed", {"session_id": "d", "duration_seconds": 1, "clusters_found": 1.5}, "clu"),
    ("dream.failed", {"session_id": "d", "error": None}, "data.error"),
    ("synapse.formed", {"synapse_id": "s", "neuron_a_id": "a", "neuron_b_id": "b", "x": 1}, ".x"),
    ("synapse.fired", {"synapse_id": "s", "source_id": "a", "target_id": "b", "strength": 2}, "st"),
    ("gap.detected", {"gap_id": "g", "query": "q", "related_memory_ids": "mem_1"}, "related"),
    ("gap.filled", {"gap_id": "g", "memory_id": "m", "confidence": True}, "data.confidence"),
]

ENUMS: list[tuple[str, str, list[str]]] = [
    ("memory.created", "tier", ["hot", "warm", "cold"]),
    ("memory.accessed", "tier", ["hot", "warm", "cold"]),
    ("memory.deleted", "tier", ["hot", "warm", "cold"]),
    ("memory.deleted", "reason", ["manual", "eviction", "decay", "contradiction"]),
    ("memory.consolidated", "from_tier", ["hot", "warm", "cold"]),
    ("memory.consolidated", "to_tier", ["hot", "warm", "cold"]),
    ("memory.consolidated", "consolidation_type", ["promotion", "demotion", "archival"]),
    ("contradiction.resolved", "resolution_type",
     ["manual", "auto", "merge", "delete_a", "delete_b"]),
    ("dream.started", "trigger", ["idle", "scheduled", "manual"]),
    ("synapse.formed", "formation_reason", ["auto_bind", "associative", "manual", "dream"]),
    ("gap.detected", "gap_type", ["missing_info", "low_confidence", "contradiction"]),
    ("gap.filled", "fill_method", ["llm_generation", "user_input", "external_source"]),
]  # fmt: skip
STAGES = [
    "episodic_clustering", "pattern_extraction", "recursive_synthesis",
    "contradiction_resolution", "semantic_promotion", "dream_report",
]  # fmt: skip

UNIT_FIELDS = [
    ("memory.created", "ltp_strength"), ("memory.created", "eig"),
    ("memory.accessed", "similarity_score"), ("memory.consolidated", "ltp_strength"),
    ("contradiction.detected", "similarity_score"), ("contradiction.detected", "llm_confidence"),
    ("synapse.formed", "initial_strength"), ("synapse.formed", "similarity"),
    ("synapse.fired", "strength"), ("gap.detected", "severity"), ("gap.filled", "confidence"),
]  # fmt: skip
DURATION_FIELDS = [
    ("consolidation.completed", "duration_seconds"), ("dream.completed", "duration_seconds"),
    ("dream.failed", "duration_seconds"),
]  # fmt: skip
COUNT_FIELDS = [
    ("consolidation.started", "memories_queued"), ("consolidation.completed", "memories_processed"),
    ("consolidation.completed", "hot_to_warm"), ("consolidation.completed", "warm_to_cold"),
    ("consolidation.completed", "memories_consolidated"), ("dream.started", "max_memories"),
    ("dream.completed", "memories_processed"), ("dream.completed", "clusters_found"),
    ("dream.completed", "patterns_extracted"), ("dream.completed", "contradictions_resolved"),
    ("dream.completed", "memories_promoted"), ("dream.failed", "memories_processed"),
]  # fmt: skip
NUMERIC_FIELDS = [*UNIT_FIELDS, *DURATION_FIELDS, *COUNT_FIELDS, ("memory.accessed", "rank")]
BOOL_FIELDS = [("contradiction.detected", "llm_confirmed"), ("synapse.fired", "was_successful")]

# (type, field, value, valid?, message fragment) for every range bound.
BOUNDS: list[tuple[str, str, Any, bool, str]] = (
    [(t, f, v, True, "") for t, f in UNIT_FIELDS for v in (0, 0.0, 1, 1.0, 0.5)]
    + [(t, f, -0.001, False, "expected a value >= 0") for t, f in UNIT_FIELDS]
    + [(t, f, 1.001, False, "expected a value <= 1") for t, f in UNIT_FIELDS]
    + [(t, f, v, True, "") for t, f in DURATION_FIELDS for v in (0, 0.0, 86400.5)]
    + [(t, f, -0.5, False, "expected a value >= 0") for t, f in DURATION_FIELDS]
    + [(t, f, float("inf"), False, "finite number") for t, f in DURATION_FIELDS]
    + [(t, f, v, True, "") for t, f in COUNT_FIELDS for v in (0, 1, 10**6)]
    + [(t, f, -1, False, "expected a value >= 0") for t, f in COUNT_FIELDS]
    + [(t, f, 2.5, False, "expected an integer") for t, f in COUNT_FIELDS]
    + [("memory.accessed", "rank", 1, True, ""), ("memory.accessed", "rank", 99, True, "")]
    + [("memory.accessed", "rank", 0, False, "expected a value >= 1")]
)


def _with(event_type: str, **changes: Any) -> dict[str, Any]:
    return {**FULL[event_type], **changes}


def _minimal(event_type: str) -> dict[str, Any]:
    return {name: FULL[event_type][name] for name in REQUIRED[event_type]}


@pytest.fixture
def cleanup_types() -> Iterator[list[str]]:
    """Event types a test registers in the default registry, removed afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        unregister_event_type(name)


class TestRegistry:
    def test_the_fifteen_types_in_the_reference_order(self) -> None:
        """The registry starts with exactly the 15 built-in types, in the reference's order."""
        assert list_event_types() == list(FULL)
        assert all(is_registered(name) for name in FULL)

    @pytest.mark.parametrize("event_type", list(FULL))
    def test_required_fields_match_the_reference(self, event_type: str) -> None:
        """Each schema requires exactly the reference's required fields."""
        schema = get_json_schema(event_type)
        assert sorted(schema["required"]) == sorted(REQUIRED[event_type])
        assert set(schema["properties"]) == set(FULL[event_type])
        assert schema["additionalProperties"] is False
        assert schema["$schema"] == DIALECT
        Draft202012Validator.check_schema(schema)

    def test_get_json_schema_of_all_types_returns_copies(self) -> None:
        """``get_json_schema()`` maps every type to its schema, and callers get copies."""
        every = get_json_schema()
        assert list(every) == list(FULL)
        every["memory.created"]["required"].clear()
        get_json_schema("memory.deleted")["properties"].clear()
        assert get_json_schema("memory.created")["required"] == REQUIRED["memory.created"]
        assert validate_event("memory.deleted", {"memory_id": "m", "bogus": 1})[0] is False

    def test_get_json_schema_of_an_unknown_type_suggests(self) -> None:
        """Asking for the schema of an unknown type raises KeyError naming the closest one."""
        with pytest.raises(KeyError, match=r"memory\.created"):
            get_json_schema("memory.create")

    @pytest.mark.parametrize("event_type", list(FULL))
    def test_models_build_the_payloads(self, event_type: str) -> None:
        """Each public model accepts the full payload and dumps it back, Nones omitted."""
        model = get_model(event_type)
        assert model is BUILTIN_MODELS[event_type]
        assert model.model_validate(FULL[event_type]).to_data() == FULL[event_type]
        assert model.model_validate(_minimal(event_type)).to_data() == _minimal(event_type)

    def test_models_are_strict_closed_and_frozen(self) -> None:
        """Models refuse booleans as numbers, unknown fields and mutation."""
        with pytest.raises(pydantic.ValidationError, match="eig"):
            MemoryCreated(memory_id="m", content="c", tier="hot", eig=True)
        with pytest.raises(pydantic.ValidationError, match="extra"):
            MemoryCreated.model_validate({**_minimal("memory.created"), "extra": 1})
        payload = MemoryCreated(memory_id="m", content="c", tier="hot")
        with pytest.raises(pydantic.ValidationError):
            payload.memory_id = "other"  # type: ignore[misc]


class TestValidation:
    @pytest.mark.parametrize("event_type", list(FULL))
    def test_full_and_minimal_payloads_are_valid(self, event_type: str) -> None:
        """Every type accepts a payload with all its fields, and one with only the required."""
        assert validate_event(event_type, FULL[event_type]) == (True, [])
        assert validate_event(event_type, _minimal(event_type)) == (True, [])

    @pytest.mark.parametrize(("event_type", "data", "fragment"), INVALID)
    def test_one_invalid_payload_per_type(
        self, event_type: str, data: dict[str, Any], fragment: str
    ) -> None:
        """Every type refuses a bad payload with a message naming the field."""
        valid, errors = validate_event(event_type, data)
        assert valid is False
        assert len(errors) == 1
        assert fragment in errors[0]

    @pytest.mark.parametrize(
        ("event_type", "field"), [(t, f) for t, fields in REQUIRED.items() for f in fields]
    )
    def test_each_required_field_missing(self, event_type: str, field: str) -> None:
        """Leaving out any required field is reported with its path."""
        data = dict(FULL[event_type])
        del data[field]
        assert validate_event(event_type, data) == (
            False,
            [f"data.{field}: required field is missing"],
        )

    @pytest.mark.parametrize("event_type", list(FULL))
    def test_unknown_fields_are_refused(self, event_type: str) -> None:
        """A field the schema does not name is refused, and the allowed fields are listed."""
        valid, errors = validate_event(event_type, _with(event_type, bogus=1))
        assert valid is False
        assert errors[0].startswith("data.bogus: unknown field (allowed: ")
        assert all(name in errors[0] for name in FULL[event_type])

    @pytest.mark.parametrize(("event_type", "field", "choices"), ENUMS)
    def test_every_enum(self, event_type: str, field: str, choices: list[str]) -> None:
        """Each enum field accepts exactly its listed values."""
        for choice in choices:
            assert validate_event(event_type, _with(event_type, **{field: choice}))[0] is True
        for wrong in ("HOT", "", "unknown", 1):
            valid, errors = validate_event(event_type, _with(event_type, **{field: wrong}))
            assert valid is False
            listed = ", ".join(map(repr, choices))
            assert errors == [f"data.{field}: expected one of {listed}, got {wrong!r} "
                              f"({type(wrong).__name__})"]  # fmt: skip

    @pytest.mark.parametrize("stage", STAGES)
    def test_every_dream_stage(self, stage: str) -> None:
        """``stages_enabled`` accepts each of the six stages and refuses others by index."""
        assert validate_event("dream.started", _with("dream.started", stages_enabled=[stage]))[0]
        valid, errors = validate_event(
            "dream.started", _with("dream.started", stages_enabled=[stage, "napping"])
        )
        assert valid is False
        assert errors[0].startswith("data.stages_enabled[1]: expected one of")

    @pytest.mark.parametrize(("event_type", "field", "value", "ok", "message"), BOUNDS)
    def test_every_range_bound(
        self, event_type: str, field: str, value: Any, ok: bool, message: str
    ) -> None:
        """Numbers in [0, 1], durations >= 0, counts integers >= 0 and rank >= 1."""
        valid, errors = validate_event(event_type, _with(event_type, **{field: value}))
        assert valid is ok
        if not ok:
            assert len(errors) == 1
            assert errors[0].startswith(f"data.{field}: ")
            assert message in errors[0]

    @pytest.mark.parametrize(("event_type", "field"), NUMERIC_FIELDS)
    @pytest.mark.parametrize("value", [True, False])
    def test_booleans_are_not_numbers(self, event_type: str, field: str, value: bool) -> None:
        """``True`` and ``False`` are refused wherever a number or a count is expected."""
        valid, errors = validate_event(event_type, _with(event_type, **{field: value}))
        assert valid is False
        assert errors[0].startswith(f"data.{field}: expected a")
        assert "(not a boolean)" in errors[0]

    @pytest.mark.parametrize(("event_type", "field"), BOOL_FIELDS)
    @pytest.mark.parametrize("value", [1, 0, "true", None])
    def test_boolean_fields_want_booleans(self, event_type: str, field: str, value: Any) -> None:
        """Boolean fields refuse numbers, strings and null."""
        valid, errors = validate_event(event_type, _with(event_type, **{field: value}))
        assert (valid, errors[0].split(",")[0]) == (False, f"data.{field}: expected a boolean")

    @pytest.mark.parametrize(
        ("event_type", "field", "value", "message"),
        [
            ("memory.created", "memory_id", 123, "data.memory_id: expected a string, got 123"),
            ("memory.created", "content", None, "data.content: expected a string, got None"),
            ("memory.created", "tags", "geo", "data.tags: expected a list, got 'geo'"),
            ("memory.created", "tags", ["a", 2], "data.tags[1]: expected a string, got 2"),
            ("gap.detected", "related_memory_ids", [None], "data.related_memory_ids[0]: expect"),
            ("memory.created", "ltp_strength", None, "data.ltp_strength: expected a finite"),
            ("memory.created", "eig", float("nan"), "data.eig: expected a finite number"),
            ("memory.created", "eig", "0.5", "data.eig: expected a finite number"),
            ("dream.failed", "error", {"msg": "x"}, "data.error: expected a string"),
        ],
    )
    def test_types_and_null(self, event_type: str, field: str, value: Any, message: str) -> None:
        """Strings, lists and numbers are checked; optional fields may be omitted, not null."""
        valid, errors = validate_event(event_type, _with(event_type, **{field: value}))
        assert valid is False
        assert errors[0].startswith(message)

    def test_every_problem_at_once_sorted_by_path(self) -> None:
        """All problems of a payload are reported together, one message each."""
        data = {"memory_id": 1, "tier": "lukewarm", "eig": True, "tags": ["a", 2], "zz": 0}
        valid, errors = validate_event("memory.created", data)
        assert valid is False
        assert errors == [
            "data.content: required field is missing",
            "data.eig: expected a finite number (not a boolean), got True (bool)",
            "data.memory_id: expected a string, got 1 (int)",
            "data.tags[1]: expected a string, got 2 (int)",
            "data.tier: expected one of 'hot', 'warm', 'cold', got 'lukewarm' (str)",
            "data.zz: unknown field (allowed: memory_id, content, tier, ltp_strength, eig, tags,"
            " category, agent_id, episode_id, content_preview, previous_id)",
        ]

    @pytest.mark.parametrize("data", ["text", None, 3, ["memory_id"]])
    def test_payload_must_be_an_object(self, data: Any) -> None:
        """A payload that is not an object is refused as a whole."""
        valid, errors = validate_event("memory.deleted", data)
        assert valid is False
        assert errors[0].startswith("data: expected an object, got ")

    def test_read_only_event_data_and_other_mappings_validate(self) -> None:
        """What ``Event.create`` hands out (frozen dict and lists), mappings and tuples pass."""
        event = Event.create("gap.detected", FULL["gap.detected"])
        assert validate_event("gap.detected", event.data) == (True, [])
        proxy = MappingProxyType(_with("gap.detected", related_memory_ids=("mem_1",)))
        assert validate_event("gap.detected", proxy) == (True, [])

    @pytest.mark.parametrize(
        ("typo", "suggested"),
        [
            ("memory.craeted", "memory.created"),
            ("memory.create", "memory.created"),
            ("dream.complete", "dream.completed"),
            ("synapse.fire", "synapse.fired"),
            ("Gap.Filled", "gap.filled"),
        ],
    )
    def test_unknown_types_suggest_the_closest(self, typo: str, suggested: str) -> None:
        """The strict check finds an unregistered type invalid, suggesting the closest names."""
        assert is_registered(typo) is False
        assert suggest_event_types(typo)[0] == suggested
        valid, errors = default_registry.validate(typo, {})
        assert valid is False
        assert errors == [errors[0]]
        assert f"event type {typo!r} has no registered schema; did you mean " in errors[0]
        assert repr(suggested) in errors[0]

    def test_validate_event_passes_an_unregistered_type(self) -> None:
        """``validate_event`` of a well-formed type with no schema is ``(True, [])`` (MnemoCore's
        answer, as publish treats it); a malformed type stays invalid."""
        assert validate_event("memory.craeted", {"anything": 1}) == (True, [])
        assert validate_event("billing.paid", {}) == (True, [])
        assert validate_event("memory..created", {})[0] is False

    def test_unknown_type_without_a_close_name(self) -> None:
        """A type unlike any registered one points at ``list_event_types()``."""
        assert suggest_event_types("billing.paid") == []
        assert default_registry.validate("billing.paid", {})[1] == [
            "event type 'billing.paid' has no registered schema; "
            "see list_event_types() for the registered ones"
        ]

    @pytest.mark.parametrize("event_type", [None, 3, ["memory.created"], b"memory.created"])
    def test_non_string_types_are_refused_calmly(self, event_type: Any) -> None:
        """A type that is not a str is unregistered and invalid, without an exception."""
        assert is_registered(event_type) is False
        assert suggest_event_types(event_type) == []
        assert validate_event(event_type, {}) == (
            False,
            [f"event type must be a str, got {type(event_type).__name__}"],
        )

    def test_suggestions_are_bounded(self) -> None:
        """``suggest_event_types`` returns at most ``n`` names, best first."""
        assert len(suggest_event_types("memory.x", n=2)) <= 2
        assert suggest_event_types("memory.deleted", n=1) == ["memory.deleted"]


def _table_payloads() -> list[tuple[str, Any]]:
    cases: list[tuple[str, Any]] = list(FULL.items())
    cases += [(t, _minimal(t)) for t in FULL]
    cases += [(t, d) for t, d, _ in INVALID]
    cases += [(t, _with(t, **{f: v})) for t, f, v, _, _ in BOUNDS if v == v and abs(v) < 1e300]
    cases += [(t, _with(t, **{f: True})) for t, f in NUMERIC_FIELDS]
    cases += [(t, _with(t, **{f: c})) for t, f, choices in ENUMS for c in [*choices, "x"]]
    cases += [(t, _with(t, bogus=None)) for t in FULL]
    cases += [("memory.deleted", "text")]
    return cases


class TestAgreement:
    @pytest.mark.parametrize(("event_type", "data"), _table_payloads())
    def test_fast_path_and_plain_jsonschema_agree(self, event_type: str, data: Any) -> None:
        """The compiled fast check, our verdict and a stock 2020-12 validator always agree.

        So a payload that passed on publish never fails a receiver validating the exported
        schema with an off-the-shelf JSON Schema library.
        """
        schema = get_json_schema(event_type)
        check = compile_check(schema)
        assert check is not None
        stock = Draft202012Validator(schema).is_valid(json.loads(json.dumps(data)))
        assert check(data) is stock
        assert validate_event(event_type, data)[0] is stock


FAST_PATH_CASES: list[tuple[dict[str, Any] | bool, list[Any]]] = [
    ({"type": ["string", "null"]}, ["a", None, 1, True]),
    ({"properties": {"a": {"type": "integer"}}}, [{}, {"a": 1}, {"a": 1.0}, {"a": True}, "s", [1]]),
    ({"type": "array", "items": {"enum": ["x", "y"]}}, [[], ["x"], ["z"], "x", [1]]),
    ({"additionalProperties": False}, [{}, {"a": 1}, 3]),
    ({"exclusiveMinimum": 0, "exclusiveMaximum": 1}, [0, 0.5, 1, "x", None]),
    ({"properties": {"a": False}, "required": ["b"]}, [{"b": 1}, {"a": 1, "b": 1}, {}]),
    ({"type": "object", "additionalProperties": True}, [{"z": [1]}, []]),
    (True, [1, None]),
    (False, [1, None]),
]  # fmt: skip


class TestFastPath:
    @pytest.mark.parametrize(("schema", "payloads"), FAST_PATH_CASES)
    def test_compiled_checks_match_jsonschema(self, schema: Any, payloads: list[Any]) -> None:
        """On the keywords it compiles, the fast check gives jsonschema's verdict."""
        check = compile_check(schema)
        assert check is not None
        for payload in payloads:
            assert check(payload) is Draft202012Validator(schema).is_valid(payload), payload

    @pytest.mark.parametrize(
        "schema",
        [
            {"pattern": "^a"},
            {"anyOf": [{"type": "string"}]},
            {"$ref": "#"},
            {"enum": [1, 2]},
            {"additionalProperties": {"type": "string"}},
            {"properties": {"a": {"minLength": 1}}},
            {"type": "objekt"},
            {"items": [{"type": "string"}]},
        ],
    )
    def test_other_keywords_are_not_compiled(self, schema: dict[str, Any]) -> None:
        """A schema with any keyword outside the compiled subset gets no fast check."""
        assert compile_check(schema) is None

    def test_importing_the_schemas_does_not_import_jsonschema(self) -> None:
        """jsonschema loads only when a payload fails the fast check (faster CLI start)."""
        code = (
            "import sys, mnemo_events.schemas as s\n"
            "assert s.validate_event('memory.deleted', {'memory_id': 'm'}) == (True, [])\n"
            "assert 'jsonschema' not in sys.modules\n"
            "assert not s.validate_event('memory.deleted', {})[0]\n"
            "assert 'jsonschema' in sys.modules\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


class TestRegistration:
    def test_register_a_pydantic_model(self, cleanup_types: list[str]) -> None:
        """An application's own model becomes a registered, validated, listed type."""

        class InvoicePaid(pydantic.BaseModel):
            model_config = pydantic.ConfigDict(extra="forbid", strict=True)
            invoice_id: str
            amount: float = pydantic.Field(ge=0)
            note: str | None = None

        cleanup_types.append("billing.invoice_paid")
        register_event_type("billing.invoice_paid", InvoicePaid)
        assert list_event_types()[-1] == "billing.invoice_paid"
        assert get_model("billing.invoice_paid") is InvoicePaid
        assert validate_event("billing.invoice_paid", {"invoice_id": "i", "amount": 3}) == (
            True,
            [],
        )
        with_null = {"invoice_id": "i", "amount": 3, "note": None}
        assert validate_event("billing.invoice_paid", with_null)[1] == [
            "data.note: expected a string, got None (NoneType)"
        ]
        assert validate_event("billing.invoice_paid", {"amount": -1})[1] == [
            "data.amount: expected a value >= 0, got -1 (int)",
            "data.invoice_id: required field is missing",
        ]

    def test_register_a_json_schema_beyond_the_fast_path(self, cleanup_types: list[str]) -> None:
        """A dict schema with keywords the fast check does not compile is still enforced."""
        schema = {
            "type": "object",
            "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"}},
            "required": ["code"],
            "additionalProperties": False,
        }
        cleanup_types.append("app.currency_set")
        register_event_type("app.currency_set", schema)
        schema["required"] = []  # the registry keeps its own copy
        assert get_model("app.currency_set") is None
        assert get_json_schema("app.currency_set")["$schema"] == DIALECT
        assert validate_event("app.currency_set", {"code": "EUR"}) == (True, [])
        valid, errors = validate_event("app.currency_set", {"code": "eur"})
        assert valid is False
        assert errors == ["data.code: 'eur' does not match '^[A-Z]{3}$'"]
        assert validate_event("app.currency_set", {})[1] == ["data.code: required field is missing"]

    def test_reregistering_needs_replace(self, cleanup_types: list[str]) -> None:
        """Registering a taken type raises unless ``replace=True``; built-ins included."""
        cleanup_types.append("app.thing")
        register_event_type("app.thing", {"type": "object"})
        with pytest.raises(SchemaRegistrationError, match="already registered"):
            register_event_type("app.thing", {"type": "object"})
        with pytest.raises(SchemaRegistrationError, match="already registered"):
            register_event_type("memory.created", {"type": "object"})
        register_event_type("app.thing", {"type": "object", "required": ["x"]}, replace=True)
        assert validate_event("app.thing", {})[0] is False

    @pytest.mark.parametrize(
        ("name", "schema", "error", "match"),
        [
            ("bad..name", {"type": "object"}, InvalidEventTypeError, "segment 2"),
            ("app.*", {"type": "object"}, InvalidEventTypeError, "wildcards"),
            ("app.x", {"type": "objekt"}, SchemaRegistrationError, "not valid JSON Schema"),
            ("app.x", {"$schema": "http://json-schema.org/draft-07/schema#"},
             SchemaRegistrationError, "only https://json-schema.org/draft/2020-12"),
            ("app.x", "not a schema", SchemaRegistrationError, "got str"),
            ("app.x", dict, SchemaRegistrationError, "pydantic model class or a JSON Schema"),
        ],
    )  # fmt: skip
    def test_bad_registrations(self, name: str, schema: Any, error: type, match: str) -> None:
        """Malformed names and schemas are refused with a message saying what is wrong."""
        with pytest.raises(error, match=match):
            register_event_type(name, schema)
        assert not is_registered(name)

    def test_unregister(self, cleanup_types: list[str]) -> None:
        """Unregistering removes a type once; the second time reports False."""
        register_event_type("app.gone", {"type": "object"})
        assert unregister_event_type("app.gone") is True
        assert unregister_event_type("app.gone") is False
        assert default_registry.validate("app.gone", {})[0] is False

    def test_separate_registries_do_not_share_types(self) -> None:
        """A ``SchemaRegistry`` of its own leaves the default one untouched."""
        mine = SchemaRegistry(builtins=False)
        mine.register("app.only_here", {"type": "object"})
        assert mine.event_types() == ["app.only_here"]
        assert not is_registered("app.only_here")
        assert mine.validate("memory.created", FULL["memory.created"])[0] is False


def _resolver_validator(spec: dict[str, Any], name: str) -> Draft202012Validator:
    resource = Resource.from_contents(spec, default_specification=DRAFT202012)
    registry: Registry[Any] = Registry().with_resource("urn:spec", resource)
    return Draft202012Validator({"$ref": f"urn:spec#/components/schemas/{name}"}, registry=registry)


class TestOpenAPI:
    def test_the_document_is_valid_openapi_3_1(self) -> None:
        """The export passes openapi-spec-validator as OpenAPI 3.1."""
        spec = export_openapi_spec()
        assert spec["openapi"] == "3.1.0"
        validate_openapi(spec)

    def test_every_type_has_a_schema_and_a_webhook(self) -> None:
        """Each type has its payload and envelope schemas and one webhook entry."""
        spec = export_openapi_spec()
        schemas = spec["components"]["schemas"]
        assert list(spec["webhooks"]) == list(FULL)
        assert "MemoryCreated" in schemas
        assert "GapFilledEvent" in schemas
        for event_type, item in spec["webhooks"].items():
            body = item["post"]["requestBody"]["content"]["application/json"]["schema"]
            envelope = schemas[body["$ref"].rsplit("/", 1)[1]]
            assert envelope["required"] == ["id", "type", "data", "metadata", "published_at"]
            assert envelope["properties"]["type"]["const"] == event_type
            payload = schemas[envelope["properties"]["data"]["$ref"].rsplit("/", 1)[1]]
            assert sorted(payload["required"]) == sorted(REQUIRED[event_type])

    def test_headers_are_described(self) -> None:
        """Signature, event, delivery and attempt headers are parameters of every webhook."""
        spec = export_openapi_spec()
        parameters = spec["components"]["parameters"]
        required = {p["name"]: p["required"] for p in parameters.values()}
        assert required == {
            "X-MnemoCore-Signature": False,  # absent with signature_scheme "standard"
            "X-MnemoCore-Delivery": True,
            "X-MnemoCore-Attempt": True,
            "webhook-id": False,
            "webhook-timestamp": False,
            "webhook-signature": False,
        }
        signature = parameters["Signature"]
        assert "HMAC-SHA256" in signature["description"]
        assert "{t}.{raw body}" in signature["description"]
        for item in spec["webhooks"].values():
            listed = item["post"]["parameters"]
            inline = [p for p in listed if "name" in p]
            assert inline == [{**inline[0], "name": "X-MnemoCore-Event", "required": True}]
            assert len(listed) == 7

    def test_real_signatures_match_the_documented_patterns(self) -> None:
        """HMAC-SHA256 headers built as documented match the headers' schema patterns."""
        spec = export_openapi_spec()
        pattern = spec["components"]["parameters"]["Signature"]["schema"]["pattern"]
        body = Event.create("memory.deleted", {"memory_id": "m"}).to_json()
        digest = hmac.new(b"secret", b"1709150400." + body, hashlib.sha256).hexdigest()
        assert re.fullmatch(pattern, f"t=1709150400,v1={digest}")
        assert re.fullmatch(pattern, f"t=1709150400,v1={digest},v1={digest}")
        assert not re.fullmatch(pattern, f"t=now,v1={digest}")
        standard = spec["components"]["parameters"]["StandardSignature"]["schema"]["pattern"]
        encoded = base64.b64encode(hmac.digest(b"key", b"msg_1.1709150400." + body, "sha256"))
        assert re.fullmatch(standard, f"v1,{encoded.decode()}")
        assert re.fullmatch(standard, f"v1,{encoded.decode()} v1,{encoded.decode()}")
        assert not re.fullmatch(standard, f"v2,{encoded.decode()}")

    def test_the_sender_signs_as_documented(self) -> None:
        """The webhook signer's real header values match the documented patterns."""
        parameters = export_openapi_spec()["components"]["parameters"]
        body = Event.create("memory.deleted", {"memory_id": "m"}).to_json()
        mnemo = WebhookSignature.sign(body, ["whsec_one", "whsec_two"], 1709150400)
        assert re.fullmatch(parameters["Signature"]["schema"]["pattern"], mnemo)
        key = base64.b64encode(b"k" * 24).decode()
        standard = StandardWebhookSignature.sign("dlv_1", 1709150400, body, f"whsec_{key}")
        assert re.fullmatch(parameters["StandardSignature"]["schema"]["pattern"], standard)

    @pytest.mark.parametrize("event_type", list(FULL))
    def test_delivered_bodies_match_the_envelope(self, event_type: str) -> None:
        """The JSON body of a real event validates against its documented envelope."""
        spec = export_openapi_spec()
        body = json.loads(Event.create(event_type, FULL[event_type], {"agent_id": "a"}).to_json())
        name = spec["webhooks"][event_type]["post"]["requestBody"]["content"]["application/json"][
            "schema"
        ]["$ref"].rsplit("/", 1)[1]
        validator = _resolver_validator(spec, name)
        assert validator.is_valid(body)
        assert not validator.is_valid({**body, "data": {**body["data"], "bogus": 1}})

    def test_custom_types_with_nested_models_export_cleanly(self) -> None:
        """Nested model definitions are hoisted into components and their refs rewritten."""

        class Line(pydantic.BaseModel):
            sku: str
            parent: Line | None = None

        class Order(pydantic.BaseModel):
            lines: list[Line]

        registry = SchemaRegistry(builtins=False)
        registry.register("shop.order_placed", Order)
        registry.register("shop.order.placed", {"type": "object"})
        spec = export_openapi_spec(registry, title="shop", version="9")
        validate_openapi(spec)
        schemas = spec["components"]["schemas"]
        assert set(schemas) == {
            "ShopOrderPlaced", "ShopOrderPlacedLine", "ShopOrderPlacedEvent",
            "ShopOrderPlaced2", "ShopOrderPlacedEvent2",
        }  # fmt: skip
        assert spec["info"] == {**spec["info"], "title": "shop", "version": "9"}
        validator = _resolver_validator(spec, "ShopOrderPlaced")
        assert validator.is_valid({"lines": [{"sku": "a", "parent": {"sku": "b"}}]})
        assert not validator.is_valid({"lines": [{"sku": "a", "parent": {"sku": 1}}]})
