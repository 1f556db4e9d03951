"""API keys: parsing AGENTMEM_API_KEYS and which tenants a key may touch."""

from __future__ import annotations

import pytest

from streams.http.auth import ALL_TENANTS, KeyRing


def test_parse_keys_and_their_tenants() -> None:
    ring = KeyRing.parse(" k1 = a, b ;k2=*;; ")
    assert ring.grants == {"k1": frozenset({"a", "b"}), "k2": frozenset({ALL_TENANTS})}


def test_an_empty_spec_grants_nothing() -> None:
    assert KeyRing.parse("").grants == {}
    assert KeyRing.parse("").tenants_for("anything") is None


@pytest.mark.parametrize("spec", ["k1", "k1=", "=a", "k1= , ", "secretkey"])
def test_an_entry_without_key_or_tenants_is_refused_without_leaking_the_key(spec: str) -> None:
    with pytest.raises(ValueError, match="needs key=tenant") as info:
        KeyRing.parse(spec)
    key = spec.partition("=")[0].strip()
    assert not key or key[:2] not in str(info.value), "the start of the key is in the message"


def test_tenants_for_a_key() -> None:
    ring = KeyRing.parse("k1=a,b;k2=*")
    assert ring.tenants_for("k1") == frozenset({"a", "b"})
    assert ring.tenants_for("k2") == frozenset({"*"})
    assert ring.tenants_for("k3") is None
    assert ring.tenants_for("k1 ") is None  # no trimming here (the API trims)


def test_allows_named_tenants_or_all() -> None:
    assert KeyRing.allows(frozenset({"a"}), "a")
    assert not KeyRing.allows(frozenset({"a"}), "b")
    assert KeyRing.allows(frozenset({ALL_TENANTS}), "anyone")


def test_a_later_entry_for_the_same_key_wins() -> None:
    assert KeyRing.parse("k=a;k=b").tenants_for("k") == frozenset({"b"})
