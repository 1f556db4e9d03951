"""The open-files limit the local stack raises for Weaviate (streams/stack/limits.py)."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest

from streams.stack.limits import kernel_open_files_cap, raise_open_files


@pytest.fixture
def restored() -> Iterator[tuple[int, int]]:
    """The limits as they were; put back afterwards (as far as a lowered hard allows)."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield before
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (before[0], resource.getrlimit(
            resource.RLIMIT_NOFILE)[1]))  # fmt: skip


def test_the_kernel_cap_is_read() -> None:
    assert kernel_open_files_cap() >= 1024


def test_the_limit_is_never_lowered(restored: tuple[int, int]) -> None:
    soft, _ = restored
    assert raise_open_files(64) == soft
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == soft


def test_the_soft_limit_rises_to_what_is_wanted_within_the_hard_one(
    restored: tuple[int, int],
) -> None:
    _, hard = restored
    resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard))
    wanted = min(hard, kernel_open_files_cap(), 4096)
    assert raise_open_files(wanted) == wanted
    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (wanted, hard)


def test_past_the_hard_limit_it_goes_as_far_as_allowed(restored: tuple[int, int]) -> None:
    """As root the hard limit rises too (CI runs as root); otherwise the soft limit
    stops at the hard one. Either way it ends at least at the old hard limit."""
    _, hard = restored
    cap = kernel_open_files_cap()
    got = raise_open_files(cap)
    if hard == resource.RLIM_INFINITY:
        assert got == cap
    else:
        assert got in (cap, hard)
        assert got >= min(hard, cap)
