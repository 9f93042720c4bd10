"""The one owner of the safety slots (bot/safety/decide.py): what a message means for the triage
level, the danger signs, the screening answers, the alert and the question asked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.safety.decide import SafetyLayer

SAFETY = SafetyLayer.load(Path(__file__).resolve().parent.parent / "knowledge")
FORM = "symptom_form"


def apply(slots: dict[str, Any], text: str, intent: str | None = None, loop: str | None = None):
    """decide() on `slots`, returning the decision and the slots after its events."""
    decision = SAFETY.decide(slots, text, intent, loop)
    after = dict(slots)
    for event in decision.events:
        if event["event"] == "slot":
            after[event["name"]] = event["value"]
    return decision, after


def test_signs_accumulate_and_the_level_only_rises() -> None:
    _, slots = apply({}, "my lower back hurts and I've had a fever since Tuesday")
    assert slots["red_flags"] == ["fever"] and slots["triage_level"] == "urgent"
    _, slots = apply(slots, "and I wet myself this morning")
    assert slots["red_flags"] == ["fever", "bladder_bowel"] and slots["triage_level"] == "emergency"
    decision, slots = apply(slots, "no fever now, it's gone")
    assert slots["red_flags"] == ["fever", "bladder_bowel"] and slots["triage_level"] == "emergency"
    assert decision.alerts == []                     # each sign is announced once


def test_a_symptom_report_is_at_least_routine() -> None:
    _, slots = apply({"triage_level": "info"}, "my lower back seized up after lifting a box")
    assert slots["triage_level"] == "routine" and not slots.get("red_flags")
    _, slots = apply({}, "what does the longissimus do?", intent="faq/function")
    assert slots.get("triage_level", "info") == "info"


def test_an_emergency_ends_the_form_and_clears_the_open_question() -> None:
    decision, slots = apply({"requested_slot": "duration", "triage_level": "routine"}, "I can't feel my legs",
                            loop=FORM)
    assert decision.stop and slots["requested_slot"] is None
    assert {"event": "active_loop", "timestamp": None, "name": None} in decision.events
    assert [a.response for a in decision.alerts] == ["utter_emergency"]
    assert "nerve" in decision.alerts[0].values["sign_reason"] and "NHS" in decision.alerts[0].values["sign_source"]


def test_the_crisis_reply_is_the_crisis_reply_only() -> None:
    decision, slots = apply({}, "I want to kill myself")
    assert [a.response for a in decision.alerts] == ["utter_crisis"] and decision.stop
    assert slots["red_flags"] == ["self_harm"] and slots["triage_level"] == "emergency"


def test_urgent_alerts_and_the_questions_go_on() -> None:
    decision, slots = apply({"requested_slot": "screen_fever", "triage_level": "routine"}, "yes", "affirm", FORM)
    assert [a.response for a in decision.alerts] == ["utter_urgent"] and not decision.stop
    assert slots["screen_fever"] is True and slots["red_flags"] == ["fever"]


@pytest.mark.parametrize("intent,text,present", [
    ("affirm", "yes", True), ("deny", "no", False), ("skip", "not sure", True), ("skip", "don't know", True),
    ("deny", "no idea", True),                  # doubt in the words beats a misread intent
    ("inform", "yes a little", True), ("inform", "nope", False), ("inform", "not really", False),
    ("deny", "I don't think so", True), ("inform", "probably not", True),   # hedges count as present
    ("inform", "my temperature is 39.2", True),  # an answer with the fact, not a yes
    ("affirm", "/affirm", True), ("deny", "/deny", False), ("skip", "/skip", True),
])
def test_screening_answers(intent: str, text: str, present: bool) -> None:
    _, slots = apply({"requested_slot": "screen_fever", "triage_level": "routine"}, text, intent, FORM)
    assert slots["screen_fever"] is present
    assert (slots.get("red_flags") == ["fever"]) is present


@pytest.mark.parametrize("intent,text", [("stop", "never mind"), ("why_ask", "why do you ask?"),
                                         ("inform", "my knee"), ("inform", "only when I twist")])
def test_what_is_not_an_answer_answers_nothing(intent: str, text: str) -> None:
    _, slots = apply({"requested_slot": "screen_fever", "triage_level": "routine"}, text, intent, FORM)
    assert "screen_fever" not in slots


def test_an_answered_question_is_left_alone() -> None:
    _, slots = apply({"requested_slot": "screen_cancer", "screen_fever": False, "triage_level": "routine"},
                     "yes", "affirm", FORM)
    assert slots["screen_cancer"] is True and slots["screen_fever"] is False


def test_a_suspected_sign_is_asked_about_at_once_and_the_answer_decides() -> None:
    decision, slots = apply({"triage_level": "routine"}, "my left arm feels heavy and numb")
    assert decision.question.sign == "chest_pain" and slots["safety_question"] == "chest_pain"
    assert not decision.alerts and "chest_pain" not in slots.get("red_flags", [])
    yes, after = apply(slots, "yes", "affirm")
    assert after["red_flags"] == ["chest_pain"] and yes.stop and after["safety_question"] is None
    no, after = apply(slots, "no", "deny")
    assert no.answered and not after.get("red_flags") and after["safety_question"] is None
    # asked once: the same suspicion later is not asked again
    again, _ = apply(after, "my left arm feels heavy and numb")
    assert again.question is None


def test_crisis_cues_get_the_direct_question_and_an_unclear_answer_gets_the_line() -> None:
    decision, slots = apply({}, "there's no future for me with this back")
    assert decision.question.sign == "self_harm" and "{crisis_line}" in decision.question.text
    unclear, after = apply(slots, "I don't know what I'm saying anymore")
    assert [a.response for a in unclear.alerts] == ["utter_crisis"] and after["red_flags"] == ["self_harm"]
    no, after = apply(slots, "no, not like that", "deny")
    assert not no.alerts and not after.get("red_flags")


def test_facts_across_turns_and_caregivers() -> None:
    _, slots = apply({}, "I slipped off the kerb and hurt my back")
    assert slots["triage_level"] == "routine"
    _, slots = apply(slots, "I'm 81")
    assert slots["red_flags"] == ["minor_trauma_risk"] and slots["triage_level"] == "urgent"
    _, carer = apply({}, "my mum's back has been bad since the weekend")
    assert carer["patient_facts"]["patient"] == "other"
    _, carer = apply(carer, "she had breast cancer years ago")
    assert carer["red_flags"] == ["cancer_history"]
    _, own = apply({}, "my back hurts")
    _, own = apply(own, "my mum had breast cancer years ago")
    assert not own.get("red_flags")


def test_the_layer_owns_exactly_its_slots() -> None:
    owned = {"triage_level", "red_flags", "alerted_flags", "safety_question", "patient_facts", "sign_reason",
             "sign_source", *SAFETY.screen_slots}
    assert all(SAFETY.owns(s) for s in owned)
    assert not any(SAFETY.owns(s) for s in ("body_part", "duration", "severity", "trigger", "conditions"))


# -- the grouped danger-sign questions (knowledge/danger_signs.yml `checklists`) ------------------

def checklist_answer(answer: str, intent: str | None, slots: dict[str, Any] | None = None):
    return apply({"requested_slot": "screen_emergency", "triage_level": "routine", **(slots or {})}, answer,
                 intent, FORM)


def test_none_of_these_answers_every_sign_of_the_checklist() -> None:
    _, slots = checklist_answer("none of these", "deny")
    assert slots["screen_emergency"] == "none"
    for sign in SAFETY.checklists["screen_emergency"]:
        slot = SAFETY.signs[sign].screen_slot
        assert slot is None or slots[slot] is False, sign


def test_a_named_sign_is_found_and_the_rest_are_no() -> None:
    decision, slots = checklist_answer("my leg keeps giving way", "inform")
    assert slots["screen_emergency"] == "found" and "leg_weakness" in slots["red_flags"] and decision.stop


def test_a_bare_yes_is_asked_which_then_each_sign() -> None:
    """"yes" names none of the signs: the checklist is asked once more (which of them?); a second
    answer that names none makes it unclear, so each sign is asked on its own."""
    decision, slots = checklist_answer("yes", "affirm")
    assert slots.get("screen_emergency") is None and not decision.alerts and not slots.get("red_flags")
    _, slots = checklist_answer("yes", "affirm", {"patient_facts": slots["patient_facts"]})
    assert slots["screen_emergency"] == "unclear"


def test_not_sure_asks_each_sign_at_once() -> None:
    _, slots = checklist_answer("not sure", "skip")
    assert slots["screen_emergency"] == "unclear"


# --------------------------------------------------------------------------- answers read with their question

MID_FORM = {"triage_level": "routine", "patient_facts": {"patient": "self", "back": True}}


@pytest.mark.parametrize("slot, text", [
    ("screen_night_pain", "sleep ok if i lie on my side"),
    ("screen_night_pain", "sleeps like a log, hes a teenager"),
    ("screen_leg", "walking fine"),
    ("screen_bladder_bowel", "all normal down there"),
])
def test_an_answer_that_all_is_well_is_a_no(slot: str, text: str) -> None:
    _, slots = apply({**MID_FORM, "requested_slot": slot}, text, "inform", FORM)
    assert slots[slot] is False and not slots.get("red_flags")


@pytest.mark.parametrize("slot, text", [
    ("screen_night_pain", "fine in the day but at night nothing helps"),
    ("screen_night_pain", "not feeling ok at all"),
    ("screen_night_pain", "ok"),                     # an acknowledgement, not an answer
    ("screen_urgent", "sleep ok"),                   # one item of a grouped question says nothing of the rest
])
def test_all_is_well_words_with_a_contrast_a_negation_or_alone_are_not_a_no(slot: str, text: str) -> None:
    _, slots = apply({**MID_FORM, "requested_slot": slot}, text, "inform", FORM)
    assert slots.get(slot) in (None, "unclear") or slots.get(slot) is True


@pytest.mark.parametrize("text", ["just slipped over, landed flat on my bum", "tripped on the kerb, fell from standing"])
def test_a_small_fall_answering_the_serious_fall_question_is_a_no_and_is_kept(text: str) -> None:
    decision, slots = apply({**MID_FORM, "requested_slot": "screen_injury"}, text, "inform", FORM)
    assert slots["screen_injury"] is False and not decision.alerts
    assert "minor_mechanism" in slots["patient_facts"]["seen"]
    # the slip still counts with thin bones said later
    _, later = apply({**slots, "requested_slot": "screen_bones"}, "yes I have osteoporosis", "affirm", FORM)
    assert later["red_flags"] == ["minor_trauma_risk"]


def test_a_serious_fall_answering_the_question_is_still_a_yes() -> None:
    decision, slots = apply({**MID_FORM, "requested_slot": "screen_injury"}, "I fell down the whole flight of stairs",
                            "inform", FORM)
    assert slots["red_flags"] == ["major_trauma"] and decision.stop


@pytest.mark.parametrize("text, present", [("47", False), ("38 years.", False), ("she's 83", True), ("82", True)])
def test_an_age_answers_the_over_70_question(text: str, present: bool) -> None:
    facts = {"patient": "other" if "she" in text else "self", "back": True, "seen": ["minor_mechanism"]}
    _, slots = apply({**MID_FORM, "patient_facts": facts, "requested_slot": "screen_bones"}, text, "inform", FORM)
    assert slots["screen_bones"] is present
    assert ("minor_trauma_risk" in (slots.get("red_flags") or [])) is present


def test_an_age_over_70_in_the_grouped_question_names_that_item() -> None:
    facts = {"patient": "self", "back": True, "seen": ["minor_mechanism"]}
    _, slots = apply({**MID_FORM, "patient_facts": facts, "requested_slot": "screen_urgent"}, "74", "inform", FORM)
    assert slots["red_flags"] == ["minor_trauma_risk"] and slots["screen_urgent"] == "found"


def test_a_past_event_answering_did_this_start_after_is_a_no() -> None:
    _, slots = apply({**MID_FORM, "requested_slot": "screen_injury"},
                     "not recently, I was in a car accident in 2011 but I was fine after", "inform", FORM)
    assert slots["screen_injury"] is False and not slots.get("red_flags")


def test_a_safety_question_answered_with_neither_is_asked_again_then_counts_as_not_sure() -> None:
    decision, slots = apply(MID_FORM, "my left arm feels heavy and numb")
    assert decision.question.sign == "chest_pain"
    again, slots = apply(slots, "what do you mean by that", "inform")
    assert again.question.sign == "chest_pain" and again.question.text.startswith("Sorry, I need a yes or no")
    assert slots["safety_question"] == "chest_pain" and not slots.get("red_flags")
    last, slots = apply(slots, "what do you mean by that", "inform")
    assert slots["red_flags"] == ["chest_pain"] and last.stop      # doubt wins


@pytest.mark.parametrize("text, sign", [
    ("I'm trying to stand but my legs won't take my weight", "leg_weakness"),
    ("now I can't go up on tiptoe on my left side at all", "leg_weakness"),
    ("i dont get the feelin i need to wee anymore, i just go by the clock", "bladder_bowel"),
])
def test_a_normal_function_said_to_be_lost_is_the_sign(text: str, sign: str) -> None:
    _, slots = apply({"triage_level": "routine"}, f"my back has been bad this week. {text}")
    assert sign in slots["red_flags"]


@pytest.mark.parametrize("text", [
    "no weakness, my legs still take my weight fine",
    "no problem feeling when I need to wee",
    "I can still feel when I need to pee",
    "my back won't let me bear weight on the left side for long",
])
def test_a_function_that_is_fine_or_a_noun_negated_is_no_sign(text: str) -> None:
    _, slots = apply({"triage_level": "routine"}, f"my lower back aches. {text}")
    assert not slots.get("red_flags")


def test_a_lost_will_to_live_gets_the_direct_question_not_an_alarm() -> None:
    decision, slots = apply({}, "I have back pain 5 years. I not see any reason to go on, everything is dark for me.")
    assert decision.question.sign == "self_harm" and not slots.get("red_flags")

@pytest.mark.parametrize("intent,text,present", [
    ("affirm", "absolutely", True), ("affirm", "for sure, every day", True), ("deny", "certainly not", False),
])
def test_a_short_answer_without_answer_words_is_read_by_its_intent(intent: str, text: str, present: bool) -> None:
    # "absolutely" is in neither word list: the intent (up to four words) says yes, so the sign is found
    decision, slots = apply({"requested_slot": "screen_fever", "triage_level": "routine"}, text, intent, FORM)
    assert slots["screen_fever"] is present
    assert (slots.get("red_flags") == ["fever"]) is present
    assert [a.response for a in decision.alerts] == (["utter_urgent"] if present else [])


def test_a_longer_message_is_not_read_as_yes_by_its_intent_alone() -> None:
    # five words and no answer word: not taken as an answer yet (asked again), whatever the intent
    _, slots = apply({"requested_slot": "screen_fever", "triage_level": "routine"}, "for sure, every single day",
                     "affirm", FORM)
    assert slots.get("screen_fever") is None and not slots.get("red_flags")


@pytest.mark.parametrize("slot,outcome", [("screen_urgent", "found"), ("screen_bones", True)])
def test_exactly_70_answers_the_over_70_question_with_a_yes(slot: str, outcome: object) -> None:
    # the rule is "70 or over" (asks_age: 70): the boundary counts, alone or in the grouped question
    facts = {"patient": "self", "back": True, "seen": ["minor_mechanism"]}
    _, slots = apply({**MID_FORM, "patient_facts": facts, "requested_slot": slot}, "70", "inform", FORM)
    assert slots[slot] == outcome and slots["red_flags"] == ["minor_trauma_risk"]
