"""Conversation state as a list of Rasa-style event dicts, and the state derived from them.

A long conversation is not replayed from its first event on every turn: the store keeps a
checkpoint (the state after event number `seq`) and hands over only the events after it, a
window of between CHECKPOINT_WINDOW and twice that many events (`Tracker.checkpoint`). The
checkpoint also keeps the latest dialogue steps before the window (what rules and stories
match on) and the session's latest user messages (what the form actions read).
"""

from __future__ import annotations

import time
from typing import Any, Iterable

from bot.dialogue.domain import Domain

ACTION_LISTEN = "action_listen"
# Events kept after a checkpoint (the latest turn or two, for the actions' view of them).
CHECKPOINT_WINDOW = 16
# Dialogue steps kept in a checkpoint: more than any rule's or story's window (memoization
# looks at 2 x max_history = 10 steps, rules at a few).
CHECKPOINT_STEPS = 24
# User messages of the running session that came before the window, kept in the checkpoint
# (text and intent only) so that actions still see what the user said since the session began.
CHECKPOINT_USER_MESSAGES = 20
_STATE_FIELDS = ("active_loop", "latest_message", "latest_action_name", "latest_input_channel",
                 "followup_action", "paused", "last_rejected")
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

    def __init__(self, sender_id: str, domain: Domain, events: Iterable[dict[str, Any]] = (),
                 checkpoint: dict[str, Any] | None = None) -> None:
        """`events`: the whole conversation, or with `checkpoint` only the events after it."""
        self.sender_id = sender_id
        self.domain = domain
        self.events: list[dict[str, Any]] = []
        self.new_events: list[dict[str, Any]] = []   # appended during this turn, not yet stored
        self._reset_state()
        self._last_restart: int | None = None
        self.base_seq = 0                 # events before self.events (covered by the checkpoint)
        self._base: dict[str, Any] | None = None
        self._earlier_steps: list[tuple] = []   # the session's latest steps before self.events
        self._earlier_users: list[dict[str, Any]] = []  # its user messages before self.events
        if checkpoint:
            self._restore(checkpoint)
        for event in events:
            self._apply(event)
            self.events.append(event)

    # -- checkpoints ---------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything the events so far imply, as plain JSON (a checkpoint's `state`)."""
        state: dict[str, Any] = {name: getattr(self, name) for name in _STATE_FIELDS}
        state["slots"] = dict(self.slots)
        steps = self.turn_steps()
        if len(steps) > CHECKPOINT_STEPS:
            cut = len(steps) - CHECKPOINT_STEPS
            loop = None   # the loop active before the kept steps, as their first step
            for kind, value in steps[:cut]:
                if kind == "active_loop":
                    loop = value
            steps = [("active_loop", loop)] + steps[cut:]
        state["steps"] = [list(step) for step in steps]
        state["earlier_users"] = self.session_user_messages()[-CHECKPOINT_USER_MESSAGES:]
        return state

    def _restore(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state"]
        for name in _STATE_FIELDS:
            setattr(self, name, state.get(name))
        self.paused = bool(self.paused)
        self.slots.update({k: v for k, v in (state.get("slots") or {}).items() if k in self.domain.slots})
        self.base_seq = int(checkpoint["seq"])
        self._base = checkpoint
        self._earlier_steps = [tuple(step) for step in state.get("steps") or []]
        self._earlier_users = list(state.get("earlier_users") or [])

    @property
    def seq(self) -> int:
        """Number of the latest event (events are numbered from 1 in the store)."""
        return self.base_seq + len(self.events)

    def checkpoint(self, window: int = CHECKPOINT_WINDOW) -> dict[str, Any] | None:
        """A newer checkpoint for the store when more than 2 x `window` events follow the
        current one (then `window` events stay after it); None while the window is short.
        It is the state replayed up to that event from the current checkpoint, never guessed."""
        if len(self.events) <= 2 * window:
            return None
        cut = len(self.events) - window
        earlier = Tracker(self.sender_id, self.domain, self.events[:cut], checkpoint=self._base)
        return {"seq": self.base_seq + cut, "state": earlier.state()}

    def session_user_messages(self) -> list[dict[str, Any]]:
        """The user messages of the running session (text and intent), oldest first."""
        users = list(self._earlier_users)
        for event in self.events:
            kind = event.get("event")
            if kind in ("session_started", "restart"):
                users = []
            elif kind == "user":
                intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
                users.append({"event": "user", "timestamp": event.get("timestamp"), "text": event.get("text"),
                              "parse_data": {"intent": {"name": intent}}})
        return users

    def _reset_state(self) -> None:
        self.slots: dict[str, Any] = self.domain.initial_slots()
        self.active_loop: str | None = None
        self.latest_message: dict[str, Any] | None = None
        self.latest_action_name: str | None = None
        self.latest_input_channel: str | None = None
        self.followup_action: str | None = None
        self.paused = False
        self.last_rejected: str | None = None

    def add(self, event: dict[str, Any]) -> None:
        self._apply(event)
        self.events.append(event)
        self.new_events.append(event)

    def _apply(self, event: dict[str, Any]) -> None:
        """Update the state for `event`, which is about to become self.events[len(self.events)]."""
        handler = self._EVENT_HANDLERS.get(event.get("event"))
        if handler is not None:
            handler(self, event)

    # -- one handler per event kind (kinds without one change no state, e.g. `bot`) -------------

    def _apply_slot(self, event: dict[str, Any]) -> None:
        name = event.get("name")
        if name in self.domain.slots:
            self.slots[name] = self.domain.slots[name].coerce(event.get("value"))

    def _apply_user(self, event: dict[str, Any]) -> None:
        self.latest_message = {**(event.get("parse_data") or {}), "text": event.get("text"),
                               "message_id": event.get("message_id"), "metadata": event.get("metadata") or {}}
        self.latest_input_channel = event.get("input_channel")
        self.last_rejected = None

    def _apply_action(self, event: dict[str, Any]) -> None:
        self.latest_action_name = event.get("name")
        self.last_rejected = None
        self.followup_action = None      # as Rasa's ActionExecuted: a followup runs once

    def _apply_rejected(self, event: dict[str, Any]) -> None:
        self.last_rejected = event.get("name")

    def _apply_active_loop(self, event: dict[str, Any]) -> None:
        self.active_loop = event.get("name")

    def _apply_restart(self, event: dict[str, Any]) -> None:
        self._reset_state()
        self._last_restart = len(self.events)

    def _apply_session_started(self, event: dict[str, Any]) -> None:
        kept = dict(self.slots) if self.domain.carry_over_slots else None
        self._reset_state()
        if kept:
            self.slots.update(kept)

    def _apply_reset_slots(self, event: dict[str, Any]) -> None:
        self.slots = self.domain.initial_slots()

    def _apply_followup(self, event: dict[str, Any]) -> None:
        self.followup_action = event.get("name")

    def _apply_pause(self, event: dict[str, Any]) -> None:
        self.paused = True

    def _apply_resume(self, event: dict[str, Any]) -> None:
        self.paused = False

    _EVENT_HANDLERS = {
        "slot": _apply_slot,
        "user": _apply_user,
        "action": _apply_action,
        "action_execution_rejected": _apply_rejected,
        "active_loop": _apply_active_loop,
        "restart": _apply_restart,
        "session_started": _apply_session_started,
        "reset_slots": _apply_reset_slots,
        "followup": _apply_followup,
        "pause": _apply_pause,
        "resume": _apply_resume,
    }

    # -- views -------------------------------------------------------------------------------

    @property
    def latest_intent(self) -> str | None:
        return ((self.latest_message or {}).get("intent") or {}).get("name")

    @property
    def requested_slot(self) -> str | None:
        return self.slots.get("requested_slot")

    def _restart_index(self) -> int | None:
        """Index in self.events of the latest restart (kept up to date by `_apply`)."""
        return self._last_restart

    def applied_events(self) -> list[dict[str, Any]]:
        """Events since the last restart (what the dialogue state is built from)."""
        index = self._restart_index()
        return self.events if index is None else self.events[index + 1:]

    def turn_steps(self) -> list[tuple]:
        """The dialogue as steps for the policies: intents, (non-transparent) actions, loops.
        After a checkpoint, its latest steps come first (older ones summed up as one step: the
        loop that was active before them)."""
        steps: list[tuple] = list(self._earlier_steps) if self._restart_index() is None else []
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
        earlier = self._earlier_users if self._restart_index() is None else []
        if mode == "ALL":
            events = earlier + self.events
        elif mode == "NONE":
            events = None
        elif mode == "APPLIED":
            events = self.applied_events()
        else:
            events = self.applied_events()
        if mode != "NONE" and mode != "ALL":
            events = earlier + events
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
