"""Yes / no / not sure, as answers to a screening question.

Doubt wins over everything ("no idea" is not a no): an unsure answer counts as yes (DESIGN.md).
Button payloads come as intents: /affirm = yes, /deny = no, /skip = not sure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

from bot.safety.text import VERB_NEGATORS

YES, NO, UNSURE = "yes", "no", "unsure"
ACKNOWLEDGEMENTS = ("ok", "okay", "alright")   # first in an answer they acknowledge the question
# before an all-is-well word: a verb negation ("not ok", "isnt fine") or "no", "hardly", "far from"
NEGATORS = VERB_NEGATORS | {"no", "hardly", "far"}
INTENT_ANSWERS = {"affirm": YES, "deny": NO, "skip": UNSURE}
# Messages that steer the conversation rather than answer ("never mind", "why do you ask?")
NOT_ANSWERS = frozenset({"stop", "why_ask", "help", "bot_challenge", "ask_diagnosis", "ask_self_care",
                         "ask_medication", "ask_when_to_see_provider", "request_summary", "goodbye", "restart"})


@dataclass(frozen=True)
class AnswerWords:
    affirm: tuple[str, ...]
    deny: tuple[str, ...]
    unsure: tuple[str, ...]
    normal: tuple[str, ...] = ()     # "sleep ok", "walking fine": all is well with what was asked
    contrast: tuple[str, ...] = ()   # "fine in the day but...": the normal words no longer say no
    reask: str = "{question}"        # a safety question asked again after an answer that said neither

    @classmethod
    def from_data(cls, data: Mapping[str, object]) -> "AnswerWords":
        words = [tuple(str(w).lower() for w in data.get(k) or ())
                 for k in ("affirm", "deny", "unsure", "normal", "contrast")]
        return cls(*words, reask=str(data.get("reask") or "{question}"))


def _clean(text: str) -> str:
    text = re.sub(r"[\u2019\u2018`]", "'", (text or "").lower())
    return re.sub(r"\s+", " ", re.sub(r"[^a-z' ]+", " ", text)).strip()


def _has(text: str, phrase: str, start_only: bool) -> bool:
    pattern = ("^" if start_only else r"(?<![a-z'])") + re.escape(phrase) + r"(?![a-z'])"
    return re.search(pattern, text) is not None


def read_answer(text: str, intent: str | None, words: AnswerWords, single: bool = False) -> str | None:
    """YES, NO, UNSURE, or None when the message does not answer yes or no. `single`: the
    question is about one sign, so an answer saying that all is well with it ("sleep ok if I lie
    on my side", "walking fine") is a no; never for a grouped question, where it may speak of
    one item only, and never with a contrast ("fine in the day but..."), a yes, a "not" before
    the word, or "ok" alone (an acknowledgement)."""
    if (text or "").strip().startswith("/"):
        return INTENT_ANSWERS.get((intent or "").split("/")[0])
    if intent in NOT_ANSWERS or (intent or "").startswith("faq"):
        return None
    t = _clean(text)
    said = _answer_words(t, words)
    if said is not None:
        return said
    if intent in INTENT_ANSWERS and len(t.split()) <= 4:
        return INTENT_ANSWERS[intent]
    if single and t and _all_is_well(t, words):
        return NO
    return None


def _answer_words(t: str, words: AnswerWords) -> str | None:
    """The answer the words say, doubt first, then no, then yes; a no or yes only at the start."""
    if not t:
        return None
    for answer, phrases, start_only in ((UNSURE, words.unsure, False), (NO, words.deny, True),
                                        (YES, words.affirm, True)):
        if any(_has(t, p, start_only) for p in phrases):
            return answer
    return None


def _all_is_well(t: str, words: AnswerWords) -> bool:
    if any(_has(t, p, False) for p in words.contrast + words.affirm):
        return False
    for phrase in words.normal:
        for match in re.finditer(r"(?<![a-z'])" + re.escape(phrase) + r"(?![a-z'])", t):
            before = t[:match.start()].split()
            if phrase in ACKNOWLEDGEMENTS and not before:
                continue                     # "ok" first: an acknowledgement, not an answer
            if any(w in NEGATORS or w.endswith("n't") for w in before[-3:]):
                return False                 # "not feeling ok", "isn't normal"
            return True
    return False
