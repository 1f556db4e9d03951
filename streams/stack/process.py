"""Start, find and stop the local stack's processes through pid files.

A component is "ours" when its pid file names a live process whose command line
still carries the marker we started it with; anything else on the port is left
alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessFiles:
    """Where one component keeps its pid and its log."""

    pid_file: Path
    log_file: Path


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def running_pid(files: ProcessFiles, marker: str) -> int | None:
    """The pid of our live process, or None (a stale pid file is removed)."""
    try:
        pid = int(files.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if marker in _cmdline(pid) and not _is_zombie(pid):
        return pid
    files.pid_file.unlink(missing_ok=True)
    return None


def start(
    argv: Sequence[str],
    files: ProcessFiles,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start a detached process (own session) appending to its log; record its pid."""
    files.log_file.parent.mkdir(parents=True, exist_ok=True)
    files.pid_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    with files.log_file.open("ab") as out:
        out.write(
            f"\n--- started {time.strftime('%Y-%m-%dT%H:%M:%S')}: {' '.join(argv)}\n".encode()
        )
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
        )
    # Until exec completes, /proc/<pid>/cmdline is still ours: wait for the new
    # program, so that a marker check right after start does not misjudge it.
    deadline = time.monotonic() + 5.0
    while argv[0] not in _cmdline(proc.pid) and proc.poll() is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    files.pid_file.write_text(f"{proc.pid}\n")
    log.info("started %s as pid %d", argv[0], proc.pid)
    return proc.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not _is_zombie(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(files: ProcessFiles, marker: str, timeout_s: float = 30.0) -> bool:
    """SIGTERM our process group, SIGKILL after the timeout. True if something was stopped."""
    pid = running_pid(files, marker)
    if pid is None:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        files.pid_file.unlink(missing_ok=True)
        return False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(pid)
        if not _alive(pid):
            break
        time.sleep(0.2)
    else:
        log.warning("pid %d ignored SIGTERM for %.0fs; sending SIGKILL", pid, timeout_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        _reap(pid)
    # The process is dead; give whoever parents it (init) a moment to reap it, so
    # that nothing of ours is left even as a zombie when `stack down` returns.
    settle = time.monotonic() + 5.0
    while Path(f"/proc/{pid}").exists() and time.monotonic() < settle:
        time.sleep(0.1)
    files.pid_file.unlink(missing_ok=True)
    return True


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error reports."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])
