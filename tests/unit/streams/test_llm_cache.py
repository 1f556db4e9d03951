"""LocalCache on a real rocksdict database: forgetting by scope, the epoch, and what a
worker keeps as partitions come and go."""

from __future__ import annotations

from pathlib import Path

import pytest

from processors.core.cache_scope import cache_scope, partition_prefix
from streams.service.llm_cache import LocalCache, prefix_end


@pytest.fixture
def cache(tmp_path: Path) -> LocalCache:
    opened = LocalCache(tmp_path / "llm_cache")
    yield opened  # type: ignore[misc]
    opened.close()


def fill(cache: LocalCache, *scopes: str) -> None:
    for scope in scopes:
        cache.put(scope + "k1", b"1")
        cache.put(scope + "k2", b"2")


def kept(cache: LocalCache, *scopes: str) -> list[str]:
    return [s for s in scopes if cache.get(s + "k1") and cache.get(s + "k2")]


def test_prefix_end_is_the_first_key_past_the_prefix() -> None:
    assert prefix_end(b"0\x1fa\x1f") == b"0\x1fa\x20"
    with pytest.raises(ValueError):
        prefix_end(b"")


def test_forgetting_a_tenant_leaves_other_tenants_and_partitions(cache: LocalCache) -> None:
    a, ab, a_elsewhere = cache_scope(0, "a"), cache_scope(0, "ab"), cache_scope(1, "a")
    fill(cache, a, ab, a_elsewhere)
    before = cache.epoch()
    cache.forget(a)
    assert kept(cache, a, ab, a_elsewhere) == [ab, a_elsewhere]
    assert cache.epoch() == before + 1


def test_a_partition_is_forgotten_when_it_goes_and_when_it_comes_back(
    cache: LocalCache,
) -> None:
    p0, p1, p2 = cache_scope(0, "t"), cache_scope(1, "t"), cache_scope(2, "t")
    fill(cache, p0, p1, p2)
    # at start nothing is owned: what an earlier run cached is not trusted
    cache.take([0, 1])
    assert kept(cache, p0, p1, p2) == [p2]
    fill(cache, p0, p1)
    # owned without a break: kept through a rebalance that leaves it here
    cache.take([0, 1])
    assert kept(cache, p0, p1) == [p0, p1]
    cache.release([1])
    assert kept(cache, p0, p1) == [p0]
    fill(cache, p1)  # (another run of ours cached it meanwhile)
    cache.take([0, 1])
    assert kept(cache, p0, p1) == [p0]


def test_partition_prefixes_do_not_overlap() -> None:
    assert not partition_prefix(11).startswith(partition_prefix(1))
