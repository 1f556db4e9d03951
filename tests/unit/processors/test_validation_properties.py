"""Property tests: parse_event answers every input, and its answer can always be recorded.

For arbitrary bytes and arbitrary JSON documents (lone surrogates, huge integers,
NaN and infinities, deep nesting, event-shaped documents with one field replaced):
parse_event returns a MemoryEvent or a Rejection, never raises and never falls back
to ``unparseable``; the dead letter of the input is valid JSON within its size limit,
and an accepted event's ack can be built.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st

from processors.core.events import SCHEMA_V1, MemoryEvent
from processors.core.reasons import Reason
from processors.core.records import (
    DEFAULT_DEADLETTER_MAX_BYTES,
    MIN_DEADLETTER_MAX_BYTES,
    SourceRef,
    ack_record,
    dead_letter_record,
)
from processors.core.validation import Limits, Rejection, check_key, parse_event

LIMITS = Limits(vector_dim=4)
SOURCE = SourceRef("memory.events", 0, 7, 1704096000000)
T0 = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
REASONS = {r.value for r in Reason}

PROPERTY = settings(
    max_examples=500,
    deadline=None,
    database=None,  # no .hypothesis/ directory in the tree; failures print their blob
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- strategies ----------------------------------------------------------------------

# Lone surrogates (category Cs), JSON's own punctuation, and everything else. (A text
# strategy merges an alphabet of several character strategies and then loses Cs: a
# list of characters joined keeps it.)
CHARS = st.one_of(
    st.characters(categories=["Cs"]),
    st.sampled_from('[]{}":,\\0123456789-.eE \t\n\ufeff'),
    st.characters(),
)
TEXT = st.lists(CHARS, max_size=20).map("".join)


class Digits(str):
    """A number written as ``digits`` in the JSON text (json.dumps cannot write an int
    past Python's int-to-string limit; :func:`to_json` puts it in afterwards)."""


OUT_OF_RANGE = st.one_of(
    st.integers(min_value=-(2**64), max_value=-(2**63) - 1),
    st.integers(min_value=2**64, max_value=10**400),
    st.integers(min_value=1, max_value=6000).map(lambda n: Digits("9" * n)),
    st.integers(min_value=1, max_value=400).map(lambda n: Digits("-1" + "0" * n)),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    TEXT,
    TEXT,
    TEXT,
    OUT_OF_RANGE,
)


def nest(child: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(child, max_size=4),
        st.dictionaries(TEXT, child, max_size=4),
    )


JSON_VALUES = st.recursive(SCALARS, nest, max_leaves=20)


@st.composite
def deep(draw: st.DrawFn) -> Any:
    """A value nested 20..40 levels more (around max_depth: 32, the event counted)."""
    value = draw(JSON_VALUES)
    for _ in range(draw(st.integers(min_value=20, max_value=40))):
        value = [value] if draw(st.booleans()) else {draw(st.sampled_from("abc")): value}
    return value


ANY_JSON = st.one_of(JSON_VALUES, deep())
FIELDS = [
    "schema",
    "event_id",
    "type",
    "tenant",
    "agent_id",
    "run_id",
    "memory_id",
    "content",
    "metadata",
    "mode",
    "occurred_at",
    "vector",
    "caused_by",
    "extra",
]


def base_event() -> dict[str, Any]:
    return {
        "schema": SCHEMA_V1,
        "event_id": "ev-1",
        "type": "memory.add",
        "tenant": "acme",
        "memory_id": "m-1",
        "content": "likes green tea",
        "metadata": {"topic": "drinks"},
        "occurred_at": "2024-05-01T12:00:00Z",
        "vector": [0.1, 0.2, 0.3, 0.4],
    }


@st.composite
def event_shaped(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with one field replaced (or added) by arbitrary JSON."""
    doc = base_event()
    field = draw(st.sampled_from(FIELDS))
    if field == "metadata" and draw(st.booleans()):
        nested_deep = deep().map(lambda value: {"m": value})
        doc["metadata"] = draw(st.one_of(st.dictionaries(TEXT, ANY_JSON, max_size=4), nested_deep))
    elif field == "vector" and draw(st.booleans()):
        numbers = st.one_of(st.floats(), st.integers(-(2**63), 2**64 - 1), OUT_OF_RANGE)
        doc["vector"] = draw(st.lists(numbers, min_size=3, max_size=5))
    else:
        doc[field] = draw(st.one_of(st.text(max_size=20), TEXT, ANY_JSON))
    return doc


# Mostly as a producer writes JSON (surrogates escaped); sometimes raw (not UTF-8 then).
ESCAPED = st.sampled_from([True, True, True, False])
_DIGITS = re.compile(r'"Digits:([-0-9]+)"')


def to_json(value: Any, ensure_ascii: bool) -> bytes:
    """``json.dumps`` (lone surrogates as ``\\ud800`` escapes with ensure_ascii, else raw
    and encoded with ``surrogatepass``: not UTF-8), with the Digits put in as numbers."""

    def mark(obj: Any) -> Any:
        if isinstance(obj, Digits):
            return f"Digits:{obj}"
        if isinstance(obj, dict):
            return {k: mark(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [mark(v) for v in obj]
        return obj

    text = json.dumps(mark(value), ensure_ascii=ensure_ascii)
    return _DIGITS.sub(lambda m: m.group(1), text).encode("utf-8", "surrogatepass")


# -- the property ----------------------------------------------------------------------


def check_answer(raw: bytes, key: bytes | None = b"acme") -> MemoryEvent | Rejection:
    parsed = parse_event(raw, LIMITS)
    assert isinstance(parsed, MemoryEvent | Rejection)
    if currently_in_test_context():
        event(parsed.reason if isinstance(parsed, Rejection) else "accepted")
    if isinstance(parsed, Rejection):
        assert parsed.reason != "unparseable", parsed
        assert parsed.reason in REASONS
        reason, detail, event_id, tenant = (
            parsed.reason,
            parsed.detail,
            parsed.event_id,
            parsed.tenant,
        )
        parsed.detail.encode()
    else:
        ack = ack_record(
            parsed.event_id,
            parsed.tenant,
            parsed.resolved_memory_id,
            1,
            "applied",
            SOURCE,
            parsed.occurred_at,
            T0,
        )
        assert ack.value is not None
        json.loads(ack.value)
        assert check_key(parsed.tenant.encode(), parsed) is None
        refusal = check_key(key, parsed)
        reason, detail, event_id, tenant = "memory_not_found", "d", parsed.event_id, parsed.tenant
        if refusal is not None:
            reason, detail = refusal.reason, refusal.detail
    record = dead_letter_record("validate", reason, detail, SOURCE, key, raw, T0, event_id, tenant)
    assert record.value is not None
    assert len(record.value) <= DEFAULT_DEADLETTER_MAX_BYTES
    json.loads(record.value.decode("utf-8"))
    return parsed


@PROPERTY
@given(st.binary(max_size=2000), st.one_of(st.none(), st.binary(max_size=40)))
def test_any_bytes(raw: bytes, key: bytes | None) -> None:
    check_answer(raw, key)


@PROPERTY
@given(ANY_JSON, ESCAPED)
def test_any_json_document(value: Any, ensure_ascii: bool) -> None:
    check_answer(to_json(value, ensure_ascii))


@PROPERTY
@given(event_shaped(), ESCAPED)
def test_event_with_one_field_replaced(doc: dict[str, Any], ensure_ascii: bool) -> None:
    check_answer(to_json(doc, ensure_ascii))


def test_the_base_event_is_valid() -> None:
    assert isinstance(check_answer(to_json(base_event(), True)), MemoryEvent)


@settings(PROPERTY, max_examples=100)
@given(
    st.binary(min_size=1, max_size=64),
    st.integers(min_value=1, max_value=4000),
    st.one_of(st.none(), st.binary(max_size=3000)),
    TEXT,
    st.integers(min_value=MIN_DEADLETTER_MAX_BYTES, max_value=MIN_DEADLETTER_MAX_BYTES * 3),
)
def test_dead_letter_always_fits(
    unit: bytes, repeat: int, key: bytes | None, detail: str, max_bytes: int
) -> None:
    raw = unit * repeat
    record = dead_letter_record(
        "validate", "r", detail * 100, SOURCE, key, raw, T0, detail, detail, max_bytes=max_bytes
    )
    assert record.value is not None
    assert len(record.value) <= max_bytes
    doc = json.loads(record.value.decode("utf-8"))
    assert doc.get("original_size", len(raw)) == len(raw)
