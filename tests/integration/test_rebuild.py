"""`agentmem rebuild` on the real stack: a new generation from the log while the worker
indexes and a client searches through the API, then served through the alias."""

from __future__ import annotations

import asyncio
import random
import sys
import time
import uuid
from pathlib import Path

import httpx
from pydantic import SecretStr

from processors.core.events import new_event
from processors.core.objects import object_uuid
from streams.settings import Settings
from streams.stack import launcher
from streams.stack.launcher import settings_env
from tests.integration.conftest import NewPipeline
from tests.integration.harness import (
    WorkerProcess,
    api_process,
    wait_for,
    weaviate_client,
)
from tests.integration.scenario import SUBJECTS, Expected, generate
from tests.integration.test_pipeline import applied_acks, publish
from tests.integration.test_scale_out import object_problems

KEY = "rebuild-test-key"
Snapshot = dict[tuple[str, str], tuple[str, int, list[float]]]


def snapshot(settings: Settings, collection: str) -> Snapshot:
    """(tenant, uuid) -> (content, version, vector) of every object of ``collection``."""
    found: Snapshot = {}
    with weaviate_client(settings) as client:
        coll = client.collections.use(collection)
        for tenant in coll.tenants.get():
            for obj in coll.with_tenant(tenant).iterator(include_vector=True):
                vector = obj.vector["default"] if isinstance(obj.vector, dict) else obj.vector
                props = obj.properties
                found[(tenant, str(obj.uuid))] = (
                    str(props["content"]),
                    int(str(props["version"])),
                    [float(x) for x in vector],  # type: ignore[arg-type]  # flat here
                )
    return found


def differences(a: Snapshot, b: Snapshot, tenants: set[str] | None = None) -> list[str]:
    """Objects that differ in id, content or version, or whose vectors differ by > 1e-6."""
    keys = {k for k in a.keys() | b.keys() if tenants is None or k[0] in tenants}
    out = []
    for key in sorted(keys):
        if key not in a or key not in b:
            out.append(f"{key}: only in {'second' if key in b else 'first'}")
        elif a[key][:2] != b[key][:2]:
            out.append(f"{key}: {a[key][:2]} != {b[key][:2]}")
        elif max(abs(x - y) for x, y in zip(a[key][2], b[key][2], strict=True)) > 1e-6:
            out.append(f"{key}: vectors differ")
    return out


def alias_target(settings: Settings) -> str:
    with weaviate_client(settings) as client:
        found = client.alias.get(alias_name=settings.weaviate_collection)
        assert found is not None
        return found.collection


def run_rebuild(settings: Settings, log: Path, *args: str) -> tuple[float, str]:
    """`agentmem rebuild --yes ARGS` to its end: (seconds, its output)."""
    argv = [sys.executable, "-m", "streams.cli", "rebuild", "--yes", *args]
    started = time.monotonic()
    child = launcher.spawn(argv, log, env=settings_env(settings), what="the rebuild")
    assert child.proc.wait(timeout=600) == 0, child.tail()
    return time.monotonic() - started, log.read_text(errors="replace")


class Searcher:
    """Searches through the API at ``per_s`` a second until stopped; counts failures."""

    def __init__(self, url: str, tenants: list[str], per_s: float) -> None:
        self.url, self.tenants, self.per_s = url, tenants, per_s
        self.ok = 0
        self.failed: list[str] = []
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        rng = random.Random(5)
        next_at = time.monotonic()
        headers = {"Authorization": f"Bearer {KEY}"}
        async with httpx.AsyncClient(base_url=self.url, timeout=10, headers=headers) as http:
            while not self.stopped.is_set():
                body = {"tenant": rng.choice(self.tenants), "query": rng.choice(SUBJECTS)}
                try:
                    response = await http.post("/v1/search", json=body)
                    if response.status_code == 200 and "results" in response.json():
                        self.ok += 1
                    else:
                        self.failed.append(f"{response.status_code}: {response.text[:200]}")
                except httpx.HTTPError as exc:
                    self.failed.append(repr(exc))
                next_at += 1 / self.per_s  # on a schedule: a slow answer is not a pause
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))


def merged(*expected: Expected) -> Expected:
    out = Expected()
    for e in expected:
        out.live.update(e.live)
        out.applied_event_ids |= e.applied_event_ids
    return out


async def test_a_rebuild_under_load_switches_with_no_failed_search(
    stack: Settings, tmp_path: Path, new_pipeline: NewPipeline
) -> None:
    settings, topics = await new_pipeline(api_keys=SecretStr(f"{KEY}=*"))
    before = generate(800, 8, seed=61, erase_ratio=0.03, resend_ratio=0.02)
    during = generate(600, 8, seed=67, erase_ratio=0.03)
    alias = settings.weaviate_collection
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        with api_process(settings, tmp_path / "api.log") as url:
            await publish(settings, before.events)
            await wait_for(
                topics.all,
                lambda: set(applied_acks(topics)) >= before.expected.applied_event_ids,
                300,
                "the first events",
                worker,
            )
            assert alias_target(settings) == f"{alias}_g1"
            searcher = Searcher(url, sorted(before.expected.live), per_s=8)
            searching = asyncio.create_task(searcher.run())
            search_started = time.monotonic()

            async def trickle() -> None:  # the live load while the rebuild runs
                step = 40
                for i in range(0, len(during.events), step):
                    await publish(settings, during.events[i : i + step])
                    await asyncio.sleep(0.25)

            loading = asyncio.create_task(trickle())
            seconds, output = await asyncio.to_thread(
                run_rebuild, settings, tmp_path / "rebuild-1.log", "--batch-size", "128"
            )
            await loading
            everything = merged(before.expected, during.expected)
            await wait_for(
                topics.all,
                lambda: set(applied_acks(topics)) >= everything.applied_event_ids,
                300,
                "every event after the switch",
                worker,
            )
            await asyncio.sleep(3)  # searches after the switch too
            searcher.stopped.set()
            await searching
            rate = (searcher.ok + len(searcher.failed)) / (time.monotonic() - search_started)
            print(f"rebuild 1: {seconds:.1f}s; {searcher.ok} searches at {rate:.1f}/s, "
                  f"{len(searcher.failed)} failed")  # fmt: skip
            assert searcher.failed == []
            assert rate >= 5
            assert "now serves" in output and "ETA" in output

        # served by the new generation, which holds every event acked before, during
        # and after the switch
        assert alias_target(settings) == f"{alias}_g2"
        assert object_problems(settings, everything) == []
        # the old generation (kept) equals the new one object for object where the live
        # load did not write after the switch
        old, new = snapshot(settings, f"{alias}_g1"), snapshot(settings, f"{alias}_g2")
        assert differences(old, new, set(before.expected.live)) == []

        # erase reaches the kept generation too
        tenant = sorted(before.expected.live)[0]
        memory = sorted(before.expected.live[tenant])[0]
        erase = new_event("memory.erase", tenant, memory_id=memory, event_id=str(uuid.uuid4()))
        await publish(settings, [(tenant.encode(), erase.to_json())])
        await wait_for(topics.all, lambda: erase.event_id in applied_acks(topics), 60, "erase")
        gone = (tenant, object_uuid(tenant, memory))
        assert gone in old and gone not in snapshot(settings, f"{alias}_g1")
        assert gone not in snapshot(settings, f"{alias}_g2")

        # a second rebuild, another batch size, no load: the same objects
        worker.stop()
        served = snapshot(settings, f"{alias}_g2")
        seconds, output = await asyncio.to_thread(
            run_rebuild, settings, tmp_path / "rebuild-2.log", "--batch-size", "32", "--drop-old"
        )
        print(f"rebuild 2 (batch 32): {seconds:.1f}s")
        assert alias_target(settings) == f"{alias}_g3"
        assert differences(served, snapshot(settings, f"{alias}_g3")) == []
        with weaviate_client(settings) as client:
            assert not client.collections.exists(f"{alias}_g2")  # dropped
            assert client.collections.exists(f"{alias}_g1")  # kept by the first
    finally:
        worker.stop()


async def test_a_killed_rebuild_resumes_where_it_stopped(
    stack: Settings, tmp_path: Path, new_pipeline: NewPipeline
) -> None:
    settings, topics = await new_pipeline()
    scenario = generate(1500, 8, seed=71, erase_ratio=0.03)
    alias = settings.weaviate_collection
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    worker.start()
    try:
        await publish(settings, scenario.events)
        await wait_for(
            topics.all,
            lambda: set(applied_acks(topics)) >= scenario.expected.applied_event_ids,
            300,
            "every event",
            worker,
        )
        argv = [sys.executable, "-m", "streams.cli", "rebuild", "--yes", "--batch-size", "50"]
        log = tmp_path / "rebuild-killed.log"
        child = launcher.spawn(argv, log, env=settings_env(settings), what="the rebuild")
        work = settings.stack_dir / "rebuild" / f"{alias}_g2"
        child.wait_until(lambda: "ETA" in log.read_text(errors="replace") and work.is_dir(), 120)
        await asyncio.sleep(3)
        child.kill()
        assert alias_target(settings) == f"{alias}_g1"  # killed before the switch
        _, output = await asyncio.to_thread(run_rebuild, settings, tmp_path / "rebuild-2.log")
        assert "now serves" in output
        assert alias_target(settings) == f"{alias}_g2"  # the same generation, resumed
        assert not work.exists()
        assert object_problems(settings, scenario.expected) == []
        assert (
            differences(snapshot(settings, f"{alias}_g1"), snapshot(settings, f"{alias}_g2")) == []
        )
        metrics_lines = [
            line for line in output.splitlines() if "agentmem_rebuild_lag_events" in line
        ]
        assert metrics_lines  # where its lag is exported
    finally:
        worker.stop()
