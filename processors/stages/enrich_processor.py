"""One enrichment processor (facts, importance or decision): cache, pack, ask, retry.

Items are looked up in ``llm_cache`` first, under their scope (partition and tenant);
the misses are packed, scope by scope (a prompt never holds memories of two tenants),
into balanced prompts of at most ``batch_size`` memories, sent with at most ``concurrency``
requests in flight. A request that fails (timeout, 5xx) is retried with backoff and
full jitter; the items an answer lacks or spoils are asked for again alone, and
given up after two unusable answers. What still fails is reported as a Failure with
the last reason (and the model's raw answer, if it answered); nothing raises out of
``run``. Every answer is counted by verdict (valid, repaired, invalid). Depends on
ports and core only; sleep and jitter are injected.

Not pure (awaits I/O), through the ports only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from processors.core.errors import LlmError
from processors.core.llm_answers import Verdict, read_answer
from processors.core.llm_prompts import Failure, Prompt, Result, cache_key
from processors.core.retry import Backoff
from processors.metrics import Metrics
from processors.ports import Cache, Completer, Sleep

__all__ = ["Processor", "ProcessorConfig", "balanced_chunks"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessorConfig:
    """How many items a prompt packs, requests in flight, attempts and their backoff."""

    batch_size: int = 16
    concurrency: int = 4
    attempts: int = 4
    backoff: Backoff = field(default_factory=lambda: Backoff(base_s=0.5, cap_s=8.0))


def balanced_chunks(keys: list[str], size: int) -> list[list[str]]:
    """ceil(n / size) chunks whose sizes differ by at most one."""
    if not keys:
        return []
    count = math.ceil(len(keys) / size)
    step, extra = divmod(len(keys), count)
    chunks, start = [], 0
    for i in range(count):
        end = start + step + (1 if i < extra else 0)
        chunks.append(keys[start:end])
        start = end
    return chunks


class Processor:
    """One enrichment kind over many items: cached answers first, the rest asked."""

    def __init__(
        self,
        prompt: Prompt,
        completer: Completer,
        cache: Cache,
        model: str,
        config: ProcessorConfig,
        metrics: Metrics,
        *,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.prompt, self.completer, self.cache, self.model = prompt, completer, cache, model
        self.config, self.metrics, self.sleep = config, metrics, sleep
        self.kind = prompt.kind.value
        self._slots = asyncio.Semaphore(config.concurrency)
        self._rng = rng or random.Random()

    async def run(
        self,
        items: dict[str, dict[str, Any]],
        scopes: Mapping[str, str] | None = None,
        keep: Callable[[], bool] | None = None,
    ) -> dict[str, Result]:
        """The result of every item (by item id): cached, answered, or a Failure.

        ``scopes``: item id -> scope (:func:`processors.core.cache_scope.cache_scope`;
        none: one scope for all). A prompt packs items of one scope only, and answers are
        cached under their scope. ``keep``: answers are cached only while it is True (an
        erase in between forgets what was cached before it, and this keeps what was
        asked before it from being cached after)."""
        results: dict[str, Result] = {}
        keys: dict[str, str] = {}
        # Items with the same cache key (same scope and content) are asked once and
        # share the answer.
        same: dict[str, list[str]] = {}
        by_scope: dict[str, list[str]] = {}
        for item_id, payload in items.items():
            scope = scopes.get(item_id, "") if scopes is not None else ""
            key = scope + cache_key(self.prompt.kind, self.model, self.prompt.version, payload)
            cached = self.cache.get(key)
            if cached is not None:
                self.metrics.llm_cache.labels(self.kind, "hit").inc()
                results[item_id] = json.loads(cached)
                continue
            self.metrics.llm_cache.labels(self.kind, "miss").inc()
            if key in same:
                same[key].append(item_id)
            else:
                same[key] = [item_id]
                keys[item_id] = key
                by_scope.setdefault(scope, []).append(item_id)
        chunks = [
            chunk
            for ids in by_scope.values()
            for chunk in balanced_chunks(ids, self.config.batch_size)
        ]
        answered = await asyncio.gather(
            *(self._chunk({i: items[i] for i in chunk}, keys, keep or _always) for chunk in chunks)
        )
        for part in answered:
            for item_id, result in part.items():
                for twin in same[keys[item_id]]:
                    results[twin] = result
        return results

    async def _chunk(
        self,
        items: dict[str, dict[str, Any]],
        keys: dict[str, str],
        keep: Callable[[], bool],
        attempts: int | None = None,
        unusable: int = 0,
    ) -> dict[str, Result]:
        """Ask for ``items`` in one request until it is answered (requests that fail
        are retried with backoff, ``attempts`` in all); the items its answer lacks or
        spoils are then asked for alone. An item is given up after two unusable
        answers (``unusable`` so far): at temperature 0 a model answers the same
        prompt the same way, so only another prompt (the item alone) can help."""
        attempts = self.config.attempts if attempts is None else attempts
        results: dict[str, Result] = {}
        pending = dict(items)
        last = Failure("not_attempted", "no attempt was made")
        not_before = 0.0  # an open circuit says when asking again can help
        for attempt in range(attempts):
            if attempt:
                delay = self.config.backoff.delay(attempt - 1, self._rng)
                # past the breaker's cooldown (plus jitter), so that attempts are not all
                # spent while it is open and the probe gets its chance
                if not_before:
                    delay = max(delay, not_before + self._rng.uniform(0, delay))
                await self.sleep(delay)
            not_before = 0.0
            try:
                answer, raw = await self._ask(pending)
            except LlmError as exc:
                not_before = exc.retry_after_s
                last = Failure(exc.outcome, exc.detail)
                if not exc.retriable:
                    break
                continue
            cacheable = keep()
            for item_id, value in answer.results.items():
                if cacheable:
                    value_json = json.dumps(value, separators=(",", ":")).encode()
                    self.cache.put(keys[item_id], value_json)
                results[item_id] = value
                del pending[item_id]
            if not pending:
                return results
            why = answer.problem or "nothing usable in the answer"
            last = Failure("invalid_answer", why, raw)
            unusable += 1
            if unusable >= 2:
                break
            if len(items) > 1 and attempt + 1 < attempts:
                alone = await asyncio.gather(
                    *(
                        self._chunk({i: pending[i]}, keys, keep, attempts - attempt - 1, unusable)
                        for i in pending
                    )
                )
                for part in alone:
                    results.update(part)
                return results
        for item_id in pending:
            results[item_id] = last
        log.warning(
            "%s: %d item(s) failed: %s (%s)",
            self.kind,
            len(pending),
            last.reason,
            last.detail,
        )
        return results

    async def _ask(self, items: dict[str, dict[str, Any]]) -> tuple[Answer, str]:
        """One request for ``items``: the usable results without their ids, and the
        raw answer. Every answer is counted by verdict, its items by result."""
        packed = [{"id": item_id, **payload} for item_id, payload in items.items()]
        async with self._slots:
            self.metrics.llm_prompt_items.labels(self.kind).observe(len(packed))
            content = await self.completer.complete(
                self.kind, self.prompt.messages(packed), self.prompt.response_format()
            )
        parsed = read_answer(self.prompt.kind, content, list(items))
        self.metrics.llm_requests.labels(
            self.kind, "ok" if len(parsed.results) == len(items) else "invalid_answer"
        ).inc()
        self.metrics.llm_answers.labels(self.kind, parsed.verdict.value).inc()
        found = len(parsed.results)
        items_result = "repaired" if parsed.verdict == Verdict.REPAIRED else "valid"
        self.metrics.llm_answer_items.labels(self.kind, items_result).inc(found)
        self.metrics.llm_answer_items.labels(self.kind, "missing").inc(len(items) - found)
        if parsed.repairs:
            log.debug("%s answer repaired: %s", self.kind, ", ".join(parsed.repairs))
        results = {i: r.model_dump(exclude={"id"}) for i, r in parsed.results.items()}
        return Answer(results, parsed.verdict, parsed.problem), content


def _always() -> bool:
    return True


@dataclass(frozen=True)
class Answer:
    """What one request brought: usable results by item id, and how the answer read."""

    results: dict[str, dict[str, Any]]
    verdict: Verdict
    problem: str
