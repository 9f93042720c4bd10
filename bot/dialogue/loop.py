"""Which action comes next in a turn (Rasa's loop prediction plus its policy ensemble, in miniature):
a followup action first, then the active form's happy path, then the rules and stories, else a
fallback on a fresh user message or listen."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.dialogue import tracker as ev
from bot.dialogue.policies import Prediction
from bot.dialogue.tracker import ACTION_LISTEN, Tracker

FALLBACK_ACTION = "action_default_fallback"


class Policy(Protocol):
    """What `RulePolicy` and `MemoizationPolicy` share: a prediction, or None to pass."""

    def predict(self, tracker: Tracker) -> Prediction | None: ...


def _this_turn(tracker: Tracker) -> tuple[bool, str | None]:
    """Scanning back to the latest user message: whether it is reached before any action that is
    not the safety layer's own (or action_listen), and the name of that action if not."""
    for event in reversed(tracker.events):
        if event.get("event") == "user":
            return True, None
        if event.get("event") == "action" and event.get("name") not in ev.TRANSPARENT_ACTIONS:
            return False, event.get("name")
    return False, None


def latest_real_action(tracker: Tracker) -> str | None:
    """The last action of this turn that is not the safety layer's own (or action_listen)."""
    return _this_turn(tracker)[1]


def awaiting_first_action(tracker: Tracker) -> bool:
    """True when nothing but the safety layer has acted since the latest user message."""
    return _this_turn(tracker)[0]


class LoopPolicy:
    """The one place that says what runs next; the processor runs it until action_listen."""

    def __init__(self, policies: Sequence[Policy]) -> None:
        self.policies = list(policies)

    def predict(self, tracker: Tracker) -> Prediction:
        if tracker.followup_action:
            name = tracker.followup_action
            tracker.followup_action = None
            return Prediction(name, "followup")
        if tracker.active_loop:
            return self._in_loop(tracker, tracker.active_loop)
        prediction = self._policies(tracker)
        if prediction:
            return prediction
        if awaiting_first_action(tracker):
            return Prediction(FALLBACK_ACTION, "fallback")
        return Prediction(ACTION_LISTEN, "fallback")

    def _in_loop(self, tracker: Tracker, loop: str) -> Prediction:
        """The form keeps the turn unless it rejected the message (then rules or the fallback),
        and it listens once it has asked."""
        if tracker.last_rejected == loop:
            return self._policies(tracker) or Prediction(FALLBACK_ACTION, "fallback")
        if latest_real_action(tracker) == loop:
            return Prediction(ACTION_LISTEN, "loop")
        if awaiting_first_action(tracker):
            return Prediction(loop, "loop")
        return self._policies(tracker) or Prediction(loop, "loop")

    def _policies(self, tracker: Tracker) -> Prediction | None:
        for policy in self.policies:
            prediction = policy.predict(tracker)
            if prediction:
                return prediction
        return None
