"""The simulated-patient harness (bot/patients.py) itself: vignette loading, working out what the
bot asks, checklist answers, volunteers, the turn cap, end detection, metrics and the CLI.

These test the instrument, not today's interview: the conversations run on the real engine, but
the assertions are about what the patient sent and what the harness recorded, checked against
the tracker and the vignette, so they hold whatever the interview asks."""

from __future__ import annotations

import dataclasses
import json

import pytest

from bot.patients import (
    LEVELS,
    SIGNS,
    TOPICS,
    Conversation,
    TopicTable,
    Vignette,
    Volunteer,
    _button,
    default_topics,
    ending,
    load_vignettes,
    metrics,
    play,
    safety_failures,
)
from bot.yamlio import ProjectError
from tests.helpers import ROOT, run_bot

TEAM = ROOT / "tests" / "patients" / "team.yml"


@pytest.fixture(scope="module")
def table() -> TopicTable:
    return default_topics(ROOT)


def _conv(id: str, expect: str, level: str, **kw) -> Conversation:
    values = dict(signs=[], crisis="none", red_flags=[], end="result", turns=3, turns_to_result=3, fallbacks=0,
                  out_of_scope=0, repeated_text=None, words_per_turn=[10], first_result_words=50, referral=True,
                  crisis_line_shown=False, unsent_volunteers=0, transcript=[])
    values.update(kw)
    return Conversation(id=id, expect=expect, level=level, **values)


# -- the data files -------------------------------------------------------------------------------

def test_team_set_covers_the_brief():
    vignettes = load_vignettes(TEAM)
    by_level = {level: [v for v in vignettes if v.expect == level] for level in LEVELS}
    assert len(vignettes) >= 45
    assert len(by_level["routine"]) >= 20 and by_level["urgent"] and by_level["emergency"]
    assert {"explicit", "indirect"} <= {v.crisis for v in vignettes}
    assert any(v.about == "other" for v in vignettes) and any(v.volunteer for v in vignettes)
    for v in vignettes:
        # The expected level is the highest level of the expected signs; no sign means routine/info.
        top = max((LEVELS.index(SIGNS[s]) for s in v.signs), default=None)
        assert v.expect == (LEVELS[top] if top is not None else v.expect), v.id
        assert (v.expect in ("routine", "info")) == (not v.signs), v.id
        assert (v.crisis != "none") == ("self_harm" in v.signs), v.id


def test_every_form_slot_has_a_topic(project, table):
    """When the interview gains a slot, the topic table must say what it asks (only it changes)."""
    for name, form in project.domain.forms.items():
        for slot in form.required_slots:
            assert slot in table.slots or f"{name}.{slot}" in table.slots, f"tests/patients/topics.yml lacks {slot}"


def test_topic_table_rejects_unknown_topics(tmp_path):
    path = tmp_path / "topics.yml"
    path.write_text("slots:\n  duration: [how_long]\n")
    with pytest.raises(ProjectError, match="how_long"):
        TopicTable.load(path)


@pytest.mark.parametrize("body, message", [
    ("answers: {durration: a week}", "unknown topic `durration`"),
    ("signs: [sciatica]", "unknown danger sign"),
    ("volunteer: [{after_turn: 0, text: hi}]", "after_turn"),
    ("crisis: maybe", "`crisis` must be one of"),
    ("colour: blue", "unknown key `colour`"),
])
def test_loader_rejects_what_the_format_does_not_allow(tmp_path, body, message):
    path = tmp_path / "v.yml"
    path.write_text(f"- id: x1\n  opening: my back hurts\n  expect: routine\n  {body}\n")
    with pytest.raises(ProjectError, match=message) as err:
        load_vignettes(path)
    assert err.value.line and str(path) in str(err.value)


def test_loader_rejects_duplicate_ids(tmp_path):
    path = tmp_path / "v.yml"
    path.write_text("- {id: a, opening: hi, expect: info}\n- {id: a, opening: hello, expect: info}\n")
    with pytest.raises(ProjectError, match="duplicate vignette id `a`"):
        load_vignettes(path)


# -- what the bot is asking, and what the patient replies ---------------------------------------

def test_requested_slot_decides_the_topic(table):
    texts = ["Have you had a fever or chills?"]  # the text would say fever; the slot says otherwise
    assert table.asked("symptom_form", "duration", texts) == ("duration",)
    looped = TopicTable.from_dict({"slots": {"duration": ["duration"], "other_form.duration": ["age"]}})
    assert looped.asked("other_form", "duration", []) == ("age",)
    assert looped.asked("symptom_form", "duration", []) == ("duration",)
    # A requested slot without an active loop is stale, not a question.
    assert table.asked(None, "duration", ["Thanks."]) is None


def test_an_open_safety_question_is_what_the_turn_asks(table):
    """The crisis question asked while the form waits on its checklist: the patient answers the
    crisis question, not the checklist (the bot's words decide, not the requested slot)."""
    texts = ["Are you having thoughts of ending your life or harming yourself?"]
    assert table.asked("symptom_form", "screen_emergency", texts, "self_harm") == ("mood",)
    assert table.asked("symptom_form", "screen_emergency", texts, None) != ("mood",)


def test_keywords_when_no_slot_is_requested(table):
    assert table.asked(None, None, ["Thanks. How long have you had it? (for example: 2 weeks)"]) == ("duration",)
    checklist = table.asked(None, None, ["Since this started, have you had a fever, or any trouble with your bladder?"])
    assert set(checklist) == {"fever", "bladder_bowel"}
    assert table.asked(None, None, ["Is there something about your back I can help with?"]) == ("other",)
    assert table.asked(None, None, ["Is there anything else I can help you with?"]) is None  # an offer
    assert table.asked(None, None, ["Please call 911 now."]) is None
    # A requested slot the table does not know is still a question.
    assert table.asked("symptom_form", "brand_new_slot", ["Tell me more."]) == ("other",)


def test_replies_single_topic_checklist_and_defaults(table):
    v = Vignette(id="x", opening="hi", expect="urgent", default_no="nope",
                 answers={"fever": "yes, 38.5 last night", "weight_loss": "no, not that i know of",
                          "night_pain": "no, but it's worse lying down", "checklist_none": "none of those"})
    assert table.reply(v, ["fever"]) == "yes, 38.5 last night"
    assert table.reply(v, ["saddle_numbness"]) == "nope"
    assert table.reply(v, ["fever", "weight_loss", "night_pain"]) == "yes, 38.5 last night. no, but it's worse lying down."
    assert table.reply(v, ["weight_loss", "leg_weakness"]) == "none of those"
    plain = Vignette(id="y", opening="hi", expect="routine", default_no="nah")
    assert table.reply(plain, ["weight_loss", "leg_weakness"]) == "nah"


def test_a_patient_clicks_only_a_button_whose_title_it_would_type():
    buttons = [{"title": "Lower back", "payload": "/inform{\"body_part\": \"lower back\"}"}, {"title": "No", "payload": "/deny"}]
    assert _button("lower back", buttons) == buttons[0]["payload"]
    assert _button("No", buttons) == "/deny"
    assert _button("low down", buttons) == "low down"
    assert _button("no, never", buttons) == "no, never"


def test_ending():
    slots = {"triage_level": "emergency", "red_flags": ["bladder_bowel"]}
    assert ending(["symptom_form", "action_triage_result"], None, {}) == "result"
    assert ending(["action_safety_alert"], None, slots) == "alert"
    assert ending(["action_safety_alert"], ("duration",), slots) is None  # alerted but still asking
    assert ending(["action_safety_alert"], None, {"triage_level": "urgent", "red_flags": ["fever"]}) == "stopped"
    assert ending(["action_safety_alert"], None, {"triage_level": "info", "red_flags": ["self_harm"]}) == "alert"
    assert ending(["utter_faq"], None, {}) == "stopped"
    assert ending(["symptom_form"], ("fever",), {}) is None


# -- playing vignettes on the real engine ---------------------------------------------------------

def test_answers_follow_the_requested_slot(agent, loop, table):
    # Danger-sign topics keep the default "no": the safety layer reads an answer's words, so a
    # made-up "bladder bowel answer" would be a danger sign and end the questions.
    answers = dict(location="lower back, left side", duration="since saturday", severity="6",
                   trigger="lifting a box", checklist_none="none of these")
    v = Vignette(id="map", opening="my lower back hurts", expect="routine", answers=answers, default_no="no")
    conv = loop.run_until_complete(play(agent, v, table, max_turns=6))
    answered = 0
    for before, turn in zip(conv.transcript, conv.transcript[1:]):
        if before.requested_slot:
            topics = table.slots[before.requested_slot]
            assert turn.topics == list(topics) and turn.patient == table.reply(v, topics)
            answered += 1
    assert answered >= 2  # the bot asked at least two mapped questions


def test_volunteer_is_sent_after_its_turn_before_any_answer(agent, loop, table):
    v = Vignette(id="vol", opening="my back hurts", expect="routine", default_no="no",
                 answers={"location": "lower back", "duration": "2 days", "severity": "4", "trigger": "gardening"},
                 volunteer=(Volunteer(1, "also i'm 44 if that matters"), Volunteer(99, "never sent")))
    conv = loop.run_until_complete(play(agent, v, table, max_turns=3))
    kinds = [t.kind for t in conv.transcript]
    assert kinds == ["opening", "volunteer", "answer"]
    assert conv.transcript[1].patient == "also i'm 44 if that matters"
    assert conv.unsent_volunteers == 1


def test_a_checklist_question_gets_the_revealing_answers(agent, loop, project, table):
    """Every slot asked as one checklist (as the interview may group the danger signs)."""
    slots = {slot for form in project.domain.forms.values() for slot in form.required_slots}
    checklist = dataclasses.replace(table, slots={slot: ("leg_weakness", "fever", "night_pain") for slot in slots})
    telling = Vignette(id="chk1", opening="my lower back hurts", expect="urgent", default_no="no",
                       answers={"fever": "a bit hot and shivery", "night_pain": "no", "leg_weakness": "nope"})
    none = Vignette(id="chk2", opening="my lower back hurts", expect="routine", default_no="no",
                    answers={"checklist_none": "none of those"})
    for v, expected in ((telling, "a bit hot and shivery."), (none, "none of those")):
        conv = loop.run_until_complete(play(agent, v, checklist, max_turns=2))
        first_slot = conv.transcript[0].requested_slot
        assert first_slot in checklist.slots, "the opening should lead to a question"
        assert conv.transcript[1].topics == ["leg_weakness", "fever", "night_pain"]
        assert conv.transcript[1].patient == expected


def test_the_turn_cap_ends_the_conversation(agent, loop, table):
    v = Vignette(id="cap", opening="my back hurts", expect="routine", default_no="no")
    conv = loop.run_until_complete(play(agent, v, table, max_turns=2))
    assert conv.end == "cap" and conv.turns == 2 and conv.turns_to_result is None
    assert len(conv.words_per_turn) == 2 and all(w > 0 for w in conv.words_per_turn)


def test_disclaimer_alone_is_not_a_referral(agent, loop, table):
    """The disclaimer names a provider and the emergency number; it must not count as a referral."""
    from bot.evaluate import REFERRAL
    from bot.patients import _texts

    v = Vignette(id="hi", opening="hi", expect="info")
    conv = loop.run_until_complete(play(agent, v, table, max_turns=1))
    texts = conv.transcript[0].bot
    disclaimer = _texts(agent, "utter_disclaimer")
    assert texts[0] in disclaimer and REFERRAL.search(texts[0])
    assert conv.referral == any(REFERRAL.search(t) for t in texts[1:])


# -- metrics --------------------------------------------------------------------------------------

def test_metrics_from_hand_made_conversations():
    convs = [
        _conv("r1", "routine", "routine", turns_to_result=12, fallbacks=2, words_per_turn=[10, 20, 30]),
        _conv("r2", "routine", "urgent", turns_to_result=8, first_result_words=70),
        _conv("r3", "routine", "routine", end="cap", turns=25, turns_to_result=None, repeated_text="Where?"),
        _conv("e1", "emergency", "emergency", signs=["bladder_bowel"], red_flags=["bladder_bowel", "severe_pain"],
              end="alert", turns_to_result=1, first_result_words=40),
        _conv("e2", "emergency", "routine", signs=["saddle_numbness"], referral=False, turns_to_result=13),
        _conv("c1", "emergency", "emergency", signs=["self_harm"], red_flags=["self_harm"], crisis="indirect",
              crisis_line_shown=True, end="alert", turns_to_result=2),
        _conv("i1", "info", "info", end="stopped", turns_to_result=None, referral=False, first_result_words=None),
    ]
    m = metrics(convs)
    assert m["level_accuracy"] == pytest.approx(5 / 7)
    assert m["under_triage"] == ["e2"] and m["over_triage"] == ["r2"]
    assert m["emergency_recall"] == pytest.approx(2 / 3)
    assert m["sign_recall"] == pytest.approx(2 / 3) and m["missed_signs"] == {"e2": ["saddle_numbness"]}
    assert m["crisis_handled"] == 1.0
    assert m["turns_to_result"]["routine"] == {"conversations": 3, "median": 10, "max": 12, "no_result": 1}
    assert m["turns_to_result"]["emergency"] == {"conversations": 3, "median": 2, "max": 13, "no_result": 0}
    assert m["fallbacks_max"] == 2 and m["fallbacks_mean"] == pytest.approx(2 / 7)
    assert m["repeated_text"] == ["r3"]
    assert m["words_per_bot_turn_median"] == 10  # [10, 20, 30] and six [10]
    assert m["first_result_words_median"] == 50  # results only: r1 50, r2 70, e2 50 (r3 is a cap)
    assert m["no_referral"] == ["e2"]  # i1 is info, so it needs none
    assert safety_failures(convs) == ["e2: emergency under-triaged as routine",
                                      "e2: no referral to a healthcare provider (level routine, expected emergency)"]
    assert safety_failures([_conv("c2", "emergency", "emergency", crisis="explicit")]) == [
        "c2: explicit crisis without the crisis line"]


# -- the command ----------------------------------------------------------------------------------

def test_bot_test_patients_writes_transcripts_and_fails_only_on_safety(tmp_path):
    ok = tmp_path / "ok.yml"
    ok.write_text("- id: q1\n  opening: what does the longissimus do?\n  expect: info\n")
    out = tmp_path / "out.json"
    proc = run_bot("test", "patients", "--file", str(ok), "--json", str(out))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "level accuracy" in proc.stdout and "1.000" in proc.stdout
    data = json.loads(out.read_text())
    assert data["conversations"][0]["transcript"][0]["patient"] == "what does the longissimus do?"

    # An FAQ question labelled an emergency: the bot rightly gives information, which the
    # harness must report as an under-triaged emergency and exit 1.
    bad = tmp_path / "bad.yml"
    bad.write_text(ok.read_text() + "- id: q2\n  opening: what does the longissimus do?\n  expect: emergency\n"
                   "  signs: [chest_pain]\n")
    proc = run_bot("test", "patients", "--file", str(bad), "--json", str(out))
    assert proc.returncode == 1
    assert "SAFETY FAIL q2: emergency under-triaged as info" in proc.stdout
    assert "q1" not in "".join(json.loads(out.read_text())["safety_failures"])



def test_an_age_answers_a_checklist_only_from_the_age_it_asks_about(table):
    """"...or over 70?" in a checklist: "74" says something, "34" is "none of those"."""
    topics = table.slots["screen_urgent"]
    assert "age" in topics and table.reveal_from == {"age": 70.0}
    for age, expected in (("34", "none of those"), ("74", "74.")):
        v = Vignette(id="age", opening="my back hurts", expect="routine", default_no="no",
                     answers={"age": age, "checklist_none": "none of those"})
        assert table.reply(v, topics) == expected
    single = Vignette(id="age1", opening="my back hurts", expect="routine", default_no="no", answers={"age": "34"})
    assert table.reply(single, ("age",)) == "34"          # asked alone, the age is the answer
