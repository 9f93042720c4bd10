"""Validation and custom extraction for `symptom_form` (domain.yml).

Rasa calls `validate_symptom_form` after each user turn while the form is active: first the
`extract_<slot>` methods (free-text fallbacks and the yes/no/not-sure screening answers),
then `validate_<slot>` for every slot just set. Screening "yes" or "not sure" adds the danger
sign to `red_flags` and raises `triage_level`; the engine, seeing `red_flags` grow, sends the
emergency or urgent message.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Text, Tuple

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from actions.knowledge import get_knowledge
from actions.parsing import (
    NOT_GIVEN,
    format_score,
    normalise_body_part,
    parse_duration,
    parse_severity,
    read_answer,
)
from actions.triage import add_flag

SlotDict = Dict[Text, Any]

# A short answer that clearly reads as a pain score, a duration, a body part or a yes/no
# counts even when the NLU guessed an odd intent for it ("eight" as goodbye). Only these
# intents, which mean the user is asking or steering, keep a message from being read as an
# answer (the rules for "why?", "stop", FAQ... handle them).
ANSWER_BLOCKING_INTENTS = {
    "why_ask", "stop", "skip", "help", "bot_challenge", "ask_diagnosis", "ask_self_care",
    "ask_medication", "ask_when_to_see_provider", "request_summary", "faq",
}
# Intents whose text may stand as the trigger answer ("lifting a box", "yes, a fall").
TRIGGER_TEXT_INTENTS = {"inform", "report_symptom", "affirm", "nlu_fallback", None}

DURATION_REASK = "Sorry, I didn't catch how long. You can say something like \"since yesterday\", \"3 weeks\" or \"a few months\"."
MAX_TEXT = 200


def _latest(tracker: Tracker) -> Tuple[Optional[str], str]:
    message = tracker.latest_message or {}
    intent = (message.get("intent") or {}).get("name")
    if intent:
        intent = intent.split("/")[0]  # retrieval intents: faq/<topic> -> faq
    return intent, (message.get("text") or "").strip()


def _asking(tracker: Tracker, slot: str) -> bool:
    """True when `slot` is the open question and still unanswered."""
    return tracker.get_slot("requested_slot") == slot and tracker.get_slot(slot) is None


def _screen_extractor(slot: str) -> Callable[..., SlotDict]:
    def extract(self: "ValidateSymptomForm", dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        # An answered question (here, or by the safety screen from free text) is not asked again.
        if not _asking(tracker, slot):
            return {}
        intent, text = _latest(tracker)
        if intent in ANSWER_BLOCKING_INTENTS - {"skip"}:
            return {}
        answer = read_answer(intent, text, get_knowledge().answers)
        return {} if answer is None else {slot: answer}

    extract.__name__ = f"extract_{slot}"
    extract.__doc__ = f"Yes / no / not sure for `{slot}`; not sure counts as yes."
    return extract


def _screen_validator(slot: str) -> Callable[..., SlotDict]:
    def validate(self: "ValidateSymptomForm", value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        if value is None:
            return {slot: None}
        present = value is True or (isinstance(value, str) and value.strip().lower() in ("true", "yes", "1"))
        if not present:
            return {slot: False}
        knowledge = get_knowledge()
        flag = knowledge.questions[slot].flag
        return {slot: True, **_raise_flag(tracker, flag)}

    validate.__name__ = f"validate_{slot}"
    validate.__doc__ = f"A present `{slot}` adds its danger sign and raises the triage level."
    return validate


def _raise_flag(tracker: Tracker, flag: Optional[str]) -> SlotDict:
    """SlotSets for `red_flags`/`triage_level` after `flag`, only those that change."""
    if not flag:
        return {}
    old_flags = list(tracker.get_slot("red_flags") or [])
    old_level = tracker.get_slot("triage_level") or "info"
    flags, level = add_flag(get_knowledge(), old_flags, old_level, flag)
    out: SlotDict = {}
    if flags != old_flags:
        out["red_flags"] = flags
    if level != old_level:
        out["triage_level"] = level
    return out


class ValidateSymptomForm(FormValidationAction):
    """Reads and checks the answers to `symptom_form`."""

    def name(self) -> Text:
        return "validate_symptom_form"

    # ----------------------------------------------------------------- free-text fallbacks
    # The NLU fills these slots from entities; when it finds none but the user plainly
    # answered the open question ("7", "about 3 weeks"), read the answer from the text.

    async def extract_body_part(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        intent, text = _latest(tracker)
        if not _asking(tracker, "body_part") or intent in ANSWER_BLOCKING_INTENTS:
            return {}
        body = get_knowledge().questions["body_part"].extra
        value = normalise_body_part(text, body["values"], body["sides"])
        return {"body_part": value} if value else {}

    async def extract_duration(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        intent, text = _latest(tracker)
        if not _asking(tracker, "duration") or intent in ANSWER_BLOCKING_INTENTS or not text:
            return {}
        return {"duration": text} if parse_duration(text).recognised else {}

    async def extract_severity(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        intent, text = _latest(tracker)
        if not _asking(tracker, "severity") or intent in ANSWER_BLOCKING_INTENTS:
            return {}
        # Hand any number to validate_severity, so "12" is re-asked rather than ignored.
        return {"severity": text} if parse_severity(text) is not None else {}

    async def extract_trigger(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        intent, text = _latest(tracker)
        if not _asking(tracker, "trigger") or intent not in TRIGGER_TEXT_INTENTS or not text or text.startswith("/"):
            return {}
        return {"trigger": text}

    # ----------------------------------------------------------------- validation

    def validate_body_part(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        if value == NOT_GIVEN:
            return {"body_part": NOT_GIVEN}
        body = get_knowledge().questions["body_part"].extra
        canonical = normalise_body_part(value, body["values"], body["sides"])
        if canonical:
            return {"body_part": canonical}
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        text = str(value or "").strip().lower()[:MAX_TEXT]
        return {"body_part": text or None}

    def validate_duration(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        if value == NOT_GIVEN:
            return {"duration": NOT_GIVEN}
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        if parse_duration(value).recognised:
            return {"duration": str(value).strip()[:MAX_TEXT]}
        dispatcher.utter_message(text=DURATION_REASK)
        return {"duration": None}

    def validate_severity(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        if value == NOT_GIVEN:
            return {"severity": NOT_GIVEN}
        question = get_knowledge().questions["severity"]
        low, high = question.extra["min"], question.extra["max"]
        if isinstance(value, list):
            value = value[0] if value else None
        score = parse_severity(value)
        if score is None or not low <= score <= high:
            dispatcher.utter_message(text=question.extra.get("reask") or f"Please give a number from {low} to {high}.")
            return {"severity": None}
        slots: SlotDict = {"severity": format_score(score)}
        threshold = question.extra.get("flag_at_or_above")
        if threshold is not None and score >= threshold:
            slots.update(_raise_flag(tracker, question.flag))
        return slots

    def validate_trigger(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        text = str(value or "").strip()[:MAX_TEXT]
        return {"trigger": text or None}

    # ----------------------------------------------------------------- screening questions

    extract_screen_bladder_bowel = _screen_extractor("screen_bladder_bowel")
    extract_screen_saddle_numbness = _screen_extractor("screen_saddle_numbness")
    extract_screen_leg = _screen_extractor("screen_leg")
    extract_screen_leg_numbness = _screen_extractor("screen_leg_numbness")
    extract_screen_fever = _screen_extractor("screen_fever")
    extract_screen_injury = _screen_extractor("screen_injury")
    extract_screen_cancer = _screen_extractor("screen_cancer")
    extract_screen_weight_loss = _screen_extractor("screen_weight_loss")
    extract_screen_night_pain = _screen_extractor("screen_night_pain")

    validate_screen_bladder_bowel = _screen_validator("screen_bladder_bowel")
    validate_screen_saddle_numbness = _screen_validator("screen_saddle_numbness")
    validate_screen_leg = _screen_validator("screen_leg")
    validate_screen_leg_numbness = _screen_validator("screen_leg_numbness")
    validate_screen_fever = _screen_validator("screen_fever")
    validate_screen_injury = _screen_validator("screen_injury")
    validate_screen_cancer = _screen_validator("screen_cancer")
    validate_screen_weight_loss = _screen_validator("screen_weight_loss")
    validate_screen_night_pain = _screen_validator("screen_night_pain")

