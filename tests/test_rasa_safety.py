"""Backline's safety layer as a rasa-sdk component (actions/safety.py, data/safety_rules.yml).

Real Rasa runs it in `make rasa-check` (tests/rasa/check.py, tests/rasa/conversations.yml).
Here: the actions through rasa-sdk's ActionExecutor, with tracker states shaped as Rasa 3.6
sends them at each step of a turn; the rules file against the domain; and Backline's own
engine, which must never run the Rasa action (its processor calls the safety layer itself).
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional

import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rasa_sdk.executor import ActionExecutor  # noqa: E402

from actions.safety import WAITING_SLOT  # noqa: E402

VALIDATE = "action_validate_slot_mappings"
EMERGENCY = "I can't control my bladder and my back hurts"
CRISIS_CUE = "there's no future for me with this back"


def rasa_tracker(domain: Dict[str, Any], text: str, intent: str, slots: Optional[Dict[str, Any]] = None,
                 form: bool = False, after_user: Optional[List[Dict[str, Any]]] = None) -> Dict[str, Any]:
    """The tracker Rasa sends right after the user message `text` (`after_user`: events Rasa
    logged since, e.g. a form's activation)."""
    current = {name: spec.get("initial_value") for name, spec in domain["slots"].items()}
    current.update(slots or {})
    events: List[Dict[str, Any]] = [
        {"event": "action", "name": "action_session_start", "timestamp": 1.0},
        {"event": "session_started", "timestamp": 1.0},
        {"event": "action", "name": "action_listen", "timestamp": 1.0},
    ]
    if form:
        events += [{"event": "user", "timestamp": 2.0, "text": "my back hurts",
                    "parse_data": {"intent": {"name": "report_symptom", "confidence": 0.9}, "entities": []}},
                   {"event": "action", "name": "symptom_form", "timestamp": 2.0},
                   {"event": "active_loop", "name": "symptom_form", "timestamp": 2.0},
                   {"event": "action", "name": "action_listen", "timestamp": 2.0}]
    message = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": []}
    events.append({"event": "user", "timestamp": 3.0, "text": text, "parse_data": message})
    events += after_user or []
    return {"sender_id": "test-user", "slots": current, "latest_message": message, "events": events,
            "paused": False, "followup_action": None, "active_loop": {"name": "symptom_form"} if form else {},
            "latest_action_name": "action_listen"}


def run(executor: ActionExecutor, name: str, tracker: Dict[str, Any], domain: Dict[str, Any]) -> Any:
    result = asyncio.run(executor.run({"next_action": name, "tracker": tracker, "domain": domain,
                                       "sender_id": "test-user"}))
    assert result is not None
    return result


def slots_of(result: Any) -> Dict[str, Any]:
    return {e["name"]: e["value"] for e in result.events if e["event"] == "slot"}


def then(tracker: Dict[str, Any], result: Any) -> Dict[str, Any]:
    """The slots after Rasa applied `result`'s slot events (the next step's tracker)."""
    return {**tracker["slots"], **slots_of(result)}


# --------------------------------------------------------------------------- the per-turn action


def test_emergency_mid_form_sends_the_alert_and_ends_the_questions(executor, domain) -> None:
    tracker = rasa_tracker(domain, EMERGENCY, "report_symptom", {"requested_slot": "duration"}, form=True)
    result = run(executor, VALIDATE, tracker, domain)
    assert [r.get("response") for r in result.responses] == ["utter_emergency"]
    assert result.responses[0]["sign_reason"] and result.responses[0]["sign_source"]
    slots = slots_of(result)
    assert slots["triage_level"] == "emergency" and slots["red_flags"] == ["bladder_bowel"]
    assert slots["safety_turn"] == "stop"
    assert "requested_slot" in slots and slots["requested_slot"] is None   # the form neither rejects nor asks
    assert {e["event"] for e in result.events} == {"slot"}                 # all Rasa accepts from this action

    form = run(executor, "validate_symptom_form", rasa_tracker(domain, EMERGENCY, "report_symptom", then(tracker, result),
                                                                form=True), domain)
    assert slots_of(form) == {"requested_slot": None}                      # Rasa ends the form: no result, no question
    assert form.responses == []


def test_crisis_gets_the_crisis_response(executor, domain) -> None:
    result = run(executor, VALIDATE, rasa_tracker(domain, "I want to end my life", "out_of_scope"), domain)
    assert [r.get("response") for r in result.responses] == ["utter_crisis"]
    assert "988" in domain["slots"]["crisis_line"]["initial_value"] and "{crisis_line}" in str(domain["responses"]["utter_crisis"])
    assert slots_of(result)["safety_turn"] == "stop"


def assert_asks_an_open_question(form: Any, slots: dict, domain: dict) -> bool:
    """The form goes on: the slot it asks next (the one it sets, else the one already requested)
    is one of symptom_form's questions the user has not answered -- never the waiting slot."""
    asked = slots_of(form).get("requested_slot", slots.get("requested_slot"))
    assert asked != WAITING_SLOT
    assert asked in domain["forms"]["symptom_form"]["required_slots"], asked
    assert slots.get(asked) is None, f"{asked} was already answered"
    return True


def test_urgent_sign_mid_form_lets_the_questions_go_on(executor, domain) -> None:
    tracker = rasa_tracker(domain, "I've had a fever since yesterday", "inform", {"requested_slot": "severity"}, form=True)
    result = run(executor, VALIDATE, tracker, domain)
    assert [r.get("response") for r in result.responses] == ["utter_urgent"]
    slots = slots_of(result)
    assert slots["triage_level"] == "urgent" and slots["screen_fever"] is True
    assert "safety_turn" not in slots and "requested_slot" not in slots
    form = run(executor, "validate_symptom_form", rasa_tracker(domain, "I've had a fever since yesterday", "inform",
                                                                then(tracker, result), form=True), domain)
    assert_asks_an_open_question(form, then(tracker, result), domain)     # the questions go on


def test_crisis_cue_gets_the_direct_question_and_the_form_waits(executor, domain) -> None:
    tracker = rasa_tracker(domain, CRISIS_CUE, "inform", {"requested_slot": "duration"}, form=True)
    result = run(executor, VALIDATE, tracker, domain)
    [question] = result.responses
    assert "thoughts of ending your life" in question["text"]
    assert "988" in question["text"] and "{crisis_line}" not in question["text"]
    assert [b["payload"] for b in question["buttons"]] == ["/affirm", "/deny", "/skip"]
    slots = slots_of(result)
    assert slots["safety_question"] == "self_harm" and slots["safety_turn"] == "question"
    assert slots["requested_slot"] is None

    waiting = then(tracker, result)
    form = run(executor, "validate_symptom_form", rasa_tracker(domain, CRISIS_CUE, "inform", waiting, form=True), domain)
    assert slots_of(form)["requested_slot"] == WAITING_SLOT
    assert WAITING_SLOT not in {s for f in domain["forms"].values() for s in f["required_slots"]}
    assert not any(n.endswith(f"ask_{WAITING_SLOT}") for n in list(domain["responses"]) + domain["actions"])

    # "no": thanks, and the form asks its own open question again
    waiting = {**waiting, **slots_of(form)}
    answer = rasa_tracker(domain, "no", "deny", waiting, form=True)
    result = run(executor, VALIDATE, answer, domain)
    assert [r.get("response") for r in result.responses] == ["utter_safety_thanks"]
    slots = slots_of(result)
    assert slots["safety_question"] is None and slots["requested_slot"] is None
    assert slots.get("red_flags") is None                                 # nothing raised
    form = run(executor, "validate_symptom_form", rasa_tracker(domain, "no", "deny", then(answer, result), form=True),
               domain)
    assert_asks_an_open_question(form, then(answer, result), domain) and form.responses == []


def test_yes_to_the_direct_question_gets_the_crisis_response(executor, domain) -> None:
    result = run(executor, VALIDATE, rasa_tracker(domain, "/affirm", "affirm", {"safety_question": "self_harm"}), domain)
    assert [r.get("response") for r in result.responses] == ["utter_crisis"]
    assert slots_of(result)["red_flags"] == ["self_harm"]


def test_each_message_is_screened_once(executor, domain) -> None:
    """Rasa runs the slot extraction again when a form activates, in the same turn."""
    activation = [{"event": "slot", "name": "safety_turn", "value": "question", "timestamp": 3.0},
                  {"event": "active_loop", "name": "symptom_form", "timestamp": 3.0}]
    tracker = rasa_tracker(domain, CRISIS_CUE, "report_symptom", {"safety_question": "self_harm"},
                           after_user=activation)
    result = run(executor, VALIDATE, tracker, domain)
    assert result.events == [] and result.responses == []
    # the same message straight after the user turn is screened (and its question asked)
    assert run(executor, VALIDATE, rasa_tracker(domain, CRISIS_CUE, "report_symptom"), domain).responses


def test_the_end_of_the_turn_step_does_nothing(executor, domain) -> None:
    result = run(executor, "action_safety_alert", rasa_tracker(domain, EMERGENCY, "report_symptom"), domain)
    assert result.events == [] and result.responses == []


def test_action_texts_are_guarded(executor, domain, tmp_path, monkeypatch) -> None:
    """Real Rasa sends an action's text as it is: the actions pass their texts through the
    output guard themselves (a knowledge text that diagnoses is replaced)."""
    import shutil

    from actions import knowledge

    folder = shutil.copytree(ROOT / "knowledge", tmp_path / "knowledge")
    conditions = (folder / "conditions.yml").read_text(encoding="utf-8")
    description = knowledge.get_knowledge().conditions["muscle_strain"].description
    assert description in conditions
    (folder / "conditions.yml").write_text(conditions.replace(description, "You have sciatica."), encoding="utf-8")
    monkeypatch.setenv(knowledge.ENV_DIR, str(folder))
    for cached in (knowledge.get_knowledge, knowledge.output_guard, knowledge.safety_layer):
        cached.cache_clear()
    try:
        tracker = rasa_tracker(domain, "I pulled something lifting a box", "report_symptom",
                               {"triage_level": "routine", "conditions": ["muscle_strain"]})
        texts = [r.get("text") or "" for r in run(executor, "action_result_details", tracker, domain).responses]
    finally:
        monkeypatch.delenv(knowledge.ENV_DIR)
        for cached in (knowledge.get_knowledge, knowledge.output_guard, knowledge.safety_layer):
            cached.cache_clear()
    assert texts and not any("sciatica" in t.lower() for t in texts)
    assert knowledge.output_guard().replacements["diagnosis"].strip() in texts


# --------------------------------------------------------------------------- the rules file


def test_safety_rules_cover_every_intent(domain) -> None:
    """RulePolicy picks the longest matching rule; each safety rule is an ordinary rule plus the
    safety_turn slot only when it lists the message's intent. So every intent must be listed."""
    rules = yaml.safe_load((ROOT / "data" / "safety_rules.yml").read_text(encoding="utf-8"))["rules"]
    intents = set(domain["intents"]) | {"nlu_fallback"}
    by_turn: Dict[str, List[set]] = {}
    for rule in rules:
        turn = next(c["slot_was_set"][0]["safety_turn"] for c in rule["condition"] if "slot_was_set" in c)
        listed = {i["intent"] for step in rule["steps"] if "or" in step for i in step["or"]}
        if listed:
            by_turn.setdefault(turn, []).append(listed)
    assert set(by_turn) == {"stop", "question"}
    for turn, groups in by_turn.items():
        assert set().union(*groups) == intents, f"safety_turn {turn}: missing {intents - set().union(*groups)}"
        assert sum(map(len, groups)) == len(intents), f"safety_turn {turn}: an intent is in two rules"


# --------------------------------------------------------------------------- Backline's engine


def test_backline_never_runs_the_rasa_safety_action(chat, agent, loop) -> None:
    """Backline's processor screens each message itself: the Rasa action is not run again, the
    alert is sent once and the Rasa-only slot stays unset."""
    sender = uuid.uuid4().hex
    chat("my lower back hurts after lifting a box", sender)
    replies = chat(EMERGENCY, sender)
    assert sum("emergency department" in (r.get("text") or "") for r in replies) == 1
    tracker = loop.run_until_complete(agent.tracker(sender))
    actions = [e.get("name") for e in tracker.events if e.get("event") == "action"]
    assert VALIDATE not in actions and "action_safety_alert" in actions
    assert tracker.active_loop is None and tracker.slots.get("safety_turn") is None
    assert tracker.slots["triage_level"] == "emergency"


def test_the_action_server_safety_layer_has_the_trained_backstop(agent) -> None:
    """Under real Rasa the safety decision runs in the action server: with the newest model
    `bot train` made, the same learned backstop as Backline's engine (not the rules alone)."""
    from actions.knowledge import safety_layer

    layer = safety_layer()
    assert layer.detector is not None
    text = layer.screener.text("I don't see much reason to keep going with this pain")
    assert agent.processor.safety.detector.suspects(text) == layer.detector.suspects(text)
