"""Private workers on the shared stack, driven through Kafka and cleaned up afterwards.

A benchmark's worker gets its own topic prefix, collection, state folder and
metrics port (:func:`private_settings`), runs as a child process through the
stack's launcher, and on exit is stopped and has its collection, topics and state
deleted. :func:`drain` publishes events all at once and waits for their records.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import weaviate

from loadgen.bench.config import BenchConfig
from loadgen.replay.records import Pace, ReplayRecord, parse_line
from loadgen.replay.run import ReplayOptions, ReplayResult, replay
from loadgen.synth import SynthConfig, synth_events, to_line
from processors.adapters.weaviate.generations import generation_number
from streams import clients
from streams.settings import Settings
from streams.stack import launcher

log = logging.getLogger(__name__)

WARM_UP_EVENTS = 20


def private_settings(base: Settings, workdir: Path, **overrides: Any) -> Settings:
    """The shared stack with a private topic prefix, collection, state and metrics port."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, Any] = {
        **base.model_dump(),
        "topic_prefix": f"bench.{tag}.",
        "worker_id": f"bench-{tag}",
        "weaviate_collection": f"Bench{tag}",
        "worker_metrics_port": launcher.free_port(),
        "stack_dir": workdir / tag,
        **overrides,
    }
    return Settings(**values)


def weaviate_client(settings: Settings) -> weaviate.WeaviateClient:
    return clients.weaviate_sync(settings)


async def delete_topics(bootstrap: clients.KafkaTarget, prefixes: Sequence[str]) -> list[str]:
    """Delete every topic whose name starts with one of ``prefixes``; their names."""
    admin = clients.kafka_admin(bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(tuple(prefixes))]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


def delete_collection(settings: Settings, name: str) -> None:
    """Delete ``name``: the alias and every generation behind it, or the collection."""
    try:
        with weaviate_client(settings) as client:
            if client.alias.get(alias_name=name) is not None:
                client.alias.delete(alias_name=name)
            for collection in client.collections.list_all(simple=True):
                if collection == name or generation_number(name, collection) is not None:
                    client.collections.delete(collection)
    except Exception:  # cleanup must not hide the benchmark's own error
        log.warning("could not delete collection %s", name, exc_info=True)


class PrivateWorker:
    """`agentmem worker` on private settings; stopped and cleaned up on exit: its
    collection, topics and state are deleted.

    Collections go one at a time: Weaviate deletes a collection with many tenants in
    seconds, and several deletions at once time out (they queue behind each other)."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings, self.log_path = settings, log_path
        self.child: launcher.Child | None = None

    @property
    def pid(self) -> int:
        if self.child is None:
            raise RuntimeError("the worker is not started")
        return self.child.pid

    def __enter__(self) -> PrivateWorker:
        self.child = launcher.spawn(
            [sys.executable, "-m", "streams.cli", "worker"],
            self.log_path,
            env=launcher.settings_env(self.settings),
            what="the worker",
        )
        url = f"http://127.0.0.1:{self.settings.worker_metrics_port}/metrics"
        try:
            seconds = self.child.wait_http(url, timeout_s=180)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        log.info("worker %s up in %.1fs", self.settings.worker_id, seconds)
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        started = time.monotonic()
        if self.child is not None:
            # its state is deleted right after: a slow graceful stop would only cost time
            self.child.stop(grace_s=5.0)
        s = self.settings
        delete_collection(s, s.weaviate_collection)
        try:
            asyncio.run(delete_topics(s, [s.topic_prefix, f"{s.worker_id}-"]))
        except Exception:  # cleanup must not hide the benchmark's own error
            log.warning("could not delete topics of %s", s.topic_prefix, exc_info=True)
        shutil.rmtree(s.stack_dir, ignore_errors=True)
        log.info(
            "worker %s stopped and cleaned up in %.1fs", s.worker_id, time.monotonic() - started
        )


def records_of(docs: Sequence[dict[str, object]]) -> list[ReplayRecord]:
    return [parse_line(to_line(d).encode()) for d in docs]


def adds(config: BenchConfig, count: int, seed_offset: int, **kw: Any) -> list[dict[str, object]]:
    """``count`` synthetic adds (no updates or deletes) of the run's tenants."""
    synth = SynthConfig(
        count=count,
        tenants=config.tenants,
        seed=config.seed + seed_offset,
        update_ratio=0.0,
        delete_ratio=0.0,
        **kw,
    )
    return list(synth_events(synth))


def drain(
    settings: Settings,
    records: Sequence[ReplayRecord],
    config: BenchConfig,
    follow: str = "memory.indexed",
    stall_s: float | None = None,
) -> ReplayResult:
    """Publish all at once; wait until every event has its record on ``follow``."""
    options = ReplayOptions(
        pace=Pace(),
        follow=follow,
        wait_s=config.drain_timeout_s,
        stall_s=stall_s,
        progress=config.progress,
    )
    return asyncio.run(replay(settings, records, options))


def drain_enriched(
    settings: Settings, docs: Sequence[dict[str, object]], config: BenchConfig
) -> ReplayResult:
    """A :func:`drain` of intelligent ``docs`` until each has its ``memory.enriched``
    record (given up after ``intelligent_stall_s`` without one)."""
    return drain(
        settings,
        records_of(docs),
        config,
        follow="memory.enriched",
        stall_s=config.intelligent_stall_s,
    )


def as_fast(docs: list[dict[str, object]]) -> list[dict[str, object]]:
    """The same events in fast mode, under other tenants so that they are new memories too."""
    return [{**d, "mode": "fast", "tenant": f"fast-{d['tenant']}"} for d in docs]


def rate(result: ReplayResult, what: str) -> float:
    """Events per second from the first send to the last record; raises if some are missing."""
    if not result.complete or not result.drain_seconds:
        raise RuntimeError(
            f"{what}: only {result.acked} of {result.expected_acks} records on "
            f"{result.followed} (see the worker log)"
        )
    return result.sent / result.drain_seconds


def drained_per_s(
    settings: Settings, docs: Sequence[dict[str, object]], config: BenchConfig, what: str
) -> float:
    """:func:`rate` of a :func:`drain` of ``docs`` into memory.indexed."""
    return rate(drain(settings, records_of(docs), config), what)


def warm_up(settings: Settings, config: BenchConfig) -> None:
    """Drain a few events first: a fresh worker serves /metrics before its consumer has
    its partitions and before the first embedding, and neither belongs in a measurement."""
    result = drain(settings, records_of(adds(config, WARM_UP_EVENTS, 99)), config)
    rate(result, "warm-up")
    log.info("warm-up drained in %.1fs", result.drain_seconds)


def _metric(port: int, name: str) -> float:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " "))  # fmt: skip


def wait_split(first: Settings, second: Settings, child: launcher.Child) -> None:
    """Until two workers of one group own a share of the partitions each."""
    ports = (first.worker_metrics_port, second.worker_metrics_port)

    def split() -> bool:
        try:
            owned = [_metric(p, "agentmem_partitions_owned") for p in ports]
        except httpx.HTTPError:
            return False
        return all(owned) and sum(owned) == first.events_partitions

    child.wait_until(split, 120)


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the machine so far, all cores."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(values) - idle) / tick, sum(values) / tick


class CpuShare:
    """Where the CPU went during a block: ``machine``, the busy share of all cores, and
    ``shares``, the share of all cores each named group of processes used."""

    def __init__(self, groups: Mapping[str, Sequence[int]]) -> None:
        self.groups = {name: list(pids) for name, pids in groups.items()}
        self.machine = 0.0
        self.shares: dict[str, float] = {}

    def _used(self) -> dict[str, float]:
        return {n: sum(cpu_seconds(p) for p in pids) for n, pids in self.groups.items()}

    def __enter__(self) -> CpuShare:
        self._start = self._used()
        self._busy, self._total = _machine_busy()
        return self

    def __exit__(self, *exc: object) -> None:
        busy, total = _machine_busy()
        span = max(1e-9, total - self._total)
        self.machine = (busy - self._busy) / span
        used = self._used()
        self.shares = {n: (used[n] - self._start[n]) / span for n in used}

    def summary(self) -> str:
        parts = ", ".join(f"{name} {share:.0%}" for name, share in self.shares.items())
        return f"machine busy {self.machine:.0%} of {os.cpu_count()} cores ({parts})"


def stack_pids(settings: Settings) -> dict[str, list[int]]:
    """The local stack's Kafka and Weaviate processes, by their pid files."""
    found: dict[str, list[int]] = {}
    for name in ("kafka", "weaviate"):
        path = settings.stack_dir / "pids" / f"{name}.pid"
        try:
            found[name] = [int(path.read_text().split()[0])]
        except (OSError, ValueError, IndexError):
            continue
    return found
