"""The custom actions, run through rasa-sdk's ActionExecutor as Rasa's action server would."""

from __future__ import annotations

import asyncio
import re
import sys
from datetime import date
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not add the project root
    sys.path.insert(0, str(ROOT))

from rasa_sdk import Tracker  # noqa: E402
from rasa_sdk.executor import ActionExecutor  # noqa: E402

from actions.knowledge import CONDITION_IDS, get_knowledge  # noqa: E402

CONDITION_NAMES = "|".join(
    re.escape(word) for cid in CONDITION_IDS for word in {cid.replace("_", " "), get_knowledge().conditions[cid].name}
)
DIAGNOSIS = [
    re.compile(rf"\byou(?:'ve| have| might have| probably have| may have)\s+(?:a |an )?(?:{CONDITION_NAMES})", re.I),
    re.compile(r"\bthis is\b", re.I),
    re.compile(r"\bsounds like\b", re.I),
    re.compile(r"\bdiagnos(?:is|ed) (?:you|with)\b", re.I),
    re.compile(r"\byour diagnosis\b", re.I),
]
REFERRAL = re.compile(r"healthcare provider|call \{emergency_number\}", re.I)
SAFETY_NET = "Get emergency care at once"


# --------------------------------------------------------------------------- harness


def initial_slots(domain: Dict[str, Any]) -> Dict[str, Any]:
    return {name: spec.get("initial_value") for name, spec in domain["slots"].items()}


def make_tracker(
    domain: Dict[str, Any],
    texts: Iterable[str] = (),
    slots: Optional[Dict[str, Any]] = None,
    intent: str = "inform",
    entities: Optional[List[Dict[str, Any]]] = None,
    form: bool = False,
    candidates: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """A tracker state as Rasa 3 sends it: session start, user turns, and for a running form
    the form's slot candidates appended after the latest user message."""
    texts = list(texts) or ["my back hurts"]
    current = initial_slots(domain)
    current.update(slots or {})
    events: List[Dict[str, Any]] = [
        {"event": "action", "name": "action_session_start", "timestamp": 1.0},
        {"event": "session_started", "timestamp": 1.0},
        {"event": "action", "name": "action_listen", "timestamp": 1.0},
    ]
    for i, text in enumerate(texts):
        last = i == len(texts) - 1
        events.append({
            "event": "user", "timestamp": 2.0 + i, "text": text,
            "parse_data": {"text": text, "intent": {"name": intent if last else "report_symptom", "confidence": 0.9},
                           "entities": entities or [] if last else []},
        })
        if form and i == 0:
            events.append({"event": "action", "name": "symptom_form", "timestamp": 2.0})
            events.append({"event": "active_loop", "name": "symptom_form", "timestamp": 2.0})
    for name, value in (candidates or {}).items():
        events.append({"event": "slot", "name": name, "value": value, "timestamp": 9.0})
        current[name] = value
    return {
        "sender_id": "test-user",
        "slots": current,
        "latest_message": {"text": texts[-1], "intent": {"name": intent, "confidence": 0.9}, "entities": entities or []},
        "events": events,
        "paused": False,
        "followup_action": None,
        "active_loop": {"name": "symptom_form"} if form else {},
        "latest_action_name": "symptom_form" if form else "action_listen",
    }


def run(executor: ActionExecutor, name: str, tracker: Dict[str, Any], domain: Dict[str, Any]) -> Any:
    result = asyncio.run(executor.run({"next_action": name, "tracker": tracker, "domain": domain, "sender_id": "test-user"}))
    assert result is not None
    return result


def slot_events(result: Any) -> Dict[str, Any]:
    return {e["name"]: e["value"] for e in result.events if e["event"] == "slot"}


def texts_of(result: Any) -> List[str]:
    return [m["text"] for m in result.responses if m.get("text")]


def assert_never_diagnoses(texts: Iterable[str]) -> None:
    for text in texts:
        for pattern in DIAGNOSIS:
            assert not pattern.search(text), f"diagnosis phrase {pattern.pattern!r} in: {text}"


def assert_no_dose(texts: Iterable[str]) -> None:
    for text in texts:
        assert not re.search(r"\b\d+\s*(mg|ml|g|tablets?|pills?|capsules?)\b", text, re.I), text


# --------------------------------------------------------------------------- session start


def test_session_start_sends_disclaimer_and_carries_nothing(executor, domain) -> None:
    tracker = make_tracker(domain, slots={"triage_level": "urgent", "red_flags": ["fever"], "body_part": "neck"})
    result = run(executor, "action_session_start", tracker, domain)
    assert [e["event"] for e in result.events] == ["session_started", "action"]
    assert result.events[-1]["name"] == "action_listen"
    assert [m["response"] for m in result.responses] == ["utter_disclaimer"]
    assert "utter_disclaimer" in domain["responses"]


def test_every_action_is_registered_and_declared_in_the_domain(executor, domain) -> None:
    ours = {a.name for a in executor.list_actions()}
    expected = {"action_session_start", "validate_symptom_form", "action_triage_result",
                "action_visit_summary", "action_self_care", "action_explain_question"}
    assert expected <= ours
    assert ours <= set(domain["actions"]), f"not declared in domain.yml: {ours - set(domain['actions'])}"


# --------------------------------------------------------------------------- triage result


@pytest.mark.parametrize(
    "message, expected",
    [
        ("I pulled something lifting a box", "muscle_strain"),
        ("I hurt it at the gym yesterday", "muscle_strain"),
        ("my back aches after sitting at my desk all day", "posture_strain"),
        ("I slouch a lot and my back is sore", "posture_strain"),
        ("my back seized up this morning", "muscle_spasm"),
        ("there's a knot in my back that won't go", "muscle_spasm"),
        ("weak back after months in bed", "muscle_atrophy"),
        ("I'm out of shape and my back feels weak", "muscle_atrophy"),
        ("it has hurt on and off for years", "chronic_back_pain"),
        ("I fell off my bike", "back_injury"),
        ("my back hurts since a car accident", "back_injury"),
        ("I'm getting hunched and stooped", "hyperkyphosis"),
        ("my shoulders are rounded and I'm getting stooped", "hyperkyphosis"),
    ],
)
def test_triage_result_names_the_article_condition(executor, domain, message, expected) -> None:
    result = run(executor, "action_triage_result", make_tracker(domain, [message]), domain)
    slots = slot_events(result)
    assert slots["conditions"][0] == expected
    texts = texts_of(result)
    body = "\n".join(texts)
    assert "The reference article links symptoms like these to" in body
    assert get_knowledge().conditions[expected].name in body
    assert REFERRAL.search(body) and SAFETY_NET in body
    assert_never_diagnoses(texts)
    assert_no_dose(texts)
    assert SAFETY_NET in result.responses[-1]["text"], "the summary offer is a rule step of its own"


@pytest.mark.parametrize("action, level", [("action_triage_result", "urgent"),
                                           ("action_self_care", "urgent"),
                                           ("action_visit_summary", "emergency")])
def test_action_texts_carry_the_numbers_themselves(executor, domain, action, level) -> None:
    """Real Rasa sends an action's text as it is (only domain responses are templated): the
    emergency number must be in the text, not a {placeholder} the user would see."""
    slots = {"emergency_number": "112", "crisis_line": "116 123", "triage_level": level,
             "red_flags": ["fever"] if level == "urgent" else ["bladder_bowel"]}
    result = run(executor, action, make_tracker(domain, ["my back hurts"], slots=slots), domain)
    body = "\n".join(texts_of(result))
    assert "{" not in body and "}" not in body, body
    assert "112" in body
    if action == "action_visit_summary":
        assert "112" in result.responses[1]["custom"]["visit_summary"]["advice"]


@pytest.mark.parametrize(
    "message",
    ["I didn't fall, it just aches", "no accident or anything, I keep falling asleep on the sofa"],
)
def test_negated_or_excluded_mentions_do_not_count(executor, domain, message) -> None:
    result = run(executor, "action_triage_result", make_tracker(domain, [message]), domain)
    assert "back_injury" not in slot_events(result)["conditions"]


def test_slots_count_too_trigger_and_duration(executor, domain) -> None:
    tracker = make_tracker(domain, ["my back hurts"], slots={"trigger": "lifting boxes at work"})
    assert slot_events(run(executor, "action_triage_result", tracker, domain))["conditions"] == ["muscle_strain"]
    tracker = make_tracker(domain, ["my back hurts"], slots={"duration": "a few months"})
    assert slot_events(run(executor, "action_triage_result", tracker, domain))["conditions"] == ["chronic_back_pain"]
    tracker = make_tracker(domain, ["my back hurts"], slots={"duration": "2 weeks"})
    assert slot_events(run(executor, "action_triage_result", tracker, domain))["conditions"] == []
    # Values as the NLU's synonyms store them (data/nlu.yml).
    tracker = make_tracker(domain, ["my back hurts"], slots={"symptom": ["spasms"], "trigger": "sneezing"})
    assert slot_events(run(executor, "action_triage_result", tracker, domain))["conditions"] == ["muscle_spasm"]
    tracker = make_tracker(domain, ["my back hurts"], slots={"trigger": "sitting"})
    assert slot_events(run(executor, "action_triage_result", tracker, domain))["conditions"] == ["posture_strain"]
    tracker = make_tracker(domain, ["I hurt it bending over to pick up my kid"])
    assert slot_events(run(executor, "action_triage_result", tracker, domain))["conditions"] == ["muscle_strain"]


def test_nothing_matches_gives_general_article_causes_and_still_refers(executor, domain) -> None:
    result = run(executor, "action_triage_result", make_tracker(domain, ["my back hurts"]), domain)
    slots = slot_events(result)
    assert slots == {"conditions": []}     # the level is the safety layer's; the wording is routine's
    body = "\n".join(texts_of(result))
    for cause in ("strain", "posture", "weak"):
        assert cause in body
    assert "book a visit with a healthcare provider" in body and SAFETY_NET in body
    assert_never_diagnoses(texts_of(result))


@pytest.mark.parametrize(
    "slots, level, must_say",
    [
        ({"triage_level": "urgent", "red_flags": ["fever"]}, "urgent", "today or within the next 24 hours"),
        ({"triage_level": "emergency", "red_flags": ["bladder_bowel"]}, "emergency", "call 911"),
    ],
)
def test_referral_follows_the_triage_level(executor, domain, slots, level, must_say) -> None:
    result = run(executor, "action_triage_result", make_tracker(domain, ["I pulled something lifting"], slots=slots), domain)
    assert "triage_level" not in slot_events(result), "only the safety layer writes the triage level"
    texts = texts_of(result)
    assert must_say in texts[0], "with a warning sign the referral comes first"
    assert SAFETY_NET in texts[-1]
    if level == "emergency":
        assert not any("Self-care ideas" in t for t in texts), "self-care waits in an emergency"
    assert_never_diagnoses(texts)


def test_long_lasting_pain_books_the_visit_soon(executor, domain) -> None:
    soon = "book that visit soon"
    long = run(executor, "action_triage_result", make_tracker(domain, slots={"duration": "8 weeks"}), domain)
    short = run(executor, "action_triage_result", make_tracker(domain, slots={"duration": "3 weeks"}), domain)
    assert any(soon in t for t in texts_of(long))
    assert not any(soon in t for t in texts_of(short))


def test_only_this_sessions_messages_count(executor, domain) -> None:
    tracker = make_tracker(domain, ["my back seized up"])
    tracker["events"] = [{"event": "user", "text": "I fell off a ladder"}] + tracker["events"]
    assert "back_injury" not in slot_events(run(executor, "action_triage_result", tracker, domain))["conditions"]


# --------------------------------------------------------------------------- form: info slots


def validate(executor, domain, requested: str, text: str, intent: str = "inform",
             candidates: Optional[Dict[str, Any]] = None, slots: Optional[Dict[str, Any]] = None) -> Any:
    state = dict(slots or {})
    state["requested_slot"] = requested
    tracker = make_tracker(domain, ["my back hurts", text], slots=state, intent=intent, form=True, candidates=candidates)
    return run(executor, "validate_symptom_form", tracker, domain)


def ask_after_one_try(executor, domain, slot: str, answer: str, intent: str = "inform") -> List[str]:
    """The form's next question after `answer` to the question for `slot`, asked once before:
    what action_ask_<slot> says (the form asks again with its own action, as Rasa does)."""
    tracker = make_tracker(domain, ["my back hurts", answer], slots={"requested_slot": slot}, intent=intent, form=True)
    asked = {"event": "bot", "text": "the question", "timestamp": 2.5, "metadata": {"utter_action": f"utter_ask_{slot}"}}
    tracker["events"].insert(len(tracker["events"]) - 1, asked)
    return [m.get("response") for m in run(executor, f"action_ask_{slot}", tracker, domain).responses]


def test_a_question_after_a_safety_question_is_asked_in_its_own_words(executor, domain) -> None:
    """Duration asked, then a crisis cue got the direct question, then "no": the duration
    question comes back as it was, not as a re-ask (it was not answered badly, it was put aside)."""
    tracker = make_tracker(domain, ["my back hurts", "there's no future for me", "no"], slots={"requested_slot": "duration"},
                           intent="deny", form=True)
    events = tracker["events"]
    users = [i for i, e in enumerate(events) if e["event"] == "user"]
    events.insert(users[2], {"event": "bot", "text": "are you having thoughts of ending your life?", "timestamp": 3.5})
    events.insert(users[1], {"event": "bot", "text": "How long?", "timestamp": 2.5,
                             "metadata": {"utter_action": "utter_ask_duration"}})
    assert [m.get("response") for m in run(executor, "action_ask_duration", tracker, domain).responses] == ["utter_ask_duration"]
    # without the safety question in between, the same answer gets the rephrased question
    assert ask_after_one_try(executor, domain, "duration", "purple") == ["utter_reask_duration"]


@pytest.mark.parametrize(
    "answer, stored",
    [("7", "7"), ("7/10", "7"), ("seven", "7"), ("about a 6", "6"), ("6-7", "7"), ("0", "0"), ("10 out of 10", "10"),
     ("not given", "not given")],
)
def test_severity_is_read_from_digits_and_words(executor, domain, answer, stored) -> None:
    result = validate(executor, domain, "severity", answer, candidates={"severity": answer})
    assert slot_events(result)["severity"] == stored
    assert texts_of(result) == []


@pytest.mark.parametrize("answer", ["pretty bad", "unbearable", "not too bad"])
def test_severity_words_read_as_the_score_of_their_words(executor, domain, answer) -> None:
    words = get_knowledge().questions["severity"].extra["words"]
    score = next(str(s) for s, phrases in words.items() if answer in phrases)
    assert slot_events(validate(executor, domain, "severity", answer))["severity"] == score


@pytest.mark.parametrize("answer", ["12", "11/10", "-1"])
def test_severity_out_of_range_is_asked_again(executor, domain, answer) -> None:
    result = validate(executor, domain, "severity", answer, candidates={"severity": answer})
    assert slot_events(result)["severity"] is None
    assert ask_after_one_try(executor, domain, "severity", answer) == ["utter_reask_severity"]
    reask = domain["responses"]["utter_reask_severity"][0]
    assert "0" in reask["text"] and "10" in reask["text"] and reask["buttons"], "rephrased, with choices"


def test_a_question_about_the_question_gets_the_question_again_not_a_rephrasing(executor, domain) -> None:
    """After "why do you ask?" the question comes again as it was: nothing was misunderstood."""
    assert ask_after_one_try(executor, domain, "severity", "why do you ask?", intent="why_ask") == ["utter_ask_severity"]


def test_severity_without_entity_is_read_from_the_text(executor, domain) -> None:
    assert slot_events(validate(executor, domain, "severity", "hmm about a 5"))["severity"] == "5"
    # A misread intent does not hide a plain answer; a question about the question does.
    assert slot_events(validate(executor, domain, "severity", "eight", intent="goodbye"))["severity"] == "8"
    assert "severity" not in slot_events(validate(executor, domain, "severity", "why 0 to 10?", intent="why_ask"))
    assert slot_events(validate(executor, domain, "body_part", "neck", intent="greet"))["body_part"] == "neck"
    assert slot_events(validate(executor, domain, "duration", "2 weeks", intent="out_of_scope"))["duration"] == "2 weeks"


def test_very_severe_pain_is_recorded_not_flagged_by_the_form(executor, domain) -> None:
    # The safety layer reads "9/10" as severe_pain (tests/test_safety_decide.py); the form only
    # keeps the score and never writes danger signs or the level.
    result = validate(executor, domain, "severity", "9/10", candidates={"severity": "9/10"},
                      slots={"triage_level": "routine"})
    slots = slot_events(result)
    assert slots["severity"] == "9"
    assert "red_flags" not in slots and "triage_level" not in slots


@pytest.mark.parametrize("answer", ["since yesterday", "3 weeks", "a few months", "2 yrs", "3", "on and off for years",
                                    "since Monday", "10 days"])
def test_duration_keeps_the_users_words(executor, domain, answer) -> None:
    result = validate(executor, domain, "duration", answer, candidates={"duration": answer})
    assert slot_events(result)["duration"] == answer


def test_duration_said_in_passing_keeps_only_the_duration(executor, domain) -> None:
    """While another question is open, "my mum's back has been hurting for a week" gives the
    duration "a week", not the whole sentence (which the acknowledgement would repeat)."""
    text = "my mum's back has been hurting for a week"
    result = validate(executor, domain, "body_part", text)
    assert slot_events(result)["duration"] == "a week"
    # a time said in passing does not replace the duration already given
    tracker = make_tracker(domain, ["my back has hurt for 3 days", "yes, 38.6 last night"], intent="affirm", form=True,
                           slots={"requested_slot": "screen_urgent"}, candidates={"duration": "last night"})
    tracker["events"].insert(3, {"event": "slot", "name": "duration", "value": "3 days", "timestamp": 1.5})
    assert slot_events(run(executor, "validate_symptom_form", tracker, domain)).get("duration") in (None, "3 days")


def test_duration_without_a_time_is_asked_again(executor, domain) -> None:
    result = validate(executor, domain, "duration", "purple", candidates={"duration": "purple"})
    assert slot_events(result)["duration"] is None
    assert ask_after_one_try(executor, domain, "duration", "purple") == ["utter_reask_duration"]


@pytest.mark.parametrize(
    "answer, stored",
    [("lower back", "lower back"), ("low back", "lower back"), ("my mid-back", "middle back"),
     ("between my shoulder blades", "upper back"), ("neck", "neck"), ("one side", "one side"),
     ("lower back on the left", "lower back, left side"), ("not given", "not given")],
)
def test_body_part_is_normalised(executor, domain, answer, stored) -> None:
    assert slot_events(validate(executor, domain, "body_part", answer, candidates={"body_part": answer}))["body_part"] == stored


def test_trigger_from_free_text_but_not_from_a_question(executor, domain) -> None:
    assert slot_events(validate(executor, domain, "trigger", "lifting a heavy box"))["trigger"] == "lifting a heavy box"
    assert "trigger" not in slot_events(validate(executor, domain, "trigger", "why do you ask?", intent="why_ask"))


# --------------------------------------------------------------------------- form: screening


def test_every_form_slot_is_handled(domain) -> None:
    """Information slots have a validate_ method; screening slots belong to the safety layer."""
    from actions.form import ValidateSymptomForm
    from actions.knowledge import safety_layer

    knowledge = get_knowledge()
    for slot in domain["forms"]["symptom_form"]["required_slots"]:
        assert slot in knowledge.questions, f"questions.yml has no entry for {slot}"
        if slot.startswith("screen_"):
            assert safety_layer().owns(slot) and not hasattr(ValidateSymptomForm, f"validate_{slot}")
        else:
            assert hasattr(ValidateSymptomForm, f"validate_{slot}")


# --------------------------------------------------------------------------- self-care, summary, why


def test_self_care_for_conditions_has_sources_and_no_doses(executor, domain) -> None:
    result = run(executor, "action_self_care", make_tracker(domain, slots={"conditions": ["muscle_spasm"]}), domain)
    texts = texts_of(result)
    body = "\n".join(texts)
    assert "Massage" in body and "Foam roller" in body and "Staying hydrated" in body
    assert "check with your healthcare provider first" in body
    assert "ask a pharmacist" in body
    main_items = [i for i in get_knowledge().conditions["muscle_spasm"].self_care if not get_knowledge().self_care[i].gap]
    for iid in main_items:
        item = get_knowledge().self_care[iid]
        assert f"• {item.title}: {item.text} (Source: {get_knowledge().citation(item.source)})" in body
    assert_no_dose(texts)
    assert_never_diagnoses(texts)
    assert "book a visit with a healthcare provider" in texts[-1]  # conditions mean a symptom was reported


def test_self_care_without_conditions_is_general(executor, domain) -> None:
    texts = texts_of(run(executor, "action_self_care", make_tracker(domain), domain))
    for iid in get_knowledge().general_self_care:
        assert get_knowledge().self_care[iid].title in texts[0]


def test_visit_summary(executor, domain) -> None:
    slots = {"body_part": "lower back", "duration": "3 weeks", "severity": "6", "trigger": "lifting",
             "screen_bladder_bowel": False, "screen_fever": True, "red_flags": ["fever"], "triage_level": "urgent",
             "conditions": ["muscle_strain"]}
    tracker = make_tracker(domain, ["I pulled something lifting a box {emergency_number}", "lower back", "no"], slots=slots, intent="deny")
    result = run(executor, "action_visit_summary", tracker, domain)
    text = texts_of(result)[0]
    assert '"no"' not in text and '"lower back"' not in text, "bare answers are not the user's description"
    assert "{" not in text, "user words must not carry placeholders the engine would fill"
    assert "not a diagnosis" in text and date.today().isoformat()[:4] in text
    assert "I pulled something lifting a box" in text and "6/10" in text
    assert "Fever or chills: present or unsure" in text
    assert "New trouble peeing or controlling bladder or bowels: absent" in text
    assert "Pain at night or at rest: not asked" in text
    assert "muscle strain" in text and "within 24 hours" in text
    # Markdown renderers (rasa-webchat, chatroom) fold single newlines: every line break is a
    # hard break ("  \n") or a paragraph break ("\n\n", where channels split messages)
    assert re.findall(r"(?<!  )(?<!\n)\n(?!\n)", text) == [], text
    assert text.count("  \n") >= 8
    assert_never_diagnoses([text])
    payload = result.responses[1]["custom"]["visit_summary"]
    assert payload["triage_level"] == "urgent" and payload["red_flags"] == ["fever"]
    assert payload["screening"]["screen_fever"]["answer"] == "present or unsure"
    assert payload["screening"]["screen_night_pain"]["answer"] == "not asked"
    assert payload["related_conditions"] == [{"id": "muscle_strain", "name": "muscle strain"}]
    assert date.fromisoformat(payload["date"])


def test_explain_question_during_the_form(executor, domain) -> None:
    tracker = make_tracker(domain, ["why do you ask?"], slots={"requested_slot": "screen_fever"}, intent="why_ask", form=True)
    texts = texts_of(run(executor, "action_explain_question", tracker, domain))
    assert texts == [get_knowledge().questions["screen_fever"].why]


def test_explain_question_without_a_form(executor, domain) -> None:
    result = run(executor, "action_explain_question", make_tracker(domain, ["why?"], intent="why_ask"), domain)
    assert [m["response"] for m in result.responses] == ["utter_why_general"]
    assert "utter_why_general" in domain["responses"]


# --------------------------------------------------------------------------- the engine's output guard


def test_action_texts_pass_the_output_guard(executor, domain) -> None:
    """Every text these actions send passes the safety layer's never-diagnose/never-dose guard,
    so the engine never has to replace one of them."""
    try:
        from bot.safety.guard import OutputGuard

        guard = OutputGuard.load(ROOT / "knowledge")
    except Exception as exc:  # the safety layer is built in parallel; its absence is not our failure
        pytest.skip(f"output guard not available: {exc}")
    knowledge = get_knowledge()
    texts: List[str] = []
    for message, level, flags in [
        ("I pulled something lifting a box and my back seized up", "routine", []),
        ("my back hurts", "urgent", ["fever"]),
        ("I fell off my bike, getting hunched, weak back after months in bed", "emergency", ["major_trauma"]),
        ("sitting at my desk all day, on and off for years", "routine", []),
    ]:
        tracker = make_tracker(domain, [message], slots={"triage_level": level, "red_flags": flags, "duration": "8 weeks"})
        texts += texts_of(run(executor, "action_triage_result", tracker, domain))
    for cid in list(knowledge.conditions) + [None]:
        texts += texts_of(run(executor, "action_self_care", make_tracker(domain, slots={"conditions": [cid] if cid else []}), domain))
    summary_slots = {"body_part": "lower back", "severity": "6", "red_flags": ["fever"], "screen_fever": True,
                     "conditions": list(knowledge.conditions)}
    texts += texts_of(run(executor, "action_visit_summary", make_tracker(domain, slots=summary_slots), domain))
    texts += [q.why for q in knowledge.questions.values()]
    for text in texts:
        assert guard.violations(text) == [], f"guard rules {guard.violations(text)} fire on: {text}"


# --------------------------------------------------------------------------- issue 10: the result

FIRST_BUBBLE_MAX_WORDS = 120
OTHER = {"patient_facts": {"patient": "other", "back": True}}
ALL_CONDITIONS_TEXT = "I pulled something lifting, my back seized up, I'm out of shape, getting hunched, desk all day, for years"


@pytest.mark.parametrize("level, flags", [("routine", []), ("urgent", ["fever"]), ("emergency", ["bladder_bowel"])])
@pytest.mark.parametrize("caregiver", [False, True])
@pytest.mark.parametrize("message", [ALL_CONDITIONS_TEXT, "my back hurts"])
def test_result_first_bubble_is_short_refers_and_never_diagnoses(executor, domain, level, flags, caregiver, message) -> None:
    slots = {"triage_level": level, "red_flags": flags, "duration": "8 weeks", **(OTHER if caregiver else {})}
    result = run(executor, "action_triage_result", make_tracker(domain, [message], slots=slots), domain)
    texts = texts_of(result)
    first = texts[0]
    assert len(first.split()) <= FIRST_BUBBLE_MAX_WORDS, (len(first.split()), first)
    assert REFERRAL.search(first) or "call 911" in first
    assert SAFETY_NET in texts[-1], "the safety net is kept"
    assert len(texts) == 2, "self-care and sources are one tap away, not in the result"
    assert "(Source:" not in first and "•" not in first
    conditions = slot_events(result)["conditions"]
    for cid in conditions:
        assert get_knowledge().conditions[cid].name in first
    if caregiver:
        assert "your back" not in " ".join(texts) and "them" in first
    assert_never_diagnoses(texts)


def test_result_choices_are_buttons_for_self_care_sources_and_the_summary(domain) -> None:
    options = domain["responses"]["utter_result_options"][0]
    payloads = {b["title"]: b["payload"] for b in options["buttons"]}
    assert payloads["Self-care ideas"] == "/ask_self_care"
    assert payloads["Sources and details"] == "/request_details"
    assert payloads["Visit summary"] == "/request_summary"
    rules = yaml.safe_load((ROOT / "data" / "rules.yml").read_text(encoding="utf-8"))["rules"]
    after_result = [r for r in rules if any(s.get("action") == "action_triage_result" for s in r["steps"])]
    assert after_result and all(
        [s.get("action") for s in r["steps"] if "action" in s][-1] == "utter_result_options" for r in after_result)


def test_result_details_give_each_signs_reason_and_every_source(executor, domain) -> None:
    from actions.knowledge import safety_layer

    slots = {"triage_level": "urgent", "red_flags": ["fever", "night_pain"], "conditions": ["muscle_strain"]}
    texts = texts_of(run(executor, "action_result_details", make_tracker(domain, slots=slots), domain))
    body = "\n".join(texts)
    for flag in ("fever", "night_pain"):
        assert safety_layer().signs[flag].reason in body
    assert get_knowledge().conditions["muscle_strain"].description in body
    assert get_knowledge().citation(get_knowledge().conditions["muscle_strain"].source) in body
    assert "within the next 24 hours" in texts[-1]
    assert_never_diagnoses(texts)


# --------------------------------------------------------------------------- issue 10: self-care that fits

# CONTENT.md "Self-care that fits the picture": infection, fracture, cancer and neurological signs.
SIGNS_THAT_HOLD_EXERCISE = ["fever", "infection_risk", "minor_trauma_risk", "major_trauma", "cancer_history",
                            "weight_loss", "night_pain", "leg_numbness", "leg_weakness", "saddle_numbness",
                            "bladder_bowel"]
EXERCISE_AND_MASSAGE = ["gentle_exercise", "knee_to_chest", "cat_cow", "childs_pose", "pelvic_tilt", "bridge",
                        "bird_dog", "prone_press_up", "massage", "foam_roller"]


def _self_care(executor, domain, texts=("my back hurts",), **slots) -> List[str]:
    return texts_of(run(executor, "action_self_care", make_tracker(domain, list(texts), slots=slots), domain))


@pytest.mark.parametrize("flag", SIGNS_THAT_HOLD_EXERCISE)
def test_no_exercise_or_massage_with_an_infection_fracture_cancer_or_nerve_sign(executor, domain, flag) -> None:
    level = "emergency" if flag in ("major_trauma", "leg_weakness", "saddle_numbness", "bladder_bowel") else "urgent"
    texts = _self_care(executor, domain, ["I pulled something lifting and my back seized up"], triage_level=level,
                       red_flags=[flag], conditions=["muscle_strain", "muscle_spasm"])
    body = "\n".join(texts)
    for iid in EXERCISE_AND_MASSAGE:
        assert get_knowledge().self_care[iid].title not in body, (flag, iid)
    assert REFERRAL.search(texts[-1]) or "call 911" in texts[-1]
    if level == "urgent":
        assert "leave out exercises, stretches and massage" in body
        assert get_knowledge().self_care["rest_comfortably"].title in body


def test_without_a_warning_sign_the_exercises_are_offered(executor, domain) -> None:
    body = "\n".join(_self_care(executor, domain, triage_level="routine", conditions=["muscle_strain"]))
    assert get_knowledge().self_care["gentle_exercise"].title in body
    assert "leave out exercises" not in body


def _titles_in_order(text: str) -> List[str]:
    return [line[2:].split(":")[0] for line in text.splitlines() if line.startswith("• ")]


def test_pregnancy_gets_its_items_first_and_nothing_lying_flat(executor, domain) -> None:
    knowledge = get_knowledge()
    texts = _self_care(executor, domain, ["I'm 34 weeks pregnant and my lower back aches"], triage_level="routine",
                       conditions=["muscle_strain"])
    titles = _titles_in_order(texts[0])
    assert titles[:2] == [knowledge.self_care["posture_training"].title, knowledge.self_care["gentle_exercise"].title]
    assert knowledge.self_care["pregnancy_care"].title in titles
    for iid in ("prone_press_up", "bridge", "knee_to_chest", "otc_pain_relief"):
        assert knowledge.self_care[iid].title not in titles, iid


def test_not_pregnant_is_not_the_pregnancy_picture(executor, domain) -> None:
    texts = _self_care(executor, domain, ["I'm not pregnant, my lower back aches"], triage_level="routine")
    assert "pregnancy" not in texts[0]


@pytest.mark.parametrize("condition, first", [("posture_strain", "posture_training"), ("muscle_strain", "gentle_exercise")])
def test_desk_and_lifting_strain_get_their_items_first(executor, domain, condition, first) -> None:
    texts = _self_care(executor, domain, triage_level="routine", conditions=["muscle_spasm", condition])
    assert _titles_in_order(texts[0])[0] == get_knowledge().self_care[first].title


def test_self_care_list_stays_readable(executor, domain) -> None:
    from actions.results import MAX_SELF_CARE_ITEMS

    texts = _self_care(executor, domain, triage_level="routine", conditions=list(CONDITION_IDS))
    assert 3 <= len(_titles_in_order(texts[0])) <= MAX_SELF_CARE_ITEMS


# --------------------------------------------------------------------------- issue 10: caregivers


def test_caregiver_summary_says_who_it_is_about(executor, domain) -> None:
    slots = {"patient_facts": {"patient": "other", "back": True, "age": 84.0}, "triage_level": "urgent",
             "red_flags": ["minor_trauma_risk"]}
    tracker = make_tracker(domain, ["my mum, 84, slipped on the step and her back hurts"], slots=slots)
    result = run(executor, "action_visit_summary", tracker, domain)
    text = texts_of(result)[0]
    assert "About: someone else, the user's mum, aged 84" in text
    assert "In the user's own words" in text
    assert result.responses[1]["custom"]["visit_summary"]["about"] == {"patient": "other", "who": "mum", "age": 84}


def test_own_summary_says_it_is_about_the_user(executor, domain) -> None:
    text = texts_of(run(executor, "action_visit_summary", make_tracker(domain, ["my lower back hurts"]), domain))[0]
    assert "About: the person who used the chat" in text


def test_caregiver_intro_and_questions_speak_of_them(executor, domain) -> None:
    tracker = make_tracker(domain, ["my dad's back is sore"], slots=OTHER, intent="report_symptom")
    assert [m["response"] for m in run(executor, "action_symptom_intro", tracker, domain).responses] == ["utter_symptom_intro_other"]
    tracker = make_tracker(domain, ["my dad's back is sore"], slots={**OTHER, "requested_slot": "screen_emergency"}, form=True)
    asked = [m["response"] for m in run(executor, "action_ask_screen_emergency", tracker, domain).responses]
    assert asked == ["utter_ask_screen_emergency_other"]


def test_caregiver_checklist_choices_name_no_one(domain) -> None:
    """A tapped choice is read by the safety screen: "my legs" would be the writer's, not the patient's."""
    for name in ("utter_ask_screen_emergency_other", "utter_ask_screen_urgent_other", "utter_reask_screen_emergency_other",
                 "utter_reask_screen_urgent_other"):
        for button in domain["responses"][name][0]["buttons"]:
            words = set(re.findall(r"[a-z']+", button["payload"].lower()))
            assert not words & {"i", "i'm", "my", "me", "mine"}, (name, button["payload"])


# --------------------------------------------------------------------------- issue 10: keeping the thread


def _events(result: Any) -> List[Dict[str, Any]]:
    return list(result.events)


def _followup(result: Any) -> Optional[str]:
    return next((e["name"] for e in result.events if e["event"] == "followup"), None)


BACK = {"patient_facts": {"patient": "self", "back": True}, "triage_level": "routine"}


@pytest.mark.parametrize("action, intent, text", [
    ("action_refuse_diagnosis", "ask_diagnosis", "my lower back hurts, what do I have?"),
    ("action_medication", "ask_medication", "how much ibuprofen can I take for my sore back?"),
])
def test_a_refusal_after_a_symptom_starts_the_questions(executor, domain, action, intent, text) -> None:
    result = run(executor, action, make_tracker(domain, [text], slots=BACK, intent=intent), domain)
    names = [m["response"] for m in result.responses]
    assert names[-1] == "utter_questions_instead"
    assert _followup(result) == "symptom_form"


@pytest.mark.parametrize("situation", ["no symptom", "in the form", "after the result", "stopped", "emergency"])
def test_a_refusal_does_not_restart_a_finished_or_stopped_triage(executor, domain, situation) -> None:
    slots = {} if situation == "no symptom" else dict(BACK)
    if situation == "emergency":
        slots.update(triage_level="emergency", red_flags=["bladder_bowel"])
    tracker = make_tracker(domain, ["my back hurts", "what do I have?"], slots=slots, intent="ask_diagnosis",
                           form=situation == "in the form")
    if situation in ("after the result", "stopped"):
        done = "action_triage_result" if situation == "after the result" else "action_deactivate_loop"
        tracker["events"].insert(len(tracker["events"]) - 1, {"event": "action", "name": done, "timestamp": 2.5})
    result = run(executor, "action_refuse_diagnosis", tracker, domain)
    assert [m["response"] for m in result.responses] == ["utter_cannot_diagnose"]
    assert _followup(result) is None


@pytest.mark.parametrize("text", ["can I take my husband's tramadol?", "my friend gave me her co-codamol"])
def test_someone_elses_prescription_gets_a_clear_dont(executor, domain, text) -> None:
    result = run(executor, "action_medication", make_tracker(domain, [text], intent="ask_medication"), domain)
    assert [m["response"] for m in result.responses] == ["utter_others_medicine"]
    warning = domain["responses"]["utter_others_medicine"][0]["text"]
    assert "don't take medicine that was prescribed for someone else" in warning
    assert "pharmacist" in warning and "provider" in warning


def test_own_medicine_question_gets_the_general_answer(executor, domain) -> None:
    result = run(executor, "action_medication", make_tracker(domain, ["can I take ibuprofen?"], intent="ask_medication"), domain)
    assert [m["response"] for m in result.responses] == ["utter_medication"]


# --------------------------------------------------------------------------- issue 10: "is it serious?"


def test_is_it_serious_asks_only_the_danger_sign_checks(executor, domain) -> None:
    tracker = make_tracker(domain, ["no questions please, is this bad or not?"], slots={**BACK, "body_part": "lower back"},
                           intent="ask_serious")
    result = run(executor, "action_answer_serious", tracker, domain)
    assert [m["response"] for m in result.responses] == ["utter_serious_honest"]
    slots = slot_events(result)
    assert slots == {"duration": "not given", "severity": "not given", "trigger": "not given"}, "what was said stays"
    assert _followup(result) == "symptom_form"
    honest = domain["responses"]["utter_serious_honest"][0]["text"]
    assert "can't" in honest and "questions" in honest
    form_slots = domain["forms"]["symptom_form"]["required_slots"]
    # the coping question is asked only for long-standing pain, which a duration not given is not
    assert [s for s in form_slots if not s.startswith("screen_")] == ["body_part", "duration", "severity", "trigger",
                                                                        "coping"]
    from actions.form import long_standing
    assert not long_standing(slots["duration"])


def test_is_it_serious_inside_the_form_lets_the_rule_resume_it(executor, domain) -> None:
    tracker = make_tracker(domain, ["my back hurts", "just tell me if it's serious"], slots=BACK, intent="ask_serious", form=True)
    result = run(executor, "action_answer_serious", tracker, domain)
    assert _followup(result) is None and slot_events(result)["body_part"] == "not given"


def test_is_it_serious_after_the_result_repeats_the_advice(executor, domain) -> None:
    tracker = make_tracker(domain, ["my back hurts", "is it serious?"], slots={**BACK, "triage_level": "urgent"}, intent="ask_serious")
    tracker["events"].insert(len(tracker["events"]) - 1, {"event": "action", "name": "action_triage_result", "timestamp": 2.5})
    result = run(executor, "action_answer_serious", tracker, domain)
    assert _followup(result) is None and slot_events(result) == {}
    assert "within the next 24 hours" in texts_of(result)[-1]


def test_not_understood_back_complaint_starts_the_questions(executor, domain) -> None:
    """Low NLU confidence on a message the safety layer read as a back complaint: the questions
    start; anything else gets the "didn't get that" reply."""
    result = run(executor, "action_not_understood", make_tracker(domain, ["my back ugh"], slots=BACK, intent="nlu_fallback"), domain)
    assert [m["response"] for m in result.responses] == ["utter_symptom_intro"] and _followup(result) == "symptom_form"
    result = run(executor, "action_not_understood", make_tracker(domain, ["xkcd lorem"], intent="nlu_fallback"), domain)
    assert [m["response"] for m in result.responses] == ["utter_default"] and _followup(result) is None


@pytest.mark.parametrize("text, starts", [
    ("my brother did his back in hauling a sofa up the stairs, he can barely move now", True),
    ("had this lower back ache for ages, tried everything", True),
    ("which mattress brand is best for the back?", False),
    ("my tooth hurts really badly", False),
])
def test_out_of_scope_that_describes_a_back_complaint_starts_the_questions(executor, domain, text, starts) -> None:
    """The NLU's out_of_scope is not the last word: a message the safety layer reads as a back
    complaint (anyone's) starts the questions, in the third person for someone else."""
    from actions.replies import complains_about_a_back

    tracker = make_tracker(domain, [text], intent="out_of_scope",
                           slots={"patient_facts": {"back": True}} if starts else None)
    result = run(executor, "action_out_of_scope", tracker, domain)
    responses = [m.get("response") for m in result.responses]
    assert complains_about_a_back(Tracker.from_dict(tracker)) is starts
    if starts:
        assert responses[0].startswith("utter_symptom_intro")
        assert {"event": "followup", "timestamp": None, "name": "symptom_form"} in result.events
    else:
        assert responses == ["utter_out_of_scope"] and result.events == []


@pytest.mark.parametrize("text, today, weeks", [
    ("since march", "2026-12-02", 39.4), ("since last march", "2026-04-15", 6.4),
    ("since christmas", "2027-01-08", 2.0), ("since the summer", "2026-12-02", 26.3),
    ("since december", "2026-12-02", 1.0),
])
def test_a_month_or_season_is_counted_back_from_today(text: str, today: str, weeks: float) -> None:
    import datetime

    from actions.parsing import parse_duration
    assert parse_duration(text, datetime.date.fromisoformat(today)).weeks == pytest.approx(weeks, abs=0.1)
