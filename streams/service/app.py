"""The faust app and its raw-bytes topics: configuration only (pure apart from faust's
objects; nothing connects until the worker runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust

from streams.client.topics import Topics
from streams.kafka_connection import KafkaConnection
from streams.settings import Settings


def create_app(settings: Settings, datadir: Path) -> faust.App:
    """The faust app; ``datadir`` is this worker process's own folder (its slot). Its
    clients reach the brokers as every other client does (the settings' connection)."""
    session_s = settings.kafka_session_timeout_s
    connection = KafkaConnection.from_settings(settings)
    return faust.App(
        settings.worker_id,
        broker=connection.faust_broker_url(),
        broker_credentials=connection.faust_credentials(),
        store="memory://",
        datadir=str(datadir),
        # A silent member's partitions move after the session timeout; heartbeats at a
        # third of it, as Kafka advises.
        broker_session_timeout=session_s,
        broker_heartbeat_interval=session_s / 3,
        topic_partitions=settings.events_partitions,
        topic_replication_factor=settings.replication_factor,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        web_enabled=False,
        autodiscover=False,
        key_serializer="raw",
        value_serializer="raw",
        table_standby_replicas=0,
        # Bytes per partition per fetch (faust's default is 1 MiB). aiokafka sends
        # the next fetch to a broker only once every partition's prefetched records
        # are consumed, and that round trip stalled the agent for up to a second
        # every ~2,000 events carrying vectors; 8 MiB makes the rounds rarer
        # (duplicate path 1,450 -> ~2,100 events/s).
        consumer_max_fetch_size=8 * 1024 * 1024,
    )


def raw_topic(app: faust.App, name: str, partitions: int) -> Any:
    """A topic of raw bytes: our stages parse and validate values themselves."""
    return app.topic(
        name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )


def events_topic(app: faust.App, settings: Settings) -> Any:
    return raw_topic(app, Topics.from_settings(settings).events, settings.events_partitions)
