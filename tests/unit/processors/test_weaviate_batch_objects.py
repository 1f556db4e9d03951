"""One BatchObjects request for many tenants: what it carries and where it is split.

These pin the weaviate client's private batch machinery that
processors/adapters/weaviate/batch_objects.py relies on (its names, and that a
request carries a tenant per object): a client upgrade that changes it fails here.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime

from weaviate.util import _ServerVersion

from processors.adapters.weaviate.batch_objects import (
    PER_OBJECT_OVERHEAD,
    build_requests,
    size_chunks,
)
from processors.core.objects import UpsertItem, object_uuid

VERSION = _ServerVersion.from_string("1.39.0")


def item(tenant: str, n: int, content: str = "text") -> UpsertItem:
    return UpsertItem(
        tenant,
        object_uuid(tenant, f"m-{n}"),
        {
            "content": content,
            "memory_id": f"m-{n}",
            "version": n,
            "metadata_terms": ["a:b"],
            "created_at": datetime(2026, 1, 2, tzinfo=UTC),
        },
        [float(n), 0.5, -1.0],
    )


def test_sizes_are_chunked_under_the_limit_in_order() -> None:
    o = PER_OBJECT_OVERHEAD
    assert size_chunks([], 100) == []
    assert size_chunks([10, 10, 10], 1000) == [range(0, 3)]
    assert size_chunks([10, 10, 10], 2 * (10 + o)) == [range(0, 2), range(2, 3)]
    assert size_chunks([10, 10, 10], 2 * (10 + o) - 1) == [range(0, 1), range(1, 2), range(2, 3)]


def test_an_object_over_the_limit_goes_alone_and_the_others_still_go() -> None:
    assert size_chunks([5, 500, 5, 5], 100) == [range(0, 1), range(1, 2), range(2, 4)]


def test_objects_of_many_tenants_go_in_one_request_each_with_its_tenant() -> None:
    items = [item(f"t{n % 7}", n) for n in range(50)]
    requests = build_requests("Memories", items, VERSION)
    assert len(requests) == 1
    chunk, request = requests[0]
    assert chunk == range(0, 50)
    assert [(o.tenant, o.uuid, o.collection) for o in request.objects] == [
        (i.tenant, i.uuid, "Memories") for i in items
    ]
    first = request.objects[0]
    assert struct.unpack("<3f", first.vector_bytes) == (0.0, 0.5, -1.0)
    fields = first.properties.non_ref_properties.fields
    assert fields["content"].string_value == "text"
    assert fields["memory_id"].string_value == "m-0"
    assert fields["created_at"].string_value.startswith("2026-01-02T00:00:00")
    assert [list(a.values) for a in first.properties.text_array_properties] == [["a:b"]]


def test_a_request_past_the_size_limit_is_split_keeping_order_and_tenants() -> None:
    items = [item(f"t{n % 3}", n, content="x" * 1000) for n in range(30)]
    requests = build_requests("Memories", items, VERSION, max_bytes=10_000)
    assert len(requests) > 1
    assert all(request.ByteSize() <= 10_000 for _, request in requests)
    assert [n for chunk, _ in requests for n in chunk] == list(range(30))
    sent = [(o.tenant, o.uuid) for _, request in requests for o in request.objects]
    assert sent == [(i.tenant, i.uuid) for i in items]
