"""Existing topics checked against what the pipeline needs (pure)."""

from __future__ import annotations

from streams.client.topics import ExistingTopic, Topics, topic_problems, topic_specs
from streams.settings import Settings

SETTINGS = Settings(events_partitions=8)
T = Topics.from_settings(SETTINGS)


def as_created() -> dict[str, ExistingTopic]:
    return {s.name: ExistingTopic(s.partitions, dict(s.config)) for s in topic_specs(SETTINGS)}


def test_topics_as_we_create_them_and_missing_ones_are_fine() -> None:
    assert topic_problems(SETTINGS, as_created()) == []
    assert topic_problems(SETTINGS, {}) == []


def test_an_auto_created_events_topic_is_named_with_the_fix() -> None:
    existing = {
        T.events: ExistingTopic(
            1, {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
        )
    }
    (problem,) = topic_problems(SETTINGS, existing)
    assert T.events in problem and "1 partition(s), 8 expected" in problem
    assert "kafka-topics.sh --delete" in problem and "AGENTMEM_EVENTS_PARTITIONS=1" in problem


def test_an_events_log_that_forgets_is_refused() -> None:
    """A broker default of 7 days' retention would make replay lose events."""
    existing = as_created()
    existing[T.events] = ExistingTopic(
        8, {**existing[T.events].config, "retention.ms": "604800000"}
    )
    (problem,) = topic_problems(SETTINGS, existing)
    assert "retention.ms=604800000, -1 expected" in problem
    assert f"--entity-name {T.events} --add-config retention.ms=-1" in problem


def test_history_must_be_compacted() -> None:
    existing = as_created()
    existing[T.history] = ExistingTopic(8, {"cleanup.policy": "delete"})
    (problem,) = topic_problems(SETTINGS, existing)
    assert T.history in problem and "cleanup.policy=delete, compact expected" in problem


def test_enrich_is_co_partitioned_with_the_events_as_they_are() -> None:
    existing = as_created()
    existing[T.enrich] = ExistingTopic(4, existing[T.enrich].config)
    (problem,) = topic_problems(SETTINGS, existing)
    assert T.enrich in problem and "4 partition(s), 8 expected" in problem
    # an operator who kept 4 events partitions (and set the setting) needs 4 here too
    four = Settings(events_partitions=4)
    kept = {s.name: ExistingTopic(4, dict(s.config)) for s in topic_specs(four)}
    assert topic_problems(four, kept) == []


def test_other_partition_counts_are_the_operators_choice() -> None:
    existing = as_created()
    existing[T.indexed] = ExistingTopic(3, existing[T.indexed].config)
    existing[T.history] = ExistingTopic(16, existing[T.history].config)
    assert topic_problems(SETTINGS, existing) == []
