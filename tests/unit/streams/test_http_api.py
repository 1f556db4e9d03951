"""The HTTP API (create_api) on an SDK over fakes: statuses, bodies, auth, metrics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError
from fastapi.testclient import TestClient

from processors.core.errors import PermanentError
from processors.core.reasons import Reason
from streams.http.app import create_api
from tests.unit.streams.fakes import FakeSdk, memory, settings

A = {"Authorization": "Bearer key-a"}  # tenant-a, tenant-b
ADMIN = {"Authorization": "Bearer key-admin"}  # every tenant


@pytest.fixture
def fake() -> FakeSdk:
    return FakeSdk()


@pytest.fixture
def api(fake: FakeSdk) -> Iterator[TestClient]:
    app = create_api(settings(), sdk_factory=lambda _: fake.sdk)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def add(api: TestClient, wait: bool = False, **body: Any) -> Any:
    doc = {"tenant": "tenant-a", "content": "likes tea", "memory_id": "m1", **body}
    return api.post("/v1/memories", params={"wait": str(wait).lower()}, json=doc, headers=A)


def test_lifespan_starts_and_stops_the_sdk(fake: FakeSdk) -> None:
    with TestClient(create_api(settings(), sdk_factory=lambda _: fake.sdk)):
        assert fake.publisher.started and not fake.publisher.stopped
    assert fake.publisher.stopped and fake.reader.stopped


def test_add_answers_202_with_the_ids(api: TestClient, fake: FakeSdk) -> None:
    r = add(api, agent_id="ag", metadata={"k": 1}, mode="intelligent")
    assert r.status_code == 202, r.text
    (event,) = fake.publisher.events
    assert r.json() == {
        "event_id": event.event_id,
        "memory_id": "m1",
        "indexed": False,
        "version": None,
        "outcome": None,
        "erased": None,
    }
    assert (event.agent_id, event.metadata, str(event.mode)) == ("ag", {"k": 1}, "intelligent")


def test_add_with_wait_answers_201_once_indexed(api: TestClient) -> None:
    r = add(api, wait=True)
    assert r.status_code == 201, r.text
    assert r.json()["indexed"] is True
    assert (r.json()["version"], r.json()["outcome"]) == (1, "applied")


@pytest.mark.parametrize(
    ("outcome", "status"), [("rejected:memory_not_found", 409), ("rejected:stale", 422)]
)
def test_a_rejected_write_answers_by_its_reason(
    api: TestClient, fake: FakeSdk, outcome: str, status: int
) -> None:
    fake.acks.auto = outcome
    r = api.put(
        "/v1/memories/m1",
        params={"wait": "true"},
        json={"tenant": "tenant-a", "content": "x"},
        headers=A,
    )
    assert r.status_code == status, r.text
    assert r.json()["error"] == ("conflict" if status == 409 else "invalid_request")
    assert outcome.removeprefix("rejected:") in r.json()["message"]


def test_not_indexed_in_time_answers_504(api: TestClient, fake: FakeSdk) -> None:
    fake.acks.auto = None
    r = add(api, wait=True)
    assert r.status_code == 504 and r.json()["error"] == "timeout"


@pytest.mark.parametrize(
    ("error", "status", "name"),
    [
        (PermanentError(Reason.RECORD_TOO_LARGE, "MessageSizeTooLarge"), 413, "too_large"),
        (PermanentError(Reason.KAFKA_REFUSED, "refused"), 422, "invalid_request"),
    ],
)
def test_a_refused_publish_answers_413_or_422(
    api: TestClient, fake: FakeSdk, error: Exception, status: int, name: str
) -> None:
    fake.publisher.fail_with = error
    r = add(api)
    assert r.status_code == status and r.json()["error"] == name
    assert r.json()["message"].startswith("Kafka refused the event")


@pytest.mark.parametrize("error", [KafkaTimeoutError(), KafkaConnectionError("down")])
def test_kafka_unreachable_answers_503_with_retry_after(
    api: TestClient, fake: FakeSdk, error: Exception
) -> None:
    fake.publisher.fail_with = error
    r = api.delete("/v1/memories/m1", params={"tenant": "tenant-a"}, headers=A)
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.json()["error"] == "unavailable" and "not accepted" in r.json()["message"]


def test_a_bug_in_publishing_is_a_500(api: TestClient, fake: FakeSdk) -> None:
    fake.publisher.fail_with = ValueError("bug")
    assert add(api).status_code == 500


def test_update_delete_erase_publish_their_events(api: TestClient, fake: FakeSdk) -> None:
    body = {"tenant": "tenant-b", "content": "new", "metadata": {"a": "b"}}
    assert api.put("/v1/memories/m1", json=body, headers=A).status_code == 202
    assert (
        api.delete("/v1/memories/m1", params={"tenant": "tenant-b"}, headers=A).status_code == 202
    )
    erase = api.post("/v1/memories/m1/erase", params={"tenant": "tenant-b"}, headers=A)
    assert erase.status_code == 202 and erase.json()["memory_id"] == "m1"
    assert [str(e.type) for e in fake.publisher.events] == [
        "memory.update",
        "memory.delete",
        "memory.erase",
    ]
    assert fake.publisher.events[0].metadata == {"a": "b"}


def test_delete_tenant_publishes_a_tenant_erasure(api: TestClient, fake: FakeSdk) -> None:
    r = api.delete("/v1/tenants/tenant-b", headers=A)
    assert r.status_code == 202, r.text
    (event,) = fake.publisher.events
    assert (str(event.type), event.tenant, event.memory_id) == (
        "memory.erase_tenant",
        "tenant-b",
        None,
    )
    assert r.json()["memory_id"] is None and r.json()["event_id"] == event.event_id
    assert api.delete("/v1/tenants/tenant-c", headers=A).status_code == 403
    bad = api.delete("/v1/tenants/not a tenant", headers=A)
    assert bad.status_code == 422
    assert len(fake.publisher.events) == 1


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "send an API key"),
        ({"Authorization": "Basic key-a"}, "send an API key"),
        ({"Authorization": "Bearer "}, "send an API key"),
        ({"Authorization": "Bearer nope"}, "unknown API key"),
    ],
)
def test_no_or_unknown_key_is_401(api: TestClient, headers: dict[str, str], message: str) -> None:
    r = api.post("/v1/search", json={"tenant": "tenant-a", "query": "x"}, headers=headers)
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized", "message": r.json()["message"]}
    assert message in r.json()["message"]


def test_a_key_touches_only_its_tenants(api: TestClient, fake: FakeSdk) -> None:
    assert add(api, tenant="tenant-c").status_code == 403
    for r in (
        api.get("/v1/memories/m1", params={"tenant": "tenant-c"}, headers=A),
        api.get("/v1/memories/m1/history", params={"tenant": "tenant-c"}, headers=A),
        api.post("/v1/search", json={"tenant": "tenant-c", "query": "x"}, headers=A),
        api.post("/v1/memories/m1/erase", params={"tenant": "tenant-c"}, headers=A),
    ):
        assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert fake.publisher.events == []
    assert add(api, tenant="tenant-c").status_code == 403
    ok = api.post("/v1/memories", json={"tenant": "tenant-c", "content": "x"}, headers=ADMIN)
    assert ok.status_code == 202


@pytest.mark.parametrize(
    "body",
    [
        {"tenant": "tenant-a"},
        {"tenant": "tenant-a", "content": ""},
        {"tenant": "bad tenant!", "content": "x"},
        {"tenant": "tenant-a", "content": "x", "mode": "slow"},
        {"tenant": "tenant-a", "content": "x", "surprise": 1},
    ],
)
def test_an_invalid_body_is_422(api: TestClient, fake: FakeSdk, body: dict[str, Any]) -> None:
    r = api.post("/v1/memories", json=body, headers=A)
    assert r.status_code == 422 and r.json()["error"] == "invalid_request"
    assert r.json()["message"].startswith("body")
    assert fake.publisher.events == []


def test_get_answers_the_memory_or_404(api: TestClient, fake: FakeSdk) -> None:
    fake.reader.put("tenant-a", memory("m1", "likes tea", facts=["tea"], version=2))
    r = api.get("/v1/memories/m1", params={"tenant": "tenant-a"}, headers=A)
    assert r.status_code == 200
    assert r.json()["content"] == "likes tea" and r.json()["facts"] == ["tea"]
    assert r.json()["version"] == 2
    missing = api.get("/v1/memories/m2", params={"tenant": "tenant-a"}, headers=A)
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"


def test_history_answers_the_changes_or_504(api: TestClient, fake: FakeSdk) -> None:
    fake.history.changes["tenant-a/m1"] = [{"version": 1}, {"version": 2}]
    r = api.get("/v1/memories/m1/history", params={"tenant": "tenant-a"}, headers=A)
    assert r.json() == {"memory_id": "m1", "changes": [{"version": 1}, {"version": 2}]}
    fake.history.catching_up = True
    r = api.get("/v1/memories/m1/history", params={"tenant": "tenant-a"}, headers=A)
    assert r.status_code == 504 and r.json()["message"] == "history is still catching up"


def test_search_answers_the_memories_found(api: TestClient, fake: FakeSdk) -> None:
    fake.reader.put("tenant-a", memory("m1", score=0.9))
    body = {"tenant": "tenant-a", "query": "tea", "limit": 5, "filters": {"k": "v"}, "alpha": 1}
    r = api.post("/v1/search", json=body, headers=A)
    assert r.status_code == 200
    assert [(m["memory_id"], m["score"]) for m in r.json()["results"]] == [("m1", 0.9)]
    (call,) = fake.reader.searches
    assert (call["limit"], call["metadata"], call["alpha"]) == (5, {"k": "v"}, 1.0)


def test_search_takes_a_fusion_method_and_refuses_bad_options(
    api: TestClient, fake: FakeSdk
) -> None:
    body = {"tenant": "tenant-a", "query": "tea", "fusion": "ranked", "alpha": 0}
    assert api.post("/v1/search", json=body, headers=A).status_code == 200
    (call,) = fake.reader.searches
    assert (call["fusion"], call["alpha"]) == ("ranked", 0.0)
    for bad in ({"fusion": "rrf"}, {"alpha": 1.5}, {"alpha": -0.1}):
        r = api.post("/v1/search", json={"tenant": "tenant-a", "query": "tea", **bad}, headers=A)
        assert r.status_code == 422, bad
        assert next(iter(bad)) in r.json()["message"]
    assert len(fake.reader.searches) == 1


def test_probes(api: TestClient, fake: FakeSdk) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ready"}
    fake.acks.kafka_down = True
    r = api.get("/readyz")
    assert r.status_code == 503
    assert r.json()["message"] == "kafka ready: False, weaviate ready: True"


def test_routing_errors_have_the_error_body(api: TestClient) -> None:
    assert api.get("/nowhere").json()["error"] == "not_found"
    r = api.patch("/v1/search", headers=A)
    assert r.status_code == 405 and r.json()["error"] == "method_not_allowed"


def test_metrics_count_requests_by_route(api: TestClient) -> None:
    add(api)
    api.get("/nowhere")
    text = api.get("/metrics").text
    assert (
        'agentmem_api_requests_total{method="POST",route="/v1/memories",status="202"} 1.0' in text
    )
    assert 'route="unmatched"' in text


def test_a_body_over_the_limit_is_413_whether_declared_or_chunked(
    api: TestClient, fake: FakeSdk
) -> None:
    big = b'{"tenant": "tenant-a", "content": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    declared = api.post(
        "/v1/memories", content=big, headers={**A, "content-type": "application/json"}
    )
    assert declared.status_code == 413
    assert declared.json()["error"] == "too_large"
    assert "AGENTMEM_API_MAX_BODY_BYTES" in declared.json()["message"]

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    chunked = api.post(
        "/v1/memories", content=chunks(), headers={**A, "content-type": "application/json"}
    )
    assert chunked.status_code == 413
    assert fake.publisher.events == []
    assert add(api).status_code == 202  # a body under the limit goes through


def test_an_add_sent_again_with_its_idempotency_key_is_the_same_event(
    api: TestClient, fake: FakeSdk
) -> None:
    doc = {"tenant": "tenant-a", "content": "likes tea"}
    first = api.post("/v1/memories", json=doc, headers={**A, "Idempotency-Key": "k-1"})
    again = api.post("/v1/memories", json=doc, headers={**A, "Idempotency-Key": "k-1"})
    other = api.post("/v1/memories", json=doc, headers={**A, "Idempotency-Key": "k-2"})
    plain = api.post("/v1/memories", json=doc, headers=A)
    assert first.json()["event_id"] == again.json()["event_id"]
    assert first.json()["memory_id"] == again.json()["memory_id"]
    ids = {r.json()["event_id"] for r in (first, other, plain)}
    assert len(ids) == 3
    assert len(fake.publisher.events) == 4  # published each time; the worker applies it once
