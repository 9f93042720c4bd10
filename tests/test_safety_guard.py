"""The output guard flags diagnosis, dosing and prescription statements and leaves allowed phrasing alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.safety.guard import OutputGuard

ROOT = Path(__file__).resolve().parent.parent
GUARD = OutputGuard.load(ROOT / "knowledge")
FLAGGED = [(cat, text) for cat, texts in GUARD.examples["flagged"].items() for text in texts]
ALLOWED = list(GUARD.examples["allowed"])

# The brief's own phrasing, kept here too so a data edit cannot drop it silently.
BRIEF_DIAGNOSIS = ["you have a strain", "this is sciatica", "sounds like a herniated disc",
                   "your diagnosis is", "you probably have", "I think you have", "you are suffering from"]
BRIEF_DOSING = ["take 400 mg", "two tablets every 4 hours", "Take 5 ml after meals", "250mg twice daily"]
BRIEF_ALLOWED = [
    "The reference article links symptoms like these to muscle strain",
    "Symptoms like these can be related to muscle strain or poor posture",
    "I can't tell you what you have",
    "If you have any of these signs, call 911",
    "you have had it for 3 weeks",
    "Only a clinician who examines you can make a diagnosis",
]
CONDITIONS = ["a muscle strain", "posture strain", "a muscle spasm", "muscle atrophy", "chronic back pain",
              "a back injury", "hyperkyphosis", "sciatica", "a herniated disc", "a slipped disc", "arthritis",
              "a pinched nerve", "cauda equina syndrome", "a fracture", "an infection", "a sprain"]
DIAGNOSIS_TEMPLATES = ["You have {}.", "You've got {}.", "This is {}.", "It's probably {}.",
                       "Sounds like {}.", "It looks like {}.", "You probably have {}.", "I think you have {}.",
                       "You are suffering from {}.", "What you describe is {}.", "It could be {}."]
ALLOWED_TEMPLATES = ["The reference article links symptoms like these to {}.",
                     "Back pain like this can be related to {}.",
                     "If you have {}, a physical therapist can guide your exercises.",
                     "A provider can check whether you have {}.",
                     "Do you think you have {}? Only a clinician can tell."]


def _category(violations: list[str]) -> set[str]:
    return {v.split(".")[0] for v in violations}


@pytest.mark.parametrize("category,text", FLAGGED)
def test_data_examples_are_flagged(category: str, text: str) -> None:
    assert category in _category(GUARD.violations(text)), text


@pytest.mark.parametrize("text", ALLOWED + BRIEF_ALLOWED)
def test_allowed_phrasing_is_not_flagged(text: str) -> None:
    assert GUARD.violations(text) == []
    assert GUARD.check(text) == (text, [])


@pytest.mark.parametrize("text", BRIEF_DIAGNOSIS)
def test_brief_diagnosis_statements(text: str) -> None:
    assert _category(GUARD.violations(text)) == {"diagnosis"}


@pytest.mark.parametrize("text", BRIEF_DOSING)
def test_brief_dosing_statements(text: str) -> None:
    assert "dosing" in _category(GUARD.violations(text))


@pytest.mark.parametrize("condition", CONDITIONS)
def test_diagnosis_templates(condition: str) -> None:
    for template in DIAGNOSIS_TEMPLATES:
        text = template.format(condition)
        assert "diagnosis" in _category(GUARD.violations(text)), text


@pytest.mark.parametrize("condition", CONDITIONS)
def test_allowed_templates(condition: str) -> None:
    for template in ALLOWED_TEMPLATES:
        text = template.format(condition)
        assert GUARD.violations(text) == [], text


@pytest.mark.parametrize("amount", ["200 mg", "400mg", "1,000 mg", "2.5 ml", "5ml", "500 mcg", "1 g", "10 milligrams"])
def test_any_amount_is_dosing(amount: str) -> None:
    assert _category(GUARD.violations(f"Take {amount} now.")) == {"dosing"}
    assert "dosing" in _category(GUARD.violations(f"The usual amount is {amount}."))


@pytest.mark.parametrize("text", ["You should take ibuprofen.", "I recommend naproxen.", "Take paracetamol.",
                                  "I will prescribe something for the pain.", "Try some muscle relaxants."])
def test_prescriptions(text: str) -> None:
    assert "prescription" in _category(GUARD.violations(text))


@pytest.mark.parametrize("text", ["Do these stretches twice a day.", "Walk for 10 minutes every 2 hours.",
                                  "Ask a pharmacist which pain relief suits you.", "Hold for 30 seconds, 3 times."])
def test_non_medicine_frequencies_are_allowed(text: str) -> None:
    assert GUARD.violations(text) == []


def test_check_replaces_with_a_kind_referral() -> None:
    text, broken = GUARD.check("You have a muscle strain. Take 400 mg of ibuprofen every 4 hours.")
    assert broken[0].startswith("diagnosis") and any(b.startswith("dosing") for b in broken)
    assert text == GUARD.replacements["diagnosis"]
    assert "clinician" in text and "healthcare provider" in text
    dose_text, dose_broken = GUARD.check("Take two tablets every 4 hours.")
    assert _category(dose_broken) == {"dosing"}
    assert "pharmacist" in dose_text


@pytest.mark.parametrize("category", ["diagnosis", "dosing", "prescription"])
def test_replacements_pass_the_guard(category: str) -> None:
    text = GUARD.replacements[category]
    assert GUARD.check(text) == (text, [])


def test_violation_names_are_rule_names() -> None:
    names = {rule.name for rule in GUARD.rules}
    assert set(GUARD.violations("You have a strain. Take 2 tablets every 4 hours.")) <= names


@pytest.mark.parametrize("text", ["", "   ", "Hello!", "{emergency_number}"])
def test_empty_and_plain_text(text: str) -> None:
    assert GUARD.check(text) == (text, [])


def test_quoted_user_words_are_not_the_bot_speaking() -> None:
    summary = 'Visit summary\n- In their own words: "I think this is sciatica" / "I took 400 mg of ibuprofen"'
    assert GUARD.violations(summary) == []
    assert GUARD.violations("This is sciatica. \u201cquoted\u201d") == ["diagnosis.this_is"]
