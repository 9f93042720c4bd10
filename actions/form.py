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
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import FormValidationAction
from rasa_sdk.types import DomainDict

from actions.knowledge import get_knowledge, safety_layer
from actions.parsing import (
    NOT_GIVEN,
    format_score,
    is_unsure,
    normalise_body_part,
    parse_duration,
    parse_severity,
    severity_from_words,
)
from actions.safety import form_required_slots
from bot.safety.quantities import DURATION

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
    "ask_medication", "ask_when_to_see_provider", "request_summary", "faq", "ask_serious", "request_details",
}
# Intents whose text may stand as the trigger answer ("lifting a box", "yes, a fall").
TRIGGER_TEXT_INTENTS = {"inform", "report_symptom", "affirm", "nlu_fallback", "out_of_scope", None}
# ("painting the ceiling, looking up for hours" may read as out of scope: as an answer it is the trigger)

MAX_TEXT = 200
COPING = "coping"


def _latest(tracker: Tracker) -> Tuple[Optional[str], str]:
    message = tracker.latest_message or {}
    intent = (message.get("intent") or {}).get("name")
    if intent:
        intent = intent.split("/")[0]  # retrieval intents: faq/<topic> -> faq
    return intent, (message.get("text") or "").strip()


def _asking(tracker: Tracker, slot: str) -> bool:
    """True when `slot` is the open question and still unanswered."""
    return tracker.get_slot("requested_slot") == slot and tracker.get_slot(slot) is None


def required(domain_slots: List[Text], tracker: Tracker) -> List[Text]:
    """The questions still worth asking, in order: a grouped danger-sign question stands for its
    single questions, which are asked only when its answer was unclear ("yes", "not sure")."""
    checklists = safety_layer().checklists
    grouped = {sign for signs in checklists.values() for sign in signs}
    singles = {slot for slot, sign in safety_layer().screen_slots.items() if sign in grouped}
    unclear = {sign for slot, signs in checklists.items() if tracker.get_slot(slot) == "unclear" for sign in signs}
    keep = []
    for slot in domain_slots:
        sign = safety_layer().screen_slots.get(slot)
        if slot in singles and sign not in unclear:
            continue
        if slot == COPING and not long_standing(tracker.get_slot("duration")):
            continue
        keep.append(slot)
    return keep


def long_standing(duration: Any) -> bool:
    """Whether the pain has lasted long enough for the coping question (knowledge/questions.yml
    `coping: ask_after_weeks`)."""
    if duration in (None, NOT_GIVEN):
        return False
    weeks = parse_duration(duration).weeks
    return weeks is not None and weeks >= get_knowledge().questions[COPING].extra["ask_after_weeks"]


class ValidateSymptomForm(FormValidationAction):
    """Reads and checks the answers to `symptom_form`."""

    def name(self) -> Text:
        return "validate_symptom_form"

    async def required_slots(self, domain_slots: List[Text], dispatcher: CollectingDispatcher, tracker: Tracker,
                             domain: DomainDict) -> List[Text]:
        # real Rasa: a danger sign ends the questions (actions/safety.py); then the interview's
        # own choice of which questions are still worth asking
        return required(form_required_slots(domain_slots, tracker), tracker)

    # ----------------------------------------------------------------- free-text answers
    # The NLU fills these slots from entities; the open question decides what a plain answer
    # means ("7" is a score when the pain question is open). A message that gives another
    # fact too ("pretty bad, like 7" to the location question) fills that slot as well.
    # An answer that is not understood is asked again once, with choices; the second time the
    # question is skipped ("not given"), so the same sentence never comes three times.

    async def extract_body_part(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        intent, text = _latest(tracker)
        if intent in ANSWER_BLOCKING_INTENTS or not text or text.startswith("/"):
            return {}
        body = get_knowledge().questions["body_part"].extra
        value = normalise_body_part(text, body["values"], body["sides"])
        if not _asking(tracker, "body_part"):
            return {"body_part": value} if value and _names_a_place(text, body["values"]) else {}
        return {"body_part": value} if value else _not_understood(tracker, "body_part", text)

    async def extract_duration(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        intent, text = _latest(tracker)
        if intent in ANSWER_BLOCKING_INTENTS or not text or text.startswith("/"):
            return {}
        asking = _asking(tracker, "duration")
        kinds = _number_kinds(text, "duration" if asking else None)
        if DURATION in kinds and not asking:
            # "a week", not the whole report; a time said in passing ("38.6 last night") does not
            # replace the duration already given
            return {} if tracker.get_slot("duration") not in (None, NOT_GIVEN) else {"duration": _duration_phrase(text)}
        if DURATION in kinds or (asking and not kinds and parse_duration(text).recognised):
            return {"duration": text[:MAX_TEXT]}
        return _not_understood(tracker, "duration", text) if asking else {}

    async def extract_severity(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        intent, text = _latest(tracker)
        if intent in ANSWER_BLOCKING_INTENTS or not text or text.startswith("/"):
            return {}
        asking = _asking(tracker, "severity")
        score = _score(text, asking)
        if score is not None:
            return {"severity": format_score(score)}
        return _not_understood(tracker, "severity", text) if asking else {}

    async def extract_trigger(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        intent, text = _latest(tracker)
        if not _asking(tracker, "trigger") or intent not in TRIGGER_TEXT_INTENTS or not text or text.startswith("/"):
            return {}
        return {"trigger": NOT_GIVEN if is_unsure(text) else text[:MAX_TEXT]}

    # Screening questions are answered by the safety layer before this action runs; when it
    # could not read the answer, the question is asked again (rephrased, with choices).
    async def extract_requested_screening(self, tracker: Tracker) -> SlotDict:
        slot = tracker.get_slot("requested_slot")
        intent, text = _latest(tracker)
        if not slot or not safety_layer().owns(slot) or tracker.get_slot(slot) is not None \
                or intent in ANSWER_BLOCKING_INTENTS - {"skip"}:
            return {}
        return {slot: None}

    async def get_extraction_events(self, dispatcher: CollectingDispatcher, tracker: Tracker,
                                    domain: DomainDict) -> List[EventType]:
        events = await super().get_extraction_events(dispatcher, tracker, domain)
        return events + [SlotSet(k, v) for k, v in (await self.extract_requested_screening(tracker)).items()]

    # ----------------------------------------------------------------- validation

    def validate_body_part(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        if value in (None, NOT_GIVEN):
            return {"body_part": value}
        body = get_knowledge().questions["body_part"].extra
        canonical = normalise_body_part(value, body["values"], body["sides"])
        if canonical:
            return {"body_part": canonical}
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        text = str(value or "").strip().lower()[:MAX_TEXT]
        return {"body_part": text or None}

    def validate_duration(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        if value in (None, NOT_GIVEN):
            return {"duration": value}
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        _, text = _latest(tracker)
        asking = tracker.get_slot("requested_slot") == "duration"
        before = _before_this_turn(tracker, "duration")
        if not asking and before not in (None, NOT_GIVEN):
            return {"duration": before}    # a time said in passing ("38.6 last night") is not how long
        kinds = _number_kinds(text, "duration" if asking else None)
        if kinds and DURATION not in kinds:
            return {"duration": None}      # "34 weeks pregnant", "on steroids for 5 years": not how long
        if parse_duration(value).recognised:
            return {"duration": str(value).strip()[:MAX_TEXT]}
        return {"duration": None}

    def validate_severity(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        if value in (None, NOT_GIVEN):
            return {"severity": value}
        question = get_knowledge().questions["severity"]
        low, high = question.extra["min"], question.extra["max"]
        if isinstance(value, list):
            value = value[0] if value else None
        score = parse_severity(value)
        if score is None or not low <= score <= high:
            return {"severity": None}
        _, text = _latest(tracker)
        if not text.startswith("/") and _score(text, tracker.get_slot("requested_slot") == "severity") is None:
            return {"severity": None}      # a number that measures something else ("5 or 6 days", "81")
        return {"severity": format_score(score)}

    def validate_coping(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        # any words answer it (the safety layer has already read them); a question or "why?"
        # in their place is answered first and the question comes back
        intent, _ = _latest(tracker)
        if value == NOT_GIVEN:
            return {"coping": NOT_GIVEN}
        if (intent or "").split("/")[0] in ANSWER_BLOCKING_INTENTS:
            return {"coping": None}
        text = str(value or "").strip()[:MAX_TEXT]
        return {"coping": text or None}

    def validate_trigger(self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> SlotDict:
        if isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        text = str(value or "").strip()[:MAX_TEXT]
        return {"trigger": text or None}


def _before_this_turn(tracker: Tracker, slot: str) -> Any:
    """The value `slot` had before the latest user message."""
    seen_user = False
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            seen_user = True
        elif seen_user and event.get("event") == "slot" and event.get("name") == slot:
            return event.get("value")
        elif event.get("event") in ("session_started", "restart"):
            break
    return None


def _not_understood(tracker: Tracker, slot: str, text: str) -> SlotDict:
    """Ask again (slot stays empty) the first time; skip the question the second time."""
    from actions.questions import times_asked

    if is_unsure(text) or times_asked(tracker, slot) >= 2:
        return {slot: NOT_GIVEN}
    if _latest(tracker)[0] == "out_of_scope":
        return {}           # "my toothache is killing me": not an answer; the rule says so, then asks again
    return {slot: None}


def _names_a_place(text: str, values: Dict[str, Any]) -> bool:
    """A location named outright ("my lower back"), not a side or a word in passing."""
    return normalise_body_part(text, values, {}) is not None


def _number_kinds(text: str, asked: Optional[str]) -> set:
    from bot.safety.quantities import read_quantities

    return {q.kind for q in read_quantities(safety_layer().screener.text(text), asked)}


def _duration_phrase(text: str) -> str:
    """The words of the first duration in a message ("a week" in "... hurting for a week")."""
    from bot.safety.quantities import read_quantities
    from bot.safety.screen import message_slice

    tokens = safety_layer().screener.text(text)
    spans = [q for q in read_quantities(tokens, None) if q.kind == DURATION]
    return message_slice(tokens, spans[0].start, spans[0].end) if spans else text[:MAX_TEXT]


def _score(text: str, asking: bool) -> Optional[float]:
    """The pain score a message gives: a number read as a score (the safety layer's reader, so a
    duration, an age or a temperature is never a score), or, when asked, words like "pretty bad"."""
    from bot.safety.quantities import SCORE, read_quantities

    scores = [q.value for q in read_quantities(safety_layer().screener.text(text), "severity" if asking else None)
              if q.kind == SCORE]
    if scores:
        return max(scores)
    if asking:
        return severity_from_words(text, get_knowledge().questions["severity"].extra.get("words") or {})
    return None
