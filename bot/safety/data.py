"""Reading the safety layer's reviewed YAML data, with file:line in every error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.yamlio import LineDict, LineList, ProjectError, parse_yaml


class SafetyDataError(ValueError):
    """A safety data file is malformed. The message names file:line and the fix."""


# The project's one YAML reader (bot/yamlio.py): line numbers, and a repeated key is an error.
LineMap = LineDict


def load_yaml(path: Path) -> LineMap:
    """Load one safety data file; its top level must be a mapping."""
    if not path.is_file():
        raise SafetyDataError(f"{path}: file not found; the safety layer needs it to run")
    text = path.read_text(encoding="utf-8")
    _RAW_LINES[path.name] = text.splitlines()
    try:
        data = parse_yaml(text, path.name)
    except ProjectError as exc:
        if exc.message.startswith("YAML syntax error"):
            raise SafetyDataError(f"{path.name}:{exc.line or 1}: not valid YAML ({exc.message[19:]}); fix the "
                                  "syntax on that line") from None
        raise SafetyDataError(f"{path.name}:{exc.line or 1}: {exc.message}") from None
    if not isinstance(data, LineMap):
        raise SafetyDataError(f"{path.name}:1: expected a mapping at the top of the file")
    return data


_RAW_LINES: dict[str, list[str]] = {}


class Where:
    """Builds file:line error messages for one data file."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.raw = _RAW_LINES.get(filename, [])

    def error(self, line: int, message: str) -> SafetyDataError:
        return SafetyDataError(f"{self.filename}:{line}: {message}")

    def mapping(self, value: Any, line: int, what: str) -> LineMap:
        if not isinstance(value, LineMap):
            raise self.error(line, f"{what} must be a mapping of `key: value` entries")
        return value

    def strings(self, value: Any, line: int, what: str, allow_empty: bool = False) -> list[tuple[str, int]]:
        """A list of non-empty strings, each with its line."""
        if value is None and allow_empty:
            return []
        if not isinstance(value, LineList):
            raise self.error(line, f"{what} must be a list of phrases (`- phrase` lines)")
        if not value and not allow_empty:
            raise self.error(line, f"{what} is empty; add at least one phrase")
        items = []
        for item, item_line in zip(value, value.lines):
            if not isinstance(item, str) or not item.strip():
                raise self.error(item_line, f"{what}: `{item}` is not a phrase; write it as text")
            raw = self.raw[item_line - 1] if 0 < item_line <= len(self.raw) else ""
            if " #" in raw and "#" not in item and raw.lstrip().startswith("-"):
                # YAML reads " #" as the start of a comment and silently cuts the phrase.
                raise self.error(item_line, f"{what}: the phrase is cut at ` #` (YAML reads the rest "
                                            "as a comment); put the whole phrase in quotes")
            items.append((item.strip(), item_line))
        return items

    def check_keys(self, mapping: LineMap, allowed: set[str], what: str) -> None:
        for key in mapping:
            if key not in allowed:
                raise self.error(
                    mapping.lines[key],
                    f"unknown key `{key}` in {what}; allowed keys: {', '.join(sorted(allowed))}",
                )
