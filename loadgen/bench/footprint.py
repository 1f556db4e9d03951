"""How much a process or a folder holds: resident memory from procfs, bytes on disk."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = [
    "MIB",
    "open_files",
    "open_files_limit",
    "rss_bytes",
    "soft_open_files_limit",
    "tree_bytes",
    "vm_rss_bytes",
    "wal_bytes",
]

MIB = 1024 * 1024
_WAL = re.compile(r"[0-9]+\.log")


def vm_rss_bytes(status: str) -> int:
    """The ``VmRSS`` of a ``/proc/<pid>/status`` text, in bytes. Pure."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split(":", 1)[1].split()
            if unit != "kB":
                raise ValueError(f"VmRSS in {unit!r}, not kB")
            return int(value) * 1024
    raise ValueError("no VmRSS line (a kernel thread, or the process is a zombie)")


def rss_bytes(pid: int) -> int:
    """The resident memory of process ``pid`` now."""
    return vm_rss_bytes(Path(f"/proc/{pid}/status").read_text())


def tree_bytes(root: Path, wal_only: bool = False) -> int:
    """Bytes on disk of the files under ``root`` (allocated blocks; 0 if it is gone);
    files that vanish while it walks are skipped. ``wal_only``: only RocksDB's
    write-ahead logs (``000123.log``), which hold what its memtables hold, unflushed."""
    total = 0
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if wal_only and not _WAL.fullmatch(name):
                continue
            try:
                total += os.lstat(os.path.join(folder, name)).st_blocks * 512
            except OSError:
                continue
    return total


def soft_open_files_limit(limits: str) -> int | None:
    """The soft "Max open files" of a ``/proc/<pid>/limits`` text (None: unlimited). Pure."""
    for line in limits.splitlines():
        if line.startswith("Max open files"):
            soft = line[len("Max open files") :].split()[0]
            return None if soft == "unlimited" else int(soft)
    raise ValueError("no Max open files line")


def open_files_limit(pid: int) -> int | None:
    """How many files process ``pid`` may hold open (None: unlimited)."""
    return soft_open_files_limit(Path(f"/proc/{pid}/limits").read_text())


def open_files(pid: int, under: str | None = None) -> int:
    """How many file descriptors process ``pid`` holds now; with ``under``, only those
    of files whose path has a folder of that name (one collection's, in Weaviate)."""
    folder = f"/{under}/"
    count = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        if under is None:
            count += 1
            continue
        try:
            count += folder in os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
    return count


def wal_bytes(root: Path) -> int:
    """:func:`tree_bytes` of the RocksDB write-ahead logs under ``root``."""
    return tree_bytes(root, wal_only=True)
