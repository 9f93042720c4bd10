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


@pytest.fixture(scope="module")
def domain() -> Dict[str, Any]:
    return yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def executor() -> ActionExecutor:
    ex = ActionExecutor()
    ex.register_package("actions")
    return ex


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
