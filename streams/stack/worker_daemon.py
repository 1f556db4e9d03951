"""The worker, and the demo's stand-in LLM, as background processes of the local stack
(`make demo`)."""

from __future__ import annotations

import sys
import time
from urllib.parse import urlsplit

import httpx

from streams.settings import Settings
from streams.stack import process
from streams.stack.process import ProcessFiles

MARKER = "streams.cli worker"


def worker_files(settings: Settings) -> ProcessFiles:
    return ProcessFiles(
        pid_file=settings.stack_dir / "pids" / "worker.pid",
        log_file=settings.stack_dir / "logs" / "worker" / "worker.log",
    )


def ensure_worker(settings: Settings, timeout_s: float = 120.0) -> str:
    """Start the worker unless ours runs; wait until its metrics answer."""
    files = worker_files(settings)
    outcome = "reused"
    if process.running_pid(files, MARKER) is None:
        process.start([sys.executable, "-m", "streams.cli", "worker"], files)
        outcome = "started"
    url = f"http://127.0.0.1:{settings.worker_metrics_port}/metrics"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.running_pid(files, MARKER) is None:
            raise RuntimeError(f"the worker exited; last lines:\n{process.tail(files.log_file)}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return outcome
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"the worker did not answer on {url}:\n{process.tail(files.log_file)}")


def stop_worker(settings: Settings) -> bool:
    return process.stop(worker_files(settings), MARKER, timeout_s=60.0)


FAKE_LLM_MARKER = "loadgen.cli fake-llm"
FAKE_LLM_LATENCY_MS = 150


def fake_llm_files(settings: Settings) -> ProcessFiles:
    return ProcessFiles(
        pid_file=settings.stack_dir / "pids" / "fake-llm.pid",
        log_file=settings.stack_dir / "logs" / "fake-llm" / "fake-llm.log",
    )


def ensure_fake_llm(settings: Settings, timeout_s: float = 30.0) -> str:
    """For the demo only: start the fake LLM where the settings point, if that is a
    loopback address where nothing answers yet. A real endpoint is left alone."""
    url = urlsplit(settings.llm_base_url)
    if url.hostname not in ("127.0.0.1", "localhost") or url.port is None:
        return "not ours (a real endpoint)"
    stats = f"http://127.0.0.1:{url.port}/stats"
    try:
        httpx.get(stats, timeout=1)
        return "reused"
    except httpx.HTTPError:
        pass
    files = fake_llm_files(settings)
    command = [sys.executable, "-m", "loadgen.cli", "fake-llm", "--port", str(url.port)]
    process.start([*command, "--latency-ms", str(FAKE_LLM_LATENCY_MS)], files)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(stats, timeout=1).status_code == 200:
                return "started"
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"the fake LLM did not start:\n{process.tail(files.log_file)}")


def stop_fake_llm(settings: Settings) -> bool:
    return process.stop(fake_llm_files(settings), FAKE_LLM_MARKER, timeout_s=10.0)
