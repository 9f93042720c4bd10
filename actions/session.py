"""Custom session start: a fresh session that carries nothing over and opens with the disclaimer."""

from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, EventType, SessionStarted
from rasa_sdk.executor import CollectingDispatcher


class ActionSessionStart(Action):
    """Starts every session with the disclaimer (DESIGN.md safety rule 6).

    No slots are carried over: triage answers from an earlier session must not leak into
    a new one. The engine fills {emergency_number} in `utter_disclaimer` from config.
    """

    def name(self) -> Text:
        return "action_session_start"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        dispatcher.utter_message(response="utter_disclaimer")
        return [SessionStarted(), ActionExecuted("action_listen")]
