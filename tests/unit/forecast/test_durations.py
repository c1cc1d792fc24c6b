"""Expected durations: declared, learned per shape, learned per team."""

from __future__ import annotations

import pytest

from gpupool.forecast import History, Run, Source, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("2h", 7200.0), ("90m", 5400.0), ("1h30m", 5400.0), ("45s", 45.0), ("1.5h", 5400.0)],
)
def test_durations_read_like_kubernetes_ones(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "2d", "30m1h", "-1h"])
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_the_median_of_the_shape_with_its_interquartile_range() -> None:
    history = History(Run("a", 8, 1, hours * 3600.0) for hours in (1, 2, 3, 4, 10))
    learned = history.expected("a", 8, 1)
    assert learned is not None
    assert (learned.seconds, learned.source, learned.runs) == (3 * 3600.0, Source.LEARNED, 5)
    assert (learned.low, learned.high) == (2 * 3600.0, 4 * 3600.0)


def test_too_few_runs_of_a_shape_fall_back_to_the_team() -> None:
    runs = [Run("a", 8, 1, 3600.0), Run("a", 1, 1, 60.0), Run("a", 1, 1, 120.0)]
    learned = History(runs).expected("a", 8, 1)
    assert learned is not None and (learned.seconds, learned.source) == (120.0, Source.TEAM)
    assert History(runs).expected("b", 8, 1) is None


def test_only_the_last_fifty_runs_count() -> None:
    history = History([Run("a", 8, 1, 100.0)] * 60 + [Run("a", 8, 1, 900.0)] * 50)
    learned = history.expected("a", 8, 1)
    assert learned is not None and learned.seconds == 900.0
