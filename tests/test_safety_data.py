"""Bad safety data fails loudly: SafetyDataError (a ValueError) naming file:line and the fix."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bot.safety import SafetyDataError
from bot.safety.guard import OutputGuard
from bot.safety.redflags import RedFlagScreener

KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"
FILES = ("red_flags.yml", "negation.yml", "guard.yml")


def _copy(tmp_path: Path) -> Path:
    for name in FILES:
        shutil.copy(KNOWLEDGE / name, tmp_path / name)
    return tmp_path


def _mutate(folder: Path, name: str, old: str, new: str) -> int:
    """Replace the first `old` in a data file with `new`; return the 1-based line it starts on."""
    path = folder / name
    text = path.read_text(encoding="utf-8")
    index = text.index(old)
    path.write_text(text[:index] + new + text[index + len(old):], encoding="utf-8")
    return text.count("\n", 0, index) + 1 + new[: len(new) - len(new.lstrip("\n"))].count("\n")


# (file, old text, new text, words the message must contain)
RED_FLAG_CASES = [
    ("red_flags.yml", "    level: urgent\n    screen_slot: screen_fever", "    level: urgnt\n    screen_slot: screen_fever",
     ["level", "urgnt", "urgent"]),
    ("red_flags.yml", "    description: Fever,", "    descriptoin: Fever,", ["unknown key", "descriptoin"]),
    ("red_flags.yml", "  fever:\n", "  self_harm:\n", ["appears twice", "self_harm"]),
    ("red_flags.yml", "      - fever|fevers|feverish|febrile|fevery", "      - '@fevr'", ["unknown vocab", "@fevr"]),
    ("red_flags.yml", "      - fever|fevers|feverish|febrile|fevery", "      - [my|fever", ["not valid YAML"]),
    ("red_flags.yml", "      - fever|fevers|feverish|febrile|fevery", "      - \"[my|the fever\"", ["optional", "brackets"]),
    ("red_flags.yml", "      - fever|fevers|feverish|febrile|fevery", "      - can not fever", ["can't", "instead of"]),
    ("red_flags.yml", "      - fever|fevers|feverish|febrile|fevery", "      - fever ...", ["cannot start or end"]),
    ("red_flags.yml", "      - fever|fevers|feverish|febrile|fevery", "      - fever #38-43", ["quotes", "comment"]),
    ("red_flags.yml", "      - fever|fevers|feverish|febrile|fevery", "      - \"#50-1000 degrees\"", ["number range"]),
    ("red_flags.yml", "    screen_slot: screen_cancer", "    screen_slot: screen_fever", ["already used", "fever"]),
    ("red_flags.yml", "  self_harm:\n", "  self_harming:\n", ["self_harm", "crisis"], "flags:\n"),
    ("red_flags.yml", "    historical_is_absent: true\n    phrases:\n      - fever",
     "    historical_is_absent: yes please\n    phrases:\n      - fever", ["true or false"]),
    ("negation.yml", "max_scope: 8", "max_scope: eight", ["max_scope", "whole number"]),
    ("negation.yml", "negation:\n  forward:", "negaton:\n  forward:", ["unknown key", "negaton"]),
    ("negation.yml", "    - denies\n", "    - denies\n    - denies\n", ["listed twice"]),
    ("negation.yml", "    - denies\n", "    - '@nothing'\n", ["unknown vocab"]),
    ("negation.yml", "  cant: can't\n", "  cant: \"\"\n", ["empty side"]),
]


@pytest.mark.parametrize("case", RED_FLAG_CASES, ids=[f"{c[0]}:{c[2].strip()[:30]}" for c in RED_FLAG_CASES])
def test_bad_screener_data(tmp_path: Path, case: tuple) -> None:
    name, old, new, words = case[:4]
    folder = _copy(tmp_path)
    line = _mutate(folder, name, old, new)
    if len(case) > 4:   # the message points at another line than the edit
        text = (folder / name).read_text(encoding="utf-8")
        line = text.count("\n", 0, text.index(case[4])) + 1
    with pytest.raises(SafetyDataError) as info:
        RedFlagScreener.load(folder)
    message = str(info.value)
    match = re.match(rf"{re.escape(name)}:(\d+): ", message)
    assert match, message
    assert abs(int(match.group(1)) - line) <= 3, message   # points at (or next to) the edited line
    for word in words:
        assert word in message, message


GUARD_CASES = [
    ("    category: diagnosis\n", "    category: diagnosys\n", ["diagnosys", "replacements"]),
    ("  - name: dosing.amount\n", "  - name: diagnosis.you_have\n", ["used twice"]),
    ("(?:{condition})", "(?:{conditions})", ["{conditions}", "lists"]),
    ("    pattern: '\\bi (?:will", "    pattern: '\\bi (?:will(", ["regular expression"]),
    ("    category: dosing\n", "    categry: dosing\n", ["unknown key", "categry"]),
]


@pytest.mark.parametrize("old,new,words", GUARD_CASES, ids=[c[1].strip()[:30] for c in GUARD_CASES])
def test_bad_guard_data(tmp_path: Path, old: str, new: str, words: list[str]) -> None:
    folder = _copy(tmp_path)
    line = _mutate(folder, "guard.yml", old, new)
    with pytest.raises(SafetyDataError) as info:
        OutputGuard.load(folder)
    message = str(info.value)
    match = re.match(r"guard.yml:(\d+): ", message)
    assert match, message
    assert abs(int(match.group(1)) - line) <= 3, message
    for word in words:
        assert word in message, message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SafetyDataError, match="guard.yml: file not found"):
        OutputGuard.load(tmp_path)
    with pytest.raises(ValueError, match="negation.yml: file not found"):
        RedFlagScreener.load(tmp_path)


def test_a_new_phrase_is_a_data_change(tmp_path: Path) -> None:
    """Adding a phrase to the YAML is all it takes for the screen to find it."""
    folder = _copy(tmp_path)
    before = RedFlagScreener.load(folder).screen("my back went zig zag")
    assert before.present == []
    _mutate(folder, "red_flags.yml", "      - fever|fevers|feverish|febrile|fevery", "      - went zig zag\n      - fever|fevers|feverish|febrile|fevery")
    after = RedFlagScreener.load(folder).screen("my back went zig zag")
    assert after.present == ["fever"]
