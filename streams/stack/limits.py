"""Process limits the local stack's daemons need, raised in this process so that the
children started after it inherit them. Not pure (reads and sets rlimits).

Weaviate keeps about 20 files open per active tenant (one shard each: LSM segments,
the vector index, its logs), so a host's usual limit of a few thousand to 20,000 open
files holds fewer than 1,000 tenants, and Weaviate stops answering when it runs out.
"""

from __future__ import annotations

import logging
import resource
from pathlib import Path

__all__ = ["kernel_open_files_cap", "raise_open_files"]

log = logging.getLogger(__name__)

_NR_OPEN = Path("/proc/sys/fs/nr_open")


def kernel_open_files_cap(default: int = 1_048_576) -> int:
    """The most open files the kernel lets one process have (``fs.nr_open``)."""
    try:
        return int(_NR_OPEN.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def raise_open_files(wanted: int) -> int:
    """Raise this process's open-files limit towards ``wanted`` (capped by the kernel):
    the hard limit too where allowed (root), else the soft limit up to the hard one.
    Never lowers it. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, kernel_open_files_cap())
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft
    try:
        new_hard = hard if hard == resource.RLIM_INFINITY else max(hard, target)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, new_hard))
    except (ValueError, OSError):
        # not allowed past the hard limit: as far as it goes
        reachable = target if hard == resource.RLIM_INFINITY else min(target, hard)
        if reachable > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (reachable, hard))
        log.warning(
            "open files limited to %d (wanted %d): Weaviate holds about %d active tenants",
            max(reachable, soft),
            wanted,
            max(reachable, soft) // 20,
        )
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]
