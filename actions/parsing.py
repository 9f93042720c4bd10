"""Reads form answers from free text: pain score, duration, body part, "not sure".

(Yes/no answers to screening questions belong to the safety layer: bot/safety/answers.py.)"""

from __future__ import annotations

import datetime as _dt

import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

NOT_GIVEN = "not given"

_NUMBER_WORDS: Dict[str, float] = {
    "zero": 0, "none": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "fifteen": 15, "twenty": 20, "hundred": 100,
}
_WORD_RE = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b")


def _digits_for_words(text: str) -> str:
    return _WORD_RE.sub(lambda m: str(int(_NUMBER_WORDS[m.group(1)])), text)


# --------------------------------------------------------------------------- pain score

_SCORE_OUT_OF = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:/|out of|of|on)\s*10\b")
_SCORE_RANGE = re.compile(r"(-?\d+(?:\.\d+)?)\s*(?:-|to|or)\s*(\d+(?:\.\d+)?)")
_SCORE_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def parse_severity(text: object) -> Optional[float]:
    """The pain score in `text` ("7", "7/10", "seven", "6-7" -> 7), or None if there is none.

    A range counts as its upper end: when unsure, take the worse reading.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if not isinstance(text, str):
        return None
    t = _digits_for_words(text.lower())
    for pattern in (_SCORE_OUT_OF, _SCORE_RANGE):
        match = pattern.search(t)
        if match:
            return max(float(g) for g in match.groups() if g is not None)
    match = _SCORE_NUMBER.search(t)
    return float(match.group(0)) if match else None


def format_score(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# --------------------------------------------------------------------------- duration

_UNIT_WEEKS: Tuple[Tuple[str, float], ...] = (
    (r"h|hrs?|hours?", 1 / 168),
    (r"d|days?", 1 / 7),
    (r"w|wks?|weeks?", 1.0),
    (r"mos?|mths?|months?", 52 / 12),
    (r"y|yrs?|years?", 52.0),
)
# A count is digits (unit may follow directly: "10d") or words (then a space: "a few days").
_COUNT = r"\b(?:(\d+(?:\.\d+)?)\s*|(a couple of|a couple|couple of|a few|few|several|many|half an?|an?)\s+)"
_DURATION_RE = [
    (re.compile(_COUNT + r"(?:more\s+)?(?:" + units + r")\b"), weeks) for units, weeks in _UNIT_WEEKS
]
_COUNT_VALUES = {
    "a couple of": 2, "a couple": 2, "couple of": 2, "a few": 3, "few": 3, "several": 3,
    "many": 4, "half a": 0.5, "half an": 0.5, "a": 1, "an": 1,
}
# Plural units without a count ("for months") give a cautious lower bound.
_BARE_UNITS: Tuple[Tuple[str, float], ...] = (
    (r"\bdays\b", 2 / 7),
    (r"\bweeks\b", 2.0),
    (r"\bmonths\b", 2 * 52 / 12),
    (r"\byears\b", 104.0),
)
_SHORT_WORDS: Tuple[Tuple[str, float], ...] = (
    (r"\btoday\b|\bthis morning\b|\bthis afternoon\b|\btonight\b|\bjust now\b|\bjust started\b|\ban hour\b|"
     r"\bminutes?\b|\bnot long\b|\bjust\b", 0.0),
    (r"\byesterday\b|\blast night\b", 1 / 7),
    (r"\bmonday|tuesday|wednesday|thursday|friday|saturday|sunday|weekend\b", 0.5),
    (r"\blast week\b", 1.0),
    (r"\blast month\b", 52 / 12),
    (r"\blast year\b", 52.0),
    (r"\bfortnight\b", 2.0),
    (r"\bages\b|\bforever\b|\byears\b|\blong time\b", 104.0),
    (r"\bchristmas\b|\bjanuary|february|march|april|june|july|august|september|october|november|december\b", 8.0),
)
_TIME_WORDS = re.compile(
    r"\b(since|ago|for ages|ages|forever|always|recently|a while|long time|on and off|"
    r"come and go|comes and goes|years?|months?|weeks?|days?|hours?|minutes?|fortnight|chronic|lately|"
    r"not long|ongoing|started)\b"
)
UNSURE_ANSWER = re.compile(r"\b(not sure|unsure|don'?t know|dont know|no idea|dunno|can'?t say|hard to say|idk|"
                           r"can'?t remember|not certain)\b", re.I)


def is_unsure(text: object) -> bool:
    """"not sure", "no idea", "dunno": the question is skipped, not asked a third time."""
    return isinstance(text, str) and UNSURE_ANSWER.search(text) is not None


def severity_from_words(text: object, words: Mapping[str, Sequence[str]]) -> Optional[float]:
    """A score for words like "pretty bad" (7) or "unbearable" (9), from questions.yml
    `severity.words` (score -> phrases); the strongest phrase said wins."""
    if not isinstance(text, str):
        return None
    t = " " + re.sub(r"[^a-z' ]+", " ", text.lower()) + " "
    best: Optional[float] = None
    # Longer phrases first, and their words are used up: "not too bad" is mild, not "bad".
    for phrase, score in sorted(((p, s) for s, ps in words.items() for p in ps), key=lambda item: -len(item[0])):
        pattern = r"(?<![a-z'])" + re.escape(phrase) + r"(?![a-z'])"
        if re.search(pattern, t):
            t = re.sub(pattern, " # ", t)
            if best is None or float(score) > best:
                best = float(score)
    return best
_CHRONIC_WORDS = re.compile(r"\b(months|years|year|on and off|for ages|forever|long time|chronic)\b")


@dataclass(frozen=True)
class Duration:
    recognised: bool
    weeks: Optional[float] = None  # best estimate of the duration, None if unknown
    counted: bool = False  # weeks come from a stated count ("3 months"), not a bare "months"


_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
_SEASONS = {"spring": "march", "summer": "june", "autumn": "september", "fall": "september"}
_SINCE_MONTH = re.compile(r"\b(?:since|from|in|back in|started in)\s+(?:the\s+)?(?:last\s+|early\s+|late\s+|mid\s+)?"
                          r"(" + "|".join(_MONTHS + tuple(_SEASONS)) + r"|christmas)\b")


def _weeks_since(name: str, today: _dt.date) -> float:
    """Weeks from the most recent start of month `name` (or Christmas Day) up to `today`."""
    name = _SEASONS.get(name, name)
    if name == "christmas":
        start = _dt.date(today.year, 12, 25)
    else:
        start = _dt.date(today.year, _MONTHS.index(name) + 1, 1)
    if start > today:
        start = start.replace(year=start.year - 1)
    return max(1.0, (today - start).days / 7)


def _counted_weeks(t: str) -> List[float]:
    """Weeks for every stated count in `t` ("3 months", "two weeks")."""
    estimates: List[float] = []
    for pattern, unit_weeks in _DURATION_RE:
        for match in pattern.finditer(t):
            digits, words = match.group(1), match.group(2)
            n = float(digits) if digits else _COUNT_VALUES.get(words, 1)
            estimates.append(n * unit_weeks)
    return estimates


def _bare_weeks(t: str) -> List[float]:
    """Weeks for every bare unit or short time word in `t` ("months", "yesterday")."""
    return [weeks for pattern, weeks in _BARE_UNITS + _SHORT_WORDS if re.search(pattern, t)]


def parse_duration(text: object, today: Optional[_dt.date] = None) -> Duration:
    """How long, in weeks, a free-text duration describes ("since yesterday", "2 yrs", "since
    March", counted back from `today`)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return Duration(True, None)
    if not isinstance(text, str) or not text.strip():
        return Duration(False)
    t = _digits_for_words(text.lower())
    since = _SINCE_MONTH.search(t)
    if since:
        return Duration(True, _weeks_since(since.group(1), today or _dt.date.today()))
    counted = _counted_weeks(t)
    if counted:
        return Duration(True, max(counted), counted=True)
    bare = _bare_weeks(t)
    if bare:
        return Duration(True, max(bare))
    if _TIME_WORDS.search(t) or re.fullmatch(r"\s*\d+(\.\d+)?\s*", t):
        return Duration(True, None)
    return Duration(False)


def has_chronic_words(text: str, words: Iterable[str]) -> bool:
    t = text.lower()
    return any(re.search(r"\b" + re.escape(w.lower()) + r"\b", t) for w in words)


# --------------------------------------------------------------------------- body part


def _find(phrases: Iterable[str], text: str) -> Optional[int]:
    """Position of the first of `phrases` in `text` as whole words, or None."""
    best: Optional[int] = None
    for phrase in sorted(phrases, key=len, reverse=True):
        match = re.search(r"(?<![a-z])" + re.escape(phrase.lower()) + r"(?![a-z])", text)
        if match and (best is None or match.start() < best):
            best = match.start()
    return best


def normalise_body_part(
    text: object, values: Mapping[str, Sequence[str]], sides: Mapping[str, Sequence[str]]
) -> Optional[str]:
    """Canonical location(s) plus side, e.g. "lower back, left side"; None if none found."""
    if isinstance(text, list):
        text = " ".join(str(t) for t in text)
    if not isinstance(text, str):
        return None
    t = " " + text.lower().strip() + " "
    found: List[Tuple[int, str]] = []
    for canonical, phrases in values.items():
        pos = _find(list(phrases) + [canonical], t)
        if pos is not None:
            found.append((pos, canonical))
    parts = [canonical for _, canonical in sorted(found)]
    for canonical, phrases in sides.items():  # file order: the first side that matches wins
        if _find(list(phrases) + [canonical], t) is not None:
            parts.append(canonical)
            break
    return ", ".join(parts) if parts else None
