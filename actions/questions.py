"""How `symptom_form` asks its questions: `action_ask_<slot>` (Rasa's hook for a form question).

Each question acknowledges what the last answer gave ("Got it: lower back, 7 out of 10."), asks in
the third person when the user is asking for someone else, and, when the same question has to be
asked again, rephrases it with choices to tap instead of repeating the same sentence.
The wording lives in domain.yml (`utter_ask_<slot>`, `utter_reask_<slot>`, `..._other`).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions.knowledge import get_knowledge
from actions.parsing import NOT_GIVEN

ASK_PREFIXES = ("action_ask_", "utter_ask_", "utter_reask_")
ACK_SLOTS = ("body_part", "duration", "severity", "trigger")
ACK_FORMS = {"severity": "{} out of 10"}
MAX_ACK_CHARS = 60


def times_asked(tracker: Tracker, slot: str) -> int:
    """How many bot turns in a row just asked the question for `slot` (0: never, 1: once...),
    from the responses the bot sent (their `utter_action`, as Rasa records it). A turn that did
    not ask it (a safety question came in between, another question) ends the run."""
    family = {f"{kind}_{slot}{suffix}" for kind in ("utter_ask", "utter_reask") for suffix in ("", "_other")}
    count, turns, asked_this_turn = 0, 0, False   # turns: user messages passed so far
    for event in reversed(tracker.events):
        kind = event.get("event")
        if kind in ("session_started", "restart"):
            break
        if kind == "user":
            if turns and not asked_this_turn:
                break            # that bot turn asked something else (or nothing)
            turns, asked_this_turn = turns + 1, False
            continue
        if kind != "bot":
            continue
        name = (event.get("metadata") or {}).get("utter_action") or ""
        if name in family:
            count += 1
            asked_this_turn = True
        elif name.startswith(ASK_PREFIXES):
            break
    return count


def _since_user(tracker: Tracker) -> Dict[Text, Any]:
    """Slots set after the latest user message (what this turn understood)."""
    values: Dict[Text, Any] = {}
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            break
        if event.get("event") == "slot":
            values.setdefault(event.get("name"), event.get("value"))
    return values


def acknowledgement(tracker: Tracker) -> Optional[str]:
    """"Got it: lower back, 7 out of 10." for the answers just understood, or None."""
    new = _since_user(tracker)
    parts = []
    for slot in ACK_SLOTS:
        value = new.get(slot)
        if value in (None, "", NOT_GIVEN) or not isinstance(value, str) or len(value) > MAX_ACK_CHARS:
            continue
        parts.append(ACK_FORMS.get(slot, "{}").format(value))
    return f"Got it: {', '.join(parts)}." if parts else None


def _asked_something(tracker: Tracker) -> bool:
    from actions.form import ANSWER_BLOCKING_INTENTS

    intent = ((tracker.latest_message or {}).get("intent") or {}).get("name") or ""
    return intent.split("/")[0] in ANSWER_BLOCKING_INTENTS - {"skip"}


class AskSlot:
    """Asks `slot`; the classes made below set the slot. A mixin, not an Action itself, so
    rasa-sdk registers only the per-slot actions (it registers every Action subclass)."""

    slot = ""

    def name(self) -> Text:
        return f"action_ask_{self.slot}"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]) -> List[EventType]:
        responses = domain.get("responses") or {}
        ack = acknowledgement(tracker)
        if ack:
            dispatcher.utter_message(text=ack)
        # Rephrased only after an answer that was not understood; after "why?" or another
        # question the user asked, the question simply comes again.
        again = times_asked(tracker, self.slot) >= 1 and not _asked_something(tracker)
        name = f"utter_reask_{self.slot}" if again and f"utter_reask_{self.slot}" in responses else f"utter_ask_{self.slot}"
        other = (tracker.get_slot("patient_facts") or {}).get("patient") == "other"
        if other and f"{name}_other" in responses:
            name = f"{name}_other"
        dispatcher.utter_message(response=name)
        return []

# One action per form question (rasa-sdk registers every Action subclass it finds).
for _slot in get_knowledge().questions:
    globals()[f"Ask_{_slot}"] = type(f"Ask_{_slot}", (AskSlot, Action), {"slot": _slot})
del _slot
