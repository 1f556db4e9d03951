"""The launcher and the pid-file daemons on real (tiny) processes, without services."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from streams.stack import launcher, process
from streams.stack.launcher import port_open, port_released

SLEEPER = "import time; print('{marker}', flush=True); time.sleep(60)"


def test_start_find_and_stop_a_process(tmp_path: Path) -> None:
    files = process.ProcessFiles(tmp_path / "p.pid", tmp_path / "logs" / "p.log")
    marker = f"marker-{tmp_path.name}"
    argv = [sys.executable, "-c", SLEEPER.format(marker=marker)]
    pid = process.start(argv, files)
    assert process.running_pid(files, marker) == pid
    assert process.stop(files, marker, timeout_s=10)
    assert process.running_pid(files, marker) is None
    assert not files.pid_file.exists()
    assert not process.stop(files, marker)


def test_a_live_process_that_is_not_ours_keeps_its_pid_file(tmp_path: Path) -> None:
    """Not ours by its command line (e.g. the status was asked with another cache
    directory): not reported, but the pid file stays for the run that owns it."""
    files = process.ProcessFiles(tmp_path / "p.pid", tmp_path / "p.log")
    files.pid_file.write_text("1\n")  # init is alive but is not our process
    assert process.running_pid(files, "some-marker") is None
    assert files.pid_file.exists()


def test_the_pid_file_of_a_dead_process_is_removed(tmp_path: Path) -> None:
    files = process.ProcessFiles(tmp_path / "p.pid", tmp_path / "p.log")
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    files.pid_file.write_text(child.stdout)  # that process has exited
    assert process.running_pid(files, "some-marker") is None
    assert not files.pid_file.exists()


def test_tail_returns_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert launcher.tail(log, 3).splitlines() == ["line 97", "line 98", "line 99"]
    assert "no log" in launcher.tail(tmp_path / "missing.log")


def test_port_released_waits_for_a_closing_listener() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    threading.Timer(0.5, listener.close).start()
    assert port_released(port, grace_s=10.0)
    assert not port_open(port)


def test_port_released_gives_up_on_a_port_still_held() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        assert not port_released(port, grace_s=0.5)


def test_a_child_is_waited_for_on_its_port_and_stopped(tmp_path: Path) -> None:
    port = launcher.free_port()
    serve = (
        f"import socket, time; s = socket.create_server(('127.0.0.1', {port})); "
        "print('listen' + 'ing', flush=True); time.sleep(60)"
    )
    with launcher.spawn([sys.executable, "-c", serve], tmp_path / "c.log", what="server") as child:
        assert child.wait_port(port, timeout_s=20) < 20
        assert child.running
    assert not child.running
    assert child.proc.returncode == -signal.SIGTERM
    assert "listening" in child.tail()
    assert child.tail().lstrip().startswith("--- started ")


def test_a_child_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ign' + 'oring', flush=True); time.sleep(60)"
    )
    child = launcher.spawn([sys.executable, "-c", code], tmp_path / "c.log")
    child.wait_until(lambda: "ignoring" in child.tail(), timeout_s=10)
    child.stop(grace_s=1.0)
    assert child.proc.returncode == -signal.SIGKILL


def test_a_child_that_exits_fails_the_wait_with_its_log(tmp_path: Path) -> None:
    code = "print('bad config', flush=True); raise SystemExit(3)"
    child = launcher.spawn([sys.executable, "-c", code], tmp_path / "c.log", what="the thing")
    with pytest.raises(launcher.LaunchError, match=r"the thing .* exited during start-up") as err:
        child.wait_until(lambda: False, timeout_s=30)
    assert "bad config" in str(err.value)


def test_a_wait_gives_up_after_its_timeout(tmp_path: Path) -> None:
    with pytest.raises(launcher.LaunchError, match="not ready within 0s"):
        launcher.wait_until(lambda: False, what="nothing", timeout_s=0.2, interval_s=0.05)


def test_a_daemon_outlives_its_starter_without_a_resource_warning(tmp_path: Path) -> None:
    files = process.ProcessFiles(tmp_path / "d.pid", tmp_path / "d.log")
    marker = f"daemon-{tmp_path.name}"
    starter = (
        "import sys; from pathlib import Path; from streams.stack import process; "
        f"files = process.ProcessFiles(Path({str(files.pid_file)!r}), "
        f"Path({str(files.log_file)!r})); "
        f"process.start([sys.executable, '-c', {SLEEPER.format(marker=marker)!r}], files)"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error::ResourceWarning", "-c", starter],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        assert done.returncode == 0, done.stderr
        assert "ResourceWarning" not in done.stderr
        assert process.running_pid(files, marker) is not None
    finally:
        assert process.stop(files, marker, timeout_s=10)
