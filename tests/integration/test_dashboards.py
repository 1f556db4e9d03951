"""Every panel of the committed dashboards shows data for a real worker and API.

A private worker (intelligent mode against `loadgen fake-llm` with errors) and a
private API are registered with the stack's Prometheus through a file_sd target
file under job names of their own. After a load with invalid events, duplicates,
intelligent events, a short cut of the worker's connection to Weaviate (through a
TCP proxy, so that the retry panels have data) and a few API calls, every query of
every panel, with Grafana's variables filled in, must return at least one series
from Prometheus' HTTP API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

from dashboards import generate as dashboard_generator
from loadgen.fake_llm.process import FakeLlmProcess
from processors.core.events import new_event
from streams import scrape_targets
from streams.client.topics import Topics
from streams.settings import Settings
from streams.stack.launcher import free_port
from tests.integration.harness import (
    TopicReader,
    WorkerProcess,
    isolated_settings,
    start_api,
    wait_for,
)
from tests.integration.scenario import generate
from tests.integration.test_pipeline import publish

API_KEY = "dash-" + "k" * 24
RATE_INTERVAL = "1m"  # >= 4 scrape intervals, as Grafana's $__rate_interval would be
SUBJECTS = [
    "Prefers aisle seats on night trains",
    "Is allergic to peanuts and tree nuts",
    "Runs a half marathon every spring",
    "Keeps bees in the back garden",
    "Learns Portuguese before a move to Porto",
]


class TcpProxy:
    """127.0.0.1:<port> forwarded to a target port, in a thread of its own.

    `cut()` drops every connection and refuses new ones until `restore()`: an
    outage of the target for one client, without touching the shared service.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    def start(self) -> None:
        self._thread.start()
        self.restore()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            self._writers -= {writer, up_writer}

    async def _open(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()

    def cut(self) -> None:
        self._call(self._cut())

    def restore(self) -> None:
        self._call(self._open())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()


@dataclass
class Observed:
    settings: Settings
    worker: WorkerProcess
    weaviate_proxies: tuple[TcpProxy, TcpProxy]  # the worker's way to Weaviate (HTTP, gRPC)
    jobs: tuple[str, str]  # worker job, API job
    api_url: str


def _prometheus_watches_the_targets_dir(stack: Settings) -> None:
    body = httpx.get(f"{stack.prometheus_url}/api/v1/status/config", timeout=10).json()
    folder = str(scrape_targets.targets_dir(stack))
    assert folder in body["data"]["yaml"], (
        f"the Prometheus on port {stack.prometheus_port} does not watch {folder}: "
        "it is not the stack's own (or `agentmem stack up` could not reload it)"
    )


@pytest.fixture
def observed(stack: Settings, tmp_path: Path) -> Iterator[Observed]:
    _prometheus_watches_the_targets_dir(stack)
    http_proxy = TcpProxy(stack.weaviate_http_port)
    grpc_proxy = TcpProxy(stack.weaviate_grpc_port)
    llm_port = free_port()
    settings = isolated_settings(
        stack,
        tmp_path / "state",
        weaviate_http_port=http_proxy.port,
        weaviate_grpc_port=grpc_proxy.port,
        llm_base_url=f"http://127.0.0.1:{llm_port}/v1",
        api_keys=f"{API_KEY}=*",
    )
    tag = uuid.uuid4().hex[:8]
    jobs = (f"dashboards-{tag}-worker", f"dashboards-{tag}-api")
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    with contextlib.ExitStack() as cleanup:
        for proxy in (http_proxy, grpc_proxy):
            proxy.start()
            cleanup.callback(proxy.close)
        fake = FakeLlmProcess(
            tmp_path / "fake-llm.log",
            "--latency-ms",
            "20",
            "--error-rate",
            "0.3",
            "--errors",
            "429,500",  # no timeouts: they would hold a request for llm_timeout_s
            port=llm_port,
        )
        cleanup.callback(fake.stop)
        fake.start()
        cleanup.callback(worker.stop)
        worker.start()
        cleanup.enter_context(start_api(settings, tmp_path / "api.log"))
        for job, port in zip(jobs, (settings.worker_metrics_port, settings.api_port), strict=True):
            cleanup.enter_context(
                scrape_targets.registered(stack, job, [f"127.0.0.1:{port}"], {"job": job})
            )
        yield Observed(
            settings,
            worker,
            (http_proxy, grpc_proxy),
            jobs,
            f"http://127.0.0.1:{settings.api_port}",
        )


def _load() -> list[tuple[bytes, bytes]]:
    """300 events (about 10% invalid) with every third valid add/update in intelligent
    mode, 30 intelligent adds of repeated contents, an update of a memory that does
    not exist, and 20 re-published events (duplicates)."""
    scenario = generate(300, tenants=6, seed=61, invalid_ratio=0.1)
    records: list[tuple[bytes, bytes]] = []
    valid: list[tuple[bytes, bytes]] = []
    for i, (key, value) in enumerate(scenario.events):
        if value in scenario.expected.invalid:
            records.append((key, value))
            continue
        doc = json.loads(value)
        if doc["type"] in ("memory.add", "memory.update") and i % 3 == 0:
            doc["mode"] = "intelligent"
        records.append((key, json.dumps(doc).encode()))
        valid.append(records[-1])
    for i in range(30):
        tenant = f"dash-{i % 3}"
        event = new_event("memory.add", tenant, content=SUBJECTS[i % 5], mode="intelligent")
        records.append((tenant.encode(), event.to_json()))
    missing = new_event("memory.update", "dash-0", content="never added", memory_id="nope")
    records.append((b"dash-0", missing.to_json()))
    return records + valid[:20]


async def _wait_metric(
    worker: WorkerProcess, name: str, at_least: float, what: str, timeout_s: float = 300
) -> None:
    deadline = time.monotonic() + timeout_s
    while worker.metric(name) < at_least:
        if worker.exited:
            raise RuntimeError(f"worker died while waiting for {what}:\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}:\n{worker.log_tail()}")
        await asyncio.sleep(0.5)


def _call_the_api(url: str) -> None:
    auth = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=url, timeout=60) as client:
        for i in range(3):
            r = client.post(
                "/v1/memories?wait=true",
                json={"tenant": "dash-api", "content": f"Waters the orchids on day {i}"},
                headers=auth,
            )
            assert r.status_code == 201, r.text
        r = client.post("/v1/search", json={"tenant": "dash-api", "query": "orchids"}, headers=auth)
        assert r.status_code == 200, r.text
        assert client.get("/v1/memories/nope?tenant=dash-api", headers=auth).status_code == 404
        assert (
            client.post("/v1/search", json={"tenant": "dash-api", "query": "x"}).status_code == 401
        )


async def _empty_queries(
    prometheus: httpx.AsyncClient, queries: list[tuple[str, str]]
) -> dict[str, str]:
    """where -> query, for the queries Prometheus answers with no series."""
    empty = {}
    for where, query in queries:
        response = await prometheus.get("/api/v1/query", params={"query": query})
        body = response.json()
        assert body["status"] == "success", f"{where}: {query}: {body}"
        if not body["data"]["result"]:
            empty[where] = query
    return empty


@pytest.fixture
async def prometheus(stack: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.prometheus_url, timeout=30) as client:
        yield client


async def _weaviate_outage(observed: Observed) -> None:
    """A short outage of Weaviate for this worker only: its writes retry, then go through."""
    settings, worker = observed.settings, observed.worker
    outage = [new_event("memory.add", "dash-outage", content=f"note {i}") for i in range(10)]
    acks = TopicReader(settings, Topics.from_settings(settings).indexed)
    retries = worker.metric("agentmem_retries_total")
    for proxy in observed.weaviate_proxies:
        proxy.cut()
    try:
        await publish(settings, [(e.tenant.encode(), e.to_json()) for e in outage])
        await _wait_metric(worker, "agentmem_retries_total", retries + 1, "a retried write")
    finally:
        for proxy in observed.weaviate_proxies:
            proxy.restore()
    try:
        wanted = {e.event_id for e in outage}
        await wait_for(
            [acks],
            lambda: wanted <= {a["event_id"] for a in acks.json_values()},
            300,
            "the acks of the events published during the outage",
            worker,
        )
    finally:
        await acks.close()


def _panel_queries(generator: ModuleType, jobs: tuple[str, str]) -> list[tuple[str, str]]:
    """(dashboard / panel, query) of every panel, with Grafana's variables filled in."""
    values = {
        "job": "|".join(jobs),
        "instance": ".*",
        "__rate_interval": RATE_INTERVAL,
        "__interval": "15s",
        "__range": "5m",
    }
    queries = [
        (f"{name} / {where}", generator.expand(expr, values))
        for name, build in generator.DASHBOARDS.items()
        for where, expr in generator.panel_queries(build())
    ]
    return queries


async def test_every_panel_shows_data_for_a_real_worker_and_api(
    observed: Observed, prometheus: httpx.AsyncClient
) -> None:
    settings, worker = observed.settings, observed.worker
    records = _load()
    await publish(settings, records)
    await _wait_metric(
        worker, "agentmem_events_in_total", len(records), f"the worker to read {len(records)}"
    )

    await _weaviate_outage(observed)
    await asyncio.to_thread(_call_the_api, observed.api_url)

    generator = dashboard_generator
    queries = _panel_queries(generator, observed.jobs)
    assert len(queries) >= 20
    # Scrapes every 5 s and rules every 5 s; rates need two scrapes, enrichment takes
    # a while after indexing. Poll until every query has a series (or give up).
    deadline = time.monotonic() + 240
    empty = await _empty_queries(prometheus, queries)
    while empty and time.monotonic() < deadline:
        await asyncio.sleep(5)
        empty = await _empty_queries(prometheus, queries)
    assert empty == {}, (
        f"{len(empty)} of {len(queries)} panel queries returned no series:\n"
        + "\n".join(f"  {where}: {query}" for where, query in empty.items())
        + f"\nworker log:\n{worker.log_tail(30)}"
    )

    # The fake LLM's errors show up as outcomes other than "ok".
    by_outcome = f'sum by (outcome) (agentmem_llm_requests_total{{job="{observed.jobs[0]}"}})'
    outcomes = (await prometheus.get("/api/v1/query", params={"query": by_outcome})).json()["data"][
        "result"
    ]
    assert {"ok", "server_error", "rate_limited"} <= {r["metric"]["outcome"] for r in outcomes}

    # The $job variable lists these processes.
    job_variable = generator.pipeline_dashboard()["templating"]["list"][0]["definition"]
    match = job_variable.removeprefix("label_values(").rsplit(", job)", 1)[0]
    listed = (await prometheus.get("/api/v1/label/job/values", params={"match[]": match})).json()[
        "data"
    ]
    assert set(observed.jobs) <= set(listed)
