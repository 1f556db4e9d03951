"""Scale-out on the real stack: several workers in one group, partitions that move
(SIGKILL, SIGTERM, a new worker), a wiped state folder, and a replay of the whole log.

The CI sizes are small; AGENTMEM_SCALE_EVENTS and AGENTMEM_SCALE_TENANTS run the
issue's size (30,000 events over 60 tenants)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from streams import scrape_targets
from streams.client.topics import Topics
from streams.service.offsets import reset_group
from streams.settings import Settings
from streams.stack import launcher
from streams.stack.launcher import free_port, settings_env
from tests.integration.conftest import NewPipeline
from tests.integration.harness import (
    PipelineTopics,
    WorkerProcess,
    wait_for,
    weaviate_client,
    weaviate_objects,
)
from tests.integration.scenario import Expected, generate, long_lived
from tests.integration.test_pipeline import (
    applied_acks,
    dead_letter_reasons,
    publish,
    wait_applied,
)

EVENTS = int(os.environ.get("AGENTMEM_SCALE_EVENTS", "4000"))
TENANTS = int(os.environ.get("AGENTMEM_SCALE_TENANTS", "24"))
ASSIGNMENT = re.compile(r"assignment: worker (\S+) owns \S+ partitions \[([0-9, ]*)\]")


def worker(settings: Settings, tmp_path: Path, name: str) -> WorkerProcess:
    """A worker of the group on its own metrics port (the rest of the settings shared:
    same state root, so each finds a state folder of its own)."""
    own = settings.model_copy(update={"worker_metrics_port": free_port()})
    return WorkerProcess(own, tmp_path / f"{name}.log")


def history_problems(
    records: Sequence[tuple[bytes | None, bytes | None]], exp: Expected
) -> list[str]:
    """What differs from the history ``exp`` expects: the latest record of each key
    (present for a change, a tombstone for what an erase removed), and no key that ever
    held two different values."""
    latest: dict[str, bytes | None] = {}
    values: dict[str, set[bytes]] = defaultdict(set)
    for key, value in records:
        assert key is not None
        latest[key.decode()] = value
        if value is not None:
            values[key.decode()].add(value)
    problems = [f"{k}: two values" for k, v in values.items() if len(v) > 1]
    present = {k for k, v in latest.items() if v is not None}
    tombstoned = {k for k, v in latest.items() if v is None}
    if present != exp.history_keys:
        extra, missing = present - exp.history_keys, exp.history_keys - present
        problems.append(f"history keys: {len(extra)} extra {sorted(extra)[:3]}, "
                        f"{len(missing)} missing {sorted(missing)[:3]}")  # fmt: skip
    if tombstoned != exp.erased_history_keys:
        problems.append(f"tombstones differ: {sorted(tombstoned ^ exp.erased_history_keys)[:3]}")
    return problems


def object_problems(settings: Settings, exp: Expected) -> list[str]:
    objects = weaviate_objects(settings)
    actual = {(t, m): v for t, ms in objects.items() for m, v in ms.items()}
    wanted = {(t, m): v for t, ms in exp.live.items() for m, v in ms.items()}
    return [
        f"{k}: {actual.get(k)} != {wanted.get(k)}"
        for k in actual.keys() | wanted.keys()
        if actual.get(k) != wanted.get(k)
    ]


def owners(*workers: WorkerProcess) -> dict[int, list[str]]:
    """Each partition's owners in the order the workers' logs name them."""
    found: list[tuple[float, str, list[int]]] = []
    for w in workers:
        text = w.log_path.read_text(errors="replace") if w.log_path.exists() else ""
        for line in text.splitlines():
            match = ASSIGNMENT.search(line)
            if match:
                parts = [int(p) for p in match.group(2).replace(" ", "").split(",") if p]
                found.append((len(found), match.group(1), parts))
    table: dict[int, list[str]] = defaultdict(list)
    for _, who, parts in found:
        for p in parts:
            if not table[p] or table[p][-1] != who:
                table[p].append(who)
    return dict(table)


async def assert_exact(settings: Settings, topics: PipelineTopics, exp: Expected) -> None:
    await topics.history.read_to_end()
    assert object_problems(settings, exp) == []
    assert history_problems(topics.history.records, exp) == []
    # nothing refused: no memory_not_found that one worker alone would not give
    assert dead_letter_reasons(topics) == exp.invalid
    outcomes = defaultdict(set)
    for ack in topics.indexed.json_values():
        outcomes[ack["event_id"]].add(ack["outcome"])
    resent = exp.resent_event_ids
    assert all(outcomes[e] <= {"applied", "noop:duplicate_event"} for e in exp.applied_event_ids)
    assert all("noop:duplicate_event" in outcomes[e] for e in resent)


async def wait_owned(workers: Sequence[WorkerProcess], partitions: int, timeout_s: float) -> float:
    """Until the running workers own every partition between them; when they did."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            owned = sum(w.metric("agentmem_partitions_owned") for w in workers if w.running)
        except Exception:  # noqa: BLE001 - a worker between restarts
            owned = -1
        if owned == partitions:
            return time.monotonic()
        await asyncio.sleep(0.25)
    logs = "\n".join(w.log_tail(20) for w in workers)
    raise TimeoutError(f"partitions not all owned after {timeout_s}s:\n{logs}")


async def test_partitions_move_between_workers_and_nothing_is_lost_or_doubled(
    stack: Settings, tmp_path: Path, new_pipeline: NewPipeline
) -> None:
    settings, topics = await new_pipeline()
    scenario = generate(EVENTS, TENANTS, seed=41, erase_ratio=0.04, resend_ratio=0.03)
    exp = scenario.expected
    assert exp.resent_event_ids and exp.erased_history_keys
    n = settings.events_partitions
    w1, w2, w3, w4 = (worker(settings, tmp_path, f"w{i}") for i in range(1, 5))
    started = [w1, w2, w3]
    size = -(-len(scenario.events) // 6)  # six rounds, in publish order
    chunks = [scenario.events[i : i + size] for i in range(0, len(scenario.events), size)]
    try:
        for w in started:
            w.start()
        await wait_owned(started, n, 60)
        await publish(settings, chunks[0])
        await asyncio.sleep(2)
        w1.kill()
        await publish(settings, chunks[1])
        w4.start()
        started.append(w4)
        await publish(settings, chunks[2])
        await asyncio.sleep(2)
        w2.stop()  # SIGTERM: leaves the group at once
        await publish(settings, chunks[3])
        await asyncio.sleep(2)
        w3.kill()  # the last of the original three
        killed_at = time.monotonic()
        await publish(settings, chunks[4])
        owned_at = await wait_owned([w4], n, 60)
        await publish(settings, chunks[5])
        await wait_applied(topics, exp, w4, 900, "every event")
        await assert_exact(settings, topics, exp)

        table = owners(w1, w2, w3, w4)
        print("partition owners:", {p: table[p] for p in sorted(table)})
        assert sorted(table) == list(range(n))
        assert all(len(table[p]) >= 2 for p in range(n)), table  # every partition moved
        restores = w4.metric("agentmem_state_restore_seconds_count")
        restore_s = w4.metric("agentmem_state_restore_seconds_sum")
        restored = w4.metric("agentmem_state_restored_records_total")
        print(
            f"takeover after SIGKILL: all {n} partitions owned by w4 {owned_at - killed_at:.1f}s "
            f"after the kill; w4 restored {restores:.0f} partitions ({restored:.0f} records) "
            f"in {restore_s:.2f}s in all"
        )
        assert restores >= n and restored > 0
        assert owned_at - killed_at + restore_s < 30
    finally:
        for w in (w1, w2, w3, w4):
            w.stop()


async def test_a_wiped_state_folder_is_restored_from_the_changelog(
    stack: Settings, tmp_path: Path, new_pipeline: NewPipeline
) -> None:
    settings, topics = await new_pipeline()
    scenario = generate(EVENTS // 2, TENANTS, seed=43, erase_ratio=0.04, resend_ratio=0.03)
    exp = scenario.expected
    first, rest = (
        scenario.events[: len(scenario.events) // 2],
        scenario.events[len(scenario.events) // 2 :],
    )
    w = worker(settings, tmp_path, "w")
    try:
        w.start()
        await publish(settings, first)
        await wait_for(
            topics.all, lambda: len(topics.indexed.records) >= len(first) // 2, 300, "acks", w
        )
        w.stop()
        slots = sorted((settings.stack_dir / "worker").glob("slot-*"))
        assert slots
        for slot in slots:
            shutil.rmtree(slot)
        publishing = asyncio.create_task(publish(settings, rest))
        w.start()
        await publishing
        await wait_applied(topics, exp, w, 900, "every event")
        await assert_exact(settings, topics, exp)
        restored = w.metric("agentmem_state_restored_records_total")
        seconds = w.metric("agentmem_state_restore_seconds_sum")
        print(f"wiped state folder: {restored:.0f} changelog records restored in {seconds:.2f}s")
        assert restored > 0
    finally:
        w.stop()


def all_objects(settings: Settings) -> dict[tuple[str, str], tuple[dict[str, Any], Any]]:
    """Every object with its properties and vector, by (tenant, uuid)."""
    found: dict[tuple[str, str], tuple[dict[str, Any], Any]] = {}
    with weaviate_client(settings) as client:
        coll = client.collections.use(settings.weaviate_collection)
        for tenant in sorted(coll.tenants.get()):
            for obj in coll.with_tenant(tenant).iterator(include_vector=True):
                found[(tenant, str(obj.uuid))] = (dict(obj.properties), obj.vector)
    return found


async def test_a_replay_of_the_whole_log_changes_nothing(
    stack: Settings, tmp_path: Path, new_pipeline: NewPipeline
) -> None:
    settings, topics = await new_pipeline()
    scenario = generate(EVENTS // 2, TENANTS, seed=47, erase_ratio=0.04, resend_ratio=0.03)
    long = long_lived(f"tenant-47-{TENANTS:03d}", "diary", 200, seed=47)
    exp = scenario.expected
    events = [*long.events, *scenario.events]
    w = worker(settings, tmp_path, "w")
    try:
        w.start()
        await publish(settings, events)
        ids = exp.applied_event_ids | long.expected.applied_event_ids
        await wait_for(
            topics.all,
            lambda: (
                set(applied_acks(topics)) >= ids
                and len(dead_letter_reasons(topics)) >= len(exp.invalid)
            ),
            600,
            "every event",
            w,
        )
        await asyncio.sleep(2)  # the group's offsets commit every second
        w.stop()
        await topics.history.read_to_end()
        history_before = list(topics.history.records)
        acks_before = len(topics.indexed.records)
        objects_before = all_objects(settings)
        plan = await reset_group(settings, to="earliest", apply=True)
        assert plan and all(target == 0 for _, _, target in plan)

        w.start()
        total = len(events)
        started = time.monotonic()
        await wait_for(
            topics.all,
            lambda: w.metric("agentmem_events_replayed_total") >= total,
            300,
            "the whole log replayed",
            w,
        )
        print(f"replay: {total} events skipped in {time.monotonic() - started:.1f}s")
        await topics.history.read_to_end()
        assert topics.history.records == history_before  # not one record more
        assert len(topics.indexed.records) == acks_before
        assert all_objects(settings) == objects_before
        # the memory with 200 changes ended erased, and stays so: its 200 versions are
        # tombstones, its erase record is the one left
        diary = [(k, v) for k, v in history_before if k and b"/diary/" in k]
        assert history_problems(diary, long.expected) == []
    finally:
        w.stop()


def registered_ports(settings: Settings) -> list[int]:
    """Metrics ports the group's workers registered for the local Prometheus."""
    folder = scrape_targets.workers_dir(settings)
    ports = []
    for path in sorted(folder.glob(f"{settings.worker_id}-*.json")):
        for group in json.loads(path.read_text()):
            ports += [int(t.rsplit(":", 1)[1]) for t in group["targets"]]
    return ports


def metric_at(port: int, name: str) -> float:
    """Sum of a metric's samples, whatever their labels, at a worker's /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((name + " ", name + "{"))
    )


def scraped_up(settings: Settings, port: int) -> bool:
    query = f'up{{job="agentmem-worker",instance="127.0.0.1:{port}"}}'
    response = httpx.get(
        f"{settings.prometheus_url}/api/v1/query", params={"query": query}, timeout=5
    )
    result = response.json()["data"]["result"]
    return bool(result) and result[0]["value"][1] == "1"


async def test_two_workers_on_one_host_need_no_flags(
    stack: Settings, tmp_path: Path, new_pipeline: NewPipeline
) -> None:
    """`agentmem worker` twice with the same settings, under the local stack's folder:
    each takes its own state folder and metrics port, Prometheus scrapes both, and the
    partitions are split between them."""
    settings, topics = await new_pipeline(stack_dir=stack.stack_dir)
    env = settings_env(settings)
    argv = [sys.executable, "-m", "streams.cli", "worker"]
    children = [
        launcher.spawn(argv, tmp_path / f"w{i}.log", env=env, what=f"worker {i}") for i in (1, 2)
    ]
    state_topic = Topics.from_settings(settings).state
    try:
        for count, child in enumerate(children, start=1):

            def registered(n: int = count) -> bool:
                return len(registered_ports(settings)) >= n

            child.wait_until(registered, 90)
        ports = registered_ports(settings)
        assert len(set(ports)) == 2 and settings.worker_metrics_port in ports
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            owned = [metric_at(p, "agentmem_partitions_owned") for p in ports]
            if sum(owned) == settings.events_partitions and all(owned):
                break
            await asyncio.sleep(0.5)
        assert sum(owned) == settings.events_partitions and all(owned), owned
        print(f"two workers on one host: ports {ports}, partitions owned {owned}")
        scenario = generate(600, 12, seed=53)
        await publish(settings, scenario.events)
        await wait_for(
            topics.all,
            lambda: set(applied_acks(topics)) >= scenario.expected.applied_event_ids,
            300,
            "every event",
        )
        assert all(metric_at(p, "agentmem_events_applied_total") > 0 for p in ports)
        deadline = time.monotonic() + 60  # the targets are read every 5 s, scraped every 5 s
        while not all(scraped_up(settings, p) for p in ports) and time.monotonic() < deadline:
            await asyncio.sleep(1)
        assert all(scraped_up(settings, p) for p in ports)
        marker = "worker state folder "
        lines = [line for c in children for line in c.log_file.read_text().splitlines()]
        slots = {line.split(marker, 1)[1].strip() for line in lines if marker in line}
        assert len(slots) == 2
    finally:
        for child in children:
            child.stop()
        for copy in (settings.stack_dir / "worker").glob(f"slot-*/{state_topic}"):
            shutil.rmtree(copy)
    assert registered_ports(settings) == []  # each removed its target file as it stopped
