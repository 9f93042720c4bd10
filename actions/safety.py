"""Backline's safety layer inside a real Rasa bot (Rasa 3.6 with this action server).

Rasa runs `action_validate_slot_mappings` after every user message, before any policy
predicts, when the domain lists it under `actions:`. Here it asks bot/safety
(`SafetyLayer.decide`, the same decision Backline's own processor makes) what the message
means for safety, and applies it:

- the decision's slot events (triage level, danger signs, screening answers...);
- the alerts (utter_emergency / utter_urgent / utter_crisis, with the sign's reason and source),
  the screening question of a suspected sign (Yes / No / Not sure), or thanks for an answer;
- `safety_turn`: "stop" after an emergency or crisis alert, "question" when the message was
  a safety question's turn (asked or answered), else unset. The rules in
  data/safety_rules.yml read it so that nothing else answers the message, and
  `validate_symptom_form` reads it (`form_required_slots`): a stop ends the questions
  without a result; while a safety question is open the form asks nothing.

Backline's engine never runs this action (its processor calls the safety layer itself and
never predicts it); `safety_turn` stays unset there, so the rules and the form hook do nothing.
"""

from __future__ import annotations

import warnings
from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.forms import ValidationAction
from rasa_sdk.types import DomainDict

from actions.knowledge import guarded, safety_layer
from actions.results import with_numbers

TURN_SLOT = "safety_turn"
STOP, QUESTION = "stop", "question"
# The form's requested slot while a safety question is open: never filled and never asked
# (no utter_ask_ for it), so the form waits for the answer without asking its own question.
WAITING_SLOT = "safety_answer"
FORM = "symptom_form"
# rasa-sdk warns that no extract_ method fills WAITING_SLOT: by design, nothing does.
warnings.filterwarnings("ignore", message=f"No method 'extract_{WAITING_SLOT}' found")
ANSWER_BUTTONS = [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"},
                  {"title": "Not sure", "payload": "/skip"}]


def _screened_already(tracker: Tracker) -> bool:
    """Rasa runs the slot extraction again when a form activates, in the same turn: the
    message was screened when an action or a loop change follows it."""
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind == "user":
            return False
        if kind in ("action", "active_loop"):
            return True
    return False


class ActionSafetyScreen(ValidationAction):
    """The safety layer on every user message (Rasa's per-turn slot validation)."""

    def name(self) -> Text:
        return "action_validate_slot_mappings"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[Dict[Text, Any]]:
        if _screened_already(tracker):
            return []
        message = tracker.latest_message or {}
        intent = (message.get("intent") or {}).get("name")
        loop = tracker.active_loop_name
        decision = safety_layer().decide(tracker.slots, message.get("text") or "", intent, loop)

        # Rasa takes only slot events and bot messages from this action; the decision ends an
        # open form with `requested_slot: null` (its active_loop event would be dropped).
        events = [e for e in decision.events if e.get("event") == "slot"]
        for alert in decision.alerts:
            dispatcher.utter_message(response=alert.response, **alert.values)
        if decision.question is not None:
            dispatcher.utter_message(text=guarded(with_numbers(decision.question.text, tracker)),
                                     buttons=ANSWER_BUTTONS)
        elif decision.answered and not decision.alerts and not decision.stop:
            dispatcher.utter_message(response="utter_safety_thanks")

        turn = STOP if decision.stop else QUESTION if (decision.question or decision.answered) else None
        if turn != tracker.get_slot(TURN_SLOT):
            events.append({"event": "slot", "timestamp": None, "name": TURN_SLOT, "value": turn})
        if loop == FORM and (turn == QUESTION or tracker.get_slot("requested_slot") == WAITING_SLOT):
            # The form must not read this message as the answer to its own question: with no
            # requested slot it neither rejects nor fills; `form_required_slots` says what it asks.
            if not any(e["name"] == "requested_slot" for e in events):
                events.append({"event": "slot", "timestamp": None, "name": "requested_slot", "value": None})
        return events


def form_required_slots(domain_slots: List[Text], tracker: Tracker) -> List[Text]:
    """The slots `symptom_form` still asks for, as the safety layer allows (real Rasa only):
    none after an emergency or crisis (the form ends, no result); while the safety question it
    just asked is open, only the never-asked WAITING_SLOT (the form asks nothing this turn)."""
    turn = tracker.get_slot(TURN_SLOT)
    if turn == STOP:
        return []
    if turn == QUESTION and tracker.get_slot("safety_question"):
        return [WAITING_SLOT, *domain_slots]
    return domain_slots


class ActionSafetyAlert(Action):
    """The step the rules in data/safety_rules.yml predict when the safety layer answered the
    message: the alert or question is already sent, so it does nothing (Backline's engine
    records its own safety turns under the same name)."""

    def name(self) -> Text:
        return "action_safety_alert"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict) -> List[Dict[Text, Any]]:
        return []
