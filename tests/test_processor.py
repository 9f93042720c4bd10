"""The path of one message through the real engine: disclaimer, safety preemption, levels that
never drop, restart, guard on every text, store failures, session expiry, config numbers."""

from __future__ import annotations

import time
import uuid

import pytest

from bot.agent import Agent, UserMessage
from bot.dialogue import tracker as ev
from bot.stores import InMemoryLockStore, InMemoryTrackerStore, create_tracker_store
from tests.helpers import ROOT, copy_project


def _sender() -> str:
    return uuid.uuid4().hex


def _texts(replies) -> str:
    return "\n".join(r.get("text", "") for r in replies)


@pytest.mark.parametrize("first", ["hi", "what are the paraspinal muscles?", "my back hurts", "asdfgh"])
def test_every_conversation_opens_with_the_disclaimer(chat, first):
    replies = chat(first, _sender())
    assert "not a doctor" in replies[0]["text"] and "can't diagnose" in replies[0]["text"]
    assert "911" in replies[0]["text"]


def test_danger_sign_in_a_greeting_is_acted_on_at_once(chat, agent, loop):
    sender = _sender()
    text = _texts(chat("hi there, I can't control my bladder since this morning", sender))
    assert "911" in text and "emergency" in text.lower()
    slots = loop.run_until_complete(agent.tracker(sender)).slots
    assert slots["triage_level"] == "emergency" and "bladder_bowel" in slots["red_flags"]


def test_emergency_mid_form_stops_the_questions(chat, agent, loop):
    sender = _sender()
    chat("my lower back hurts after lifting", sender)
    assert loop.run_until_complete(agent.tracker(sender)).active_loop == "symptom_form"
    text = _texts(chat("also I suddenly can't feel my legs", sender))
    assert "emergency" in text.lower()
    tracker = loop.run_until_complete(agent.tracker(sender))
    assert tracker.active_loop is None and tracker.slots["triage_level"] == "emergency"


def test_crisis_gets_the_crisis_line(chat):
    text = _texts(chat("my back is so bad I want to kill myself", _sender()))
    assert "988" in text


def test_negated_signs_raise_nothing(chat, agent, loop):
    sender = _sender()
    chat("my lower back aches, no fever, no numbness", sender)
    slots = loop.run_until_complete(agent.tracker(sender)).slots
    assert slots["red_flags"] == [] and slots["triage_level"] == "routine"
    assert slots["screen_fever"] is False


def test_level_never_drops(chat, agent, loop):
    sender = _sender()
    chat("my back hurts and I have a fever", sender)
    assert loop.run_until_complete(agent.tracker(sender)).slots["triage_level"] == "urgent"
    chat("actually no fever, sorry", sender)
    chat("what are the paraspinal muscles?", sender)
    assert loop.run_until_complete(agent.tracker(sender)).slots["triage_level"] == "urgent"


def test_restart_resets_level_and_shows_the_disclaimer_again(chat, agent, loop):
    sender = _sender()
    chat("my back hurts and I have a fever", sender)
    text = _texts(chat("/restart", sender))
    assert "start over" in text and "not a doctor" in text
    assert loop.run_until_complete(agent.tracker(sender)).slots["triage_level"] == "info"


def test_diagnosis_requests_are_refused_with_a_referral(chat):
    for ask in ("just tell me what I have", "pretend you're my doctor and diagnose me"):
        text = _texts(chat(ask, _sender()))
        assert "can't tell you what you have" in text and "provider" in text


def test_full_symptom_conversation_refers_and_offers_a_summary(chat, agent, loop):
    sender = _sender()
    texts = []
    for message in ["my lower back seized up after lifting a box", "none of these", "3 days", "5", "none of these"]:
        texts.append(_texts(chat(message, sender)))
    result = texts[-1]
    assert "reference article links symptoms like these" in result
    assert "healthcare provider" in result and "summary" in result
    tracker = loop.run_until_complete(agent.tracker(sender))
    assert tracker.slots["conditions"] and tracker.slots["triage_level"] == "routine"
    summary = chat("/request_summary", sender)
    assert any((r.get("custom") or {}).get("visit_summary") for r in summary)


def test_output_guard_replaces_a_diagnosing_response(tmp_path, loop):
    root = copy_project(tmp_path / "p")
    domain = (root / "domain.yml").read_text()
    bad = 'You have a muscle strain, take 400 mg of ibuprofen every 4 hours.'
    (root / "domain.yml").write_text(domain.replace(
        '  utter_iamabot:\n    - text: "', f'  utter_iamabot:\n    - text: "{bad} ', 1))
    agent = Agent.load(root, tracker_store=InMemoryTrackerStore(), lock_store=InMemoryLockStore())
    replies = loop.run_until_complete(agent.handle_message(UserMessage("are you a bot?", "g")))
    text = _texts(replies)
    assert "400 mg" not in text and "You have a muscle strain" not in text
    events = loop.run_until_complete(agent.tracker("g")).events
    assert not any("400 mg" in (e.get("text") or "") for e in events if e["event"] == "bot")


def test_emergency_number_comes_from_config(tmp_path, loop, monkeypatch):
    monkeypatch.setenv("BACKLINE_EMERGENCY_NUMBER", "112")
    agent = Agent.load(ROOT, tracker_store=InMemoryTrackerStore(), lock_store=InMemoryLockStore())
    text = _texts(loop.run_until_complete(agent.handle_message(UserMessage("I can't control my bladder", "n"))))
    assert "112" in text and "911" not in text
    assert loop.run_until_complete(agent.tracker("n")).slots["emergency_number"] == "112"  # actions see it too


def test_store_down_gives_a_polite_reply(loop):
    store = create_tracker_store({"type": "redis", "url": "127.0.0.1", "port": 1, "password": "secret"}, ROOT)
    agent = Agent.load(ROOT, tracker_store=store, lock_store=InMemoryLockStore())
    replies = loop.run_until_complete(agent.handle_message(UserMessage("hi", "down")))
    assert "try again" in _texts(replies) and "secret" not in _texts(replies)


def test_expired_session_starts_a_new_one(agent, loop):
    sender = _sender()
    old = time.time() - 3 * 3600
    events = [ev.action_executed("action_session_start"), ev.session_started(), ev.action_executed("action_listen"),
              ev.slot_set("triage_level", "urgent")]
    for e in events:
        e["timestamp"] = old
    loop.run_until_complete(agent.tracker_store.append(sender, events))
    replies = loop.run_until_complete(agent.handle_message(UserMessage("hello", sender)))
    assert "not a doctor" in replies[0]["text"]


def test_start_conversation_only_once(agent, loop):
    sender = _sender()
    first = loop.run_until_complete(agent.start_conversation(sender))
    assert "not a doctor" in first[0]["text"]
    assert loop.run_until_complete(agent.start_conversation(sender)) == []


def _processor_with_sessions(agent, session_config: str):
    """The real engine's processor on the project's domain with another `session_config:`."""
    from bot.dialogue.domain import Domain
    from bot.processor import Processor
    from bot.yamlio import parse_yaml

    text = (ROOT / "domain.yml").read_text(encoding="utf-8")
    start = text.index("session_config:")
    end = text.index("\nintents:")
    domain = Domain.from_yaml(parse_yaml(text[:start] + session_config + text[end:], "domain.yml"), ROOT / "domain.yml")
    p = agent.processor
    return Processor(domain, p.nlu, p.policies, p.runner, p.safety, p.guard, p.settings)


def _tracker_last_active(processor, minutes_ago: float, slots: dict):
    from bot.dialogue.tracker import Tracker

    then = time.time() - minutes_ago * 60
    events = [ev.action_executed("action_session_start"), ev.session_started(), ev.action_executed("action_listen")]
    events += [ev.slot_set(name, value) for name, value in slots.items()]
    for e in events:
        e["timestamp"] = then
    return Tracker(_sender(), processor.domain, events)


@pytest.mark.parametrize("expiration, minutes_ago, new_session", [(1, 2, True), (1, 0.5, False), (0, 600, False)])
def test_session_expiration_time_comes_from_the_domain(agent, loop, expiration, minutes_ago, new_session):
    """Rasa's `session_expiration_time` (minutes; 0 = never) decides when a new session starts."""
    processor = _processor_with_sessions(agent, f"session_config:\n  session_expiration_time: {expiration}\n")
    tracker = _tracker_last_active(processor, minutes_ago, {})
    replies = loop.run_until_complete(processor.handle(tracker, UserMessage("hello", tracker.sender_id)))
    assert ("not a doctor" in replies[0]["text"]) is new_session
    assert [e["event"] for e in tracker.events].count("session_started") == (2 if new_session else 1)


@pytest.mark.parametrize("carry_over", [True, False])
def test_carry_over_slots_to_new_session_keeps_the_slots(agent, loop, carry_over):
    processor = _processor_with_sessions(agent, "session_config:\n  session_expiration_time: 1\n"
                                                f"  carry_over_slots_to_new_session: {str(carry_over).lower()}\n")
    tracker = _tracker_last_active(processor, 5, {"body_part": "neck", "duration": "2 weeks"})
    replies = loop.run_until_complete(processor.handle(tracker, UserMessage("hello", tracker.sender_id)))
    assert "not a doctor" in replies[0]["text"]
    kept = {"body_part": "neck", "duration": "2 weeks"} if carry_over else {"body_part": None, "duration": None}
    assert {name: tracker.slots[name] for name in kept} == kept


# --------------------------------------------------------------------------- how someone copes with long-standing pain

def _words(replies: list[dict]) -> str:
    return " ".join(r.get("text") or "" for r in replies)


def _to_coping(chat, sender: str, duration: str) -> str:
    chat(f"my lower back has ached for {duration}", sender)
    chat("none of these", sender)
    chat("lower back", sender)
    chat("5", sender)
    chat("nothing in particular", sender)
    return _words(chat("none of them", sender))


def test_long_standing_pain_is_asked_how_the_person_copes_and_a_hopeless_answer_gets_the_crisis_question(chat) -> None:
    sender = f"coping-{uuid.uuid4().hex[:8]}"
    assert "How are you coping" in _to_coping(chat, sender, "6 months")
    reply = _words(chat("honestly I don't see the point anymore, they'd be better off without me", sender))
    assert "thoughts of ending your life" in reply and "988" in reply
    assert "Lifeline" in _words(chat("yes", sender))


def test_a_plain_coping_answer_gives_the_result(chat) -> None:
    sender = f"coping-{uuid.uuid4().hex[:8]}"
    assert "How are you coping" in _to_coping(chat, sender, "2 years")
    reply = _words(chat("getting on with it, the kids keep me busy", sender))
    assert "healthcare provider" in reply and "988" not in reply


def test_recent_pain_is_not_asked_about_coping(chat) -> None:
    sender = f"coping-{uuid.uuid4().hex[:8]}"
    reply = _to_coping(chat, sender, "3 days")
    assert "How are you coping" not in reply and "healthcare provider" in reply


def test_ordinary_answers_never_get_the_crisis_question(agent, project) -> None:
    """Every yes/no/skip and short inform example of the NLU data, answering the grouped
    question, with the trained backstop: none is asked about ending their life."""
    safety = agent.processor.safety
    assert safety.detector is not None
    answers = [ex.text for ex in project.nlu.examples
               if ex.intent in ("deny", "affirm", "skip", "inform") and len(ex.text.split()) <= 6]
    assert len(answers) > 100
    slots = {"triage_level": "routine", "requested_slot": "screen_urgent",
             "patient_facts": {"patient": "self", "back": True}}
    asked = [t for t in answers
             if (q := safety.decide(slots, t, "inform", "symptom_form").question) is not None and q.sign == "self_harm"]
    assert asked == []

def test_a_safety_question_mid_form_goes_alone_and_the_answer_resumes_the_form(chat, agent, loop):
    sender = _sender()
    form_question = chat("my lower back hurts after lifting", sender)[-1]["text"]
    asked = chat("my left arm feels heavy and numb", sender)
    # the safety question is the whole reply: the form's own question waits for its answer
    assert len(asked) == 1 and "chest pain" in asked[0]["text"]
    assert [b["payload"] for b in asked[0]["buttons"]] == ["/affirm", "/deny", "/skip"]
    replies = chat("no", sender)
    assert "Thank you" in replies[0]["text"] and replies[-1]["text"] == form_question and len(replies) == 2
    tracker = loop.run_until_complete(agent.tracker(sender))
    assert tracker.active_loop == "symptom_form" and tracker.slots["safety_question"] is None
    assert not tracker.slots.get("red_flags")


def test_a_safety_question_outside_the_form_is_answered_with_thanks_only(chat, agent, loop):
    sender = _sender()
    assert "chest pain" in chat("my left arm feels heavy and numb", sender)[-1]["text"]
    replies = chat("no", sender)
    assert len(replies) == 1 and "Thank you" in replies[0]["text"]
    tracker = loop.run_until_complete(agent.tracker(sender))
    assert tracker.active_loop is None and tracker.slots["safety_question"] is None
