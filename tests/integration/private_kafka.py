"""A private single Kafka broker (KRaft) on free ports, for tests that stop and
restart it. Its files live under the test's own directory."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.settings import Settings
from streams.stack import launcher, process
from streams.stack.build import Artifacts, ensure_kafka
from streams.stack.components import KAFKA_CONTROLLER_PORT_OFFSET, Kafka


def broker_port() -> int:
    """A free port whose neighbour (the controller listener) is free too."""
    return launcher.free_port_range(KAFKA_CONTROLLER_PORT_OFFSET + 1)


class Broker:
    """One private Kafka broker (KRaft, combined broker and controller)."""

    def __init__(self, settings: Settings) -> None:
        self.kafka = Kafka(settings)
        none = Path("/nonexistent")  # Kafka's config and command line use only the jars
        self.artifacts = Artifacts(ensure_kafka(settings.cache_dir), none, none, none)

    def pid(self) -> int | None:
        return process.running_pid(self.kafka.files, self.kafka.marker)

    async def start(self) -> float:
        """Start the process; the monotonic time it was started at."""
        k = self.kafka
        await asyncio.to_thread(k.prepare, self.artifacts)
        started = time.monotonic()
        await asyncio.to_thread(process.start, k.argv(self.artifacts), k.files, k.env(), k.home)
        return started

    async def wait_healthy(self, timeout_s: float = 60.0) -> float:
        """Wait until the broker answers metadata requests; the monotonic time it did."""
        await asyncio.to_thread(
            launcher.wait_until,
            self.kafka.healthy,
            what="Kafka",
            timeout_s=timeout_s,
            alive=lambda: self.pid() is not None,
            log_file=self.kafka.files.log_file,
            interval_s=0.2,
        )
        return time.monotonic()

    def _kill(self, sig: signal.Signals, timeout_s: float) -> None:
        pid = self.pid()
        assert pid is not None, "broker is not running"
        launcher.signal_group(pid, sig)
        assert launcher.wait_gone(pid, timeout_s), f"broker ignored {sig.name} for {timeout_s}s"

    async def kill(self, sig: signal.Signals, timeout_s: float = 45.0) -> float:
        """Send ``sig`` to the broker's process group; wait until it is gone."""
        await asyncio.to_thread(self._kill, sig, timeout_s)
        return time.monotonic()

    def down(self) -> None:
        process.stop(self.kafka.files, self.kafka.marker, timeout_s=30.0)


@dataclass
class PrivateKafka:
    settings: Settings
    broker: Broker


@asynccontextmanager
async def running_private_kafka(
    base: Settings, work_dir: Path, **overrides: Any
) -> AsyncIterator[PrivateKafka]:
    """A single broker of our own on free ports, its files under ``work_dir``;
    ``overrides`` go into the returned settings (which name the broker)."""
    values: dict[str, Any] = {
        "stack_dir": work_dir / "stack",
        "cache_dir": base.cache_dir,
        "kafka_bootstrap_servers": f"127.0.0.1:{broker_port()}",
        "kafka_heap": "512m",
        "topic_prefix": f"restart.{uuid.uuid4().hex[:8]}.",
        "events_partitions": 4,
    }
    values.update(overrides)
    private = Settings(**values)
    broker = Broker(private)
    try:
        await broker.start()
        await broker.wait_healthy()
        yield PrivateKafka(private, broker)
    finally:
        await asyncio.to_thread(broker.down)
    assert broker.pid() is None
