"""The processor's own rules, with every collaborator replaced by a small stand-in: what it does
with a safety decision, the form loop and the policies, action results and failures, and the
output guard. (tests/test_processor.py drives the same path with the real collaborators.)

The stand-ins are told what to answer per message, so each test states the situation it sets up
and checks only what the processor sends and records."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot.actions.runner import ActionFailed, ActionResult
from bot.dialogue import tracker as ev
from bot.dialogue.domain import Domain
from bot.dialogue.loop import latest_real_action
from bot.dialogue.policies import Prediction
from bot.dialogue.tracker import ACTION_LISTEN, Tracker
from bot.processor import MAX_ACTIONS_PER_TURN, Processor, UserMessage
from bot.safety.decide import Alert, Decision, Question

DOMAIN = {
    "intents": ["greet", "report", "answer", "loop_forever", "custom", "chain"],
    "slots": {
        "where": {"type": "text", "mappings": [{"type": "from_text", "intent": "answer",
                                                 "conditions": [{"active_loop": "stub_form"}]}]},
        "triage_level": {"type": "text", "mappings": [{"type": "custom"}]},
        "note": {"type": "text", "mappings": [{"type": "custom"}]},
    },
    "forms": {"stub_form": {"required_slots": ["where"]}},
    "actions": ["action_custom"],
    "responses": {
        "utter_disclaimer": [{"text": "DISCLAIMER"}],
        "utter_greet": [{"text": "GREET"}],
        "utter_ask_where": [{"text": "ASK WHERE"}],
        "utter_default": [{"text": "DEFAULT"}],
        "utter_restart": [{"text": "RESTARTED"}],
        "utter_action_failed": [{"text": "ACTION FAILED"}],
        "utter_safety_thanks": [{"text": "THANKS"}],
        "utter_emergency": [{"text": "EMERGENCY call {emergency_number} ({sign_reason})"}],
        "utter_diagnose": [{"text": "You have a diagnosis of sciatica"}],
    },
}
EMERGENCY = Decision(events=[ev.slot_set("triage_level", "emergency")],
                     alerts=[Alert("utter_emergency", {"sign_reason": "numb saddle"}, ("saddle",))], stop=True)
QUESTION = Decision(question=Question("chest_pain", "Any chest pain?"))
ANSWERED = Decision(events=[ev.slot_set("triage_level", "routine")], answered=True)


class StubNLU:
    """The intent is the message's first word when it names one (`report my back`), else greet."""

    def parse(self, text: str, message_id: str | None = None) -> dict[str, Any]:
        word = text.split()[0] if text.split() else ""
        intent = word if word in DOMAIN["intents"] else "greet"
        return {"text": text, "intent": {"name": intent, "confidence": 1.0}, "entities": [],
                "intent_ranking": [{"name": intent, "confidence": 1.0}]}


class StubSafety:
    """Answers each message with the decision scripted for its text; owns `triage_level`."""

    def __init__(self, script: dict[str, Decision] | None = None) -> None:
        self.script = script or {}

    def decide(self, slots, text, intent=None, active_loop=None) -> Decision:
        return self.script.get(text, Decision())

    def owns(self, slot: str) -> bool:
        return slot == "triage_level"


class StubGuard:
    def check(self, text: str) -> tuple[str, list[str]]:
        return ("GUARDED", ["diagnosis"]) if "diagnosis" in text else (text, [])


class StubRunner:
    """`action_custom` returns the scripted result, or fails when the script is an exception."""

    names = {"action_custom"}

    def __init__(self, result: ActionResult | Exception) -> None:
        self.result = result

    async def run(self, name: str, tracker: dict[str, Any], domain: dict[str, Any]) -> ActionResult:
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


class IntentPolicy:
    """A rule per intent: its action after the user message, then listen (`loop_forever`: never
    listen; `chain`: the custom action, then a greeting)."""

    TABLE = {"greet": "utter_greet", "report": "stub_form", "custom": "action_custom",
             "chain": "action_custom", "loop_forever": "utter_greet"}

    def predict(self, tracker: Tracker) -> Prediction | None:
        if tracker.latest_intent == "loop_forever":
            return Prediction("utter_greet", "stub")
        if tracker.latest_intent == "chain" and latest_real_action(tracker) == "action_custom":
            return Prediction("utter_greet", "stub")
        if latest_real_action(tracker) is None and tracker.latest_intent in self.TABLE:
            return Prediction(self.TABLE[tracker.latest_intent], "stub")
        if tracker.active_loop:
            return None
        return Prediction(ACTION_LISTEN, "stub")


def _processor(safety: StubSafety | None = None, runner: StubRunner | None = None) -> Processor:
    domain = Domain.from_yaml(DOMAIN, Path("stub-domain.yml"))
    return Processor(domain, StubNLU(), [IntentPolicy()], runner or StubRunner(ActionResult()),
                     safety or StubSafety(), StubGuard(), {"emergency_number": "112", "crisis_line": "116 123"})


def _say(processor: Processor, tracker: Tracker, text: str) -> list[str]:
    replies = asyncio.run(processor.handle(tracker, UserMessage(text, tracker.sender_id)))
    return [r.get("text", "") for r in replies]


@pytest.fixture
def tracker() -> Tracker:
    return Tracker("stub-user", Domain.from_yaml(DOMAIN, Path("stub-domain.yml")))


def test_a_new_conversation_opens_with_the_disclaimer_then_the_rule(tracker):
    assert _say(_processor(), tracker, "hello") == ["DISCLAIMER", "GREET"]
    assert tracker.events[-1]["name"] == ACTION_LISTEN


def test_an_emergency_decision_ends_the_turn_before_any_rule_runs(tracker):
    processor = _processor(StubSafety({"report saddle numb": EMERGENCY}))
    texts = _say(processor, tracker, "report saddle numb")
    assert texts == ["DISCLAIMER", "EMERGENCY call 112 (numb saddle)"]
    assert tracker.slots["triage_level"] == "emergency" and tracker.active_loop is None


def test_a_safety_question_is_sent_alone_and_the_form_question_waits(tracker):
    processor = _processor(StubSafety({"report back pain": QUESTION}))
    replies = asyncio.run(processor.handle(tracker, UserMessage("report back pain", tracker.sender_id)))
    assert [r["text"] for r in replies] == ["DISCLAIMER", "Any chest pain?"]
    assert [b["payload"] for b in replies[-1]["buttons"]] == ["/affirm", "/deny", "/skip"]
    assert tracker.active_loop == "stub_form" and tracker.slots["requested_slot"] == "where"


def test_the_answer_to_a_safety_question_thanks_and_repeats_the_form_question(tracker):
    processor = _processor(StubSafety({"report back pain": QUESTION, "answer no": ANSWERED}))
    _say(processor, tracker, "report back pain")
    assert _say(processor, tracker, "answer no") == ["THANKS", "ASK WHERE"]
    assert tracker.slots["where"] is None       # the safety answer is not a form answer
    assert tracker.slots["triage_level"] == "routine"


def test_the_form_asks_fills_and_ends(tracker):
    processor = _processor()
    assert _say(processor, tracker, "report back pain") == ["DISCLAIMER", "ASK WHERE"]
    assert _say(processor, tracker, "answer low down") == []
    assert tracker.slots["where"] == "answer low down"
    assert tracker.active_loop is None and tracker.slots["requested_slot"] is None


def test_a_message_that_fills_nothing_is_rejected_by_the_form_and_answered_by_the_fallback(tracker):
    processor = _processor()
    _say(processor, tracker, "report back pain")
    texts = _say(processor, tracker, "custom what now")       # no rule for it inside the form
    assert any(e.get("event") == "action_execution_rejected" and e.get("name") == "stub_form"
               for e in tracker.events)
    assert "ACTION FAILED" not in texts and tracker.active_loop == "stub_form"


def test_an_action_cannot_write_a_safety_slot(tracker):
    result = ActionResult([ev.slot_set("triage_level", "info"), ev.slot_set("note", "kept")],
                          [{"text": "custom reply"}])
    processor = _processor(StubSafety({"custom hi": Decision(events=[ev.slot_set("triage_level", "urgent")])}),
                           StubRunner(result))
    assert _say(processor, tracker, "custom hi") == ["DISCLAIMER", "custom reply"]
    assert tracker.slots["triage_level"] == "urgent" and tracker.slots["note"] == "kept"


@pytest.mark.parametrize("response", [{"text": "a diagnosis for you"}, {"response": "utter_diagnose"}])
def test_every_text_passes_the_guard_whatever_sent_it(tracker, response):
    processor = _processor(runner=StubRunner(ActionResult([], [response])))
    assert _say(processor, tracker, "custom hi") == ["DISCLAIMER", "GUARDED"]
    assert "diagnosis" not in str([e.get("text") for e in tracker.events if e.get("event") == "bot"])


def test_a_failed_action_says_so_and_ends_the_turn(tracker):
    assert _say(_processor(), Tracker("other", tracker.domain), "chain hi") == ["DISCLAIMER", "GREET"]
    processor = _processor(runner=StubRunner(ActionFailed("action server down")))
    assert _say(processor, tracker, "chain hi") == ["DISCLAIMER", "ACTION FAILED"]
    assert tracker.events[-1]["name"] == ACTION_LISTEN


def test_a_rule_that_never_listens_is_cut_off(tracker):
    texts = _say(_processor(), tracker, "loop_forever")
    assert texts.count("GREET") == MAX_ACTIONS_PER_TURN


def test_restart_clears_the_conversation_and_opens_it_again(tracker):
    processor = _processor(StubSafety({"report saddle numb": EMERGENCY}))
    _say(processor, tracker, "report saddle numb")
    assert _say(processor, tracker, "/restart") == ["RESTARTED", "DISCLAIMER"]
    assert tracker.slots["triage_level"] is None


def test_safety_reply_answers_a_message_alone(tracker):
    processor = _processor(StubSafety({"saddle numb": EMERGENCY, "back pain": QUESTION}))
    alert = asyncio.run(processor.safety_reply("someone", "saddle numb"))
    asked = asyncio.run(processor.safety_reply("someone", "back pain"))
    assert [r["text"] for r in alert] == ["EMERGENCY call 112 (numb saddle)"]
    assert [r["text"] for r in asked] == ["Any chest pain?"]
