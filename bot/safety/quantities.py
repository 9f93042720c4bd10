"""Numbers with a meaning: what each number in a message measures.

One reader for every number, so a temperature never becomes a pain score, and weeks of
pregnancy, an age or years on a medicine never a duration or a score. The open question breaks
ties: "7" answering the pain question is a score, "5 or 6 days" answering "how long" a duration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from bot.safety.text import Text

TEMPERATURE, SCORE, AGE, DURATION, PREGNANCY, MEDICINE_TIME, WEIGHT = (
    "temperature", "score", "age", "duration", "pregnancy", "medicine_time", "weight")

DURATION_UNITS = {  # unit lemma -> weeks
    "second": 0.0, "sec": 0.0, "minute": 0.0, "min": 0.0, "mins": 0.0, "hour": 1 / 168, "hr": 1 / 168,
    "hrs": 1 / 168, "day": 1 / 7, "night": 1 / 7, "week": 1.0, "wk": 1.0, "wks": 1.0, "fortnight": 2.0,
    "month": 52 / 12, "mth": 52 / 12, "mths": 52 / 12, "year": 52.0, "yr": 52.0, "yrs": 52.0, "decade": 520.0,
}
NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30,
    "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}
COUNT_WORDS = {"a": 1, "an": 1, "couple": 2, "few": 3, "several": 3}   # only before a duration unit
_TENS = {"twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"}
_DECADES = {"twenties": 20, "thirties": 30, "forties": 40, "fifties": 50, "sixties": 60, "seventies": 70,
            "eighties": 80, "nineties": 90}
_NUMBER = re.compile(r"^(\d+(?:\.\d+)?)(°|º)?(c|f|yo|y/o|kg|kgs|lbs?|st)?$")
_SCORE_FORM = re.compile(r"^(\d+(?:\.\d+)?)/(?:10|ten)$")
_DEGREE_UNITS = {"°", "º", "c", "f", "celsius", "fahrenheit", "degree", "degrees", "°c", "°f"}
_TEMP_CUES = {"temp", "temperature", "fever", "thermometer", "temps"}
_SCORE_CUES = {"pain", "ache", "hurt", "score", "scale", "level", "rate", "sore", "bad", "like", "about",
               "around", "maybe", "probably", "solid", "least", "most", "a", "an", "is", "'s", "at"}
_PERSONS = {"mum", "mom", "mother", "dad", "father", "husband", "wife", "partner", "nan", "gran", "granny",
            "grandma", "grandad", "granddad", "grandpa", "grandmother", "grandfather", "son", "daughter",
            "aunt", "uncle", "neighbour", "neighbor", "friend", "brother", "sister", "hubby", "nana",
            "boyfriend", "girlfriend", "he", "she", "i", "patient", "dad's", "mum's"}
_BE = {"am", "'m", "is", "'s", "was"}
_WEIGHT_UNITS = {"kg": 2.2, "kgs": 2.2, "kilo": 2.2, "kilos": 2.2, "kilogram": 2.2, "kilograms": 2.2,
                 "pound": 1.0, "pounds": 1.0, "lb": 1.0, "lbs": 1.0, "stone": 14.0, "st": 14.0}
_LOSS_CUES = {"lose", "lost", "losing", "dropped", "drop", "down", "shed", "lighter", "off", "less", "gone"}
_MEDICINES = {"steroid", "steroids", "prednisolone", "prednisone", "tablets", "medication", "medicine", "meds",
              "pills", "chemo", "chemotherapy", "treatment", "inhaler", "methotrexate", "injections"}
_NOT_SCORE_UNITS = {"out", "of", "percent", "%", "times", "x", "mg", "ml", "tablets", "pills", "kids",
                    "children", "am", "pm", "o'clock", "floors", "flights", "steps", "boxes", "miles", "km"}


@dataclass(frozen=True)
class Quantity:
    kind: str              # TEMPERATURE | SCORE | AGE | DURATION | PREGNANCY | MEDICINE_TIME | WEIGHT
    value: float           # degrees C | 0-10 | years | weeks | weeks | weeks | pounds
    start: int             # token span in the Text
    end: int


@dataclass(frozen=True)
class _Number:
    value: float
    start: int
    end: int               # after the number (and a range's second number)
    suffix: str            # a unit glued on: "39c", "81yo", "6kg"
    degree: bool


def _parse_number(tokens: list[str], i: int) -> tuple[float, int, str, bool] | None:
    """(value, tokens used, glued unit, has a degree sign) for a number starting at i."""
    word = tokens[i]
    m = _NUMBER.match(word)
    if m:
        return float(m.group(1)), 1, m.group(3) or "", bool(m.group(2))
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    if word in _TENS and nxt == "-" and i + 2 < len(tokens) and NUMBER_WORDS.get(tokens[i + 2], 99) < 10:
        return float(NUMBER_WORDS[word] + NUMBER_WORDS[tokens[i + 2]]), 3, "", False
    if word in _TENS and 0 < NUMBER_WORDS.get(nxt, 99) < 10:
        return float(NUMBER_WORDS[word] + NUMBER_WORDS[nxt]), 2, "", False
    if word in NUMBER_WORDS:
        return float(NUMBER_WORDS[word]), 1, "", False
    return None


def _number(tokens: list[str], i: int) -> _Number | None:
    parsed = _parse_number(tokens, i)
    if parsed is None:
        return None
    value, used, suffix, degree = parsed
    j = i + used
    # a range ("5 or 6", "6-7", "5 to 6 days"): the higher number, as the safer reading
    if j + 1 < len(tokens) and tokens[j] in ("or", "-", "to") and not suffix:
        second = _parse_number(tokens, j + 1)
        if second is not None:
            value, j, suffix, degree = max(value, second[0]), j + 1 + second[1], second[2], second[3]
    return _Number(value, i, j, suffix, degree)


def _cue(tokens: list[str], n: _Number, words: set[str], before: int = 3, after: int = 2) -> bool:
    return any(t in words for t in tokens[max(0, n.start - before):n.start]) or \
        any(t in words for t in tokens[n.end:n.end + after])


Classifier = Callable[[list[str], list[str], _Number, "str | None"], "Quantity | None"]


def _temperature(tokens, lemmas, n, asked):
    unit = tokens[n.end] if n.end < len(tokens) else ""
    if not _reads_as_temperature(tokens, n, unit, asked):
        return None
    fahrenheit = n.suffix == "f" or unit in ("f", "fahrenheit", "°f") or n.value >= 90
    celsius = (n.value - 32) * 5 / 9 if fahrenheit else n.value
    if not 34 <= celsius <= 44:
        return None
    return Quantity(TEMPERATURE, round(celsius, 1), n.start, n.end + (1 if unit in _DEGREE_UNITS else 0))


def _reads_as_temperature(tokens: list[str], n: _Number, unit: str, asked: str | None) -> bool:
    """A degree mark or unit, a decimal in the body-temperature range, or the fever question or
    a temperature cue around the number."""
    marked = n.degree or n.suffix in ("c", "f") or unit in _DEGREE_UNITS
    # "38.9 this morning", "39.4!!": a body temperature is the one common decimal in this range
    tenths = "." in tokens[n.start] and 37.5 <= n.value < 43 and unit not in _WEIGHT_UNITS and unit not in ("km", "miles")
    if marked or tenths:
        return True
    return asked == "fever" or _cue(tokens, n, _TEMP_CUES | {"thermometer"}, 5, 3) or \
        (_cue(tokens, n, {"running", "spiked", "hit", "reading"}, 2, 0) and n.value >= 37.5)


def _pregnancy(tokens, lemmas, n, asked):
    unit = lemmas[n.end] if n.end < len(lemmas) else ""
    after = tokens[n.end + 1:n.end + 3]
    if unit in ("week", "wk", "wks", "month") and ("pregnant" in after or asked == "pregnancy"):
        return Quantity(PREGNANCY, n.value * DURATION_UNITS[unit], n.start, n.end + 2)
    return None


def _weight(tokens, lemmas, n, asked):
    unit = n.suffix or (tokens[n.end] if n.end < len(tokens) else "")
    if unit not in _WEIGHT_UNITS:
        return None
    if not _cue(tokens, n, _LOSS_CUES, 4, 3):
        return Quantity(WEIGHT, 0.0, n.start, n.end + (0 if n.suffix else 1))   # a weight, not a loss
    return Quantity(WEIGHT, n.value * _WEIGHT_UNITS[unit], n.start, n.end + (0 if n.suffix else 1))


def _at(tokens: list[str], i: int) -> str:
    """The token at i, or "" before the start or past the end."""
    return tokens[i] if 0 <= i < len(tokens) else ""


def _age(tokens, lemmas, n, asked):
    if not 1 <= n.value <= 120 or n.value != int(n.value):
        return None
    unit = _at(lemmas, n.end)
    if n.suffix in ("yo", "y/o") or unit in ("yo", "y/o"):
        return Quantity(AGE, n.value, n.start, n.end + (0 if n.suffix else 1))
    if unit in DURATION_UNITS:
        return _age_in_years(tokens, n, unit, asked)
    prev, prev2 = _at(tokens, n.start - 1), _at(tokens, n.start - 2)
    if prev in ("aged", "age", "turned", "turning") or (prev == "(" and unit == ")"):
        return Quantity(AGE, n.value, n.start, n.end)
    if unit in _NOT_SCORE_UNITS:
        return None
    if _said_as_age(n, prev, prev2, asked):
        return Quantity(AGE, n.value, n.start, n.end)
    return None


def _age_in_years(tokens: list[str], n: _Number, unit: str, asked: str | None) -> Quantity | None:
    """An age before a time unit: only years, said as an age; any other time is not an age."""
    if unit not in ("year", "yr", "yrs"):
        return None
    if _at(tokens, n.end + 1) in ("old", "of", "-"):
        return Quantity(AGE, n.value, n.start, n.end + 2)
    prev, prev2 = _at(tokens, n.start - 1), _at(tokens, n.start - 2)
    if (prev in _BE and prev2 in _PERSONS) and n.value >= 13:
        return Quantity(AGE, n.value, n.start, n.end + 1)                    # "I am 61 years"
    if asked == "age" and n.value >= 13:
        return Quantity(AGE, n.value, n.start, n.end + 1)                    # "38 years" answering the age
    return None


def _said_as_age(n: _Number, prev: str, prev2: str, asked: str | None) -> bool:
    """A bare number after a person and "is", or answering the age question."""
    if (prev == "," and prev2 in _PERSONS) or (prev in _BE and prev2 in _PERSONS - {"i"}) or asked == "age":
        return True                                            # "my son is 6", "my husband, 79,"
    # "I'm 81" (but "I'm 7 out of 10" is not)
    return n.value >= 13 and (prev in ("'m", "am", "im", "m") or (prev in ("over", "nearly", "almost") and prev2 in _BE))


def _duration(tokens, lemmas, n, asked):
    unit = lemmas[n.end] if n.end < len(lemmas) else ""
    if unit not in DURATION_UNITS:
        return None
    prev = tokens[n.start - 1] if n.start else ""
    if prev in ("every", "per", "each", "x"):
        return None                                                   # a frequency, not how long
    back = tokens[max(0, n.start - 6):n.start]
    kind = MEDICINE_TIME if any(t in _MEDICINES for t in back) else DURATION
    return Quantity(kind, n.value * DURATION_UNITS[unit], n.start, n.end + 1)


def _score(tokens, lemmas, n, asked):
    if not 0 <= n.value <= 10:
        return None
    unit = tokens[n.end] if n.end < len(tokens) else ""
    after = tokens[n.end:n.end + 3]
    if after[:2] == ["would", "recommend"]:
        return None                                                   # "10/10 would recommend"
    if after[:3] in (["out", "of", "10"], ["out", "of", "ten"]) or after[:2] in (["of", "10"], ["on", "10"]):
        return Quantity(SCORE, n.value, n.start, n.end + (3 if after[0] == "out" else 2))
    if unit in _NOT_SCORE_UNITS or asked in ("duration", "age", "pregnancy", "fever"):
        return None
    if asked == "severity" or (_cue(tokens, n, _SCORE_CUES, 2, 0) and tokens[n.start] != "one"):
        return Quantity(SCORE, n.value, n.start, n.end)
    return None


_CLASSIFIERS: tuple[Classifier, ...] = (_temperature, _pregnancy, _weight, _age, _duration, _score)


def read_quantities(text: Text, asked: str | None = None) -> list[Quantity]:
    """Every number in the message with what it measures; `asked` is the open question
    (`severity`, `duration`, `age`, `fever`, ...), which decides bare numbers."""
    # corrected spellings count ("temperrature" -> temperature): the normaliser sets norm_
    tokens = [t.norm_ if t.lower_.isalpha() and t.norm_.isalpha() else t.lower_ for t in text.doc]
    lemmas = [t.lemma_ for t in text.doc]
    out: list[Quantity] = []
    i = 0
    while i < len(tokens):
        hit, i = _read_at(tokens, lemmas, i, asked)
        if hit is not None:
            out.append(hit)
    return out


def _read_at(tokens: list[str], lemmas: list[str], i: int, asked: str | None) -> tuple[Quantity | None, int]:
    """The quantity that starts at token i, if any, and the token to read on from."""
    word = tokens[i]
    if _SCORE_FORM.match(word):
        if tokens[i + 1:i + 3] != ["would", "recommend"]:
            return Quantity(SCORE, float(_SCORE_FORM.match(word).group(1)), i, i + 1), i + 1
        return None, i + 1
    if word in _DECADES and i and tokens[i - 1] in ("my", "his", "her", "their", "late", "early", "mid"):
        return Quantity(AGE, float(_DECADES[word]), i - 1, i + 1), i + 1
    if word in COUNT_WORDS or word == "half":
        hit = _counted_duration(tokens, lemmas, i)
        if hit:
            return hit, hit.end
    n = _number(tokens, i)
    if n is None:
        return None, i + 1
    return _classify(tokens, lemmas, n, asked)


def _classify(tokens: list[str], lemmas: list[str], n: _Number, asked: str | None) -> tuple[Quantity | None, int]:
    """What the number measures (the first classifier that claims it), and the token after it."""
    for classify in _CLASSIFIERS:
        hit = classify(tokens, lemmas, n, asked)
        if hit is not None:
            return hit, max(hit.end, n.end)
    return None, n.end


def _counted_duration(tokens: list[str], lemmas: list[str], i: int) -> Quantity | None:
    """"a few days", "a couple of weeks", "half an hour", "a stone lighter"."""
    j = i
    count = COUNT_WORDS.get(tokens[i], 0.5)
    while j + 1 < len(tokens) and tokens[j + 1] in ("a", "an", "few", "couple", "of", "more"):
        j += 1
        count = COUNT_WORDS.get(tokens[j], count) if tokens[j] in ("few", "couple") else count
    if j + 1 >= len(tokens):
        return None
    unit = lemmas[j + 1]
    if unit in DURATION_UNITS:
        return Quantity(DURATION, count * DURATION_UNITS[unit], i, j + 2)
    if unit in ("stone", "st") and any(t in _LOSS_CUES for t in tokens[max(0, i - 4):j + 4]):
        return Quantity(WEIGHT, count * 14.0, i, j + 2)
    return None
