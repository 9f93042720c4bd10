"""Triage levels only rise within a conversation; None or unknown values count as "info"."""

from __future__ import annotations

import itertools

import pytest

from bot.safety import LEVELS as EXPORTED_LEVELS
from bot.safety import raise_level as exported_raise_level
from bot.safety.triage import LEVELS, highest, level_rank, normalize_level, raise_level

ODD = [None, "", "unknown", "EMERGENCY", 3]


def test_levels_are_the_design_values_in_order() -> None:
    assert LEVELS == ("info", "routine", "urgent", "emergency")
    assert EXPORTED_LEVELS is LEVELS and exported_raise_level is raise_level


@pytest.mark.parametrize("current,new", list(itertools.product(LEVELS, LEVELS)))
def test_raise_level_is_the_higher_of_the_two(current: str, new: str) -> None:
    result = raise_level(current, new)
    assert result == LEVELS[max(LEVELS.index(current), LEVELS.index(new))]
    assert level_rank(result) >= level_rank(current)      # never lowers
    assert raise_level(result, new) == result               # idempotent
    assert raise_level(new, current) == result              # order does not matter


@pytest.mark.parametrize("odd", ODD)
@pytest.mark.parametrize("level", LEVELS)
def test_none_and_unknown_count_as_info(odd: object, level: str) -> None:
    assert raise_level(odd, level) == level   # type: ignore[arg-type]
    assert raise_level(level, odd) == level   # type: ignore[arg-type]
    assert normalize_level(odd) == "info"     # type: ignore[arg-type]


def test_a_later_no_never_lowers_the_level() -> None:
    level = "info"
    for new in ["routine", "emergency", None, "info", "routine", "urgent"]:
        previous = level
        level = raise_level(level, new)
        assert level_rank(level) >= level_rank(previous)
    assert level == "emergency"


def test_highest() -> None:
    assert highest([]) == "info"
    assert highest(["routine", None, "urgent", "info"]) == "urgent"
