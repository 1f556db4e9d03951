"""One OpenAI-compatible chat endpoint behind a circuit breaker, with outcomes in metrics.

Retries are the caller's (processors.stages.enrich_processor): this makes one request
and says how it ended, so that every attempt is counted and the breaker sees it. An
adapter (network I/O): implements :class:`processors.ports.Completer`; the error it
raises is :class:`processors.core.errors.LlmError`.
"""

from __future__ import annotations

import time
from typing import Any

import openai

from processors.core.circuit import CircuitBreaker, CircuitState
from processors.core.errors import LlmError
from processors.metrics import Metrics

__all__ = ["ENDPOINT_FAILURES", "LlmEndpoint", "classify", "openai_client"]


def classify(exc: Exception) -> LlmError:
    """An openai client exception as an outcome, and whether trying again may help."""
    detail = str(exc)[:300]
    if isinstance(exc, openai.APITimeoutError):
        return LlmError("timeout", detail, True)
    if isinstance(exc, openai.APIConnectionError):
        return LlmError("connection_error", detail, True)
    if isinstance(exc, openai.RateLimitError):
        return LlmError("rate_limited", detail, True)
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500 or exc.status_code in (408, 409):
            return LlmError("server_error", detail, True)
        return LlmError("rejected", detail, False)
    return LlmError("client_error", detail, False)


# Outcomes that say the endpoint itself is failing (a bad answer or a refused
# request is not the endpoint's health).
ENDPOINT_FAILURES = frozenset({"timeout", "connection_error", "rate_limited", "server_error"})


class LlmEndpoint:
    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        breaker: CircuitBreaker,
        metrics: Metrics,
        endpoint_label: str,
    ) -> None:
        self.client, self.model, self.breaker, self.metrics = client, model, breaker, metrics
        self.label = endpoint_label
        gauge = metrics.llm_circuit_state.labels(endpoint_label)
        gauge.set(int(breaker.state))
        previous = breaker.on_change

        def on_change(state: CircuitState) -> None:
            gauge.set(int(state))
            if previous is not None:
                previous(state)

        breaker.on_change = on_change

    async def complete(
        self, kind: str, messages: list[dict[str, str]], response_format: dict[str, Any]
    ) -> str:
        """The answer's text; raises LlmError (outcome circuit_open without a request)."""
        probe = self.breaker.state == CircuitState.HALF_OPEN
        if not self.breaker.allow():
            self.metrics.llm_requests.labels(kind, "circuit_open").inc()
            raise LlmError(
                "circuit_open",
                f"circuit open for {self.label}",
                True,
                retry_after_s=self.breaker.retry_after(),
            )
        started = time.perf_counter()
        recorded = False
        try:
            # plain dicts are what the endpoint takes; the client's TypedDicts are stricter
            response = await self.client.chat.completions.create(  # type: ignore[call-overload]
                model=self.model,
                messages=messages,
                response_format=response_format,
                temperature=0,
            )
        except openai.OpenAIError as exc:
            error = classify(exc)
            self.breaker.record(error.outcome not in ENDPOINT_FAILURES, probe)
            recorded = True
            self.metrics.llm_requests.labels(kind, error.outcome).inc()
            raise error from exc
        finally:
            self.metrics.llm_seconds.labels(kind).observe(time.perf_counter() - started)
            if probe and not recorded:
                self.breaker.release_probe()
        self.breaker.record(True, probe)
        # The caller counts the outcome (ok or invalid_answer) once it has read the answer.
        if not response.choices:
            return ""
        return response.choices[0].message.content or ""


def openai_client(base_url: str, api_key: str, timeout_s: float) -> openai.AsyncOpenAI:
    """The client with its own retries off: ours count attempts and feed the breaker."""
    return openai.AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=0)
