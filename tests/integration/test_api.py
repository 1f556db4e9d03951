"""The HTTP API and the SDK against a real worker, API process, Kafka and Weaviate."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings

from processors.core.events import EventType, new_event
from streams.client.sdk import AgentMem
from streams.settings import Settings
from tests.integration.harness import WorkerProcess, api_process, isolated_settings

TENANTS = [f"iso-{i:02d}" for i in range(20)]
KEY_A = "key-a-" + "x" * 20  # tenants 0..9
KEY_B = "key-b-" + "y" * 20  # tenants 10..19
ADMIN = "admin-" + "z" * 20  # every tenant


@dataclass
class ApiUnderTest:
    settings: Settings
    url: str
    worker: WorkerProcess

    def client(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@pytest.fixture(scope="module")
def api(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiUnderTest]:
    work = tmp_path_factory.mktemp("api")
    keys = f"{KEY_A}={','.join(TENANTS[:10])};{KEY_B}={','.join(TENANTS[10:])};{ADMIN}=*"
    settings = isolated_settings(stack, work / "state", api_keys=keys, api_wait_timeout_s=20)
    worker = WorkerProcess(settings, work / "worker.log")
    worker.start()
    try:
        with api_process(settings, work / "api.log") as url:
            yield ApiUnderTest(settings, url, worker)
    finally:
        worker.stop()


def _add(client: httpx.Client, tenant: str, content: str, memory_id: str) -> httpx.Response:
    return client.post(
        "/v1/memories",
        params={"wait": "true"},
        json={"tenant": tenant, "content": content, "memory_id": memory_id},
    )


async def test_sdk_round_trip_of_1000_memories(api: ApiUnderTest) -> None:
    events = [
        new_event(
            EventType.ADD,
            TENANTS[i % 20],
            content=f"{TENANTS[i % 20]} note {i}: "
            f"likes {random.choice(['tea', 'coffee', 'cocoa'])}",
            memory_id=f"sdk-{i}",
        )
        for i in range(1000)
    ]
    async with AgentMem(api.settings) as mem:
        ids = await mem.publish(events)
        assert ids == [e.event_id for e in events]
        acks = await mem.wait_indexed(ids, timeout_s=300)
        assert {a["outcome"] for a in acks.values()} == {"applied"}
        for event in events:
            memory = await mem.get(event.tenant, event.resolved_memory_id)
            assert memory is not None and memory.content == event.content


def test_tenant_isolation_over_500_queries(api: ApiUnderTest) -> None:
    admin = api.client(ADMIN)
    for tenant in TENANTS:
        for i in range(5):
            r = _add(admin, tenant, f"{tenant} secret number {i} about gardening", f"{tenant}-s{i}")
            assert r.status_code == 201, r.text
    rng = random.Random(5)
    clients = {KEY_A: api.client(KEY_A), KEY_B: api.client(KEY_B)}
    allowed = {KEY_A: set(TENANTS[:10]), KEY_B: set(TENANTS[10:])}
    forbidden_seen = allowed_seen = 0
    for _ in range(500):
        key = rng.choice([KEY_A, KEY_B])
        tenant = rng.choice(TENANTS)
        r = clients[key].post(
            "/v1/search",
            json={
                "tenant": tenant,
                "query": rng.choice(["gardening", "secret", "number 3"]),
                "limit": 50,
                "alpha": rng.random(),
            },
        )
        if tenant in allowed[key]:
            assert r.status_code == 200, r.text
            results = r.json()["results"]
            assert results, "an allowed tenant has memories"
            assert all(m["content"].startswith(f"{tenant} ") for m in results)
            assert all(
                m["memory_id"].startswith(f"{tenant}-") or m["memory_id"].startswith("sdk-")
                for m in results
            )
            allowed_seen += 1
        else:
            assert r.status_code == 403, r.text
            assert "message" in r.json()
            forbidden_seen += 1
    assert allowed_seen > 100 and forbidden_seen > 100
    assert (
        api.client(None).post("/v1/search", json={"tenant": TENANTS[0], "query": "x"}).status_code
        == 401
    )
    assert api.client("wrong-key").get(f"/v1/memories/x?tenant={TENANTS[0]}").status_code == 401


def test_read_your_writes_100_times(api: ApiUnderTest) -> None:
    client = api.client(ADMIN)
    for i in range(100):
        text = f"read-your-writes probe {i} {random.getrandbits(40):x} zebra crossing"
        r = _add(client, "ryw", text, f"ryw-{i}")
        assert r.status_code == 201, r.text
        found = client.post("/v1/search", json={"tenant": "ryw", "query": text, "limit": 3})
        assert found.status_code == 200
        assert f"ryw-{i}" in [m["memory_id"] for m in found.json()["results"]]


def test_hybrid_search_by_keyword_and_by_meaning(api: ApiUnderTest) -> None:
    client = api.client(ADMIN)
    memories = {
        "kw": "The wifi password for the cabin is QX7-blorptangle, written on the fridge.",
        "dog": "I adopted a golden retriever puppy and named him Max.",
        "job": "She started a new job as a data engineer at a bank in Zurich.",
        "food": "He cannot eat gluten, so bread and pasta make him ill.",
    }
    for memory_id, content in memories.items():
        assert _add(client, "hybrid", content, memory_id).status_code == 201
    by_keyword = client.post(
        "/v1/search", json={"tenant": "hybrid", "query": "blorptangle", "alpha": 0.0}
    ).json()["results"]
    assert by_keyword[0]["memory_id"] == "kw"
    by_meaning = client.post(
        "/v1/search", json={"tenant": "hybrid", "query": "my new dog is called Max", "alpha": 1.0}
    ).json()["results"]
    assert by_meaning[0]["memory_id"] == "dog"


def test_history_in_order_and_erase_removes_content(api: ApiUnderTest) -> None:
    client = api.client(ADMIN)
    tenant, memory_id = "hist", "home"
    assert _add(client, tenant, "Lives in London near Camden market", memory_id).status_code == 201
    r = client.put(
        f"/v1/memories/{memory_id}",
        params={"wait": "true"},
        json={"tenant": tenant, "content": "Moved to Paris, in the 11th arrondissement"},
    )
    assert r.status_code == 201, r.text
    r = client.delete(f"/v1/memories/{memory_id}", params={"tenant": tenant, "wait": "true"})
    assert r.status_code == 201, r.text
    changes = client.get(f"/v1/memories/{memory_id}/history", params={"tenant": tenant}).json()
    assert [(c["version"], c["change"]) for c in changes["changes"]] == [
        (1, "upsert"),
        (2, "upsert"),
        (3, "delete"),
    ]
    assert changes["changes"][1]["before"] == "Lives in London near Camden market"
    assert changes["changes"][2]["before"] == "Moved to Paris, in the 11th arrondissement"
    # an update of the deleted memory is refused at once with a 409
    r = client.put(
        f"/v1/memories/{memory_id}",
        params={"wait": "true"},
        json={"tenant": tenant, "content": "again"},
    )
    assert r.status_code == 409, r.text

    assert _add(client, tenant, "Lives in Berlin, Kreuzberg", memory_id).status_code == 201
    r = client.post(f"/v1/memories/{memory_id}/erase", params={"tenant": tenant, "wait": "true"})
    assert r.status_code == 201, r.text
    assert client.get(f"/v1/memories/{memory_id}", params={"tenant": tenant}).status_code == 404
    found = client.post("/v1/search", json={"tenant": tenant, "query": "Berlin Paris London"})
    assert found.json()["results"] == []
    after = client.get(f"/v1/memories/{memory_id}/history", params={"tenant": tenant}).text
    for word in ("London", "Paris", "Berlin", "Camden", "Kreuzberg"):
        assert word not in after
    assert '"change":"erase"' in after.replace(" ", "")


def test_bad_requests_get_4xx_with_a_message(api: ApiUnderTest) -> None:
    client = api.client(ADMIN)
    cases = [
        client.post("/v1/memories", json={"tenant": "bad tenant!", "content": "x"}),
        client.post("/v1/memories", json={"tenant": "t", "content": ""}),
        client.post("/v1/memories", json={"tenant": "t", "content": "x" * 40_000}),
        client.post(
            "/v1/memories", content=b"{not json", headers={"content-type": "application/json"}
        ),
        client.post("/v1/search", json={"tenant": "t", "query": "x", "limit": 0}),
        client.post("/v1/search", json={"tenant": "t", "query": "x", "alpha": 3}),
        client.get("/v1/memories/a%2Fb", params={"tenant": "t"}),
    ]
    for r in cases:
        assert 400 <= r.status_code < 500, (r.status_code, r.text)
        assert r.json()["message"]


def test_schemathesis_finds_no_500_and_no_schema_violation(
    api: ApiUnderTest, tmp_path: Path
) -> None:
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    failures: list[str] = []
    checked = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @hypothesis_settings(
            max_examples=15,
            deadline=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def check(case: schemathesis.Case) -> None:
            nonlocal checked
            response = case.call(base_url=api.url, headers={"Authorization": f"Bearer {ADMIN}"})
            checked += 1
            if response.status_code >= 500 and response.status_code != 504:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code}")
                return
            try:
                case.validate_response(response)
            except Exception as exc:  # noqa: BLE001 - collect every violation, fail once
                failures.append(f"{case.method} {case.formatted_path}: {exc}"[:500])

        check()
    assert checked > 50
    assert failures == []


def test_a_50_mib_body_is_refused_with_413_before_it_is_read(api: ApiUnderTest) -> None:
    """Only the headers are sent: the answer comes without the body ever being sent."""
    host, port = api.url.removeprefix("http://").rsplit(":", 1)
    head = (
        "POST /v1/memories HTTP/1.1\r\n"
        f"Host: {host}\r\nAuthorization: Bearer {KEY_A}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {50 * 1024 * 1024}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(head.encode())
        # the answer may come in several segments (headers, then body): read until the
        # server closes the connection, as it does after a refusal
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        answer = b"".join(chunks).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer[:200]
    assert "too_large" in answer


def test_a_retried_add_with_the_same_idempotency_key_is_one_memory(api: ApiUnderTest) -> None:
    tenant = TENANTS[3]
    doc = {"tenant": tenant, "content": f"idempotent {random.random()}"}
    with api.client(KEY_A) as client:
        answers = [
            client.post(
                "/v1/memories",
                params={"wait": "true"},
                json=doc,
                headers={"Idempotency-Key": "retry-me"},
            )
            for _ in range(3)
        ]
        assert [a.status_code for a in answers] == [201, 201, 201]
        # a retry hears how the event went (its first ack, or a duplicate's)
        assert {a.json()["outcome"] for a in answers} <= {"applied", "noop:duplicate_event"}
        assert len({a.json()["event_id"] for a in answers}) == 1
        (memory_id,) = {a.json()["memory_id"] for a in answers}
        found = client.post("/v1/search", json={"tenant": tenant, "query": doc["content"]})
        assert [m["memory_id"] for m in found.json()["results"]].count(memory_id) == 1
        history = client.get(f"/v1/memories/{memory_id}/history", params={"tenant": tenant})
        assert [c["version"] for c in history.json()["changes"]] == [1]
