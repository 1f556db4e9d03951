"""In-memory fakes of the processors' ports, shared by the unit tests. Pure (no I/O).

One fake per port of :mod:`processors.ports` (state store, record sink, embedder,
vector store, enrich store, item processor, completer, cache) plus the injected time:
a monotonic :class:`FakeClock` and a :class:`FakeSleep` that records delays instead
of waiting. Fakes of a third-party client (the openai client, aiokafka's producer)
stay next to the adapter test that needs them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

from processors.core.enrichment import Candidate
from processors.core.llm_prompts import Result
from processors.core.objects import (
    DeleteItem,
    ObjectError,
    StoredMemory,
    UpsertItem,
    object_uuid,
)
from processors.core.records import OutRecord
from processors.core.state import MemoryState
from processors.ports import StateWrite

DEFAULT_TENANT = "acme"

# -- time -----------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock (seconds) that moves only when told to."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSleep:
    """A ``Sleep`` that returns at once and records the delays asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


# -- state ----------------------------------------------------------------------------


class DictState:
    """A ``StateStore`` in a dict; ``puts`` lists the keys committed, in order,
    ``applied`` each partition's applied offset, ``readied`` the partitions of each
    ``ready`` call."""

    def __init__(self) -> None:
        self.data: dict[str, MemoryState] = {}
        self.puts: list[str] = []
        self.applied: dict[int, int] = {}
        self.readied: list[set[int]] = []

    async def ready(self, partitions: Collection[int]) -> None:
        self.readied.append(set(partitions))

    def applied_through(self, partition: int) -> int:
        return self.applied.get(partition, -1)

    def get(self, partition: int, key: str) -> MemoryState | None:
        return self.data.get(key)

    def tenant_keys(self, partition: int, tenant: str) -> list[str]:
        return sorted(k for k in self.data if k.startswith(f"{tenant}/"))

    async def commit(self, writes: Sequence[StateWrite], applied: Mapping[int, int]) -> None:
        for write in writes:
            self.puts.append(write.key)
            self.data[write.key] = write.state
        for partition, offset in applied.items():
            self.applied[partition] = max(offset, self.applied_through(partition))


class BrokenState(DictState):
    """A programming error in the state table: every read fails (not transient)."""

    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, partition: int, key: str) -> MemoryState | None:
        self.gets += 1
        raise RuntimeError("state table bug")


# -- Kafka ----------------------------------------------------------------------------


class FakeSink:
    """A ``RecordSink`` that records what was sent. The first ``fail_times`` sends fail
    as a broker away would; sends to the ``slow`` topics take a few event-loop turns,
    so a test can see whether a send waited for them. ``calls`` (topic, count) and
    ``completed`` (topic) are in the order sends finished; with ``state``, the number
    of state writes made before each send is in ``state_sizes_seen``."""

    def __init__(
        self,
        fail_times: int = 0,
        state: DictState | None = None,
        slow: frozenset[str] = frozenset(),
    ) -> None:
        self.records: dict[str, list[OutRecord]] = defaultdict(list)
        self.calls: list[tuple[str, int]] = []
        self.completed: list[str] = []
        self.fail_times = fail_times
        self.failures = 0
        self.state = state
        self.state_sizes_seen: list[int] = []
        self.slow = slow

    async def send_all(self, topic: str, records: Sequence[OutRecord]) -> None:
        if self.state is not None:
            self.state_sizes_seen.append(len(self.state.puts))
        if self.failures < self.fail_times:
            self.failures += 1
            raise ConnectionError("kafka unavailable")
        if topic in self.slow:
            for _ in range(5):
                await asyncio.sleep(0)
        self.records[topic] += list(records)
        self.calls.append((topic, len(records)))
        self.completed.append(topic)

    def values(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(r.value) for r in self.records[topic] if r.value is not None]


# -- embeddings and Weaviate ----------------------------------------------------------


def unit_vector(text: str) -> list[float]:
    """A deterministic 4-dimensional unit vector of a text."""
    digest = hashlib.sha256(text.encode()).digest()
    raw = [b + 1.0 for b in digest[:4]]
    norm = math.sqrt(sum(v * v for v in raw))
    return [v / norm for v in raw]


class FakeEmbedder:
    """A ``TextEmbedder`` of :func:`unit_vector`; counts calls and texts."""

    def __init__(self) -> None:
        self.calls = 0
        self.texts: list[str] = []

    def embed(self, texts: Sequence[str], batch_size: int = 256) -> list[list[float]]:
        self.calls += 1
        self.texts += list(texts)
        return [unit_vector(t) for t in texts]


PERMANENT_REFUSAL = "invalid text property 'content': not a string"
READ_ONLY = "store is read-only due to: manually set by user"


class FakeVectorStore:
    """A ``VectorStore``: Weaviate in a dict. ``refuse``: uuids refused for good;
    ``read_only``: uuids refused as a READONLY shard would, for the next
    ``read_only_rounds`` calls; ``fail_times``: upsert calls that fail as a whole."""

    def __init__(
        self,
        refuse: set[str] | None = None,
        fail_times: int = 0,
        read_only: set[str] | None = None,
        read_only_rounds: int = 0,
    ) -> None:
        self.objects: dict[str, UpsertItem] = {}
        self.upsert_calls: list[list[UpsertItem]] = []
        self.delete_calls: list[list[DeleteItem]] = []
        self.erased_kept: list[list[DeleteItem]] = []
        self.dropped: list[list[str]] = []
        self.refuse = refuse or set()
        self.read_only = read_only or set()
        self.read_only_rounds = read_only_rounds
        self.fail_times = fail_times
        self.failures = 0

    def _locked(self, uid: str) -> bool:
        return uid in self.read_only and self.read_only_rounds > 0

    async def upsert(self, items: Sequence[UpsertItem]) -> dict[str, ObjectError]:
        if self.failures < self.fail_times:
            self.failures += 1
            raise ConnectionError("weaviate unavailable")
        self.upsert_calls.append(list(items))
        errors: dict[str, ObjectError] = {}
        for item in items:
            if item.uuid in self.refuse:
                errors[item.uuid] = ObjectError(PERMANENT_REFUSAL, transient=False)
            elif self._locked(item.uuid):
                errors[item.uuid] = ObjectError(READ_ONLY, transient=True)
            else:
                self.objects[item.uuid] = item
        self.read_only_rounds -= 1 if any(self._locked(i.uuid) for i in items) else 0
        return errors

    async def delete(self, items: Sequence[DeleteItem]) -> dict[str, ObjectError]:
        self.delete_calls.append(list(items))
        errors: dict[str, ObjectError] = {}
        for item in items:
            if self._locked(item.uuid):
                errors[item.uuid] = ObjectError("batch delete refused", transient=True)
            else:
                self.objects.pop(item.uuid, None)
        self.read_only_rounds -= 1 if any(self._locked(i.uuid) for i in items) else 0
        return errors

    async def erase_kept(self, items: Sequence[DeleteItem]) -> dict[str, ObjectError]:
        self.erased_kept.append(list(items))
        return {}

    async def drop_tenants(self, tenants: Sequence[str]) -> None:
        self.dropped.append(list(tenants))
        self.objects = {u: i for u, i in self.objects.items() if i.tenant not in tenants}

    @property
    def upserted(self) -> list[UpsertItem]:
        return [i for call in self.upsert_calls for i in call]


class FakeEnrichStore:
    """An ``EnrichStore``: objects by tenant and uuid, scripted neighbours (``near``,
    by memory id) and refusals (``refuse``, uuid -> error); records whether ``lock``
    was held during each write. ``texts`` holds the text of each (tenant, memory id,
    version), as the index stage wrote it; a fetched object carries its own."""

    def __init__(
        self, lock: asyncio.Lock, texts: dict[tuple[str, str, int], str] | None = None
    ) -> None:
        self.lock = lock
        self.texts = texts if texts is not None else {}
        self.objects: dict[str, dict[str, StoredMemory]] = defaultdict(dict)
        self.near: dict[str, list[Candidate]] = {}
        self.refuse: dict[str, str] = {}
        self.fetches: list[tuple[str, list[str]]] = []
        self.neighbour_calls: list[tuple[str, str, int, float]] = []
        self.writes: list[tuple[str, dict[str, tuple[int, dict[str, Any]]]]] = []
        self.locked_during_write: list[bool] = []

    def put(self, memory_id: str, version: int, tenant: str = DEFAULT_TENANT) -> None:
        uid = object_uuid(tenant, memory_id)
        self.objects[tenant][uid] = StoredMemory(uid, memory_id, version, [0.1, 0.2], {})

    async def fetch(self, tenant: str, uuids: Sequence[str]) -> dict[str, StoredMemory]:
        self.fetches.append((tenant, list(uuids)))
        found = {}
        for u in uuids:
            stored = self.objects[tenant].get(u)
            if stored is not None:
                text = self.texts.get((tenant, stored.memory_id, stored.version), "")
                found[u] = replace(stored, properties={**stored.properties, "content": text})
        return found

    async def neighbours(
        self, tenant: str, memory: StoredMemory, limit: int, max_distance: float
    ) -> list[Candidate]:
        self.neighbour_calls.append((tenant, memory.memory_id, limit, max_distance))
        return self.near.get(memory.memory_id, [])

    async def write_enrichment(
        self, tenant: str, updates: dict[str, tuple[int, dict[str, Any]]]
    ) -> tuple[list[str], dict[str, str]]:
        self.locked_during_write.append(self.lock.locked())
        self.writes.append((tenant, dict(updates)))
        errors = {u: self.refuse[u] for u in updates if u in self.refuse}
        return [u for u in updates if u not in errors], errors

    def written(self) -> dict[str, tuple[int, dict[str, Any]]]:
        """memory id -> (version, properties) of every write."""
        by_uuid = {
            m.uuid: m.memory_id for objects in self.objects.values() for m in objects.values()
        }
        return {by_uuid[u]: v for _, updates in self.writes for u, v in updates.items()}


# -- the LLM --------------------------------------------------------------------------


class FakeProcessor:
    """An ``ItemProcessor`` answering each item with ``answer(payload)`` (None: no
    result for it); records the items of every run."""

    def __init__(self, answer: Callable[[dict[str, Any]], Result | None]) -> None:
        self.answer = answer
        self.runs: list[dict[str, dict[str, Any]]] = []
        self.scopes: list[dict[str, str]] = []
        self.keeps: list[Callable[[], bool]] = []

    async def run(
        self,
        items: dict[str, dict[str, Any]],
        scopes: Mapping[str, str] | None = None,
        keep: Callable[[], bool] | None = None,
    ) -> dict[str, Result]:
        self.runs.append(dict(items))
        self.scopes.append(dict(scopes or {}))
        self.keeps.append(keep or (lambda: True))
        results: dict[str, Result] = {}
        for item_id, payload in items.items():
            got = self.answer(payload)
            if got is not None:
                results[item_id] = got
        return results

    def memories(self) -> list[str]:
        return [p["memory"] for run in self.runs for p in run.values()]


class BrokenProcessor:
    """An ``ItemProcessor`` with a bug: every run raises."""

    async def run(
        self,
        items: dict[str, dict[str, Any]],
        scopes: Mapping[str, str] | None = None,
        keep: Callable[[], bool] | None = None,
    ) -> dict[str, Result]:
        raise RuntimeError("processor bug")


Reply = str | Exception
Script = Callable[[int, list[dict[str, Any]]], Reply]


def facts_reply(items: list[dict[str, Any]]) -> str:
    """A facts answer for ``items``: each memory's text, upper-cased, as its one fact."""
    return json.dumps({"results": [{"id": i["id"], "facts": [i["memory"].upper()]} for i in items]})


class FakeCompleter:
    """A ``Completer`` answering with ``script(call_number, items)`` (an exception is
    raised); counts calls and requests in flight."""

    def __init__(self, script: Script | None = None, yields: int = 5) -> None:
        self.script: Script = script or (lambda n, items: facts_reply(items))
        self.yields = yields
        self.calls: list[list[dict[str, Any]]] = []
        self.kinds: list[str] = []
        self.messages: list[list[dict[str, str]]] = []
        self.formats: list[dict[str, Any]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def complete(
        self, kind: str, messages: list[dict[str, str]], response_format: dict[str, Any]
    ) -> str:
        payload = json.loads(messages[1]["content"])
        self.calls.append(payload["items"])
        self.kinds.append(kind)
        self.messages.append(messages)
        self.formats.append(response_format)
        number = len(self.calls)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            for _ in range(self.yields):
                await asyncio.sleep(0)
            reply = self.script(number, payload["items"])
        finally:
            self.in_flight -= 1
        if isinstance(reply, Exception):
            raise reply
        return reply

    def ids(self) -> list[list[str]]:
        return [[i["id"] for i in call] for call in self.calls]


class DictCache:
    """A ``Cache`` and ``Forgetting`` in a dict; ``puts`` lists the keys written, in
    order, ``forgotten`` the prefixes forgotten; ``on_forget`` is called at each."""

    def __init__(self, on_forget: Callable[[str], None] | None = None) -> None:
        self.data: dict[str, bytes] = {}
        self.puts: list[str] = []
        self.forgotten: list[str] = []
        self.on_forget = on_forget

    def epoch(self) -> int:
        return len(self.forgotten)

    def forget(self, prefix: str) -> None:
        if self.on_forget is not None:
            self.on_forget(prefix)
        self.forgotten.append(prefix)
        self.data = {k: v for k, v in self.data.items() if not k.startswith(prefix)}

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, key: str, value: bytes) -> None:
        self.puts.append(key)
        self.data[key] = value
