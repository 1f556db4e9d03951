"""Processor.run against a fake completer and an in-memory cache: packing, retries, caching."""

from __future__ import annotations

import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from processors.core.errors import LlmError
from processors.core.llm_prompts import Failure, Prompt, PromptKind, cache_key
from processors.core.retry import Backoff
from processors.metrics import build_metrics
from processors.stages.enrich_processor import Processor, ProcessorConfig, balanced_chunks
from tests.fakes import DictCache, FakeCompleter, FakeSleep, Reply, Script, facts_reply

MODEL = "test-model"
PROMPT = Prompt(PromptKind.FACTS, "facts.v1", "You extract facts.")
BACKOFF = Backoff(base_s=0.5, cap_s=8.0)


# -- balanced_chunks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "size", "sizes"),
    [
        (0, 4, []),
        (1, 4, [1]),
        (4, 4, [4]),
        (5, 4, [3, 2]),
        (9, 4, [3, 3, 3]),
        (10, 4, [4, 3, 3]),
        (16, 16, [16]),
        (17, 16, [9, 8]),
        (33, 16, [11, 11, 11]),
        (35, 16, [12, 12, 11]),
        (3, 1, [1, 1, 1]),
        (7, 100, [7]),
    ],
)
def test_balanced_chunk_sizes(n: int, size: int, sizes: list[int]) -> None:
    keys = [f"k{i}" for i in range(n)]
    chunks = balanced_chunks(keys, size)
    assert [len(c) for c in chunks] == sizes
    assert [k for c in chunks for k in c] == keys  # every key once, in order


# -- harness --------------------------------------------------------------------------------


class Harness:
    def __init__(
        self,
        completer: FakeCompleter | None = None,
        cache: DictCache | None = None,
        batch_size: int = 16,
        concurrency: int = 4,
        attempts: int = 4,
    ) -> None:
        self.registry = CollectorRegistry()
        self.completer = completer or FakeCompleter()
        self.cache = cache or DictCache()
        self.sleep = FakeSleep()
        self.processor = Processor(
            PROMPT,
            self.completer,
            self.cache,
            MODEL,
            ProcessorConfig(
                batch_size=batch_size, concurrency=concurrency, attempts=attempts, backoff=BACKOFF
            ),
            build_metrics(self.registry),
            sleep=self.sleep,
        )

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def cache_counts(self) -> tuple[float, float]:
        return (
            self.metric("agentmem_llm_cache_total", kind="facts", result="hit"),
            self.metric("agentmem_llm_cache_total", kind="facts", result="miss"),
        )

    def requests(self, outcome: str) -> float:
        return self.metric("agentmem_llm_requests_total", kind="facts", outcome=outcome)


def memories(*texts: str) -> dict[str, dict[str, Any]]:
    return {f"m{i}": {"memory": t} for i, t in enumerate(texts)}


def key_of(payload: dict[str, Any]) -> str:
    return cache_key(PromptKind.FACTS, MODEL, "facts.v1", payload)


# -- the happy path -----------------------------------------------------------------------


async def test_no_items_no_requests() -> None:
    h = Harness()
    assert await h.processor.run({}) == {}
    assert h.completer.calls == []
    assert h.cache_counts() == (0.0, 0.0)


async def test_misses_are_packed_into_balanced_requests() -> None:
    h = Harness(batch_size=2)
    items = memories("a", "b", "c", "d", "e")
    results = await h.processor.run(items)
    assert results == {f"m{i}": {"facts": [t.upper()]} for i, t in enumerate("abcde")}
    assert sorted(len(c) for c in h.completer.calls) == [1, 2, 2]
    assert sorted(i for ids in h.completer.ids() for i in ids) == sorted(items)
    assert h.cache_counts() == (0.0, 5.0)
    assert h.requests("ok") == 3.0
    assert h.requests("invalid_answer") == 0.0
    assert h.metric("agentmem_llm_prompt_items_count", kind="facts") == 3.0
    assert h.metric("agentmem_llm_prompt_items_sum", kind="facts") == 5.0
    assert h.sleep.delays == []


async def test_request_carries_kind_prompt_items_and_schema() -> None:
    h = Harness()
    await h.processor.run({"x": {"memory": "Alice lives in London"}})
    assert h.completer.kinds == ["facts"]
    messages = h.completer.messages[0]
    assert messages[0] == {"role": "system", "content": "You extract facts."}
    assert json.loads(messages[1]["content"]) == {
        "task": "facts",
        "items": [{"id": "x", "memory": "Alice lives in London"}],
    }
    assert h.completer.formats == [PROMPT.response_format()]


@pytest.mark.parametrize(("n", "batch_size", "requests"), [(1, 16, 1), (16, 16, 1), (17, 16, 2)])
async def test_request_count_is_ceil_of_misses_over_batch_size(
    n: int, batch_size: int, requests: int
) -> None:
    h = Harness(batch_size=batch_size)
    await h.processor.run(memories(*(f"t{i}" for i in range(n))))
    assert len(h.completer.calls) == requests


async def test_concurrency_bound_is_respected() -> None:
    h = Harness(batch_size=2, concurrency=3)
    results = await h.processor.run(memories(*(f"t{i}" for i in range(12))))
    assert len(results) == 12
    assert len(h.completer.calls) == 6
    assert h.completer.max_in_flight == 3


async def test_concurrency_of_one_serialises_requests() -> None:
    h = Harness(batch_size=1, concurrency=1)
    await h.processor.run(memories("a", "b", "c"))
    assert len(h.completer.calls) == 3
    assert h.completer.max_in_flight == 1


# -- the cache ----------------------------------------------------------------------------


async def test_cache_hits_skip_the_llm() -> None:
    cache = DictCache()
    cache.data[key_of({"memory": "a"})] = b'{"facts":["from cache a"]}'
    cache.data[key_of({"memory": "b"})] = b'{"facts":["from cache b"]}'
    h = Harness(cache=cache)
    results = await h.processor.run(memories("a", "b", "c"))
    assert results == {
        "m0": {"facts": ["from cache a"]},
        "m1": {"facts": ["from cache b"]},
        "m2": {"facts": ["C"]},
    }
    assert h.completer.ids() == [["m2"]]
    assert h.cache_counts() == (2.0, 1.0)


async def test_all_hits_make_no_request() -> None:
    cache = DictCache()
    cache.data[key_of({"memory": "a"})] = b'{"facts":[]}'
    h = Harness(cache=cache)
    assert await h.processor.run({"q": {"memory": "a"}}) == {"q": {"facts": []}}
    assert h.completer.calls == []
    assert h.cache_counts() == (1.0, 0.0)
    assert h.requests("ok") == 0.0


async def test_answers_are_cached_without_ids_so_a_second_run_asks_nothing() -> None:
    cache = DictCache()
    first = Harness(cache=cache, batch_size=2)
    results = await first.processor.run(memories("a", "b", "c"))
    assert len(first.completer.calls) == 2
    assert cache.data == {
        key_of({"memory": "a"}): b'{"facts":["A"]}',
        key_of({"memory": "b"}): b'{"facts":["B"]}',
        key_of({"memory": "c"}): b'{"facts":["C"]}',
    }
    second = Harness(cache=cache, batch_size=2)
    # other ids, same content: the id is not part of the key
    again = await second.processor.run({"x": {"memory": "a"}, "y": {"memory": "c"}})
    assert second.completer.calls == []
    assert again == {"x": results["m0"], "y": results["m2"]}
    assert second.cache_counts() == (2.0, 0.0)


async def test_same_processor_second_run_is_all_hits() -> None:
    h = Harness()
    items = memories("a", "b")
    first = await h.processor.run(items)
    second = await h.processor.run(items)
    assert first == second
    assert len(h.completer.calls) == 1
    assert h.cache_counts() == (2.0, 2.0)


async def test_failures_are_not_cached() -> None:
    completer = FakeCompleter(lambda n, items: LlmError("rejected", "400", False))
    h = Harness(completer=completer)
    results = await h.processor.run(memories("a"))
    assert results == {"m0": Failure("rejected", "400")}
    assert h.cache.data == {}


# -- retries ------------------------------------------------------------------------------


async def test_items_missing_from_an_answer_are_retried_alone() -> None:
    def script(n: int, items: list[dict[str, Any]]) -> Reply:
        return facts_reply(items[:1]) if n == 1 else facts_reply(items)

    h = Harness(completer=FakeCompleter(script))
    results = await h.processor.run(memories("a", "b", "c"))
    assert results == {"m0": {"facts": ["A"]}, "m1": {"facts": ["B"]}, "m2": {"facts": ["C"]}}
    assert h.completer.ids() == [["m0", "m1", "m2"], ["m1"], ["m2"]]
    assert h.requests("invalid_answer") == 1.0
    assert h.requests("ok") == 2.0
    assert h.sleep.delays == []  # an answer came back: no outage to wait out
    assert h.metric("agentmem_llm_answers_total", kind="facts", verdict="valid") == 3.0
    assert h.metric("agentmem_llm_answer_items_total", kind="facts", result="valid") == 3.0
    assert h.metric("agentmem_llm_answer_items_total", kind="facts", result="missing") == 2.0
    # the item answered first was cached at once
    assert h.cache.puts[0] == key_of({"memory": "a"})


async def test_malformed_item_is_retried_alone() -> None:
    def script(n: int, items: list[dict[str, Any]]) -> Reply:
        results: list[dict[str, Any]] = [
            {"id": i["id"], "facts": [i["memory"]]} for i in items if i["memory"] != "bad"
        ]
        results += [{"id": i["id"], "facts": 42} for i in items if i["memory"] == "bad"]
        if n > 1:
            results = [{"id": i["id"], "facts": ["fixed"]} for i in items]
        return json.dumps({"results": results})

    h = Harness(completer=FakeCompleter(script))
    results = await h.processor.run(memories("ok", "bad"))
    assert results == {"m0": {"facts": ["ok"]}, "m1": {"facts": ["fixed"]}}
    assert h.completer.ids() == [["m0", "m1"], ["m1"]]


async def test_item_never_answered_fails_after_attempts() -> None:
    def script(n: int, items: list[dict[str, Any]]) -> Reply:
        return facts_reply([i for i in items if i["memory"] != "lost"])

    h = Harness(completer=FakeCompleter(script), attempts=3)
    results = await h.processor.run(memories("a", "lost"))
    assert results == {
        "m0": {"facts": ["A"]},
        "m1": Failure("invalid_answer", "1 of 1 item(s) missing or invalid", '{"results": []}'),
    }
    # asked in its chunk and then alone: at temperature 0 a third ask would repeat the second
    assert h.completer.ids() == [["m0", "m1"], ["m1"]]
    assert h.requests("invalid_answer") == 2.0
    assert h.metric("agentmem_llm_answers_total", kind="facts", verdict="invalid") == 1.0
    assert h.sleep.delays == []


async def test_retriable_errors_retry_up_to_attempts_and_report_the_last() -> None:
    errors = [
        LlmError("timeout", "read timed out", True),
        LlmError("server_error", "502 bad gateway", True),
        LlmError("rate_limited", "429 slow down", True),
    ]
    h = Harness(completer=FakeCompleter(lambda n, items: errors[n - 1]), attempts=3)
    results = await h.processor.run(memories("a", "b"))
    assert results == {
        "m0": Failure("rate_limited", "429 slow down"),
        "m1": Failure("rate_limited", "429 slow down"),
    }
    assert len(h.completer.calls) == 3
    assert len(h.sleep.delays) == 2
    assert 0.25 <= h.sleep.delays[0] <= 0.5  # backoff attempt 0: up to base
    assert 0.25 <= h.sleep.delays[1] <= 1.0  # attempt 1: up to 2 * base
    assert h.cache.data == {}


async def test_retriable_error_then_answer_succeeds() -> None:
    def script(n: int, items: list[dict[str, Any]]) -> Reply:
        return LlmError("timeout", "t", True) if n == 1 else facts_reply(items)

    h = Harness(completer=FakeCompleter(script))
    assert await h.processor.run(memories("a")) == {"m0": {"facts": ["A"]}}
    assert len(h.completer.calls) == 2
    assert len(h.sleep.delays) == 1
    assert h.requests("ok") == 1.0


async def test_non_retriable_error_stops_at_once() -> None:
    completer = FakeCompleter(lambda n, items: LlmError("rejected", "400 bad request", False))
    h = Harness(completer=completer, attempts=4)
    results = await h.processor.run(memories("a", "b"))
    assert results == {
        "m0": Failure("rejected", "400 bad request"),
        "m1": Failure("rejected", "400 bad request"),
    }
    assert len(h.completer.calls) == 1
    assert h.sleep.delays == []


async def test_non_retriable_after_retriable_reports_non_retriable() -> None:
    def script(n: int, items: list[dict[str, Any]]) -> Reply:
        if n == 1:
            return LlmError("timeout", "t", True)
        return LlmError("rejected", "context too long", False)

    h = Harness(completer=FakeCompleter(script), attempts=5)
    results = await h.processor.run(memories("a"))
    assert results == {"m0": Failure("rejected", "context too long")}
    assert len(h.completer.calls) == 2
    assert len(h.sleep.delays) == 1


async def test_unusable_answers_are_retried_then_invalid_answer() -> None:
    h = Harness(completer=FakeCompleter(lambda n, items: "not json"), attempts=3)
    results = await h.processor.run(memories("a"))
    assert results["m0"] == Failure("invalid_answer", "answer is not JSON", "not json")
    assert len(h.completer.calls) == 2
    assert h.requests("invalid_answer") == 2.0
    assert h.metric("agentmem_llm_answers_total", kind="facts", verdict="invalid") == 2.0
    assert len(h.sleep.delays) == 1


async def test_empty_answer_then_good_answer() -> None:
    def script(n: int, items: list[dict[str, Any]]) -> Reply:
        return "" if n == 1 else facts_reply(items)

    h = Harness(completer=FakeCompleter(script))
    assert await h.processor.run(memories("a")) == {"m0": {"facts": ["A"]}}
    assert h.requests("invalid_answer") == 1.0
    assert h.requests("ok") == 1.0


async def test_last_reason_wins_when_reasons_differ() -> None:
    def script(n: int, items: list[dict[str, Any]]) -> Reply:
        return LlmError("timeout", "slow", True) if n == 1 else "{}"

    h = Harness(completer=FakeCompleter(script), attempts=2)
    assert await h.processor.run(memories("a", "b")) == {
        "m0": Failure("invalid_answer", "answer has no results list", "{}"),
        "m1": Failure("invalid_answer", "answer has no results list", "{}"),
    }


async def test_a_failing_chunk_does_not_spoil_the_others() -> None:
    def script(n: int, items: list[dict[str, Any]]) -> Reply:
        if any(i["memory"] == "poison" for i in items):
            return LlmError("rejected", "content policy", False)
        return facts_reply(items)

    h = Harness(completer=FakeCompleter(script), batch_size=1)
    results = await h.processor.run(memories("a", "poison", "c"))
    assert results == {
        "m0": {"facts": ["A"]},
        "m1": Failure("rejected", "content policy"),
        "m2": {"facts": ["C"]},
    }
    assert set(h.cache.data) == {key_of({"memory": "a"}), key_of({"memory": "c"})}


async def test_zero_attempts_reports_not_attempted() -> None:
    h = Harness(attempts=0)
    assert await h.processor.run(memories("a")) == {
        "m0": Failure("not_attempted", "no attempt was made")
    }
    assert h.completer.calls == []


def test_default_config() -> None:
    config = ProcessorConfig()
    assert (config.batch_size, config.concurrency, config.attempts) == (16, 4, 4)
    assert config.backoff == Backoff(base_s=0.5, cap_s=8.0)


async def test_an_open_circuit_defers_the_next_attempt_past_its_cooldown() -> None:
    script: Script = lambda n, items: (  # noqa: E731
        LlmError("circuit_open", "circuit open", True, retry_after_s=7.0)
        if n == 1
        else facts_reply(items)
    )
    h = Harness(completer=FakeCompleter(script), attempts=2)
    results = await h.processor.run(memories("a"))
    assert results == {"m0": {"facts": ["A"]}}
    assert len(h.sleep.delays) == 1
    # not the 0.25-0.5 s of plain backoff: the breaker said 7 s, plus jitter
    assert 7.0 <= h.sleep.delays[0] <= 7.5


# -- real-model answers -------------------------------------------------------------------


async def test_a_fenced_answer_is_repaired_and_counted() -> None:
    def script(n: int, items: list[dict[str, Any]]) -> Reply:
        return "Here you go:\n```json\n" + str(facts_reply(items)) + "\n```"

    h = Harness(completer=FakeCompleter(script))
    assert await h.processor.run(memories("a", "b")) == {
        "m0": {"facts": ["A"]},
        "m1": {"facts": ["B"]},
    }
    assert h.metric("agentmem_llm_answers_total", kind="facts", verdict="repaired") == 1.0
    assert h.metric("agentmem_llm_answer_items_total", kind="facts", result="repaired") == 2.0
    assert h.requests("ok") == 1.0


async def test_a_cut_off_answer_keeps_its_complete_items_and_asks_the_rest_alone() -> None:
    def script(n: int, items: list[dict[str, Any]]) -> Reply:
        whole = str(facts_reply(items))
        return whole[: whole.index('{"id": "m2"') + 12] if n == 1 else whole

    h = Harness(completer=FakeCompleter(script))
    results = await h.processor.run(memories("a", "b", "c"))
    assert results == {"m0": {"facts": ["A"]}, "m1": {"facts": ["B"]}, "m2": {"facts": ["C"]}}
    assert h.completer.ids() == [["m0", "m1", "m2"], ["m2"]]


async def test_every_answer_is_accounted_for_once() -> None:
    replies = iter(["garbage", '{"results": [{"id": "m0", "facts": "x"}]}', "{}"])
    h = Harness(completer=FakeCompleter(lambda n, items: next(replies)), attempts=4)
    await h.processor.run(memories("a", "b"))
    answers = sum(
        h.metric("agentmem_llm_answers_total", kind="facts", verdict=v)
        for v in ("valid", "repaired", "invalid")
    )
    assert answers == len(h.completer.calls) == 3


# -- scopes: a prompt about one tenant, answers cached under their tenant -----------------


async def test_a_prompt_never_packs_items_of_two_scopes() -> None:
    h = Harness(batch_size=16)
    items = memories("a", "b", "c", "d")
    scopes = {"m0": "0\x1ft1\x1f", "m1": "0\x1ft2\x1f", "m2": "0\x1ft1\x1f", "m3": "1\x1ft3\x1f"}
    await h.processor.run(items, scopes)
    asked = sorted(sorted(ids) for ids in h.completer.ids())
    assert asked == [["m0", "m2"], ["m1"], ["m3"]]


async def test_answers_are_cached_under_their_scope_only() -> None:
    """The same text of two tenants is asked for each: one tenant's answer (and so
    whether a text was enriched before) is never served to another."""
    h = Harness()
    await h.processor.run({"x": {"memory": "same"}}, {"x": "0\x1ft1\x1f"})
    await h.processor.run({"y": {"memory": "same"}}, {"y": "0\x1ft2\x1f"})
    assert len(h.completer.calls) == 2
    assert sorted(h.cache.data) == sorted(
        f"0\x1f{t}\x1f" + key_of({"memory": "same"}) for t in ("t1", "t2")
    )
    await h.processor.run({"z": {"memory": "same"}}, {"z": "0\x1ft1\x1f"})
    assert len(h.completer.calls) == 2  # t1's own answer is a hit


async def test_nothing_is_cached_once_keep_says_no() -> None:
    """An erase while the request was out: its answer is used but not cached."""
    h = Harness()
    results = await h.processor.run(memories("a", "b"), keep=lambda: False)
    assert results == {"m0": {"facts": ["A"]}, "m1": {"facts": ["B"]}}
    assert h.cache.data == {}
