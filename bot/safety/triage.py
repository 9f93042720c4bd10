"""Triage levels and the one rule about them: within a conversation they only rise."""

from __future__ import annotations

from typing import Iterable

LEVELS = ("info", "routine", "urgent", "emergency")
_RANK = {level: rank for rank, level in enumerate(LEVELS)}


def level_rank(level: str | None) -> int:
    """Position of a level in LEVELS; None or an unknown value ranks as "info"."""
    return _RANK.get(level, 0) if isinstance(level, str) else 0


def normalize_level(level: str | None) -> str:
    """A valid level: None or unknown values become "info"."""
    return LEVELS[level_rank(level)]


def raise_level(current: str | None, new: str | None) -> str:
    """The higher of two levels; never lowers `current` (None/unknown count as "info")."""
    return LEVELS[max(level_rank(current), level_rank(new))]


def highest(levels: Iterable[str | None]) -> str:
    """The highest of any number of levels ("info" when there are none)."""
    result = LEVELS[0]
    for level in levels:
        result = raise_level(result, level)
    return result
