"""Start, find and stop the local stack's daemons through pid files.

A component is "ours" when its pid file names a live process whose command line
still carries the marker we started it with; anything else on the port is left
alone. Starting, signalling and reaping go through streams/stack/launcher.py.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.stack import launcher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessFiles:
    """Where one component keeps its pid and its log."""

    pid_file: Path
    log_file: Path


def running_pid(files: ProcessFiles, marker: str) -> int | None:
    """The pid of our live process, or None. The pid file is removed only when its
    process is gone: a live process whose command line does not show ``marker`` (a
    command run with another cache directory, say) keeps it."""
    try:
        pid = int(files.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if not launcher.alive(pid):
        files.pid_file.unlink(missing_ok=True)
        return None
    return pid if marker in launcher.cmdline(pid) else None


def start(
    argv: Sequence[str],
    files: ProcessFiles,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a daemon (own session) appending to its log, with ``env`` over our
    environment; record its pid."""
    files.pid_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    child = launcher.spawn(argv, files.log_file, env=full_env, cwd=cwd, daemon=True)
    # Until exec completes, /proc/<pid>/cmdline is still ours: wait for the new
    # program, so that a marker check right after start does not misjudge it.
    deadline = time.monotonic() + 5.0
    while argv[0] not in launcher.cmdline(child.pid) and child.running:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    files.pid_file.write_text(f"{child.pid}\n")
    log.info("started %s as pid %d", argv[0], child.pid)
    return child.pid


def stop(files: ProcessFiles, marker: str, timeout_s: float = 30.0) -> bool:
    """SIGTERM our process group, SIGKILL after the timeout. True if something was stopped."""
    pid = running_pid(files, marker)
    stopped = pid is not None and launcher.stop_group(pid, timeout_s)
    files.pid_file.unlink(missing_ok=True)
    return stopped


def stop_together(
    targets: Sequence[tuple[ProcessFiles, str]], timeout_s: float = 30.0
) -> list[bool]:
    """SIGTERM every one of our processes among ``targets`` (files, marker) at once, then
    SIGKILL those still there after the timeout; whether each was stopped.

    For the nodes of a Kafka cluster: stopped one after the other, the last node is left
    without a controller quorum, and its controlled shutdown waits for one until it is
    killed."""
    pids = [running_pid(files, marker) for files, marker in targets]
    stopped = [pid is not None and launcher.signal_group(pid, signal.SIGTERM) for pid in pids]
    deadline = time.monotonic() + timeout_s
    for pid in pids:
        if pid is not None:  # waits out the grace, then SIGKILL; reaps
            launcher.stop_group(pid, max(0.0, deadline - time.monotonic()))
    for files, _marker in targets:
        files.pid_file.unlink(missing_ok=True)
    return stopped
