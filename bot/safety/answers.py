"""Yes / no / not sure, as answers to a screening question.

Doubt wins over everything ("no idea" is not a no): an unsure answer counts as yes (DESIGN.md).
Button payloads come as intents: /affirm = yes, /deny = no, /skip = not sure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

YES, NO, UNSURE = "yes", "no", "unsure"
INTENT_ANSWERS = {"affirm": YES, "deny": NO, "skip": UNSURE}
# Messages that steer the conversation rather than answer ("never mind", "why do you ask?")
NOT_ANSWERS = frozenset({"stop", "why_ask", "help", "bot_challenge", "ask_diagnosis", "ask_self_care",
                         "ask_medication", "ask_when_to_see_provider", "request_summary", "goodbye", "restart"})


@dataclass(frozen=True)
class AnswerWords:
    affirm: tuple[str, ...]
    deny: tuple[str, ...]
    unsure: tuple[str, ...]

    @classmethod
    def from_data(cls, data: Mapping[str, object]) -> "AnswerWords":
        return cls(*(tuple(str(w).lower() for w in data.get(k) or ()) for k in ("affirm", "deny", "unsure")))


def _clean(text: str) -> str:
    text = re.sub(r"[\u2019\u2018`]", "'", (text or "").lower())
    return re.sub(r"\s+", " ", re.sub(r"[^a-z' ]+", " ", text)).strip()


def _has(text: str, phrase: str, start_only: bool) -> bool:
    pattern = ("^" if start_only else r"(?<![a-z'])") + re.escape(phrase) + r"(?![a-z'])"
    return re.search(pattern, text) is not None


def read_answer(text: str, intent: str | None, words: AnswerWords) -> str | None:
    """YES, NO, UNSURE, or None when the message does not answer yes or no."""
    if (text or "").strip().startswith("/"):
        return INTENT_ANSWERS.get((intent or "").split("/")[0])
    if intent in NOT_ANSWERS or (intent or "").startswith("faq"):
        return None
    t = _clean(text)
    if t and any(_has(t, p, False) for p in words.unsure):
        return UNSURE
    if t and any(_has(t, p, True) for p in words.deny):
        return NO
    if t and any(_has(t, p, True) for p in words.affirm):
        return YES
    if intent in INTENT_ANSWERS and len(t.split()) <= 4:
        return INTENT_ANSWERS[intent]
    return None
