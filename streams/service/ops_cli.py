"""Operator commands: ``agentmem rebuild``, ``agentmem group reset`` and ``agentmem state
rebuild``. Each prints what it will do and asks before doing it, unless ``--yes``. Not pure.

- ``rebuild [--batch-size N] [--drop-old]``: a new generation of the memory collection
  from memory.events, served once caught up (streams/service/rebuild.py); a progress
  line with rate and ETA, the lag on /metrics; resumes after a kill.
- ``group reset --to earliest|latest|OFFSET|ISO-TIME``: moves the worker group's
  positions on memory.events (refused while workers of the group run).
- ``state rebuild``: forgets the local copies of memory_state in this host's worker
  state folders (refused for a folder a running worker holds); each partition is
  restored from the changelog when a worker next takes it.
- ``state rebuild --from-events``: recomputes memory_state from memory.events up to
  where the group applied each partition, and writes it to the changelog (for a lost
  or damaged changelog); local copies are forgotten too.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import os
import shutil
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from streams.client.topics import Topics
from streams.settings import Settings

if TYPE_CHECKING:  # the commands import their Kafka and RocksDB modules when run
    from streams.service.offsets import Position

__all__ = ["add_parsers", "run"]


def _position(text: str) -> Position:
    if text in ("earliest", "latest"):
        return text  # type: ignore[return-value]  # narrowed by the test above
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: earliest, latest, an offset or an ISO 8601 time"
        ) from None


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rebuild_ = sub.add_parser(
        "rebuild", help="rebuild the memory collection from memory.events, then serve it"
    )
    rebuild_.add_argument("--batch-size", type=int, default=256, help="events per batch")
    rebuild_.add_argument(
        "--drop-old", action="store_true", help="delete the previous generation once switched"
    )
    rebuild_.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    group = sub.add_parser("group", help="operator: the worker group's positions")
    group_sub = group.add_subparsers(dest="group_command", required=True)
    reset = group_sub.add_parser("reset", help="move the group's positions on memory.events")
    reset.add_argument(
        "--to", type=_position, required=True, help="earliest, latest, an offset or an ISO time"
    )
    reset.add_argument("--group", help="consumer group (default: AGENTMEM_WORKER_ID)")
    reset.add_argument("--topic", help="topic (default: memory.events)")
    reset.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    state = sub.add_parser("state", help="operator: the workers' memory_state")
    state_sub = state.add_subparsers(dest="state_command", required=True)
    rebuild = state_sub.add_parser("rebuild", help="rebuild memory_state")
    rebuild.add_argument(
        "--from-events",
        action="store_true",
        help="recompute it from memory.events and rewrite the changelog",
    )
    rebuild.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def confirmed(yes: bool, ask: Callable[[str], str] = input) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        print("not confirmed: run again with --yes (no terminal to ask on)")
        return False
    return ask("proceed? [y/N] ").strip().lower() in ("y", "yes")


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "rebuild":
        return _rebuild(args, settings)
    if args.command == "group":
        return _group_reset(args, settings)
    return _state_rebuild(args, settings)


def _group_reset(args: argparse.Namespace, settings: Settings) -> int:
    from streams.service.offsets import GroupActive, reset_group

    group = args.group or settings.worker_id
    try:
        moves = asyncio.run(
            reset_group(settings, args.to, group=group, topic=args.topic, apply=False)
        )
    except (GroupActive, ValueError) as exc:
        print(f"group reset: {exc}", file=sys.stderr)
        return 2
    print(f"consumer group {group}, to {args.to}:")
    for move in moves:
        current = "-" if move.current is None else move.current
        print(f"  partition {move.partition:>3}: {current} -> {move.target}")
    if not confirmed(args.yes):
        return 1
    try:
        asyncio.run(reset_group(settings, args.to, group=group, topic=args.topic, apply=True))
    except GroupActive as exc:
        print(f"group reset: {exc}", file=sys.stderr)
        return 2
    print("done")
    return 0


def local_copies(settings: Settings) -> list[Path]:
    """The local memory_state copies of this deployment in the host's state folders."""
    topic = Topics.from_settings(settings).state
    root = settings.stack_dir / "worker"
    return sorted(p for p in root.glob(f"slot-*/{topic}") if p.is_dir())


def _held(slot: Path) -> bool:
    """Whether a running worker holds the state folder ``slot``."""
    lock = slot / "lock"
    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # drops the lock if we took it
    return False


def _state_rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from streams.service.offsets import group_members
    from streams.service.state_rebuild import committed_offsets

    copies = local_copies(settings)
    busy = [c for c in copies if _held(c.parent)]
    if busy:
        print(f"state rebuild: workers are running in {', '.join(str(c.parent) for c in busy)}; "
              "stop them first", file=sys.stderr)  # fmt: skip
        return 2
    state_topic = Topics.from_settings(settings).state
    if args.from_events:
        members = asyncio.run(group_members(settings, settings.worker_id))[1]
        if members:
            print(f"state rebuild: group {settings.worker_id} has {members} running "
                  "member(s); stop its workers first", file=sys.stderr)  # fmt: skip
            return 2
        applied = asyncio.run(committed_offsets(settings))
        print(f"recompute memory_state from {settings.topic('memory.events')} into "
              f"{state_topic}, up to the group's positions:")  # fmt: skip
        for partition, offset in sorted(applied.items()):
            print(f"  partition {partition:>3}: events 0..{offset - 1}")
    print(f"forget {len(copies)} local cop{'y' if len(copies) == 1 else 'ies'}: "
          + ", ".join(str(c) for c in copies))  # fmt: skip
    if not confirmed(args.yes):
        return 1
    if args.from_events:
        written = asyncio.run(_rewrite_changelog(settings, applied))
        print(f"wrote {written} state record(s) to {state_topic}")
    for copy in copies:
        shutil.rmtree(copy)
    print("done: each partition is restored when a worker next takes it")
    return 0


async def _rewrite_changelog(settings: Settings, applied: dict[int, int]) -> int:
    from streams import clients
    from streams.service.lifecycle import limits_of
    from streams.service.state import APPLIED_KEY, encode_state
    from streams.service.state_rebuild import replay_partition

    topic = Topics.from_settings(settings).state
    producer = clients.resilient_producer(settings, delivery_timeout_s=120)
    await producer.start()
    written = 0
    try:
        for partition, offset in sorted(applied.items()):
            if offset <= 0:
                continue
            writes, _ = await replay_partition(settings, partition, offset, limits_of(settings))
            records = [(w.key.encode(), encode_state(w.state)) for w in writes]
            records.append((APPLIED_KEY, str(offset - 1).encode()))
            await producer.send_all(topic, records, partition=partition)
            written += len(writes)
    finally:
        await producer.stop()
    return written


def _rebuild(args: argparse.Namespace, settings: Settings) -> int:
    from prometheus_client import CollectorRegistry

    from processors.core.health import Health
    from processors.metrics import build_metrics
    from streams import scrape_targets
    from streams.service.health_server import start_health_server
    from streams.service.rebuild import Progress, RebuildRefused, rebuild

    alias = settings.weaviate_collection
    print(f"rebuild the collection behind alias {alias} from {settings.topic('memory.events')} "
          f"(model {settings.embedding_model}, batch {args.batch_size}) into a new generation; "
          f"switch {alias} to it once caught up; "
          f"{'drop' if args.drop_old else 'keep'} the previous one")  # fmt: skip
    if not confirmed(args.yes):
        return 1
    registry = CollectorRegistry()
    metrics = build_metrics(registry)
    server = start_health_server(settings.metrics_host, 0, registry, Health(), metrics)
    address = f"{settings.metrics_host}:{server.server_address[1]}"
    name = f"rebuild-{settings.worker_id}"
    if scrape_targets.targets_dir(settings).is_dir():
        scrape_targets.register(settings, name, [address], {"job": "agentmem-rebuild"})
    print(f"metrics (agentmem_rebuild_lag_events) on http://{address}/metrics")
    shown = [0.0]

    def show(p: Progress) -> None:
        now = time.monotonic()
        if now - shown[0] < 0.5 and p.lag:
            return
        shown[0] = now
        share = p.applied / p.total if p.total else 1.0
        bar = "#" * int(share * 30)
        eta = "-" if p.eta_s is None else f"{p.eta_s:.0f}s"
        phase = "switched, finishing" if p.switched else "catching up"
        sys.stderr.write(
            f"\r{p.generation} [{bar:<30}] {p.applied:,}/{p.total:,} events "
            f"{p.rate:,.0f}/s ETA {eta} lag {p.lag:,} ({phase})   "
        )
        sys.stderr.flush()

    try:
        done = asyncio.run(
            rebuild(settings, metrics, batch_size=args.batch_size, drop_old=args.drop_old,
                    progress=show)
        )  # fmt: skip
    except RebuildRefused as exc:
        print(f"\nrebuild: {exc}", file=sys.stderr)
        return 2
    finally:
        server.shutdown()
        scrape_targets.unregister(settings, name)
    sys.stderr.write("\n")
    kept = "dropped" if done.dropped else "kept"
    print(f"{alias} now serves {done.generation} ({done.events:,} events in "
          f"{done.seconds:.1f}s); previous generation {done.previous} {kept}")  # fmt: skip
    return 0
