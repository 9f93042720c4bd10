"""Conversation state as a list of Rasa-style event dicts, and the state derived from them."""

from __future__ import annotations

import time
from typing import Any, Iterable

from bot.dialogue.domain import Domain

ACTION_LISTEN = "action_listen"
# Actions the safety layer inserts on its own; policies look through them when matching rules.
TRANSPARENT_ACTIONS = {ACTION_LISTEN, "action_session_start", "action_safety_alert", "action_extract_slots"}


# -- event constructors (same shapes as rasa_sdk.events and Rasa's tracker JSON) ---------------

def _now() -> float:
    return time.time()


def user_uttered(text: str, parse_data: dict[str, Any], *, input_channel: str | None = None,
                 message_id: str | None = None, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"event": "user", "timestamp": _now(), "metadata": metadata or {}, "text": text,
            "parse_data": parse_data, "input_channel": input_channel, "message_id": message_id}


def bot_uttered(message: dict[str, Any]) -> dict[str, Any]:
    data = {key: message.get(key) for key in ("elements", "quick_replies", "buttons", "attachment", "image", "custom")}
    metadata = {"utter_action": message["response"]} if message.get("response") else {}
    return {"event": "bot", "timestamp": _now(), "metadata": metadata, "text": message.get("text"), "data": data}


def slot_set(name: str, value: Any) -> dict[str, Any]:
    return {"event": "slot", "timestamp": _now(), "name": name, "value": value}


def action_executed(name: str, policy: str | None = None, confidence: float | None = 1.0) -> dict[str, Any]:
    return {"event": "action", "timestamp": _now(), "name": name, "policy": policy, "confidence": confidence,
            "action_text": None, "hide_rule_turn": False}


def active_loop(name: str | None) -> dict[str, Any]:
    return {"event": "active_loop", "timestamp": _now(), "name": name}


def session_started() -> dict[str, Any]:
    return {"event": "session_started", "timestamp": _now()}


def restarted() -> dict[str, Any]:
    return {"event": "restart", "timestamp": _now()}


def action_rejected(name: str) -> dict[str, Any]:
    return {"event": "action_execution_rejected", "timestamp": _now(), "name": name, "policy": None,
            "confidence": None}


# -- the tracker --------------------------------------------------------------------------------

class Tracker:
    """Events of one conversation plus the state they imply (slots, active loop, last message)."""

    def __init__(self, sender_id: str, domain: Domain, events: Iterable[dict[str, Any]] = ()) -> None:
        self.sender_id = sender_id
        self.domain = domain
        self.events: list[dict[str, Any]] = []
        self.new_events: list[dict[str, Any]] = []   # appended during this turn, not yet stored
        self._reset_state()
        for event in events:
            self._apply(event)
            self.events.append(event)

    def _reset_state(self) -> None:
        self.slots: dict[str, Any] = self.domain.initial_slots()
        self.active_loop: str | None = None
        self.latest_message: dict[str, Any] | None = None
        self.latest_action_name: str | None = None
        self.latest_input_channel: str | None = None
        self.latest_bot_text: str | None = None
        self.followup_action: str | None = None
        self.paused = False
        self.last_rejected: str | None = None

    def add(self, event: dict[str, Any]) -> None:
        self._apply(event)
        self.events.append(event)
        self.new_events.append(event)

    def _apply(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "slot":
            name = event.get("name")
            if name in self.domain.slots:
                self.slots[name] = self.domain.slots[name].coerce(event.get("value"))
        elif kind == "user":
            self.latest_message = {**(event.get("parse_data") or {}), "text": event.get("text"),
                                   "message_id": event.get("message_id"), "metadata": event.get("metadata") or {}}
            self.latest_input_channel = event.get("input_channel")
            self.last_rejected = None
        elif kind == "action":
            self.latest_action_name = event.get("name")
            self.last_rejected = None
            self.followup_action = None      # as Rasa's ActionExecuted: a followup runs once
        elif kind == "action_execution_rejected":
            self.last_rejected = event.get("name")
        elif kind == "active_loop":
            self.active_loop = event.get("name")
        elif kind == "bot":
            self.latest_bot_text = event.get("text")
        elif kind == "restart":
            self._reset_state()
        elif kind == "session_started":
            kept = dict(self.slots) if self.domain.carry_over_slots else None
            self._reset_state()
            if kept:
                self.slots.update(kept)
        elif kind == "reset_slots":
            self.slots = self.domain.initial_slots()
        elif kind == "followup":
            self.followup_action = event.get("name")
        elif kind == "pause":
            self.paused = True
        elif kind == "resume":
            self.paused = False

    # -- views -------------------------------------------------------------------------------

    @property
    def latest_intent(self) -> str | None:
        return ((self.latest_message or {}).get("intent") or {}).get("name")

    @property
    def requested_slot(self) -> str | None:
        return self.slots.get("requested_slot")

    def applied_events(self) -> list[dict[str, Any]]:
        """Events since the last restart (what the dialogue state is built from)."""
        start = 0
        for index, event in enumerate(self.events):
            if event.get("event") == "restart":
                start = index + 1
        return self.events[start:]

    def turn_steps(self) -> list[tuple]:
        """The dialogue as steps for the policies: intents, (non-transparent) actions, loops."""
        steps: list[tuple] = []
        for event in self.applied_events():
            kind = event.get("event")
            if kind == "user":
                steps.append(("intent", ((event.get("parse_data") or {}).get("intent") or {}).get("name")))
            elif kind == "action" and event.get("name") not in TRANSPARENT_ACTIONS:
                steps.append(("action", event.get("name")))
            elif kind == "active_loop":
                steps.append(("active_loop", event.get("name")))
            elif kind == "session_started":
                steps.clear()
        return steps

    def slots_set_since_user(self) -> dict[str, Any]:
        """Slot events after the latest user message (what a form validates)."""
        result: dict[str, Any] = {}
        for event in reversed(self.events):
            if event.get("event") == "user":
                break
            if event.get("event") == "slot":
                result.setdefault(event["name"], event.get("value"))
        return result

    def as_dict(self, include_events: str = "AFTER_RESTART") -> dict[str, Any]:
        """Rasa's tracker JSON (GET /conversations/<id>/tracker and the action server payload)."""
        mode = (include_events or "AFTER_RESTART").upper()
        if mode == "ALL":
            events = self.events
        elif mode == "NONE":
            events = None
        elif mode == "APPLIED":
            events = self.applied_events()
        else:
            events = self.applied_events()
        latest = dict(self.latest_message or {"intent": {}, "entities": [], "text": None, "message_id": None,
                                              "metadata": {}})
        latest_event_time = self.events[-1].get("timestamp") if self.events else None
        return {
            "sender_id": self.sender_id,
            "slots": dict(self.slots),
            "latest_message": latest,
            "latest_event_time": latest_event_time,
            "followup_action": self.followup_action,
            "paused": self.paused,
            "events": list(events) if events is not None else None,
            "latest_input_channel": self.latest_input_channel,
            "active_loop": {"name": self.active_loop} if self.active_loop else {},
            "latest_action": {"action_name": self.latest_action_name} if self.latest_action_name else {},
            "latest_action_name": self.latest_action_name,
        }
