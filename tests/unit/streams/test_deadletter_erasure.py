"""Which dead letters an erase tombstones (pure), and the keys that make it possible."""

from __future__ import annotations

from processors.core.records import SourceRef, dead_letter_key, dead_letter_prefix
from streams.service.deadletter_erasure import live_matches

SOURCE = SourceRef("memory.events", 3, 41)


def test_a_dead_letter_key_names_tenant_memory_and_source() -> None:
    key = dead_letter_key("acme", "m-1", SOURCE)
    assert key == b"acme\x1fm-1\x1fmemory.events/3/41"
    assert key.startswith(dead_letter_prefix("acme", "m-1"))
    assert key.startswith(dead_letter_prefix("acme"))
    # another memory whose id starts the same, another tenant whose name does: not matched
    assert not dead_letter_key("acme", "m-10", SOURCE).startswith(dead_letter_prefix("acme", "m-1"))
    assert not dead_letter_key("acme-2", "m", SOURCE).startswith(dead_letter_prefix("acme"))
    assert dead_letter_key(None, None, SOURCE) == b"\x1f\x1fmemory.events/3/41"


def test_live_matches_are_the_prefixed_keys_whose_last_record_is_a_dead_letter() -> None:
    a, b, c = (dead_letter_key("acme", m, SOURCE) for m in ("a", "b", "c"))
    other = dead_letter_key("zeta", "a", SOURCE)
    records = [(a, b"1"), (b, b"2"), (other, b"3"), (b, None), (c, b"4"), (None, b"5"), (a, b"6")]
    prefixes = [dead_letter_prefix("acme", "a"), dead_letter_prefix("acme", "b")]
    assert live_matches(records, prefixes) == [a]
    assert live_matches(records, [dead_letter_prefix("acme")]) == [a, c]
    assert live_matches(records, []) == []
