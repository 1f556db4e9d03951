"""The pure parts of the operator tools and of the collection's generations."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

import pytest

from processors.adapters.weaviate.generations import generation_name, generation_number
from streams.service.ops_cli import _position, confirmed
from streams.service.rebuild import Progress


def test_positions_a_group_can_be_moved_to() -> None:
    assert _position("earliest") == "earliest"
    assert _position("latest") == "latest"
    assert _position("1200") == 1200
    assert _position("2026-12-01T10:00:00+00:00") == datetime(2026, 12, 1, 10, tzinfo=UTC)
    with pytest.raises(argparse.ArgumentTypeError, match="earliest, latest"):
        _position("yesterday")


def test_generations_are_named_after_their_alias_only() -> None:
    assert generation_name("Memory", 3) == "Memory_g3"
    assert generation_number("Memory", "Memory_g3") == 3
    assert generation_number("Memory", "Memory_g12") == 12
    # another alias' generations, the alias itself, and near misses are not ours
    assert generation_number("Memory", "MemoryX_g1") is None
    assert generation_number("Memory", "Memory") is None
    assert generation_number("Memory", "Memory_g0") is None
    assert generation_number("Memory", "Memory_g1_old") is None
    assert generation_number("Mem", "Memory_g1") is None


def test_confirmation_is_asked_unless_yes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert confirmed(True, ask=lambda _: "n")
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    assert confirmed(False, ask=lambda _: "y")
    assert not confirmed(False, ask=lambda _: "")
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    assert not confirmed(False, ask=lambda _: "y")  # no terminal: never assumed


def test_progress_reports_lag_and_eta() -> None:
    p = Progress("Memory_g2", applied=600, total=1000, rate=200.0, switched=False)
    assert (p.lag, p.eta_s) == (400, 2.0)
    assert Progress("Memory_g2", 10, 5, 0.0, True).lag == 0
    assert Progress("Memory_g2", 0, 5, 0.0, False).eta_s is None
