"""classify() of openai errors, and LlmEndpoint.complete with a fake client and breaker."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

import httpx2
import openai
import pytest
from prometheus_client import CollectorRegistry

from processors.adapters.llm_client import ENDPOINT_FAILURES, LlmEndpoint, classify, openai_client
from processors.core.circuit import CircuitBreaker, CircuitState
from processors.core.errors import LlmError
from processors.core.llm_prompts import OutputMode
from processors.metrics import build_metrics
from tests.fakes import FakeClock

URL = "http://llm.test/v1/chat/completions"
LABEL = "http://llm.test/v1"
MESSAGES = [{"role": "system", "content": "s"}, {"role": "user", "content": "{}"}]
FORMAT: dict[str, Any] = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}


# openai's exceptions take httpx2 requests and responses (the client's own HTTP library)
def http_request() -> httpx2.Request:
    return httpx2.Request("POST", URL)


def status_error(status: int, message: str = "failed") -> openai.APIStatusError:
    response = httpx2.Response(status, request=http_request())
    if status == 429:
        return openai.RateLimitError(message, response=response, body=None)
    if status >= 500:
        return openai.InternalServerError(message, response=response, body=None)
    return openai.APIStatusError(message, response=response, body=None)


# -- classify -------------------------------------------------------------------------------


def test_timeout() -> None:
    error = classify(openai.APITimeoutError(request=http_request()))
    assert (error.outcome, error.retriable) == ("timeout", True)
    assert error.detail == "Request timed out."


def test_connection_error() -> None:
    exc = openai.APIConnectionError(message="connection refused", request=http_request())
    error = classify(exc)
    assert (error.outcome, error.detail, error.retriable) == (
        "connection_error",
        "connection refused",
        True,
    )


def test_rate_limited() -> None:
    error = classify(status_error(429, "slow down"))
    assert (error.outcome, error.detail, error.retriable) == ("rate_limited", "slow down", True)


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529, 408, 409])
def test_server_errors_are_retriable(status: int) -> None:
    error = classify(status_error(status))
    assert (error.outcome, error.retriable) == ("server_error", True)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 413, 422])
def test_client_side_statuses_are_rejected(status: int) -> None:
    error = classify(status_error(status))
    assert (error.outcome, error.retriable) == ("rejected", False)


def test_rate_limit_error_built_directly_from_api_status_error_class() -> None:
    exc = openai.APIStatusError(
        "too many", response=httpx2.Response(429, request=http_request()), body=None
    )
    # a plain APIStatusError with 429 is not a RateLimitError: 4xx, not retriable
    assert (classify(exc).outcome, classify(exc).retriable) == ("rejected", False)


@pytest.mark.parametrize("exc", [openai.OpenAIError("no api key"), ValueError("bad")])
def test_anything_else_is_a_client_error(exc: Exception) -> None:
    error = classify(exc)
    assert (error.outcome, error.detail, error.retriable) == ("client_error", str(exc), False)


def test_detail_is_truncated() -> None:
    error = classify(status_error(500, "x" * 1000))
    assert error.detail == "x" * 300


def test_llm_error_message() -> None:
    error = LlmError("timeout", "read timed out", True)
    assert str(error) == "timeout: read timed out"
    assert (error.outcome, error.detail, error.retriable) == ("timeout", "read timed out", True)


def test_endpoint_failures() -> None:
    assert (
        frozenset({"timeout", "connection_error", "rate_limited", "server_error"})
        == ENDPOINT_FAILURES
    )


# -- LlmEndpoint ----------------------------------------------------------------------------


def response(content: str | None) -> SimpleNamespace:
    return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=content))])


class Gate:
    """A reply that waits until opened (a request still in flight)."""

    def __init__(self, reply: object) -> None:
        self.reply = reply
        self.opened = asyncio.Event()


class FakeCompletions:
    def __init__(self, replies: list[object]) -> None:
        self.replies = replies
        self.calls: list[dict[str, Any]] = []

    async def create(self, **kwargs: Any) -> object:
        self.calls.append(kwargs)
        reply = self.replies.pop(0)
        if isinstance(reply, Gate):
            await reply.opened.wait()
            reply = reply.reply
        if isinstance(reply, BaseException):
            raise reply
        return reply


class FakeClient:
    def __init__(self, *replies: object) -> None:
        self.completions = FakeCompletions(list(replies))
        self.chat = SimpleNamespace(completions=self.completions)

    @property
    def calls(self) -> list[dict[str, Any]]:
        return self.completions.calls


class Harness:
    def __init__(
        self,
        *replies: object,
        min_calls: int = 1,
        cooldown_s: float = 10.0,
        mode: str = "json_schema",
        max_tokens: int | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.clock = FakeClock()
        self.changes: list[CircuitState] = []
        self.breaker = CircuitBreaker(
            window=min_calls,
            min_calls=min_calls,
            failure_ratio=1.0,
            cooldown_s=cooldown_s,
            clock=self.clock,
            on_change=self.changes.append,
        )
        self.client = FakeClient(*replies)
        self.endpoint = LlmEndpoint(
            cast(openai.AsyncOpenAI, self.client),
            "the-model",
            self.breaker,
            build_metrics(self.registry),
            LABEL,
            mode=mode,
            max_tokens=max_tokens,
        )

    async def complete(self, kind: str = "facts") -> str:
        return await self.endpoint.complete(kind, MESSAGES, FORMAT)

    def metric(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def requests(self, outcome: str, kind: str = "facts") -> float | None:
        return self.metric("agentmem_llm_requests_total", kind=kind, outcome=outcome)

    def seconds_count(self, kind: str = "facts") -> float | None:
        return self.metric("agentmem_llm_request_seconds_count", kind=kind)

    def state(self) -> CircuitState:
        return self.breaker.state

    def gauge(self) -> float | None:
        return self.metric("agentmem_llm_circuit_state", endpoint=LABEL)


async def test_answer_text_is_returned() -> None:
    h = Harness(response('{"results": []}'))
    assert await h.complete() == '{"results": []}'
    assert h.client.calls == [
        {
            "model": "the-model",
            "messages": MESSAGES,
            "response_format": FORMAT,
            "temperature": 0,
        }
    ]
    assert h.seconds_count() == 1.0
    # the caller counts ok / invalid_answer once it has parsed the answer
    assert h.requests("ok") is None
    assert h.state() == CircuitState.CLOSED


@pytest.mark.parametrize("reply", [SimpleNamespace(choices=[]), response(None)])
async def test_no_content_is_an_empty_string(reply: object) -> None:
    h = Harness(reply)
    assert await h.complete() == ""


@pytest.mark.parametrize(
    ("exc", "outcome", "retriable", "opens"),
    [
        (openai.APITimeoutError(request=http_request()), "timeout", True, True),
        (
            openai.APIConnectionError(request=http_request()),
            "connection_error",
            True,
            True,
        ),
        (status_error(429), "rate_limited", True, True),
        (status_error(503), "server_error", True, True),
        (status_error(400), "rejected", False, False),
        (status_error(401), "rejected", False, False),
        (openai.OpenAIError("odd"), "client_error", False, False),
    ],
)
async def test_errors_are_classified_counted_and_fed_to_the_breaker(
    exc: Exception, outcome: str, retriable: bool, opens: bool
) -> None:
    h = Harness(exc, min_calls=1)  # one failure opens
    with pytest.raises(LlmError) as info:
        await h.complete("importance")
    assert info.value.outcome == outcome
    assert info.value.retriable is retriable
    assert info.value.__cause__ is exc
    assert h.requests(outcome, "importance") == 1.0
    assert h.seconds_count("importance") == 1.0
    assert h.state() == (CircuitState.OPEN if opens else CircuitState.CLOSED)


async def test_circuit_open_refuses_without_calling_the_client() -> None:
    h = Harness(status_error(503), response("never"), min_calls=1)
    with pytest.raises(LlmError):
        await h.complete("decision")
    assert h.state() == CircuitState.OPEN
    with pytest.raises(LlmError) as info:
        await h.complete("decision")
    assert (info.value.outcome, info.value.retriable) == ("circuit_open", True)
    assert info.value.detail == f"circuit open for {LABEL}"
    assert len(h.client.calls) == 1
    assert h.requests("circuit_open", "decision") == 1.0
    assert h.requests("server_error", "decision") == 1.0
    assert h.seconds_count("decision") == 1.0  # the refused call took no time to count


async def test_probe_after_cooldown_closes_on_success() -> None:
    h = Harness(status_error(503), response("ok"), min_calls=1)
    with pytest.raises(LlmError):
        await h.complete()
    h.clock.now = 10.0
    assert await h.complete() == "ok"
    assert h.state() == CircuitState.CLOSED
    assert len(h.client.calls) == 2


async def test_probe_failure_reopens() -> None:
    h = Harness(status_error(503), openai.APITimeoutError(request=http_request()), min_calls=1)
    with pytest.raises(LlmError):
        await h.complete()
    h.clock.now = 10.0
    with pytest.raises(LlmError) as info:
        await h.complete()
    assert info.value.outcome == "timeout"
    assert h.state() == CircuitState.OPEN
    with pytest.raises(LlmError) as refused:
        await h.complete()
    assert refused.value.outcome == "circuit_open"


async def test_rejections_do_not_open_the_circuit() -> None:
    replies = [status_error(400) for _ in range(5)]
    h = Harness(*replies, min_calls=2)
    for _ in range(5):
        with pytest.raises(LlmError):
            await h.complete()
    assert h.state() == CircuitState.CLOSED
    assert h.requests("rejected") == 5.0
    assert len(h.client.calls) == 5


async def test_gauge_follows_the_breaker_and_keeps_the_previous_callback() -> None:
    h = Harness(status_error(500), response("ok"), min_calls=1)
    assert h.gauge() == 0.0
    with pytest.raises(LlmError):
        await h.complete()
    assert h.gauge() == 2.0
    h.clock.now = 10.0
    assert h.state() == CircuitState.HALF_OPEN
    assert h.gauge() == 1.0
    await h.complete()
    assert h.gauge() == 0.0
    assert h.changes == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]


async def test_gauge_starts_at_the_breakers_state() -> None:
    registry = CollectorRegistry()
    clock = FakeClock()
    breaker = CircuitBreaker(window=1, min_calls=1, failure_ratio=1.0, clock=clock)
    breaker.record(False)
    LlmEndpoint(cast(openai.AsyncOpenAI, FakeClient()), "m", breaker, build_metrics(registry), "ep")
    assert registry.get_sample_value("agentmem_llm_circuit_state", {"endpoint": "ep"}) == 2.0


async def test_cancelled_probe_does_not_wedge_the_breaker() -> None:
    h = Harness(status_error(503), asyncio.CancelledError(), response("ok"), min_calls=1)
    with pytest.raises(LlmError):
        await h.complete()
    h.clock.now = 10.0
    with pytest.raises(asyncio.CancelledError):
        await h.complete()  # the probe is cancelled (shutdown, timeout of a caller, ...)
    h.clock.now = 1000.0
    assert await h.complete() == "ok"
    assert h.state() == CircuitState.CLOSED
    assert len(h.client.calls) == 3


async def test_probe_ending_in_an_unexpected_error_frees_the_slot() -> None:
    h = Harness(status_error(503), RuntimeError("client bug"), response("ok"), min_calls=1)
    with pytest.raises(LlmError):
        await h.complete()
    h.clock.now = 10.0
    with pytest.raises(RuntimeError):
        await h.complete()
    assert h.state() == CircuitState.HALF_OPEN
    assert await h.complete() == "ok"
    assert h.state() == CircuitState.CLOSED


async def test_late_failure_of_an_old_request_does_not_decide_the_probe() -> None:
    slow = Gate(openai.APITimeoutError(request=http_request()))
    probe = Gate(response("probe ok"))
    h = Harness(slow, status_error(503), status_error(503), probe, min_calls=2)
    old = asyncio.create_task(h.complete())
    await asyncio.sleep(0)  # the slow request is in flight while the circuit is closed
    for _ in range(2):
        with pytest.raises(LlmError):
            await h.complete()
    assert h.state() == CircuitState.OPEN
    h.clock.now = 10.0
    probing = asyncio.create_task(h.complete())
    await asyncio.sleep(0)
    assert h.state() == CircuitState.HALF_OPEN
    slow.opened.set()  # the old request times out while the probe is out
    with pytest.raises(LlmError) as info:
        await old
    assert info.value.outcome == "timeout"
    assert h.state() == CircuitState.HALF_OPEN
    probe.opened.set()
    assert await probing == "probe ok"
    assert h.state() == CircuitState.CLOSED
    assert h.changes == [CircuitState.OPEN, CircuitState.HALF_OPEN, CircuitState.CLOSED]
    assert h.requests("timeout") == 1.0
    assert h.requests("server_error") == 2.0


async def test_openai_client_has_its_own_retries_off() -> None:
    client = openai_client("http://llm.test/v1", "key", 12.5)
    try:
        assert client.max_retries == 0
        assert client.timeout == 12.5
        assert str(client.base_url) == "http://llm.test/v1/"
        assert client.api_key == "key"
    finally:
        await client.close()


# -- refusals and structured-output modes ---------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        "Invalid response_format type json_schema",
        "1 validation error for CreateChatCompletionRequest",
        "response_format json_schema is not supported",
        "Requested tokens (9000) exceed context window of 8192",
    ],
)
def test_a_500_that_says_the_request_is_invalid_is_a_refusal(message: str) -> None:
    error = classify(status_error(500, message))
    assert (error.outcome, error.retriable) == ("rejected", False)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_only_a_500_is_read_for_a_refusal(status: int) -> None:
    error = classify(status_error(status, "invalid upstream response"))
    assert (error.outcome, error.retriable) == ("server_error", True)


def test_a_plain_500_is_an_outage() -> None:
    error = classify(status_error(500, "internal error: out of memory"))
    assert (error.outcome, error.retriable) == ("server_error", True)


async def test_a_refused_500_does_not_open_the_circuit() -> None:
    h = Harness(*[status_error(500, "invalid request") for _ in range(4)], min_calls=2)
    for _ in range(4):
        with pytest.raises(LlmError) as info:
            await h.complete()
        assert info.value.outcome == "rejected"
    assert h.state() == CircuitState.CLOSED


async def test_auto_steps_down_to_json_object_and_keeps_it() -> None:
    h = Harness(
        status_error(500, "Invalid response_format"),
        response('{"results": []}'),
        response('{"results": []}'),
        mode="auto",
        min_calls=1,
    )
    assert await h.complete() == '{"results": []}'
    assert await h.complete() == '{"results": []}'
    first, second, third = h.client.calls
    assert first["response_format"] == FORMAT
    schema = FORMAT["json_schema"]["schema"]
    assert second["response_format"] == {"type": "json_object", "schema": schema}
    assert third["response_format"] == second["response_format"]  # remembered
    assert second["messages"] == MESSAGES
    assert h.state() == CircuitState.CLOSED
    assert h.requests("rejected") == 1.0


async def test_auto_ends_without_response_format_then_gives_up() -> None:
    h = Harness(*[status_error(400, "no") for _ in range(4)], mode="auto")
    with pytest.raises(LlmError) as info:
        await h.complete()
    assert info.value.outcome == "rejected"
    assert [c.get("response_format", {}).get("type") for c in h.client.calls] == [
        "json_schema",
        "json_object",
        None,
    ]
    assert h.endpoint.mode == OutputMode.NONE


async def test_a_fixed_mode_never_steps_down() -> None:
    h = Harness(status_error(400, "no"), mode="json_object")
    with pytest.raises(LlmError):
        await h.complete()
    assert len(h.client.calls) == 1
    assert h.client.calls[0]["response_format"]["type"] == "json_object"


async def test_outages_do_not_step_down() -> None:
    h = Harness(status_error(503), mode="auto", min_calls=5)
    with pytest.raises(LlmError):
        await h.complete()
    assert h.endpoint.mode == OutputMode.JSON_SCHEMA


async def test_max_tokens_is_sent_when_set() -> None:
    h = Harness(response("{}"), max_tokens=512)
    await h.complete()
    assert h.client.calls[0]["max_tokens"] == 512
