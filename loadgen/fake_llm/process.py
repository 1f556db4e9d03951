"""`loadgen fake-llm` as a child process on a port of its own, for benchmarks and tests.

Started through the stack's launcher (streams/stack/launcher.py): its own session,
its log, ready when ``/stats`` answers, stopped with SIGTERM then SIGKILL.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from streams.stack import launcher


class FakeLlmProcess:
    """The fake LLM server with ``args`` (e.g. ``--latency-ms 150``) on ``port`` (a free
    one by default). A context manager: started on entry, stopped on exit."""

    def __init__(self, log_path: Path, *args: str, port: int | None = None) -> None:
        self.port = port or launcher.free_port()
        self.log_path, self.args = log_path, args
        self.child: launcher.Child | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI-compatible base URL to configure a worker with."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def stats_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/stats"

    def stats(self) -> dict[str, Any]:
        """Request counts so far (the server's ``/stats``)."""
        answer: dict[str, Any] = httpx.get(self.stats_url, timeout=5).json()
        return answer

    def requests(self) -> list[dict[str, Any]]:
        """The items of each of the last requests (the server's ``/requests``)."""
        answer: list[dict[str, Any]] = httpx.get(
            f"http://127.0.0.1:{self.port}/requests", timeout=5
        ).json()
        return answer

    def start(self, timeout_s: float = 60.0) -> FakeLlmProcess:
        """Start the server and wait until it answers."""
        argv = [sys.executable, "-m", "loadgen.cli", "fake-llm", "--port", str(self.port)]
        self.child = launcher.spawn([*argv, *self.args], self.log_path, what="the fake LLM")
        try:
            self.child.wait_http(self.stats_url, timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the server: from now on nothing listens on its port."""
        if self.child is not None:
            self.child.stop(grace_s=5.0)
            self.child = None

    def __enter__(self) -> FakeLlmProcess:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
