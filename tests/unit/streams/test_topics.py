"""Existing topics checked against what the pipeline needs (pure)."""

from __future__ import annotations

from aiokafka import ConsumerRecord

from streams.client.history import HistoryView
from streams.client.topics import (
    ExistingTopic,
    Topics,
    topic_problems,
    topic_specs,
    topic_warnings,
)
from streams.service.compaction import ROLL_KEYS, roll_interval_s, roll_plan
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


def test_compacted_topics_are_created_with_the_compaction_bound() -> None:
    settings = Settings(topic_prefix="u.", compaction_bound_ms=5000)
    specs = {spec.name: spec.config for spec in topic_specs(settings)}
    for name in ("u.memory.history", "u.memory.state"):
        assert specs[name]["segment.ms"] == "5000"
        assert specs[name]["max.compaction.lag.ms"] == "5000"
    assert "max.compaction.lag.ms" not in specs["u.memory.events"]


def test_an_existing_compacted_topic_with_another_bound_is_a_warning_not_a_problem() -> None:
    settings = Settings(topic_prefix="u.", compaction_bound_ms=5000)
    existing = {
        spec.name: ExistingTopic(spec.partitions, dict(spec.config))
        for spec in topic_specs(settings)
    }
    history = existing["u.memory.history"]
    existing["u.memory.history"] = ExistingTopic(
        history.partitions, {**history.config, "segment.ms": str(24 * 3600 * 1000)}
    )
    assert topic_problems(settings, existing) == []
    (warning,) = topic_warnings(settings, existing)
    assert "u.memory.history has segment.ms=86400000, 5000 expected" in warning
    assert "--add-config segment.ms=5000" in warning


def test_the_roll_tombstones_go_to_every_partition_of_the_compacted_topics() -> None:
    settings = Settings(topic_prefix="u.", compaction_bound_ms=5000)
    plan = roll_plan(settings, {"memory.history": [0, 1], "memory.state": [0]})
    assert plan == [
        ("u.memory.history", 0, ROLL_KEYS["memory.history"]),
        ("u.memory.history", 1, ROLL_KEYS["memory.history"]),
        ("u.memory.state", 0, ROLL_KEYS["memory.state"]),
    ]
    assert roll_interval_s(settings) == 2.5
    assert roll_interval_s(Settings(compaction_bound_ms=1000)) == 1.0


def test_a_roll_tombstone_changes_nothing_for_the_history_view() -> None:
    view = HistoryView(Settings(), "h")
    view.init_state()
    change = ConsumerRecord("h", 0, 0, 0, 0, b"t/m/1", b'{"v": 1}', None, 0, 0, [])
    view.on_record(change)
    roll = ConsumerRecord("h", 0, 1, 0, 0, ROLL_KEYS["memory.history"], None, None, 0, 0, [])
    view.on_record(roll)
    assert view._by_memory["t/m"] == {1: {"v": 1}}
