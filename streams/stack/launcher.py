"""One way to start, watch and stop the processes we run ourselves.

Every process of ours goes through here: the stack's daemons (with pid files,
streams/stack/process.py), the worker and the fake LLM of `agentmem demo`, the
benchmarks' private workers (loadgen/bench/harness.py) and the workers, APIs and
fake LLMs of the integration tests (tests/integration/harness.py).

A process runs in a session of its own, so that a signal reaches its whole group;
its output is appended to a log file that starts with a header line; it is stopped
with SIGTERM and, after a grace period, SIGKILL. Waiting for readiness is one loop
(:func:`wait_until`) over a probe: an HTTP URL answers 200 (:func:`http_ok`), a TCP
port accepts connections (:func:`port_open`), or any predicate.

Popen objects are never dropped while their process runs: a child's :class:`Child`
holds it, and a daemon (a process meant to outlive us, such as a stack component)
is kept in a registry that is released at exit without the "still running" warning,
because outliving us is what a daemon is for. Our children are reaped as soon as
they are found dead, so none is left as a zombie while we run.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx

from streams.settings import Settings

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


class LaunchError(RuntimeError):
    """A process exited during start-up, or did not become ready in time."""


# ---------------------------------------------------------------- probes


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports (held together while they are chosen)."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def free_port_range(count: int) -> int:
    """The first of ``count`` consecutive free ports (e.g. Kafka's broker and controller
    listeners, or Weaviate's four cluster ports)."""
    for _ in range(100):
        first = free_port()
        if first + count - 1 <= 65535 and all(_bindable(first + i) for i in range(1, count)):
            return first
    raise LaunchError(f"no {count} consecutive free ports")


def port_open(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections on host:port."""
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def port_released(port: int, grace_s: float, host: str = LOOPBACK) -> bool:
    """Whether nothing accepts connections on host:port, waiting up to ``grace_s`` for
    it to be let go: a process that was just killed still holds its sockets while the
    kernel tears it down, after its command line is already gone."""
    deadline = time.monotonic() + grace_s
    while port_open(port, host):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether a GET of ``url`` answers 200."""
    try:
        return httpx.get(url, timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment of a child process that builds exactly these settings."""
    return settings.child_env(os.environ)


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


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    timeout_s: float,
    alive: Callable[[], bool] | None = None,
    log_file: Path | None = None,
    interval_s: float = 0.3,
) -> float:
    """Poll ``ready`` until it holds; the seconds it took. Raises :class:`LaunchError`
    when ``alive`` says the process is gone or after ``timeout_s`` (with the log's tail)."""
    started = time.monotonic()
    deadline = started + timeout_s
    while True:
        if alive is not None and not alive():
            raise LaunchError(f"{what} exited during start-up{_log_note(log_file)}")
        if ready():
            return time.monotonic() - started
        if time.monotonic() >= deadline:
            raise LaunchError(f"{what} was not ready within {timeout_s:.0f}s{_log_note(log_file)}")
        time.sleep(interval_s)


def _log_note(log_file: Path | None) -> str:
    return "" if log_file is None else f"; last lines of {log_file}:\n{tail(log_file)}"


# ---------------------------------------------------------------- pids and process groups

# Every Popen we made whose object still lives (for reaping through it), and the
# daemons, which we keep alive ourselves.
_children: weakref.WeakValueDictionary[int, subprocess.Popen[bytes]] = weakref.WeakValueDictionary()
_daemons: dict[int, subprocess.Popen[bytes]] = {}


@atexit.register
def _release_daemons() -> None:
    """Daemons outlive this process on purpose: let go of them without a warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        _daemons.clear()


def cmdline(pid: int) -> str:
    """The command line of a process ("" if there is none, e.g. it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def is_zombie(pid: int) -> bool:
    """Whether the process has exited (or is gone altogether) but is not reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _reap(pid: int) -> None:
    proc = _children.get(pid)
    if proc is not None:
        if proc.poll() is not None:
            _daemons.pop(pid, None)
        return
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def alive(pid: int) -> bool:
    """Whether the process runs (a child of ours found dead is reaped on the way)."""
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not is_zombie(pid)


def signal_group(pid: int, sig: signal.Signals) -> bool:
    """Send ``sig`` to the process group ``pid`` leads; False if there is none."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return False
    return True


def wait_gone(pid: int, timeout_s: float, interval_s: float = 0.05) -> bool:
    """Wait up to ``timeout_s`` for the process to be dead; whether it is."""
    deadline = time.monotonic() + timeout_s
    while alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)
    return True


def stop_group(pid: int, grace_s: float, kill_wait_s: float = 30.0) -> bool:
    """SIGTERM the process group, SIGKILL after ``grace_s``; False if it was gone.

    A dead process that is not our child is reaped by whoever parents it (init):
    give that a moment, so that nothing of ours is left, even as a zombie."""
    if not signal_group(pid, signal.SIGTERM):
        _reap(pid)
        return False
    if not wait_gone(pid, grace_s, interval_s=0.2):
        log.warning("pid %d ignored SIGTERM for %.0fs; sending SIGKILL", pid, grace_s)
        signal_group(pid, signal.SIGKILL)
        wait_gone(pid, kill_wait_s)
    settle = time.monotonic() + 5.0
    while Path(f"/proc/{pid}").exists() and time.monotonic() < settle:
        _reap(pid)
        time.sleep(0.1)
    _daemons.pop(pid, None)
    return True


# ---------------------------------------------------------------- starting


@dataclass
class Child:
    """A process we started: its own session, its log, and how to wait for and stop it.

    As a context manager it is stopped on exit."""

    argv: list[str]
    log_file: Path
    proc: subprocess.Popen[bytes] = field(repr=False)
    what: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 60) -> str:
        return tail(self.log_file, lines)

    def wait_until(self, ready: Callable[[], bool], timeout_s: float) -> float:
        """Wait until ``ready`` holds while the process runs; the seconds it took."""
        return wait_until(
            ready,
            what=f"{self.what} (pid {self.pid})",
            timeout_s=timeout_s,
            alive=lambda: self.running,
            log_file=self.log_file,
        )

    def wait_http(self, url: str, timeout_s: float) -> float:
        """Wait until ``url`` answers 200."""
        return self.wait_until(lambda: http_ok(url, timeout=1.0), timeout_s)

    def wait_port(self, port: int, timeout_s: float) -> float:
        """Wait until ``port`` on the loopback interface accepts connections."""
        return self.wait_until(lambda: port_open(port), timeout_s)

    def kill(self, sig: signal.Signals = signal.SIGKILL, timeout_s: float = 30.0) -> None:
        """Send ``sig`` to the process group and wait until the process has exited."""
        signal_group(self.pid, sig)
        self.proc.wait(timeout=timeout_s)

    def stop(self, grace_s: float = 30.0) -> None:
        """SIGTERM, then SIGKILL after ``grace_s``; nothing if it has exited already."""
        if self.running:
            stop_group(self.pid, grace_s)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=30)

    def __enter__(self) -> Child:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def spawn(
    argv: Sequence[str],
    log_file: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    what: str | None = None,
    daemon: bool = False,
) -> Child:
    """Start ``argv`` in a session of its own, output appended to ``log_file``.

    ``env`` is the child's whole environment (None: ours). A ``daemon`` may outlive
    us: its Popen is kept until it is stopped or we exit."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        out.write(f"\n--- started {stamp}: {' '.join(argv)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    if daemon:
        _daemons[proc.pid] = proc
    log.debug("started %s as pid %d", argv[0], proc.pid)
    return Child(list(argv), log_file, proc, what or Path(argv[0]).name)
