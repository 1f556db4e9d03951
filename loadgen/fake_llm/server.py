"""`loadgen fake-llm`: an OpenAI-compatible chat-completions server for tests and benchmarks.

Answers are deterministic functions of the prompt (loadgen/fake_llm/answers.py); latency,
errors (429, 500, timeouts) and their rate are configurable, ``/stats`` counts
requests and ``/requests`` lists the items of the last ones (what each prompt held).
It is never wired into production code: the worker only knows a base URL.

    loadgen fake-llm --port 8700 --latency-ms 150 --error-rate 0.1
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import sys
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from aiohttp import web

from loadgen.fake_llm.answers import answer

log = logging.getLogger(__name__)

RECENT_REQUESTS = 10_000  # prompts kept for GET /requests
ERROR_KINDS = ("429", "500", "timeout")
LATENCY_DISTS = ("fixed", "uniform", "exponential", "lognormal")


@dataclass(frozen=True)
class FakeConfig:
    latency_ms: float = 0.0
    latency_dist: str = "fixed"
    # uniform: +- spread ms; lognormal: sigma of the underlying normal
    latency_spread: float = 0.0
    error_rate: float = 0.0
    errors: tuple[str, ...] = ERROR_KINDS
    hang_s: float = 120.0  # how long a "timeout" error keeps the request open
    seed: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error rate must be within [0, 1]")
        if self.latency_dist not in LATENCY_DISTS:
            raise ValueError(f"latency distribution must be one of {', '.join(LATENCY_DISTS)}")
        unknown = set(self.errors) - set(ERROR_KINDS)
        if unknown or not self.errors:
            raise ValueError(f"errors must be a non-empty subset of {', '.join(ERROR_KINDS)}")
        if self.latency_ms < 0 or self.latency_spread < 0 or self.hang_s < 0:
            raise ValueError("latency, spread and hang must not be negative")

    def latency_s(self, rng: random.Random) -> float:
        base = self.latency_ms / 1000
        if self.latency_dist == "uniform":
            spread = self.latency_spread / 1000
            return max(0.0, rng.uniform(base - spread, base + spread))
        if self.latency_dist == "exponential":
            return rng.expovariate(1 / base) if base > 0 else 0.0
        if self.latency_dist == "lognormal":
            sigma = self.latency_spread or 0.25
            # median = latency_ms
            return base * math.exp(rng.gauss(0, sigma)) if base > 0 else 0.0
        return base


@dataclass
class FakeStats:
    requests: int = 0
    ok: int = 0
    items: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    items_by_kind: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "items": self.items,
            "by_kind": dict(self.by_kind),
            "items_by_kind": dict(self.items_by_kind),
            "errors": dict(self.errors),
        }


def openai_error(status: int, message: str, kind: str) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return web.json_response(body, status=status)


def prompt_of(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The task kind and the JSON payload of the last user message."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if not users or not isinstance(users[-1].get("content"), str):
        raise ValueError("no user message with text content")
    payload = json.loads(users[-1]["content"])
    if not isinstance(payload, dict):
        raise ValueError("the user message must be a JSON object")
    kind = payload.get("task")
    if not isinstance(kind, str):
        raise ValueError("the user message names no task")
    return kind, payload


def completion(model: str, content: str, prompt_chars: int) -> dict[str, Any]:
    prompt_tokens, completion_tokens = prompt_chars // 4 + 1, len(content) // 4 + 1
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class FakeLlm:
    def __init__(self, config: FakeConfig) -> None:
        self.config = config
        self.stats = FakeStats()
        self.rng = random.Random(config.seed)
        # the items of the last requests (GET /requests): what each prompt held
        self.recent: deque[dict[str, Any]] = deque(maxlen=RECENT_REQUESTS)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.stats.requests += 1
        try:
            body = await request.json()
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
            kind, payload = prompt_of(body)
            reply = answer(kind, payload)
        except (ValueError, KeyError, TypeError) as exc:
            self.stats.errors["400"] += 1
            return openai_error(400, f"bad request: {exc}", "invalid_request_error")
        self.stats.by_kind[kind] += 1
        self.recent.append({"kind": kind, "items": payload.get("items", [])})
        config = self.config
        await asyncio.sleep(config.latency_s(self.rng))
        if self.rng.random() < config.error_rate:
            error = self.rng.choice(config.errors)
            self.stats.errors[error] += 1
            if error == "429":
                return openai_error(429, "rate limited (fake)", "rate_limit_exceeded")
            if error == "500":
                return openai_error(500, "internal error (fake)", "server_error")
            await asyncio.sleep(config.hang_s)
            return openai_error(504, "timed out (fake)", "timeout")
        self.stats.ok += 1
        self.stats.items += len(payload.get("items", []))
        self.stats.items_by_kind[kind] += len(payload.get("items", []))
        content = json.dumps(reply, separators=(",", ":"))
        model = str(body.get("model", "agentmem-fake"))
        return web.json_response(completion(model, content, len(await request.text())))

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": "agentmem-fake", "object": "model", "owned_by": "x"}],
            }
        )

    async def requests_view(self, request: web.Request) -> web.Response:
        return web.json_response(list(self.recent))

    async def stats_view(self, request: web.Request) -> web.Response:
        return web.json_response({**self.stats.as_dict(), "config": asdict(self.config)})

    async def configure(self, request: web.Request) -> web.Response:
        """Change latency or error rate of the running fake (tests script outages with it)."""
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            if "errors" in changes:
                changes["errors"] = tuple(changes["errors"])
            self.config = replace(self.config, **changes)
        except (ValueError, TypeError) as exc:
            return openai_error(400, f"bad config: {exc}", "invalid_request_error")
        return web.json_response(asdict(self.config))

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/stats", self.stats_view)
        app.router.add_get("/requests", self.requests_view)
        app.router.add_post("/admin/config", self.configure)
        return app


def serve(host: str, port: int, config: FakeConfig) -> None:
    fake = FakeLlm(config)
    sys.stdout.write(f"fake LLM on http://{host}:{port}/v1 ({config})\n")
    sys.stdout.flush()
    web.run_app(fake.app(), host=host, port=port, print=None, access_log=None)
