"""Validation and custom extraction for `symptom_form` (domain.yml).

Rasa calls `validate_symptom_form` after each user turn while the form is active: first the
`extract_<slot>` methods (free-text fallbacks), then `validate_<slot>` for every slot just set.
The screening questions (`screen_*`) are answered by the safety layer (bot/safety), which reads
every message first and is the only writer of those slots, `red_flags` and `triage_level`.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Text, Tuple

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
)
from actions.safety import form_required_slots

SlotDict = Dict[Text, Any]


class _SafetySlotsFilter(logging.Filter):
    """rasa-sdk warns that `screen_*` slots have no validate_ method: they need none, the safety
    layer set them from the user's words before this action ran."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Skipping validation for `screen_" not in record.getMessage()


logging.getLogger("rasa_sdk.forms").addFilter(_SafetySlotsFilter())

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


class ValidateSymptomForm(FormValidationAction):
    """Reads and checks the answers to `symptom_form`."""

    def name(self) -> Text:
        return "validate_symptom_form"

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> List[Text]:
        return form_required_slots(domain_slots, tracker)   # real Rasa: a danger sign ends the questions

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
        return {"severity": format_score(score)}

    def validate_trigger(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        text = str(value or "").strip()[:MAX_TEXT]
        return {"trigger": text or None}
