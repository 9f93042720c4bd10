"""Decides which article conditions a description relates to, and the referral wording.

Pure functions over the knowledge base; the actions in this package only gather the
inputs from the tracker and send the texts.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from actions.knowledge import LEVELS, Condition, Knowledge, Picture
from actions.parsing import NOT_GIVEN, has_chronic_words, parse_duration

logger = logging.getLogger(__name__)

PHRASE_POINTS = 2
KEYWORD_POINTS = 1
TRIGGER_POINTS = 2
SYMPTOM_POINTS = 1
DURATION_POINTS = 3

# "for 6 months", "past two years", "over 3 months now": a duration said in passing.
_TEXT_DURATION = re.compile(
    r"\b(?:for|past|last|over|almost|nearly)\s+(?:the\s+)?(?:\w+\s+)?(?:\w+\s+)?(?:weeks?|months?|years?)\b"
)


# --------------------------------------------------------------------------- lemmas


@lru_cache(maxsize=1)
def _nlp() -> Any:
    """A blank English pipeline with spaCy's lookup lemmatizer; None if unavailable."""
    try:
        import spacy

        nlp = spacy.blank("en")
        nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        nlp.initialize()
        return nlp
    except Exception:  # spacy-lookups-data missing: fall back to plain lowercase words
        logger.warning("spaCy lookup lemmatizer unavailable; matching conditions on plain words")
        return None


@lru_cache(maxsize=4096)
def lemmas(text: str) -> Tuple[str, ...]:
    """Lowercase lemmas of `text` ("lifted boxes" -> ("lift", "box"))."""
    nlp = _nlp()
    if nlp is None:
        return tuple(re.findall(r"[a-z0-9']+|[.,;!?]", text.lower()))
    return tuple(token.lemma_.lower() or token.lower_ for token in nlp(text))


def _positions(pattern: Tuple[str, ...], tokens: Tuple[str, ...]) -> List[int]:
    n = len(pattern)
    if not n:
        return []
    return [i for i in range(len(tokens) - n + 1) if tokens[i : i + n] == pattern]


def _negated(tokens: Tuple[str, ...], start: int, knowledge: Knowledge) -> bool:
    m = knowledge.matching
    cues = {lemma for cue in m.negation_cues for lemma in lemmas(cue)}
    breaks = set(m.clause_breaks)
    for i in range(start - 1, max(-1, start - 1 - m.negation_window), -1):
        if tokens[i] in breaks:
            return False
        if tokens[i] in cues:
            return True
    return False


def _occurs(pattern_text: str, tokens: Tuple[str, ...], knowledge: Knowledge, excluded: Iterable[int] = ()) -> bool:
    """Whether `pattern_text` occurs (as lemmas) in `tokens`, not negated, outside `excluded`."""
    pattern = lemmas(pattern_text)
    skip = set(excluded)
    return any(pos not in skip and not _negated(tokens, pos, knowledge) for pos in _positions(pattern, tokens))


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True)
class Report:
    """What the user reported, gathered from the slots and their own messages."""

    texts: Tuple[str, ...] = ()
    body_part: Optional[str] = None
    symptoms: Tuple[str, ...] = ()
    duration: Optional[str] = None
    severity: Optional[str] = None
    trigger: Optional[str] = None

    def duration_weeks(self) -> Optional[float]:
        if self.duration and self.duration != NOT_GIVEN:
            return parse_duration(self.duration).weeks
        return None


def _score(condition: Condition, report: Report, knowledge: Knowledge) -> int:
    score = 0
    for text in report.texts:
        tokens = lemmas(text)
        excluded = {p for ex in condition.exclude for p in _positions(lemmas(ex), tokens)}
        score += sum(PHRASE_POINTS for p in condition.phrases if _occurs(p, tokens, knowledge, excluded))
        score += sum(KEYWORD_POINTS for k in condition.keywords if _occurs(k, tokens, knowledge, excluded))
    if report.trigger and report.trigger != NOT_GIVEN:
        tokens = lemmas(report.trigger)
        score += sum(TRIGGER_POINTS for t in condition.triggers if _occurs(t, tokens, knowledge))
    symptom_lemmas = {lemmas(s) for s in condition.symptoms}
    score += sum(SYMPTOM_POINTS for s in report.symptoms if lemmas(s) in symptom_lemmas)
    if _meets_duration(condition, report):
        score += DURATION_POINTS
    return score


def _meets_duration(condition: Condition, report: Report) -> bool:
    """Chronic rule: a stated duration of at least `min_weeks`, or words like "months",
    "years", "on and off" without a count in the duration answer."""
    if condition.duration_min_weeks is None and not condition.duration_words:
        return False
    min_weeks = condition.duration_min_weeks
    if report.duration and report.duration != NOT_GIVEN:
        said = parse_duration(report.duration)
        if said.counted:
            return min_weeks is not None and said.weeks is not None and said.weeks >= min_weeks
        if has_chronic_words(report.duration, condition.duration_words):
            return True
    if min_weeks is not None:
        for text in report.texts:
            for match in _TEXT_DURATION.finditer(text.lower()):
                said = parse_duration(match.group(0))
                if said.counted and said.weeks is not None and said.weeks >= min_weeks:
                    return True
    return False


def related_conditions(knowledge: Knowledge, report: Report) -> List[str]:
    """Ids of the article conditions this report relates to, best match first."""
    scored = [(cid, _score(c, report, knowledge)) for cid, c in knowledge.conditions.items()]
    order = {cid: i for i, cid in enumerate(knowledge.conditions)}
    keep = [(cid, s) for cid, s in scored if s >= knowledge.matching.min_score]
    keep.sort(key=lambda item: (-item[1], order[item[0]]))
    return [cid for cid, _ in keep[: knowledge.matching.max_conditions]]


def self_care_for(knowledge: Knowledge, condition_ids: Sequence[str], include_gap: bool = True) -> List[str]:
    """Self-care item ids for these conditions, in order, without repeats."""
    ids: List[str] = []
    sources = [knowledge.conditions[c].self_care for c in condition_ids if c in knowledge.conditions]
    if not sources:
        sources = [knowledge.general_self_care]
    for group in sources:
        for iid in group:
            if iid not in ids and (include_gap or not knowledge.self_care[iid].gap):
                ids.append(iid)
    return ids


# --------------------------------------------------------------------------- texts


def _names(knowledge: Knowledge, condition_ids: Sequence[str]) -> str:
    """"muscle strain, muscle spasm and back injury"."""
    names = [knowledge.conditions[c].name for c in condition_ids if c in knowledge.conditions]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def result_text(knowledge: Knowledge, level: str, condition_ids: Sequence[str], duration_weeks: Optional[float] = None,
                other: bool = False, warning_sign: bool = False) -> str:
    """The result's first bubble: the referral at the level, then the related conditions in one or
    two sentences (names only; descriptions and sources are under "Sources and details")."""
    whom = "them" if other else "you"
    parts = [referral_text(knowledge, level, duration_weeks, other)]
    texts = knowledge.result
    if condition_ids and warning_sign:
        parts += [texts.linked_sign.format(conditions=_names(knowledge, condition_ids)), texts.cause.format(whom=whom)]
    elif condition_ids:
        parts.append(texts.linked.format(conditions=_names(knowledge, condition_ids)))
    elif warning_sign:
        parts.append(texts.cause.format(whom=whom))   # no general muscle causes beside a warning sign
    else:
        parts += [knowledge.fallback.text, texts.cause.format(whom=whom)]
    return " ".join(parts)


def conditions_text(knowledge: Knowledge, condition_ids: Sequence[str], whom: str = "you") -> str:
    """The related conditions with what each is and the sources (the result's "details")."""
    if not condition_ids:
        fb = knowledge.fallback
        return f"{fb.text} (Source: {knowledge.citation(fb.source)}) {knowledge.result.cause.format(whom=whom)}"
    lines = ["The reference article links symptoms like these to:"]
    for cid in condition_ids:
        c = knowledge.conditions[cid]
        lines.append(f"• {c.name}: {c.description}")
    cited = _unique(knowledge.citation(knowledge.conditions[cid].source) for cid in condition_ids)
    lines.append("Sources: " + "; ".join(cited))
    lines.append("These are possibilities to talk over with a provider, not a diagnosis. "
                 + knowledge.result.cause.format(whom=whom))
    return "\n".join(lines)


def picture_for(knowledge: Knowledge, red_flags: Sequence[str], texts: Sequence[str],
                condition_ids: Sequence[str]) -> Optional[Picture]:
    """The first self-care picture (self_care.yml `pictures`) that the danger signs, the user's own
    words or the related conditions bring, or None."""
    flags = set(red_flags)
    tokens = [lemmas(t) for t in texts]
    for picture in knowledge.pictures:
        if flags & set(picture.signs):
            return picture
        if any(_occurs(p, t, knowledge) for p in picture.phrases for t in tokens):
            return picture
        if set(condition_ids) & set(picture.conditions):
            return picture
    return None


def fitting_self_care(knowledge: Knowledge, picture: Optional[Picture], condition_ids: Sequence[str]) -> List[str]:
    """The self-care item ids to offer: the picture's own, or its first items then the
    conditions', without what the picture leaves out."""
    if picture is not None and picture.items:
        return list(picture.items)
    ids = self_care_for(knowledge, condition_ids)
    if picture is not None:
        ids = list(picture.first) + [i for i in ids if i not in picture.first]
        ids = [i for i in ids if i not in picture.leave_out]
    return ids


def self_care_text(knowledge: Knowledge, item_ids: Sequence[str], intro: str) -> str:
    """The items in order, each from the article with its source; items that are not from the
    article (`gap`) are said to be general practice."""
    lines = [f"{intro} {knowledge.framing_before}"]
    items = [knowledge.self_care[i] for i in item_ids]
    for item in items:
        source = "" if item.gap else f" (Source: {knowledge.citation(item.source)})"
        lines.append(f"• {item.title}: {item.text}{source}")
    if any(item.gap for item in items):
        lines.append("Ideas without a source are general practice, not taken from the article.")
    lines.append(knowledge.framing_after)
    return "\n".join(lines)


def referral_text(knowledge: Knowledge, level: str, duration_weeks: Optional[float] = None, other: bool = False) -> str:
    texts = knowledge.referral_other if other else knowledge.referral
    text = texts[level if level in LEVELS else "routine"]
    if level == "routine" and duration_weeks is not None and duration_weeks > knowledge.long_duration_weeks:
        text = f"{text} {knowledge.long_duration_text_other if other else knowledge.long_duration_text}"
    return text


def _unique(items: Iterable[str]) -> List[str]:
    seen: List[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def user_texts(events: Sequence[Dict[str, Any]], skip_intents: Iterable[str] = ()) -> List[str]:
    """The user's own messages since the session (or conversation) last started.

    `skip_intents` leaves out messages such as bare "yes"/"no" answers.
    """
    skip = set(skip_intents)
    texts: List[str] = []
    for event in events:
        kind = event.get("event")
        if kind in ("session_started", "restart"):
            texts = []
        elif kind == "user":
            text = (event.get("text") or "").strip()
            intent = (((event.get("parse_data") or {}).get("intent")) or {}).get("name")
            if text and not text.startswith("/") and intent not in skip:  # payloads are not the user's words
                texts.append(text)
    return texts
