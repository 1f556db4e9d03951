"""`agentmem demo`: the main job on the local stack.

Stack up, worker up, publish about 2,000 realistic memories across tenants, wait
until every one is acknowledged as indexed, run a few searches, print the results
and the measured throughput and latency.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from loadgen.stats import nearest_rank
from loadgen.synth import SynthConfig, encode, synth_events
from processors.adapters.weaviate.reader import MemoryReader
from processors.core.events import new_event
from streams import clients
from streams.client.publisher import EventPublisher
from streams.client.topics import Topics, partitions_of
from streams.settings import Settings
from streams.stack import supervisor
from streams.stack.llm_server import LOCAL_TUNING, LlamaServer
from streams.stack.worker_daemon import ensure_fake_llm, ensure_worker

DEMO_EVENTS = 2_000
DEMO_TENANTS = 20
SEARCHES = [
    ("what food does this person like", 0.5),
    ("upcoming appointments and meetings", 0.5),
    ("travel plans", 0.75),
]


def endpoints(settings: Settings) -> list[tuple[str, str]]:
    return [
        ("Kafka bootstrap", settings.kafka_bootstrap_servers),
        ("Weaviate REST", f"{settings.weaviate_url}/v1/meta"),
        ("Weaviate gRPC", f"{settings.weaviate_host}:{settings.weaviate_grpc_port}"),
        ("Prometheus", f"{settings.prometheus_url}/graph?g0.expr=agentmem_events_applied_total"),
        ("Worker metrics", f"http://127.0.0.1:{settings.worker_metrics_port}/metrics"),
        ("LLM endpoint", settings.llm_base_url),
        ("Logs", str(settings.stack_dir / "logs")),
    ]


def print_endpoints(settings: Settings) -> None:
    print("\nWhere everything is:")
    for name, where in endpoints(settings):
        print(f"  {name:<16} {where}")
    print(
        "\nThe worker keeps running; stop everything with `agentmem stack down`"
        " (`make down` in a checkout)."
    )


async def _ack_consumer(settings: Settings) -> AIOKafkaConsumer:
    """A consumer on memory.indexed positioned at its current end (only new acks)."""
    topic = Topics.from_settings(settings).indexed
    consumer = clients.kafka_consumer(settings)
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in await partitions_of(settings, topic)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    return consumer


async def publish_and_wait(settings: Settings, docs: list[dict[str, Any]]) -> dict[str, Any]:
    wanted = {str(d["event_id"]) for d in docs if "event_id" in d}
    consumer = await _ack_consumer(settings)
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    try:
        started = time.perf_counter()
        async with EventPublisher(settings) as publisher:
            await publisher.publish_many_raw([encode(d) for d in docs])
        published = time.perf_counter()
        deadline = published + 600
        while wanted and time.perf_counter() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                for msg in msgs:
                    ack = json.loads(msg.value or b"{}")
                    if ack.get("event_id") in wanted:
                        wanted.discard(ack["event_id"])
                        outcome = str(ack["outcome"]).split(":")[0]
                        outcomes[outcome] = outcomes.get(outcome, 0) + 1
                        if ack.get("produced_at_ms"):
                            latencies.append(ack["indexed_at_ms"] - ack["produced_at_ms"])
        finished = time.perf_counter()
    finally:
        await consumer.stop()
    if wanted:
        raise RuntimeError(f"{len(wanted)} events were not acknowledged within 10 minutes")
    return {
        "events": len(docs),
        "publish_s": published - started,
        "total_s": finished - started,
        "outcomes": outcomes,
        "latencies_ms": sorted(latencies),
    }


async def run_searches(settings: Settings, tenants: list[str]) -> None:
    embedder = clients.embedder(settings)
    client = clients.weaviate_async(settings)
    await client.connect()
    try:
        reader = MemoryReader(client, settings.weaviate_collection)
        for tenant, (query, alpha) in zip(tenants, SEARCHES, strict=False):
            vector = embedder.embed([query])[0]
            found = await reader.search(tenant, query, vector, limit=3, alpha=alpha)
            print(f'\n  {tenant}: "{query}"')
            for memory in found:
                print(f"    {memory.score or 0:.3f}  {memory.content}")
    finally:
        await client.close()


# Intelligent mode: a few memories that contradict or repeat earlier ones.
STORY = [
    "Maya lives in London",
    "Maya works at Initech",
    "Maya's favourite drink is green tea",
    "Maya is allergic to peanuts and carries an epinephrine pen",
    "Maya moved to Paris",
    "Maya no longer works at Initech",
    "Maya's favourite drink is green tea",
]


async def _enriched(settings: Settings, wanted: set[str], timeout_s: float) -> list[dict[str, Any]]:
    topic = Topics.from_settings(settings).enriched
    consumer = clients.kafka_consumer(settings, topic, auto_offset_reset="earliest")
    await consumer.start()
    found: dict[str, dict[str, Any]] = {}
    deadline = time.perf_counter() + timeout_s
    try:
        while wanted - found.keys() and time.perf_counter() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                for msg in msgs:
                    doc = json.loads(msg.value or b"{}")
                    if doc.get("event_id") in wanted:
                        found[doc["event_id"]] = doc
    finally:
        await consumer.stop()
    return [found[e] for e in wanted if e in found]


def intelligent_demo(settings: Settings) -> None:
    tenant = f"demo-story-{int(time.time())}"
    docs = []
    for text in STORY:
        docs.append(new_event("memory.add", tenant, content=text, mode="intelligent"))
        time.sleep(0.01)  # distinct occurred_at: decisions look at older memories only
    print(f"\nIntelligent mode ({settings.llm_base_url}): {len(docs)} memories of {tenant}")

    async def go() -> list[dict[str, Any]]:
        async with EventPublisher(settings) as publisher:
            for doc in docs:  # one at a time, in order
                await publisher.publish(doc)
        return await _enriched(settings, {d.event_id for d in docs}, 120)

    started = time.perf_counter()
    results = {r["event_id"]: r for r in asyncio.run(go())}
    print(f"  enriched in {time.perf_counter() - started:.1f}s:")
    for doc in docs:
        r = results.get(doc.event_id)
        if r is None:
            print(f"    (not enriched yet) {doc.content}")
            continue
        print(f"    {r['decision'] or '-':<6} importance {r['importance'] or 0:.2f}  {doc.content}")


def with_local_llm(settings: Settings) -> Settings:
    """The settings pointed at the stack's local LLM server, tuned for it."""
    server = LlamaServer(settings)
    return settings.model_copy(
        update={"llm_base_url": server.base_url, "llm_model": server.alias, **LOCAL_TUNING}
    )


def run(settings: Settings, llm: bool = False) -> int:
    """The demo; ``llm``: intelligent mode on the local model (`stack up --llm`)
    instead of the fake."""
    try:
        outcome = supervisor.up(settings, llm=llm)
        if llm:
            settings = with_local_llm(settings)
        else:
            outcome["fake LLM"] = ensure_fake_llm(settings)
        outcome["worker"] = ensure_worker(settings)
    except (supervisor.StackError, RuntimeError) as exc:
        print(f"demo could not start the stack:\n{exc}")
        return 1
    print("Local stack: " + ", ".join(f"{k} {v}" for k, v in outcome.items()))
    if llm and outcome["worker"] == "reused":
        print(
            "  note: a worker was running already and keeps its own LLM settings; "
            "`agentmem stack down` first to have it use the local model"
        )
    seed = int(time.time())
    docs = list(synth_events(SynthConfig(count=DEMO_EVENTS, tenants=DEMO_TENANTS, seed=seed)))
    print(f"\nPublishing {len(docs)} memory events over {DEMO_TENANTS} tenants ...")
    result = asyncio.run(publish_and_wait(settings, docs))
    lat = result["latencies_ms"]
    print(
        f"  all {result['events']} acknowledged in {result['total_s']:.1f}s "
        f"({result['events'] / result['total_s']:.0f} events/s end to end; "
        f"published in {result['publish_s']:.2f}s)"
    )
    print(f"  outcomes: {result['outcomes']}")
    print(
        f"  produce-to-searchable latency: p50 {nearest_rank(lat, 0.5):.0f} ms, "
        f"p95 {nearest_rank(lat, 0.95):.0f} ms, p99 {nearest_rank(lat, 0.99):.0f} ms, "
        f"mean {statistics.fmean(lat) if lat else float('nan'):.0f} ms"
    )
    tenants = sorted({str(d["tenant"]) for d in docs if "tenant" in d})[:3]
    print("\nSearches (hybrid, inside one tenant):")
    asyncio.run(run_searches(settings, tenants))
    intelligent_demo(settings)
    print_endpoints(settings)
    return 0
