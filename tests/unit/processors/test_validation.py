"""parse_event: raw bytes to a valid MemoryEvent or a Rejection with a stable reason code."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from processors.core.events import SCHEMA_V1, EventType, MemoryEvent, Mode, new_event
from processors.core.reasons import Reason
from processors.core.validation import (
    MAX_DETAIL_CHARS,
    Limits,
    Rejection,
    check_key,
    parse_event,
)

LIMITS = Limits(vector_dim=4)
DROP = object()  # marks a field to leave out of the document


def doc(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema": SCHEMA_V1,
        "event_id": "ev-1",
        "type": "memory.add",
        "tenant": "acme",
        "content": "likes green tea",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


def raw(**overrides: Any) -> bytes:
    return json.dumps(doc(**overrides)).encode()


def event(data: bytes | None, limits: Limits = LIMITS) -> MemoryEvent:
    parsed = parse_event(data, limits)
    assert isinstance(parsed, MemoryEvent), parsed
    return parsed


def rejection(data: bytes | None, limits: Limits = LIMITS) -> Rejection:
    parsed = parse_event(data, limits)
    assert isinstance(parsed, Rejection), parsed
    return parsed


# -- valid events -------------------------------------------------------------------


def test_valid_add_with_all_fields() -> None:
    ev = event(
        raw(
            agent_id="agent-7",
            run_id="run:1",
            memory_id="m-1",
            metadata={"topic": "drinks", "n": 3},
            mode="intelligent",
            occurred_at="2024-05-01T12:00:00Z",
            vector=[1, 0.5, 0, -1],
        )
    )
    assert ev.type is EventType.ADD
    assert ev.event_id == "ev-1"
    assert ev.tenant == "acme"
    assert ev.content == "likes green tea"
    assert ev.agent_id == "agent-7"
    assert ev.run_id == "run:1"
    assert ev.memory_id == "m-1"
    assert ev.resolved_memory_id == "m-1"
    assert ev.metadata == {"topic": "drinks", "n": 3}
    assert ev.mode is Mode.INTELLIGENT
    assert ev.occurred_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert ev.vector == [1.0, 0.5, 0.0, -1.0]
    assert all(isinstance(v, float) for v in ev.vector)


def test_valid_minimal_add_defaults() -> None:
    ev = event(raw(schema=DROP))  # schema is optional and defaults to v1
    assert ev.type is EventType.ADD
    assert ev.memory_id is None
    assert ev.metadata == {}
    assert ev.mode is Mode.FAST
    assert ev.occurred_at is None
    assert ev.vector is None


def test_occurred_at_without_zone_is_utc() -> None:
    ev = event(raw(occurred_at="2024-05-01T12:00:00"))
    assert ev.occurred_at == datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_valid_update() -> None:
    ev = event(raw(type="memory.update", memory_id="m-1", content="likes black tea"))
    assert ev.type is EventType.UPDATE
    assert ev.memory_id == "m-1"
    assert ev.content == "likes black tea"


@pytest.mark.parametrize(
    ("type_", "expected"), [("memory.delete", EventType.DELETE), ("memory.erase", EventType.ERASE)]
)
def test_valid_delete_and_erase_need_no_content(type_: str, expected: EventType) -> None:
    ev = event(raw(type=type_, memory_id="m-1", content=DROP))
    assert ev.type is expected
    assert ev.memory_id == "m-1"
    assert ev.content is None


# -- rejections before the document is parsed ---------------------------------------


@pytest.mark.parametrize("value", [None, b""])
def test_empty_value(value: bytes | None) -> None:
    rej = rejection(value)
    assert rej.reason == "empty_value"
    assert rej.event_id is None
    assert rej.tenant is None


def test_invalid_utf8() -> None:
    rej = rejection(b'{"event_id": "\xff\xfe"}')
    assert rej.reason == "invalid_utf8"
    assert rej.event_id is None


def test_invalid_json() -> None:
    rej = rejection(b'{"event_id": "ev-1", ')
    assert rej.reason == "invalid_json"
    assert rej.event_id is None


@pytest.mark.parametrize("value", [b"[1, 2]", b'"text"', b"42", b"null"])
def test_not_an_object(value: bytes) -> None:
    assert rejection(value).reason == "not_an_object"


# -- envelope rejections --------------------------------------------------------------


def test_unsupported_schema_carries_ids() -> None:
    rej = rejection(raw(schema="agentmem.memory/v2"))
    assert rej.reason == "unsupported_schema"
    assert rej.event_id == "ev-1"
    assert rej.tenant == "acme"


def test_unknown_type() -> None:
    rej = rejection(raw(type="memory.upsert"))
    assert rej.reason == "unknown_type"
    assert rej.event_id == "ev-1"
    assert rej.tenant == "acme"


def test_non_string_type_is_rejected_not_raised() -> None:
    # A type that is a JSON array or object must be a Rejection like any other bad type,
    # not an exception out of parse_event (which would fail the whole batch).
    for bad in (["memory.add"], {"t": "memory.add"}):
        result = parse_event(raw(type=bad), LIMITS)
        assert isinstance(result, Rejection)
        assert result.reason in {"unknown_type", "invalid_field"}
        assert result.event_id == "ev-1"


def test_missing_type() -> None:
    rej = rejection(raw(type=DROP))
    assert rej.reason == "missing_field"
    assert "type" in rej.detail
    assert rej.event_id == "ev-1"
    assert rej.tenant == "acme"


@pytest.mark.parametrize("event_id", [DROP, "", 17])
def test_missing_event_id(event_id: object) -> None:
    rej = rejection(raw(event_id=event_id))
    assert rej.reason == "missing_field"
    assert "event_id" in rej.detail
    assert not rej.event_id  # nothing usable to carry (None, or the empty string as sent)
    assert rej.tenant == "acme"


@pytest.mark.parametrize("tenant", [DROP, None, ""])
def test_missing_tenant(tenant: object) -> None:
    rej = rejection(raw(tenant=tenant))
    assert rej.reason == "missing_tenant"
    assert rej.event_id == "ev-1"
    assert not rej.tenant


@pytest.mark.parametrize("tenant", ["a/b", "has space", "x" * 65, 5])
def test_invalid_tenant(tenant: object) -> None:
    rej = rejection(raw(tenant=tenant))
    assert rej.reason == "invalid_tenant"
    assert rej.event_id == "ev-1"
    assert rej.tenant is None  # only a valid tenant name goes into records


def test_content_limit_comes_from_limits() -> None:
    small = Limits(max_content_bytes=100, vector_dim=4)
    assert isinstance(parse_event(raw(content="x" * 100), small), MemoryEvent)
    rej = rejection(raw(content="x" * 101), small)
    assert rej.reason == "content_too_large"
    assert "100" in rej.detail
    assert rej.event_id == "ev-1"
    assert rej.tenant == "acme"
    # the same content passes the default limit
    assert isinstance(parse_event(raw(content="x" * 101), LIMITS), MemoryEvent)


def test_content_limit_counts_utf8_bytes() -> None:
    small = Limits(max_content_bytes=100, vector_dim=4)
    assert rejection(raw(content="é" * 51), small).reason == "content_too_large"  # 102 bytes
    assert isinstance(parse_event(raw(content="é" * 50), small), MemoryEvent)  # 100 bytes


def test_metadata_limit_comes_from_limits() -> None:
    small = Limits(max_metadata_bytes=100, vector_dim=4)
    # {"k":"..."} is 8 bytes of JSON around the value
    assert isinstance(parse_event(raw(metadata={"k": "v" * 92}), small), MemoryEvent)
    rej = rejection(raw(metadata={"k": "v" * 93}), small)
    assert rej.reason == "metadata_too_large"
    assert "100" in rej.detail
    assert rej.event_id == "ev-1"
    assert rej.tenant == "acme"


# -- schema rejections ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("content", 123),
        ("agent_id", 5),
        ("occurred_at", "not a date"),
        ("metadata", ["a"]),
        ("mode", "turbo"),
        ("vector", ["a", "b", "c", "d"]),
        ("event_id", "e" * 129),
    ],
)
def test_invalid_field(field: str, value: object) -> None:
    rej = rejection(raw(**{field: value}))
    assert rej.reason == "invalid_field"
    assert rej.event_id == (None if field == "event_id" else "ev-1")  # 129 chars: not carried
    assert rej.tenant == "acme"


def test_invalid_field_detail_names_the_field() -> None:
    assert rejection(raw(content=123)).detail.startswith("content")


def test_unknown_field() -> None:
    rej = rejection(raw(colour="blue"))
    assert rej.reason == "unknown_field"
    assert "colour" in rej.detail
    assert rej.event_id == "ev-1"
    assert rej.tenant == "acme"


# -- semantic rejections --------------------------------------------------------------


@pytest.mark.parametrize("content", [DROP, "", "   \n\t"])
def test_add_without_content(content: object) -> None:
    rej = rejection(raw(content=content))
    assert rej.reason == "missing_content"
    assert rej.event_id == "ev-1"
    assert rej.tenant == "acme"


def test_update_without_content() -> None:
    assert rejection(raw(type="memory.update", memory_id="m", content=" ")).reason == (
        "missing_content"
    )


@pytest.mark.parametrize(
    ("type_", "content"),
    [("memory.update", "new text"), ("memory.delete", DROP), ("memory.erase", DROP)],
)
def test_missing_memory_id(type_: str, content: object) -> None:
    rej = rejection(raw(type=type_, content=content))
    assert rej.reason == "missing_memory_id"
    assert rej.event_id == "ev-1"
    assert rej.tenant == "acme"


@pytest.mark.parametrize("memory_id", ["a/b", "with space", "m" * 129, ""])
def test_invalid_memory_id(memory_id: str) -> None:
    rej = rejection(raw(memory_id=memory_id))
    assert rej.reason == "invalid_memory_id"
    assert rej.event_id == "ev-1"
    assert rej.tenant == "acme"


def test_invalid_agent_and_run_id() -> None:
    assert rejection(raw(agent_id="a/b")).reason == "invalid_agent_id"
    assert rejection(raw(run_id="r r")).reason == "invalid_run_id"


@pytest.mark.parametrize("vector", [[1.0, 2.0, 3.0], [1.0] * 5, []])
def test_vector_dimension(vector: list[float]) -> None:
    rej = rejection(raw(vector=vector))
    assert rej.reason == "vector_dimension"
    assert f"{len(vector)} dimensions" in rej.detail
    assert rej.event_id == "ev-1"
    assert rej.tenant == "acme"


def test_vector_dimension_comes_from_limits() -> None:
    assert isinstance(parse_event(raw(vector=[0.1] * 3), Limits(vector_dim=3)), MemoryEvent)
    assert rejection(raw(vector=[0.1] * 3), Limits(vector_dim=4)).reason == "vector_dimension"


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_invalid_vector(bad: str) -> None:
    data = raw(vector=[0.0, 0.0, 0.0, 0.0]).replace(
        b"[0.0, 0.0, 0.0, 0.0]", f"[0.0, {bad}, 0.0, 0.0]".encode()
    )
    rej = rejection(data)
    assert rej.reason == "invalid_vector"
    assert rej.event_id == "ev-1"
    assert rej.tenant == "acme"


# -- derived memory ids and the JSON form -------------------------------------------


def test_resolved_memory_id_is_deterministic_per_event_id() -> None:
    first = event(raw(event_id="ev-a")).resolved_memory_id
    again = event(raw(event_id="ev-a", content="different text")).resolved_memory_id
    other = event(raw(event_id="ev-b")).resolved_memory_id
    other_tenant = event(raw(event_id="ev-a", tenant="globex")).resolved_memory_id
    assert first == again
    assert first != other
    assert first != other_tenant
    # the derived id is itself a valid memory id (it lands in keys and uuids)
    assert "/" not in first


def test_to_json_round_trips() -> None:
    original = new_event(
        EventType.ADD,
        "acme",
        content="likes green tea",
        memory_id="m-1",
        agent_id="agent-7",
        run_id="run-1",
        metadata={"topic": "drinks", "nested": {"a": [1, 2]}},
        mode=Mode.INTELLIGENT,
        vector=[0.5, 0.5, 0.5, 0.5],
        event_id="ev-rt",
        occurred_at=datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC),
    )
    parsed = event(original.to_json())
    assert parsed == original
    assert json.loads(original.to_json())["schema"] == SCHEMA_V1


def test_to_json_round_trips_minimal_delete() -> None:
    original = new_event("memory.delete", "acme", memory_id="m-1", event_id="ev-del")
    assert event(original.to_json()) == original
    assert "content" not in json.loads(original.to_json())


@pytest.mark.parametrize("number", [2**64 - 1, -(2**63), 2**63, 10**18, -1])
def test_integers_in_the_64_bit_ranges_are_kept_exactly(number: int) -> None:
    ev = event(raw(metadata={"n": number, "nested": [{"n": number}]}))
    assert ev.metadata == {"n": number, "nested": [{"n": number}]}
    assert type(ev.metadata["n"]) is int


def test_large_floats_are_still_floats() -> None:
    # orjson reads an integer past 64 bits as a float: a float this large sends the
    # document to the standard library, which keeps a float literal a float.
    ev = event(raw(metadata={"f": 1e20, "g": -9.3e18, "h": 1.5e300}))
    assert ev.metadata == {"f": 1e20, "g": -9.3e18, "h": 1.5e300}
    assert all(type(v) is float for v in ev.metadata.values())


def test_error_wording_is_the_standard_librarys() -> None:
    rej = rejection(b'{"type": "memory.add",')
    assert rej.reason == "invalid_json"
    assert (
        rej.detail
        == "value is not JSON: Expecting property name enclosed in double quotes at char 22"
    )


# -- inputs that used to escape as exceptions ----------------------------------------
# Each has its own reason; none may reach the last guard (reason "unparseable").


def with_text(field_json: str, **overrides: Any) -> bytes:
    """An event whose text carries ``field_json`` (raw JSON) as the ``content`` slot."""
    text = json.dumps(doc(content="PLACEHOLDER", **overrides))
    return text.replace('"PLACEHOLDER"', field_json).encode()


LONE = '"bad \\ud800 text"'  # valid JSON, valid UTF-8 bytes; no UTF-8 form as a string


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (with_text(LONE), "content"),
        (raw(metadata={"k": "PH"}).replace(b'"PH"', LONE.encode()), "metadata.k"),
        (raw(metadata={"PH": 1}).replace(b'"PH"', LONE.encode()), "metadata.bad \\ud800 text"),
        (
            raw(metadata={"a": [1, {"b": ["x", "PH"]}]}).replace(b'"PH"', LONE.encode()),
            "metadata.a[1].b[1]",
        ),
        (raw(metadata={"PH": [{}]}).replace(b'"PH"', b'"\\ud800"'), "metadata.\\ud800"),
        (raw(event_id="PH").replace(b'"PH"', LONE.encode()), "event_id"),
        (raw(tenant="PH").replace(b'"PH"', LONE.encode()), "tenant"),
        (raw(occurred_at="PH").replace(b'"PH"', b'"\\udc00"'), "occurred_at"),
    ],
)
def test_lone_surrogate_is_invalid_unicode(data: bytes, where: str) -> None:
    rej = rejection(data)
    assert rej.reason == "invalid_unicode"
    assert rej.detail == f"lone surrogate in a string at {where}"
    rej.detail.encode()  # the detail itself is safe to write
    assert rej.event_id in {"ev-1", None}
    assert rej.event_id is None or where != "event_id"
    assert rej.tenant == (None if where == "tenant" else "acme")


def test_surrogate_pair_escape_is_a_character() -> None:
    ev = event(with_text('"tea \\ud83c\\udf75"'))
    assert ev.content == "tea \U0001f375"


@pytest.mark.parametrize(
    "number",
    [
        "1" * 5000,  # past Python's int-to-string digit limit
        str(2**64),
        str(-(2**63) - 1),
        str(2**70),
        "-" + "9" * 30,
    ],
)
def test_integer_outside_64_bits_is_number_out_of_range(number: str) -> None:
    for data in (
        raw(metadata={"n": 0}).replace(b'"n": 0', f'"n": {number}'.encode()),
        raw(metadata={"a": [{"n": 0}]}).replace(b'"n": 0', f'"n": {number}'.encode()),
        with_text(number),
    ):
        rej = rejection(data)
        assert rej.reason == "number_out_of_range", data[:80]
        assert "outside the 64-bit range" in rej.detail
        assert len(rej.detail) < 200


def test_huge_integer_in_vector_is_number_out_of_range() -> None:
    # float() of a 400-digit integer overflows; it never gets that far.
    data = raw(vector=[0.0, 0.0, 0.0, 0.0]).replace(b"[0.0, 0.0", b"[0.0, " + b"7" * 400)
    assert rejection(data).reason == "number_out_of_range"


def nested(depth: int, inner: str = "1") -> str:
    """``depth`` levels of nesting, alternating arrays and objects."""
    opening = "".join('{"k":' if i % 2 else "[" for i in range(depth))
    closing = "".join("}" if i % 2 else "]" for i in reversed(range(depth)))
    return opening + inner + closing


@pytest.mark.parametrize("depth", [5000, 1100, 500, 32])
def test_deep_nesting_is_too_deep(depth: int) -> None:
    # the event is level 1 and metadata level 2: 32 more levels inside pass the limit
    data = raw(metadata={"m": 0}).replace(b'"m": 0', f'"m": {nested(depth)}'.encode())
    rej = rejection(data)
    assert rej.reason == "too_deep"
    assert "32" in rej.detail


def test_deep_document_is_too_deep() -> None:
    assert rejection(nested(5000).encode()).reason == "too_deep"
    assert rejection(("[" * 5000 + "]" * 5000).encode()).reason == "too_deep"


def test_depth_at_the_limit_is_accepted() -> None:
    data = raw(metadata={"m": 0}).replace(b'"m": 0', f'"m": {nested(30)}'.encode())
    assert isinstance(parse_event(data, LIMITS), MemoryEvent)  # 2 + 30 = 32 levels


def test_max_depth_comes_from_limits() -> None:
    data = raw(metadata={"m": {"n": {"o": 1}}})  # 4 levels
    assert isinstance(parse_event(data, Limits(vector_dim=4, max_depth=4)), MemoryEvent)
    rej = rejection(data, Limits(vector_dim=4, max_depth=3))
    assert rej.reason == "too_deep"
    assert rej.detail == "nested deeper than 3 levels at metadata.m.n"
    assert rej.event_id == "ev-1"
    assert rej.tenant == "acme"


def test_brackets_inside_strings_are_not_nesting() -> None:
    ev = event(raw(content="[[[[{{{{" * 100, metadata={"k": "]]]}}}" * 100}))
    assert ev.content is not None
    assert ev.content.startswith("[[[[")


def test_byte_order_mark_is_invalid_json() -> None:
    rej = rejection(b"\xef\xbb\xbf" + raw())
    assert rej.reason == "invalid_json"
    assert "byte order mark" in rej.detail


def test_event_too_large_is_checked_first() -> None:
    big = b"\xff" + b"x" * (3 * 512 * 1024)  # 1.5 MiB, and not even UTF-8
    rej = rejection(big)
    assert rej.reason == "event_too_large"
    assert rej.detail == f"value is {len(big)} bytes, limit {256 * 1024}"


def test_event_size_limit_comes_from_limits() -> None:
    data = raw()
    assert isinstance(
        parse_event(data, Limits(vector_dim=4, max_event_bytes=len(data))), MemoryEvent
    )
    rej = rejection(data, Limits(vector_dim=4, max_event_bytes=len(data) - 1))
    assert rej.reason == "event_too_large"


def test_unexpected_error_becomes_unparseable(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("boom " + "x" * 1000)

    monkeypatch.setattr("processors.core.validation._validate", boom)
    rej = rejection(raw())
    assert rej.reason == "unparseable"
    assert rej.detail.startswith("RuntimeError: boom xxx")
    assert len(rej.detail) < 300


# -- what a rejection carries -------------------------------------------------------


@pytest.mark.parametrize(
    ("event_id", "kept"),
    [("ev-1", True), ("é" * 128, True), ("e" * 129, False), ("", False), ("a\ud800", False)],
)
def test_rejection_keeps_only_a_safe_event_id(event_id: str, kept: bool) -> None:
    assert Rejection("r", "d", event_id=event_id).event_id == (event_id if kept else None)


@pytest.mark.parametrize(
    ("tenant", "kept"), [("acme", True), ("a/b", False), ("x" * 65, False), ("\ud800", False)]
)
def test_rejection_keeps_only_a_valid_tenant(tenant: str, kept: bool) -> None:
    assert Rejection("r", "d", tenant=tenant).tenant == (tenant if kept else None)


def test_rejection_detail_is_bounded_and_encodable() -> None:
    rej = Rejection("r", "bad \ud800" + "x" * 5000)
    rej.detail.encode()
    assert rej.detail.startswith("bad \\ud800xx")
    assert len(rej.detail) < MAX_DETAIL_CHARS + 50


# -- check_key -------------------------------------------------------------------------


def test_key_equal_to_tenant_passes() -> None:
    assert check_key(b"acme", event(raw())) is None


@pytest.mark.parametrize("key", [None, b""])
def test_missing_key(key: bytes | None) -> None:
    rej = check_key(key, event(raw()))
    assert rej is not None
    assert rej.reason == "missing_key"
    assert rej.event_id == "ev-1"
    assert rej.tenant == "acme"


@pytest.mark.parametrize("key", [b"globex", b"acme ", b"ACME", b"\xff\xfe", b"k" * 100_000])
def test_key_mismatch(key: bytes) -> None:
    rej = check_key(key, event(raw()))
    assert rej is not None
    assert rej.reason == "key_mismatch"
    assert repr(key[:40]) in rej.detail
    assert "'acme'" in rej.detail
    assert len(rej.detail) < 200
    assert rej.event_id == "ev-1"
    assert rej.tenant == "acme"


# -- reason codes ----------------------------------------------------------------------


def test_reasons_are_their_strings() -> None:
    code: str = Reason.INVALID_JSON  # what Rejection.reason holds
    assert code == "invalid_json"
    assert f"{code}" == "invalid_json"
    assert len({r.value for r in Reason}) == len(Reason)
    assert all(r.value == r.name.lower() for r in Reason)
    assert isinstance(rejection(b"{").reason, Reason)


def test_a_tenant_erasure_names_a_tenant_only() -> None:
    ok = event(raw(type="memory.erase_tenant", memory_id=None, content=None))
    assert (ok.type, ok.tenant, ok.memory_id) == ("memory.erase_tenant", "acme", None)
    for extra in ({"memory_id": "m-1", "content": None}, {"content": "x", "memory_id": None}):
        refused = rejection(raw(type="memory.erase_tenant", **extra))
        assert refused.reason == "not_for_tenant_erase"
        assert "names a tenant only" in refused.detail


def test_a_rejection_names_the_memory_it_was_for_when_it_can() -> None:
    bad_agent = rejection(raw(type="memory.update", memory_id="m-1", agent_id="not ok!"))
    assert (bad_agent.reason, bad_agent.memory_id) == ("invalid_agent_id", "m-1")
    bad_id = rejection(raw(type="memory.update", memory_id="not ok!", content="x"))
    assert bad_id.memory_id is None
    # an add without memory_id: the id its event id gives it
    add = rejection(raw(content=""))
    assert add.memory_id == event(raw(event_id="ev-1")).resolved_memory_id
