"""One OpenAI-compatible chat endpoint behind a circuit breaker, with outcomes in metrics.

Retries are the caller's (processors.stages.enrich_processor): this makes one request
and says how it ended, so that every attempt is counted and the breaker sees it. An
adapter (network I/O): implements :class:`processors.ports.Completer`; the error it
raises is :class:`processors.core.errors.LlmError`.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import openai

from processors.core.circuit import CircuitBreaker, CircuitState
from processors.core.errors import LlmError
from processors.core.llm_prompts import OutputMode, request_for
from processors.metrics import Metrics

__all__ = ["ENDPOINT_FAILURES", "LlmEndpoint", "classify", "openai_client", "refused"]

log = logging.getLogger(__name__)

# A 500 whose message says the request itself is wrong (llama-cpp-python answers a
# response_format it does not know with a 500): asking again cannot help.
REFUSAL = re.compile(
    r"invalid|not supported|unsupported|validation error|unrecognized|unknown|"
    r"must be one of|extra inputs|not allowed|bad request|exceed",
    re.IGNORECASE,
)


def refused(status: int, message: str) -> bool:
    """Whether a status and its message say the endpoint refuses this request (as
    opposed to failing): 4xx but 408 and 409, or a 500 that says it is invalid (429s
    are rate limits, told apart by the client before this)."""
    if status in (408, 409):
        return False
    if 400 <= status < 500:
        return True
    return status == 500 and REFUSAL.search(message) is not None


# An endpoint may echo the key it was sent ("Incorrect API key provided: sk-ab***yz"):
# an error's text goes to logs and dead letters, the key never does.
KEY_ECHO = re.compile(r"(api[ _-]?key[^:'\"]{0,40}:\s*)[^\s'\",]+|\bsk-[\w*.-]+", re.IGNORECASE)


def redacted(text: str) -> str:
    """``text`` without what looks like an API key. Pure."""
    return KEY_ECHO.sub(lambda found: f"{found.group(1) or ''}[redacted]", text)


def classify(exc: Exception) -> LlmError:
    """An openai client exception as an outcome, and whether trying again may help."""
    detail = redacted(str(exc))[:300]
    if isinstance(exc, openai.APITimeoutError):
        return LlmError("timeout", detail, True)
    if isinstance(exc, openai.APIConnectionError):
        return LlmError("connection_error", detail, True)
    if isinstance(exc, openai.RateLimitError):
        return LlmError("rate_limited", detail, True)
    if isinstance(exc, openai.APIStatusError):
        if refused(exc.status_code, f"{exc.message} {exc.body}"):
            return LlmError("rejected", detail, False)
        return LlmError("server_error", detail, True)
    return LlmError("client_error", detail, False)


# Outcomes that say the endpoint itself is failing (a bad answer or a refused
# request is not the endpoint's health).
ENDPOINT_FAILURES = frozenset({"timeout", "connection_error", "rate_limited", "server_error"})


class LlmEndpoint:
    """``mode``: the structured-output mode to use, or "auto" to start with json_schema
    and step down (:meth:`OutputMode.fallback`) each time the endpoint refuses a mode;
    the mode that worked is kept for every later request. ``max_tokens`` bounds one
    answer (a small model can loop until its context is full)."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        breaker: CircuitBreaker,
        metrics: Metrics,
        endpoint_label: str,
        *,
        mode: str = "auto",
        max_tokens: int | None = None,
    ) -> None:
        self.client, self.model, self.breaker, self.metrics = client, model, breaker, metrics
        self.label, self.max_tokens = endpoint_label, max_tokens
        self.auto = mode == "auto"
        self.mode = OutputMode.JSON_SCHEMA if self.auto else OutputMode(mode)
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
        """The answer's text; raises LlmError (outcome circuit_open without a request,
        rejected once every mode was refused)."""
        while True:
            mode = self.mode
            try:
                return await self._once(kind, *request_for(mode, messages, response_format))
            except LlmError as exc:
                fallback = mode.fallback()
                if not (self.auto and exc.outcome == "rejected" and fallback is not None):
                    raise
                if self.mode == mode:  # another request may have stepped down already
                    log.warning(
                        "%s refused structured output %s (%s); trying %s",
                        self.label,
                        mode.value,
                        exc.detail[:200],
                        fallback.value,
                    )
                    self.mode = fallback

    async def _once(
        self, kind: str, messages: list[dict[str, str]], response_format: dict[str, Any] | None
    ) -> str:
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
        extra: dict[str, Any] = {}
        if response_format is not None:
            extra["response_format"] = response_format
        if self.max_tokens is not None:
            extra["max_tokens"] = self.max_tokens
        try:
            response = await self.client.chat.completions.create(
                model=self.model,
                # plain dicts are what the endpoint takes; the client's TypedDicts are stricter
                messages=messages,  # type: ignore[arg-type]
                temperature=0,
                **extra,
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
