"""The index worker as a background process of the local stack (`make demo`)."""

from __future__ import annotations

import sys
import time

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
