"""Worker state folders: one per live process, found again after it ends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from streams.service.slots import claim_slot

HOLD = """
import sys, time
from pathlib import Path
from streams.service.slots import claim_slot
slot = claim_slot(Path(sys.argv[1]))
print(slot.index, flush=True)
time.sleep(60)
"""


def test_each_process_gets_its_own_slot_and_a_dead_ones_slot_is_free_again(
    tmp_path: Path,
) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "0"
        mine = claim_slot(tmp_path)
        assert (mine.index, mine.path) == (1, tmp_path / "slot-1")
        assert (mine.path / "lock").read_text().strip().isdigit()
    finally:
        holder.kill()  # SIGKILL: the lock goes with the process
        holder.wait()
    again = claim_slot(tmp_path)
    assert again.index == 0
    mine.release()
    assert claim_slot(tmp_path).index == 1  # released: free for the next one
    again.release()


def test_a_slot_is_exclusive_within_one_process_too(tmp_path: Path) -> None:
    first, second = claim_slot(tmp_path), claim_slot(tmp_path)
    assert (first.index, second.index) == (0, 1)
    first.release()
    second.release()
