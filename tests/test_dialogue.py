"""Tracker state from events, slot mappings, and the rule/memoization policies."""

from __future__ import annotations

import random
from pathlib import Path

import yaml

from bot.dialogue import tracker as ev
from bot.dialogue.domain import Domain, fill
from bot.dialogue.policies import MemoizationPolicy, RulePolicy
from bot.dialogue.slots import extract_slots
from bot.dialogue.stories import load_stories
from bot.dialogue.tracker import Tracker

DOMAIN = Domain.from_yaml(yaml.safe_load("""
intents: [greet, inform, stop, faq]
entities: [body_part]
slots:
  body_part:
    type: text
    mappings:
    - type: from_entity
      entity: body_part
  answered:
    type: bool
    mappings:
    - type: from_intent
      intent: stop
      value: true
      conditions:
      - active_loop: f
        requested_slot: body_part
  items:
    type: list
    mappings:
    - type: from_entity
      entity: body_part
forms:
  f:
    required_slots: [body_part]
responses:
  utter_greet:
  - text: "hi {name}, call {emergency_number} {{literal}}"
actions: [action_custom]
"""), Path("domain.yml"))

STEPS = yaml.safe_load("""
rules:
- rule: greet
  steps:
  - intent: greet
  - action: utter_greet
- rule: faq
  steps:
  - intent: faq
  - action: utter_faq
- rule: submit
  condition:
  - active_loop: f
  steps:
  - action: f
  - active_loop: null
  - action: action_custom
stories:
- story: greet then inform
  steps:
  - intent: greet
  - action: utter_greet
  - intent: inform
  - action: action_custom
""")
RULES = load_stories({"rules": STEPS["rules"]}, Path("rules.yml"))
STORIES = load_stories({"stories": STEPS["stories"]}, Path("stories.yml"))


def _user(intent: str, entities=(), text="x") -> dict:
    return ev.user_uttered(text, {"intent": {"name": intent, "confidence": 1.0}, "entities": list(entities)})


def test_slots_replay_and_restart():
    t = Tracker("s", DOMAIN, [ev.slot_set("body_part", "neck"), ev.active_loop("f")])
    assert t.slots["body_part"] == "neck" and t.active_loop == "f"
    t.add(ev.restarted())
    assert t.slots["body_part"] is None and t.active_loop is None
    assert t.applied_events() == []


def test_session_start_resets_slots_without_carry_over():
    t = Tracker("s", DOMAIN, [ev.slot_set("body_part", "neck"), ev.session_started()])
    assert t.slots["body_part"] is None


def test_tracker_json_shape():
    t = Tracker("s", DOMAIN, [ev.action_executed("action_listen"), _user("greet")])
    data = t.as_dict()
    assert set(data) == {"sender_id", "slots", "latest_message", "latest_event_time", "followup_action", "paused",
                         "events", "latest_input_channel", "active_loop", "latest_action", "latest_action_name"}
    assert data["latest_message"]["intent"]["name"] == "greet"
    assert data["latest_action_name"] == "action_listen"
    assert t.as_dict("NONE")["events"] is None


def test_entity_and_intent_mappings_with_conditions():
    t = Tracker("s", DOMAIN, [_user("inform", [{"entity": "body_part", "value": "neck"}])])
    assert extract_slots(DOMAIN, t) == {"body_part": "neck", "items": ["neck"]}
    t = Tracker("s", DOMAIN, [_user("stop")])
    assert "answered" not in extract_slots(DOMAIN, t)           # condition: only while asked in form f
    t = Tracker("s", DOMAIN, [ev.active_loop("f"), ev.slot_set("requested_slot", "body_part"), _user("stop")])
    assert extract_slots(DOMAIN, t)["answered"] is True


def test_templates():
    assert fill("call {emergency_number} {missing} {{x}}", {"emergency_number": "911"}) == "call 911 {missing} {x}"
    [message] = DOMAIN.render("utter_greet", {"name": "Sam", "emergency_number": "112"})
    assert message["text"] == "hi Sam, call 112 {literal}"


def test_rule_predicts_after_intent_then_nothing():
    policy = RulePolicy(RULES)
    t = Tracker("s", DOMAIN, [ev.action_executed("action_listen"), _user("greet")])
    assert policy.predict(t).action == "utter_greet"
    t.add(ev.action_executed("utter_greet"))
    assert policy.predict(t) is None


OR_RULES = yaml.safe_load("""
rules:
- rule: greet
  steps:
  - intent: greet
  - action: utter_greet
- rule: thanks or bye
  steps:
  - or:
    - intent: thank
    - intent: goodbye
  - metadata: {note: Rasa skips metadata steps}
  - action: utter_goodbye
""")


def test_an_or_step_matches_any_of_its_intents():
    rules = load_stories(OR_RULES, Path("rules.yml"))
    assert [r.steps for r in rules if r.name == "thanks or bye"] == [
        [("intent", "thank"), ("action", "utter_goodbye")], [("intent", "goodbye"), ("action", "utter_goodbye")]]
    policy = RulePolicy(rules)
    for intent in ("thank", "goodbye"):
        assert policy.predict(Tracker("s", DOMAIN, [_user(intent)])).action == "utter_goodbye"
    assert policy.predict(Tracker("s", DOMAIN, [_user("greet")])).action == "utter_greet"
    assert policy.predict(Tracker("s", DOMAIN, [_user("inform")])) is None


def test_rule_matches_retrieval_intent_and_sees_through_safety_actions():
    policy = RulePolicy(RULES)
    t = Tracker("s", DOMAIN, [_user("faq"), ev.action_executed("action_safety_alert")])
    assert policy.predict(t).action == "utter_faq"


def test_rule_condition_is_checked_when_the_tail_started():
    policy = RulePolicy(RULES)
    t = Tracker("s", DOMAIN, [ev.active_loop("f"), _user("inform"), ev.action_executed("f"), ev.active_loop(None)])
    assert policy.predict(t).action == "action_custom"
    t = Tracker("s", DOMAIN, [_user("inform"), ev.action_executed("f"), ev.active_loop(None)])
    assert policy.predict(t) is None                      # the form was never active: no submit


def test_memoization_follows_stories():
    policy = MemoizationPolicy(STORIES, max_history=5)
    t = Tracker("s", DOMAIN, [_user("greet"), ev.action_executed("utter_greet"), _user("inform")])
    assert policy.predict(t).action == "action_custom"
    t = Tracker("s", DOMAIN, [_user("stop")])
    assert policy.predict(t) is None


FORM_DOMAIN = Domain.from_yaml(yaml.safe_load("""
intents: [inform, chitchat]
entities: [cuisine]
slots:
  cuisine:
    type: text
    mappings:
    - type: from_entity
      entity: cuisine
  mood:
    type: text
    mappings:
    - type: from_entity
      entity: cuisine
      intent: chitchat
  other_form_slot:
    type: text
    mappings:
    - type: from_entity
      entity: cuisine
      conditions:
      - active_loop: other_form
forms:
  restaurant_form:
    ignored_intents: chitchat
    required_slots: [cuisine]
  other_form:
    required_slots: [other_form_slot]
"""), Path("domain.yml"))


def test_a_forms_ignored_intents_fill_no_slot_while_it_runs():
    italian = [{"entity": "cuisine", "value": "italian"}]
    assert FORM_DOMAIN.forms["restaurant_form"].ignored_intents == ["chitchat"]
    running = [ev.active_loop("restaurant_form"), ev.slot_set("requested_slot", "cuisine")]
    t = Tracker("s", FORM_DOMAIN, running + [_user("chitchat", italian)])
    # `mood` names chitchat itself, so the form's ignored intents do not block it (as in Rasa)
    assert extract_slots(FORM_DOMAIN, t) == {"mood": "italian"}
    t = Tracker("s", FORM_DOMAIN, running + [_user("inform", italian)])
    assert extract_slots(FORM_DOMAIN, t) == {"cuisine": "italian"}
    t = Tracker("s", FORM_DOMAIN, [_user("chitchat", italian)])     # no form running
    assert extract_slots(FORM_DOMAIN, t) == {"cuisine": "italian", "mood": "italian"}
    t = Tracker("s", FORM_DOMAIN, [ev.active_loop("other_form"), _user("chitchat", italian)])
    assert extract_slots(FORM_DOMAIN, t) == {"cuisine": "italian", "mood": "italian", "other_form_slot": "italian"}


RESPONSES = Domain.from_yaml(yaml.safe_load("""
slots:
  age_group: {type: categorical, values: [child, adult], mappings: [{type: custom}]}
responses:
  utter_advice:
  - text: general advice
  - text: advice for children
    condition:
    - type: slot
      name: age_group
      value: child
  - text: advice for children on slack
    channel: slack
    condition:
    - type: slot
      name: age_group
      value: child
  utter_only_for_slack:
  - text: slack text
    channel: slack
  utter_only_conditional:
  - text: adults only
    condition: [{type: slot, name: age_group, value: adult}]
"""), Path("domain.yml"))


def test_conditional_response_variations_are_chosen_by_slot_values():
    texts = {RESPONSES.render("utter_advice", {"age_group": "child"}, random.Random(seed))[0]["text"]
             for seed in range(20)}
    assert texts == {"advice for children"}
    texts = {RESPONSES.render("utter_advice", {"age_group": "adult"}, random.Random(seed))[0]["text"]
             for seed in range(20)}
    assert texts == {"general advice"}
    # a channel variation is sent only when nothing else applies; a condition that holds for no
    # variation sends nothing (as Rasa)
    assert RESPONSES.render("utter_only_for_slack", {})[0]["text"] == "slack text"
    assert RESPONSES.render("utter_only_conditional", {}) == []
    assert RESPONSES.render("utter_only_conditional", {"age_group": "adult"})[0]["text"] == "adults only"
