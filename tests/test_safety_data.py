"""Bad safety data fails loudly: SafetyDataError (a ValueError) naming file:line and the fix."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bot.safety import SafetyDataError
from bot.safety.guard import OutputGuard
from bot.safety.rules import load_rules
from bot.safety.screen import Screener

KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"
FILES = ("concepts.yml", "context.yml", "danger_signs.yml", "guard.yml")


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


# (file, old text, new text, words the message must contain[, text of the line the message names])
RULE_CASES = [
    ("danger_signs.yml", "    level: urgent\n    screen_slot: screen_fever", "    level: urgnt\n    screen_slot: screen_fever",
     ["level", "urgnt", "urgent"]),
    ("danger_signs.yml", "    back_only: true\n    when:\n      - fever\n", "    bak_only: true\n    when:\n      - fever\n",
     ["unknown key", "bak_only"]),
    ("danger_signs.yml", "  fever:\n", "  self_harm:\n", ["appears twice", "self_harm"]),
    ("danger_signs.yml", "      - temperature_high\n", "      - temprature_high\n", ["temprature_high", "not a concept"]),
    ("danger_signs.yml", "      - temperature_high\n", "      - fever\n", ["listed twice", "fever"]),
    ("danger_signs.yml", "      - temperature_high\n", "      - fever & fever\n", ["same part twice"]),
    ("danger_signs.yml", "    screen_slot: screen_cancer", "    screen_slot: screen_fever", ["already answers", "fever"]),
    ("danger_signs.yml", "    source: cks_osteoporosis\n", "    source: wikipedia\n", ["wikipedia", "guidance"]),
    ("danger_signs.yml", "  self_harm:\n", "  self_harming:\n", ["self_harm", "crisis"], "signs:\n"),
    ("danger_signs.yml", "    back_only: true\n    when:\n      - fever\n", "    back_only: yes please\n    when:\n      - fever\n",
     ["true or false"]),
    ("danger_signs.yml", "    historical: keep\n    when:\n      - cancer", "    historical: sometimes\n    when:\n      - cancer",
     ["drop", "keep"]),
    ("concepts.yml", "    - fever|fevers|feverish|febrile|fevery\n", "    - fever|fevers|fever|febrile\n", ["listed twice", "fever"]),
    ("concepts.yml", "    - fever|fevers|feverish|febrile|fevery\n", "    - fever|fevers|feverish|febrile|fevery\n    - fever|fevers|feverish|febrile|fevery\n",
     ["listed twice", "line"]),
    ("concepts.yml", "    - fever|fevers|feverish|febrile|fevery\n", "    - \"[my|the fever\"\n", ["brackets"]),
    ("concepts.yml", "    - fever|fevers|feverish|febrile|fevery\n", "    - fever ...\n", ["cannot start or end"]),
    ("concepts.yml", "    - fever|fevers|feverish|febrile|fevery\n", "    - fe*ver*\n", ["prefix"]),
    ("concepts.yml", "    - fever|fevers|feverish|febrile|fevery\n", "    - \"[fever]\"\n", ["no word that must be present"]),
    ("concepts.yml", "    - fever|fevers|feverish|febrile|fevery\n", "    - fever #38\n", ["quotes", "comment"]),
    ("concepts.yml", "  fever_not:", "  fevr_not:", ["fevr_not", "masks"]),
    ("concepts.yml", "  fever:\n", "  Fever:\n", ["lower_snake_case"]),
    ("concepts.yml", "  fever:\n", "  age_70:\n", ["quantity concept"]),
    ("context.yml", "  negated: 10", "  negated: ten", ["max_scope.negated", "whole number"]),
    ("context.yml", "negated:\n  forward:", "negatd:\n  forward:", ["unknown key", "negatd"]),
    ("context.yml", "    - deny|denies|denied\n", "    - deny|denies|deny\n", ["listed twice"]),
    ("context.yml", "    - deny|denies|denied\n", "    - deny|denies|denied\n    - deny|denies|denied\n", ["listed twice"]),
    ("context.yml", "  forward:\n    - what if\n", "  sideways:\n    - what if\n", ["unknown key", "sideways"]),
]


@pytest.mark.parametrize("case", RULE_CASES, ids=[f"{c[0]}:{c[2].strip()[:30]}" for c in RULE_CASES])
def test_bad_rule_data(tmp_path: Path, case: tuple) -> None:
    name, old, new, words = case[:4]
    folder = _copy(tmp_path)
    line = _mutate(folder, name, old, new)
    if len(case) > 4:   # the message points at another line than the edit
        text = (folder / name).read_text(encoding="utf-8")
        line = text.count("\n", 0, text.index(case[4])) + 1
    with pytest.raises(SafetyDataError) as info:
        Screener(load_rules(folder))
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
    with pytest.raises(ValueError, match="concepts.yml: file not found"):
        load_rules(tmp_path)


def test_a_new_word_is_one_vocabulary_line(tmp_path: Path) -> None:
    """A new lay word for a concept is one line of data, and every sign using the concept, in
    every word order, finds it."""
    folder = _copy(tmp_path)
    texts = ["my gizzard feels heavy and squeezed", "squeezing in my gizzard", "there's pressure. in my gizzard"]
    assert all(Screener(load_rules(folder)).screen(t).present == [] for t in texts)
    _mutate(folder, "concepts.yml", "    - breastbone\n", "    - breastbone\n    - gizzard\n")
    screener = Screener(load_rules(folder))
    assert all(screener.screen(t).present == ["chest_pain"] for t in texts)
