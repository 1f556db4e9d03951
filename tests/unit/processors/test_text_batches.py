"""Batches of texts of near length (processors.core.text_batches)."""

from __future__ import annotations

import random

import pytest

from processors.core.text_batches import by_length, in_order


def test_runs_are_sorted_by_length_and_cut_at_the_size() -> None:
    lengths = [50, 3, 17, 3, 200, 8, 17]
    runs = by_length(lengths, 3)
    assert [len(run) for run in runs] == [3, 3, 1]
    flat = [i for run in runs for i in run]
    assert sorted(flat) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths)
    # ties keep their order: the two texts of length 3, then the two of 17
    assert flat[:2] == [1, 3] and flat[3:5] == [2, 6]


def test_a_long_text_never_shares_a_run_with_the_shortest() -> None:
    rng = random.Random(3)
    lengths = [rng.randint(5, 40) for _ in range(255)] + [2_000]
    runs = by_length(lengths, 64)
    longest = next(run for run in runs if len(lengths) - 1 in run)
    assert min(lengths[i] for i in longest) >= sorted(lengths)[-64]


def test_results_go_back_to_the_texts_order() -> None:
    texts = ["ccc", "a", "bb", "dddd", "a"]
    runs = by_length([len(t) for t in texts], 2)
    results = [[texts[i].upper() for i in run] for run in runs]
    assert in_order(runs, results) == ["CCC", "A", "BB", "DDDD", "A"]


def test_in_order_refuses_results_that_do_not_match_the_runs() -> None:
    with pytest.raises(ValueError, match="has 1 results"):
        in_order([[0, 1]], [["x"]])
    with pytest.raises(ValueError, match="appears twice"):
        in_order([[0], [0]], [["x"], ["y"]])
    with pytest.raises(ValueError, match="out of range"):
        in_order([[0], [5]], [["x"], ["y"]])


def test_no_texts_no_runs_and_a_size_below_one_is_refused() -> None:
    assert by_length([], 8) == []
    with pytest.raises(ValueError, match="at least 1"):
        by_length([1], 0)
