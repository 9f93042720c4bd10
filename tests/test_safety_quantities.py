"""Every number means what it measures (bot/safety/quantities.py)."""

from __future__ import annotations

import pytest

from bot.safety.quantities import AGE, DURATION, MEDICINE_TIME, PREGNANCY, SCORE, TEMPERATURE, WEIGHT, read_quantities
from bot.safety.text import TextPath

TEXT = TextPath([])


def read(text: str, asked: str | None = None) -> list[tuple[str, float]]:
    return [(q.kind, round(q.value, 2)) for q in read_quantities(TEXT(text), asked)]


@pytest.mark.parametrize("text,asked,expected", [
    ("my temperature is 39.2", None, [(TEMPERATURE, 39.2)]),
    ("38.5°C and shivery", None, [(TEMPERATURE, 38.5)]),
    ("temp of 101", None, [(TEMPERATURE, 38.3)]),
    ("pain is 7/10", None, [(SCORE, 7)]),
    ("pretty bad, like 7", None, [(SCORE, 7)]),
    ("8 out of 10", None, [(SCORE, 8)]),
    ("7", "severity", [(SCORE, 7)]),
    ("5 or 6 days", "duration", [(DURATION, 0.86)]),     # a range of days is never a pain score 5
    ("5 or 6", "severity", [(SCORE, 6)]),                # a range of scores: the worse reading
    ("34 weeks pregnant", None, [(PREGNANCY, 34)]),
    ("on steroids for 5 years", None, [(MEDICINE_TIME, 260)]),
    ("about 3 weeks", None, [(DURATION, 3)]),
    ("a few days", None, [(DURATION, 0.43)]),
    ("I'm 81", None, [(AGE, 81)]),
    ("my husband, 79, slipped", None, [(AGE, 79)]),
    ("she is 84", None, [(AGE, 84)]),
    ("Dad (72) passed out", None, [(AGE, 72)]),
    ("My son is 6 and has an ear infection", None, [(AGE, 6)]),
    ("eighty-one years old", None, [(AGE, 81)]),
    ("in my seventies", None, [(AGE, 70)]),
    ("lost a stone", None, [(WEIGHT, 14)]),
    ("down 20 pounds", None, [(WEIGHT, 20)]),
    ("10/10 would recommend", None, []),
    ("2 kids and I walk 5 miles at 3am", None, []),
])
def test_what_a_number_measures(text: str, asked: str | None, expected: list) -> None:
    assert read(text, asked) == expected


@pytest.mark.parametrize("text,asked,expected", [
    ("39 on the thermometer", None, [(TEMPERATURE, 39)]),   # the cue after the number makes it a fever
    ("74 yr", "age", [(AGE, 74)]),                          # the short unit answering the age question
    ("for 3 mths", None, [(DURATION, 13)]),                 # 3 months = 13 weeks
    ("30 sec", None, [(DURATION, 0)]),                      # seconds and minutes are no weeks of pain
    ("20 mins", None, [(DURATION, 0)]),
    ("about 20 min", None, [(DURATION, 0)]),
    ("for 3 nights", None, [(DURATION, 0.43)]),             # 3 / 7 weeks
    ("for 3 wks", None, [(DURATION, 3)]),
    ("thirty-nine years old", None, [(AGE, 39)]),           # a number in words is no temperature
    ("she is thirty-eight", None, [(AGE, 38)]),
    ("running 38", None, [(TEMPERATURE, 38)]),              # "running" a temperature, no unit
    ("6-7", "severity", [(SCORE, 7)]),                      # a range: the worse reading
    ("5 to 6", "severity", [(SCORE, 6)]),
    ("for a fortnight", None, [(DURATION, 2)]),
    ("a 72 yr - old man", None, [(AGE, 72)]),
    ("she is 120", None, [(AGE, 120)]),                     # ages run 1-120
    ("im 81", None, [(AGE, 81)]),                           # "im" is split into "i" "m"
    ("9", "fever", []),                                     # answering the fever question: no pain score
])
def test_units_and_cues_read_as_they_measure(text: str, asked: str | None, expected: list) -> None:
    assert read(text, asked) == expected


@pytest.mark.parametrize("text,asked,expected", [
    ("38 years", "age", [(AGE, 38)]),              # answering an age question, years are an age
    ("38 years", None, [(DURATION, 1976)]),        # otherwise a duration
])
def test_years_answering_an_age_question_are_an_age(text: str, asked: str | None, expected) -> None:
    assert read(text, asked) == expected
