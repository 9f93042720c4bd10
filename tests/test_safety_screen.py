"""The danger-sign screen: concepts combined in any order, context, whose sign it is, questions.

The reviewed examples in danger_signs.yml are checked one by one; the cases below pin down the
mechanisms (each would let a danger sign through, or raise a false one, if it broke).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.safety.screen import NEGATED_SIGN, OTHER_SUBJECT, PRESENT, SELF, SUSPECTED, Screener

KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"
SCREENER = Screener.load(KNOWLEDGE)
EXAMPLES = [(sign.id, kind, text) for sign in SCREENER.signs.values()
            for kind, texts in sign.examples.items() for text in texts]


@pytest.mark.parametrize("sign,kind,text", EXAMPLES)
def test_reviewed_examples(sign: str, kind: str, text: str) -> None:
    result = SCREENER.screen(text)
    if kind == "present":
        assert sign in result.present, text
    elif kind == "asked":
        assert sign in result.suspected and sign not in result.present, text
    else:
        assert sign not in result.present, text


def test_every_sign_has_examples_both_ways() -> None:
    for sign in SCREENER.signs.values():
        assert sign.examples.get("present") and sign.examples.get("absent"), sign.id


# (text, sign, expected: present | negated | suspected | None = not found at all)
CASES = [
    # any word order, and fragments that continue each other
    ("a heavy squeezing feeling behind my breastbone", "chest_pain", PRESENT),
    ("behind my breastbone there's this squeezing", "chest_pain", PRESENT),
    ("Tightness. In my chest.", "chest_pain", PRESENT),
    ("my right leg's been funny all week. today it just gave up on the stairs", "leg_weakness", PRESENT),
    ("my leg's been funny all week. I gave up on physio", "leg_weakness", SUSPECTED),
    # negation scope: a reassurance elsewhere does not cancel a sign
    ("my legs are fine but my left leg gave way on the stairs", "leg_weakness", PRESENT),
    ("no numbness, but my groin is numb", "saddle_numbness", PRESENT),
    ("no numbness in my groin", "saddle_numbness", NEGATED_SIGN),
    ("my back is sore, not a 9 or anything, maybe 5", "severe_pain", NEGATED_SIGN),
    ("can't pee", "bladder_bowel", PRESENT),                      # the negation is the danger
    ("I can still pee fine", "bladder_bowel", NEGATED_SIGN),
    ("I can pee fine, it's more that I can't tell when I need to go", "bladder_bowel", PRESENT),
    # idioms and other body parts
    ("I can't stand with this itch on my arm", "leg_weakness", None),
    ("I can't stand up", "leg_weakness", PRESENT),
    ("my toothache is unbearable", "severe_pain", None),
    ("the pain in my back is unbearable", "severe_pain", PRESENT),
    ("this job is killing me", "self_harm", None),
    ("my hay fever is bad", "fever", None),
    # numbers mean what they measure
    ("my temperature is 39.2", "fever", PRESENT),
    ("my temperature is 37.1", "fever", None),
    ("it's a 9 out of 10", "severe_pain", PRESENT),
    ("I'm 34 weeks pregnant and my back aches", "severe_pain", None),
    # history, hypotheticals
    ("I had a fever last year", "fever", None),
    ("I had breast cancer years ago", "cancer_history", PRESENT),
    ("what happens if you lose control of your bladder?", "bladder_bowel", SUSPECTED),
    # crisis: only an explicit denial is a no
    ("not planning anything, just been saving my tramadol", "self_harm", PRESENT),
    ("I'm not suicidal", "self_harm", NEGATED_SIGN),
    ("there's no future for me with this back", "self_harm", SUSPECTED),
    ("my chest feels like an elephant is sitting on it", "chest_pain", PRESENT),
]


def _status(text: str, sign: str) -> str | None:
    result = SCREENER.screen(text)
    for status, signs in ((PRESENT, result.present), (NEGATED_SIGN, result.negated), (SUSPECTED, result.suspected)):
        if sign in signs:
            return status
    return None


@pytest.mark.parametrize("text,sign,expected", CASES)
def test_mechanisms(text: str, sign: str, expected: str | None) -> None:
    assert _status(text, sign) == expected, text


def test_whose_sign_it_is() -> None:
    own = SCREENER.screen("my dad had cancer and my back hurts")
    assert "cancer_history" not in own.present and own.patient == SELF
    carer = SCREENER.screen("my husband, 79, slipped on the step this morning and now his back hurts")
    assert carer.patient == OTHER_SUBJECT and carer.present == ["minor_trauma_risk"] and carer.age == 79
    # a caregiver's sign counts when the triage is about that person, and anyone's chest pain counts
    assert "cancer_history" in SCREENER.screen("he had cancer", patient=OTHER_SUBJECT).present
    assert "cancer_history" not in SCREENER.screen("he had cancer", patient=SELF).present
    assert "chest_pain" in SCREENER.screen("my dad is clutching his chest, it's crushing him").present


def test_an_answer_is_read_with_its_question() -> None:
    assert "saddle_numbness" in SCREENER.screen("yes a bit numb", asked="saddle_numbness").present
    assert "leg_numbness" not in SCREENER.screen("numb", asked="saddle_numbness").present
    assert "saddle_numbness" not in SCREENER.screen("only when I twist", asked="saddle_numbness").findings
    assert SCREENER.screen("my bladder's fine", asked="bladder_bowel").negated == ["bladder_bowel"]
    # a bare number answers the open question: a duration is no pain score
    assert "severe_pain" not in SCREENER.screen("9 or 10 days", asked_slot="duration").present
    assert "severe_pain" in SCREENER.screen("9 or 10", asked_slot="severity").present


def test_facts_combine_across_turns() -> None:
    first = SCREENER.screen("I slipped off the kerb and hurt my back")
    assert "minor_trauma_risk" not in first.present and "minor_mechanism" in first.facts
    second = SCREENER.screen("I'm 81", facts=frozenset(first.facts))
    assert second.present == ["minor_trauma_risk"]


def test_long_messages_are_screened_to_the_end_of_the_limit() -> None:
    from bot.safety.text import MAX_SCREEN_CHARS

    filler = "my back hurts. " * (MAX_SCREEN_CHARS // 20)
    assert "bladder_bowel" in SCREENER.screen(filler + "and I wet myself").present
    assert SCREENER.screen(filler * 3 + "and I wet myself").present == []    # past the limit: not read


# -- whose medicine, who is meant (public helpers for the actions) ---------------------------------

@pytest.mark.parametrize("text,theirs", [
    ("can I take my husband's tramadol?", True),
    ("my friend gave me her co-codamol", True),
    ("my wife's painkillers, can I take them", True),
    ("my sister has leftover naproxen, can I have some", True),
    ("can I take ibuprofen?", False),
    ("is it ok to take my own codeine", False),
    ("I take tramadol and my husband says it's fine", False),     # "I" ends the husband's reach
    ("my husband's back hurts", False),                          # no medicine named
])
def test_someone_elses_medicine(text: str, theirs: bool) -> None:
    assert SCREENER.someone_elses(text, "medicine") is theirs


@pytest.mark.parametrize("text,people", [
    ("my mum, 84, slipped on the step", ["mum"]),
    ("my dad's back is killing him", ["dad"]),
    ("she says her back hurts", []),                             # a pronoun names nobody
    ("my lower back hurts", []),
])
def test_other_people_are_named_by_the_context_rules(text: str, people: list) -> None:
    assert SCREENER.other_people(text) == people


# whose back the message complains about: a danger sign that is only about the back (back_only) is
# skipped when the message is about another body part, so losing the back here loses the sign
@pytest.mark.parametrize("text,question,subjects", [
    ("the lower back has been sore since Monday", False, {"unknown"}),   # no "my": still a back complaint
    ("my back is really sore and my knee aches", False, {SELF}),         # another part named too
    ("my colleague had back pain. I'm just stiff", False, {"other", SELF}),   # "stiff" is mine
    ("what helps back pain?", True, set()),                             # an FAQ: nobody's back
    ("my back hurts, what helps?", True, {SELF}),                       # an FAQ with my own back
])
def test_whose_back_the_message_complains_about(text: str, question: bool, subjects: set[str]) -> None:
    result = SCREENER.screen(text, question=question) if question else SCREENER.screen(text)
    assert result.back_subjects == subjects
    assert result.other_complaint is False


@pytest.mark.parametrize("text,sign", [
    ("I have had a fever since Tuesday. The cough is gone now.", "fever"),
    ("I wet myself this morning. The headache is gone.", "bladder_bowel"),
])
def test_a_denial_in_the_next_sentence_does_not_reach_back_to_a_sign(text: str, sign: str) -> None:
    # "... is gone" looks backward, but only within its own sentence
    assert sign in SCREENER.screen(text).present


@pytest.mark.parametrize("text, sign", [
    ("my back hurts and my temperature is 38", "fever"),                 # exactly 38 C is a fever
    ("I slipped on the step and now my back hurts, I'm 70", "minor_trauma_risk"),   # exactly 70
])
def test_thresholds_count_from_their_own_value(text: str, sign: str) -> None:
    assert sign in SCREENER.screen(text).present


def test_the_open_question_alone_gets_its_topic_understood_and_its_lesser_version_read() -> None:
    # "numb" is the saddle area only when the saddle question is the one asked
    assert "saddle_numbness" in SCREENER.screen("numb", asked="saddle_numbness").present
    assert "saddle_numbness" not in SCREENER.screen("numb", asked="leg_weakness").present
    # a small fall is a no to the serious-fall question only
    slip = "just slipped over, landed on my bum"
    assert "major_trauma" in SCREENER.screen(slip, asked="major_trauma").negated
    assert "major_trauma" not in SCREENER.screen(slip, asked="fever").negated
