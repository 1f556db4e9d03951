"""A worker's own state folder, so that any number of workers run on one host (or
share one volume) with no flags. Not pure (files and locks).

Workers under one state root take the first free ``slot-N`` folder: free means no
live process holds the exclusive lock on its ``lock`` file. The lock belongs to the
open file, so it goes when the process ends, however it ends (SIGKILL included), and
a restarted worker usually finds its old slot again, with the local state it left
(then only what others changed since is restored from the changelog).
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MAX_SLOTS", "Slot", "claim_slot"]

MAX_SLOTS = 256


@dataclass
class Slot:
    """A claimed state folder; held until :meth:`release` or the process ends."""

    index: int
    path: Path
    fd: int

    def release(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)  # closing the file drops its lock
            self.fd = -1


def claim_slot(root: Path, max_slots: int = MAX_SLOTS) -> Slot:
    """The first ``root/slot-N`` no live process holds, now held by this one."""
    for index in range(max_slots):
        path = root / f"slot-{index}"
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return Slot(index, path, fd)
    raise RuntimeError(f"all {max_slots} worker state folders under {root} are in use")
