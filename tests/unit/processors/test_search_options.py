"""processors.core.search: the fusion methods and the checks on the options."""

from __future__ import annotations

import pytest

from processors.core.search import DEFAULT_FUSION, FUSIONS, check_options


def test_known_options_pass_and_the_default_is_one_of_them() -> None:
    assert FUSIONS == ("relative_score", "ranked")
    assert DEFAULT_FUSION in FUSIONS
    assert check_options(0.0, "ranked") == "ranked"
    assert check_options(1.0, "relative_score") == "relative_score"


@pytest.mark.parametrize(
    ("alpha", "fusion", "message"),
    [
        (-0.01, "ranked", r"alpha must be between 0 and 1, not -0\.01"),
        (1.01, "ranked", r"alpha must be between 0 and 1, not 1\.01"),
        (0.5, "rrf", "fusion must be one of relative_score, ranked, not 'rrf'"),
        (0.5, "RANKED", "fusion must be one of"),
    ],
)
def test_bad_options_are_named(alpha: float, fusion: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_options(alpha, fusion)
