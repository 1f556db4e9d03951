"""`agentmem publish|search|get|history`: the SDK from the command line (the SDK is
imported when one of these commands runs, not when the parser is built)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from processors.core.events import EventType, MemoryEvent, new_event
from processors.core.search import DEFAULT_ALPHA, DEFAULT_FUSION, FUSIONS
from streams.settings import Settings

if TYPE_CHECKING:
    from streams.client.sdk import AgentMem

CHUNK = 500


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    pub = sub.add_parser("publish", help="publish memory events (arguments, or JSONL)")
    pub.add_argument("--tenant")
    pub.add_argument("--content")
    pub.add_argument(
        "--type",
        default="memory.add",
        choices=[
            "memory.add",
            "memory.update",
            "memory.delete",
            "memory.erase",
            "memory.erase_tenant",
        ],
    )
    pub.add_argument("--memory-id")
    pub.add_argument("--agent-id")
    pub.add_argument("--run-id")
    pub.add_argument("--metadata", help="JSON object")
    pub.add_argument(
        "--mode",
        choices=["fast", "intelligent"],
        default="fast",
        help="intelligent: enrich with the LLM (facts, importance, decisions) once searchable",
    )
    pub.add_argument("--file", type=Path, help="JSONL of events; '-' reads standard input")
    pub.add_argument("--wait", action="store_true", help="wait until indexed")
    search = sub.add_parser("search", help="hybrid search inside one tenant")
    search.add_argument("tenant")
    search.add_argument("query")
    search.add_argument("--limit", type=int, default=5)
    search.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="0 keyword, 1 vector")
    search.add_argument("--fusion", choices=FUSIONS, default=DEFAULT_FUSION)
    search.add_argument("--agent-id")
    for name in ("get", "history"):
        p = sub.add_parser(name, help=f"{name} one memory")
        p.add_argument("tenant")
        p.add_argument("memory_id")
    gone = sub.add_parser(
        "erase-tenant", help="erase every memory of a tenant and the tenant itself"
    )
    gone.add_argument("tenant")
    gone.add_argument("--wait", action="store_true", help="until done; prints how many erased")


def _events_from(stream: IO[str], default_tenant: str | None) -> Iterator[MemoryEvent]:
    for n, line in enumerate(stream, 1):
        if not line.strip():
            continue
        doc: dict[str, Any] = json.loads(line)
        if default_tenant and "tenant" not in doc:
            doc["tenant"] = default_tenant
        try:
            yield new_event(
                doc.pop("type", "memory.add"),
                doc.pop("tenant"),
                **{
                    k: v
                    for k, v in doc.items()
                    if k
                    in {
                        "content",
                        "memory_id",
                        "agent_id",
                        "run_id",
                        "metadata",
                        "mode",
                        "vector",
                        "event_id",
                    }
                },
            )
        except (KeyError, ValueError) as exc:
            raise SystemExit(f"line {n}: {exc}") from exc


def _progress(done: int, total: int | None) -> None:
    if total:
        width = 30
        filled = int(width * done / total)
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    else:
        sys.stderr.write(f"\r{done} published")
    sys.stderr.flush()


async def _publish(args: argparse.Namespace, mem: AgentMem) -> int:
    if args.file is None:
        if not args.tenant:
            raise SystemExit("--tenant is required (or --file)")
        event = new_event(
            args.type,
            args.tenant,
            content=args.content,
            memory_id=args.memory_id,
            agent_id=args.agent_id,
            run_id=args.run_id,
            metadata=json.loads(args.metadata) if args.metadata else None,
            mode=args.mode,
        )
        ids = await mem.publish([event])
        whole_tenant = event.type == EventType.ERASE_TENANT
        memory_id = None if whole_tenant else event.resolved_memory_id
        print(json.dumps({"event_id": ids[0], "memory_id": memory_id}))
    else:
        if str(args.file) == "-":
            events = list(_events_from(sys.stdin, args.tenant))
        else:
            with args.file.open() as fh:
                events = list(_events_from(fh, args.tenant))
        ids = []
        for start in range(0, len(events), CHUNK):
            ids += await mem.publish(events[start : start + CHUNK])
            _progress(len(ids), len(events))
        sys.stderr.write("\n")
        print(json.dumps({"published": len(ids)}))
    if args.wait:
        acks = await mem.wait_indexed(ids, timeout_s=300)
        print(json.dumps({"indexed": len(acks)}))
    return 0


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.client.sdk import AgentMem  # Kafka and Weaviate clients: only when used

    async with AgentMem(settings) as mem:
        if args.command == "publish":
            return await _publish(args, mem)
        if args.command == "search":
            for m in await mem.search(
                args.tenant,
                args.query,
                limit=args.limit,
                alpha=args.alpha,
                fusion=args.fusion,
                agent_id=args.agent_id,
            ):
                print(f"{m.score or 0:.3f}  {m.memory_id}  {m.content}")
            return 0
        if args.command == "erase-tenant":
            event_id = await mem.erase_tenant(args.tenant)
            print(json.dumps({"event_id": event_id, "tenant": args.tenant}))
            if args.wait:
                ack = (await mem.wait_indexed([event_id], timeout_s=300))[event_id]
                print(json.dumps({"outcome": ack.get("outcome"), "erased": ack.get("erased")}))
            return 0
        if args.command == "get":
            memory = await mem.get(args.tenant, args.memory_id)
            if memory is None:
                print(f"no memory {args.memory_id} in {args.tenant}", file=sys.stderr)
                return 1
            print(json.dumps(memory.__dict__, ensure_ascii=False, indent=2))
            return 0
        for change in await mem.history(args.tenant, args.memory_id):
            print(json.dumps(change, ensure_ascii=False))
        return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.kafka_connection import KafkaAuthenticationError

    try:
        return asyncio.run(_run(args, settings))
    except KafkaAuthenticationError as exc:  # permanent: say it, do not retry
        print(f"agentmem {args.command}: {exc}", file=sys.stderr)
        return 2
