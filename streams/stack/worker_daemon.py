"""The worker, and the demo's stand-in LLM, as background daemons of the local stack
(`agentmem demo`): started through pid files (streams/stack/process.py) unless ours
already run, and waited for through the launcher's one readiness loop."""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit

from streams.settings import Settings
from streams.stack import launcher, process
from streams.stack.process import ProcessFiles

MARKER = "streams.cli worker"
FAKE_LLM_MARKER = "loadgen.cli fake-llm"
FAKE_LLM_LATENCY_MS = 150


def _files(settings: Settings, name: str) -> ProcessFiles:
    return ProcessFiles(
        pid_file=settings.stack_dir / "pids" / f"{name}.pid",
        log_file=settings.stack_dir / "logs" / name / f"{name}.log",
    )


def worker_files(settings: Settings) -> ProcessFiles:
    return _files(settings, "worker")


def fake_llm_files(settings: Settings) -> ProcessFiles:
    return _files(settings, "fake-llm")


def ensure_worker(settings: Settings, timeout_s: float = 120.0) -> str:
    """Start the worker unless ours runs; wait until its metrics answer.
    'started' or 'reused'; raises :class:`launcher.LaunchError` (a RuntimeError)."""
    files = worker_files(settings)
    outcome = "reused"
    if process.running_pid(files, MARKER) is None:
        env = settings.child_env(os.environ)  # the demo's settings, whatever they came from
        process.start([sys.executable, "-m", "streams.cli", "worker"], files, env=env)
        outcome = "started"
    url = f"http://127.0.0.1:{settings.worker_metrics_port}/metrics"
    launcher.wait_until(
        lambda: launcher.http_ok(url, timeout=1.0),
        what=f"the worker (metrics on {url})",
        timeout_s=timeout_s,
        alive=lambda: process.running_pid(files, MARKER) is not None,
        log_file=files.log_file,
    )
    return outcome


def stop_worker(settings: Settings) -> bool:
    return process.stop(worker_files(settings), MARKER, timeout_s=60.0)


def ensure_fake_llm(settings: Settings, timeout_s: float = 30.0) -> str:
    """For the demo only: start the fake LLM where the settings point, if that is a
    loopback address where nothing answers yet. A real endpoint is left alone."""
    url = urlsplit(settings.llm_base_url)
    if url.hostname not in ("127.0.0.1", "localhost") or url.port is None:
        return "not ours (a real endpoint)"
    stats = f"http://127.0.0.1:{url.port}/stats"
    if launcher.http_ok(stats, timeout=1.0):
        return "reused"
    files = fake_llm_files(settings)
    command = [sys.executable, "-m", "loadgen.cli", "fake-llm", "--port", str(url.port)]
    process.start([*command, "--latency-ms", str(FAKE_LLM_LATENCY_MS)], files)
    launcher.wait_until(
        lambda: launcher.http_ok(stats, timeout=1.0),
        what="the fake LLM",
        timeout_s=timeout_s,
        alive=lambda: process.running_pid(files, FAKE_LLM_MARKER) is not None,
        log_file=files.log_file,
    )
    return "started"


def stop_fake_llm(settings: Settings) -> bool:
    return process.stop(fake_llm_files(settings), FAKE_LLM_MARKER, timeout_s=10.0)
