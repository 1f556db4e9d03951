from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path

from streams.stack import process
from streams.stack.components import port_open, port_released


def test_start_find_and_stop_a_process(tmp_path: Path) -> None:
    files = process.ProcessFiles(tmp_path / "p.pid", tmp_path / "logs" / "p.log")
    marker = f"marker-{tmp_path.name}"
    argv = [sys.executable, "-c", f"import time; print('{marker}', flush=True); time.sleep(60)"]
    pid = process.start(argv, files)
    assert process.running_pid(files, marker) == pid
    assert process.stop(files, marker, timeout_s=10)
    assert process.running_pid(files, marker) is None
    assert not files.pid_file.exists()
    assert not process.stop(files, marker)


def test_stale_pid_file_is_not_ours(tmp_path: Path) -> None:
    files = process.ProcessFiles(tmp_path / "p.pid", tmp_path / "p.log")
    files.pid_file.write_text("1\n")  # init is alive but is not our process
    assert process.running_pid(files, "some-marker") is None
    assert not files.pid_file.exists()


def test_tail_returns_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert process.tail(log, 3).splitlines() == ["line 97", "line 98", "line 99"]
    assert "no log" in process.tail(tmp_path / "missing.log")


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
