"""The knowledge base in knowledge/: complete, sourced, in our own words, and guarded by
a loader that rejects broken files with a message naming the file and the fix."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Callable, List

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actions.knowledge import (  # noqa: E402
    CONDITION_IDS,
    LEVELS,
    KnowledgeError,
    load_knowledge,
)
from actions.parsing import parse_duration  # noqa: E402

KNOWLEDGE_DIR = ROOT / "knowledge"
ARTICLE = Path("/work/shared/reference/paraspinal-article.txt")
OUR_FILES = ("conditions.yml", "self_care.yml", "questions.yml", "sources.yml")

# CONTENT.md: the danger signs our screening questions raise, and their levels.
SCREEN_FLAGS = {
    "screen_bladder_bowel": ("bladder_bowel", "emergency"),
    "screen_saddle_numbness": ("saddle_numbness", "emergency"),
    "screen_leg": ("leg_weakness", "emergency"),
    "screen_leg_numbness": ("leg_numbness", "urgent"),
    "screen_fever": ("fever", "urgent"),
    "screen_injury": ("major_trauma", "emergency"),
    "screen_cancer": ("cancer_history", "urgent"),
    "screen_weight_loss": ("weight_loss", "urgent"),
    "screen_night_pain": ("night_pain", "urgent"),
    "screen_chest": ("chest_pain", "emergency"),
    "screen_infection": ("infection_risk", "urgent"),
    "screen_bones": ("minor_trauma_risk", "urgent"),
    "screen_lump": ("deformity", "urgent"),
}


@pytest.fixture(scope="module")
def knowledge():
    return load_knowledge(KNOWLEDGE_DIR)


def all_texts(knowledge) -> List[str]:
    texts = [c.description for c in knowledge.conditions.values()]
    texts += [i.text for i in knowledge.self_care.values()]
    texts += [q.why for q in knowledge.questions.values()]
    texts += list(knowledge.referral.values()) + [knowledge.safety_net, knowledge.fallback.text,
                                                   knowledge.framing_before, knowledge.framing_after,
                                                   knowledge.long_duration_text, knowledge.general_why]
    return texts


# --------------------------------------------------------------------------- the real files


def test_every_article_condition_is_there(knowledge) -> None:
    assert tuple(knowledge.conditions) == CONDITION_IDS


def test_every_condition_and_item_has_section_and_source(knowledge) -> None:
    assert len(knowledge.sources) == 8
    for entry in list(knowledge.conditions.values()) + list(knowledge.self_care.values()):
        assert entry.section in knowledge.sections, entry.id
        assert entry.source in knowledge.sources, entry.id
    assert knowledge.fallback.source in knowledge.sources


def test_gap_exercises_are_marked(knowledge) -> None:
    gap = {i.id for i in knowledge.self_care.values() if i.gap}
    assert gap == {"knee_to_chest", "cat_cow", "childs_pose", "pelvic_tilt", "bridge", "bird_dog", "prone_press_up",
                   # the comfort measures and the pregnancy note of CONTENT.md "Self-care that fits the picture"
                   "rest_comfortably", "no_driving_unwell", "pregnancy_care"}


def test_medication_advice_has_no_dose_and_defers_to_a_pharmacist(knowledge) -> None:
    otc = knowledge.self_care["otc_pain_relief"].text
    assert "label" in otc and "pharmacist" in otc
    for text in all_texts(knowledge):
        assert not re.search(r"\b\d+\s*(mg|ml|g|tablets?|pills?)\b", text, re.I), text


def test_screening_questions_map_to_content_flags() -> None:
    """Each screening slot answers the danger sign CONTENT.md gives it, at that sign's level
    (the safety layer, which owns both, reads them from danger_signs.yml)."""
    from bot.safety.decide import SafetyLayer

    safety = SafetyLayer.load(KNOWLEDGE_DIR)
    assert {slot: (sign, safety.level_of(sign)) for slot, sign in safety.screen_slots.items()} == SCREEN_FLAGS


def test_every_form_slot_has_a_why(knowledge) -> None:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    for slot in domain["forms"]["symptom_form"]["required_slots"]:
        assert len(knowledge.questions[slot].why) > 30, slot


def test_texts_never_diagnose(knowledge) -> None:
    for text in all_texts(knowledge):
        assert not re.search(r"\bthis is\b|\bsounds like\b|\byou have (a |an )?\w+ (strain|spasm|injury)\b"
                             r"|\bdiagnos(is|ed) (you|with)\b", text, re.I), text


def test_texts_are_in_our_own_words(knowledge) -> None:
    """No run of 7 words from the reference article appears in any bot text."""
    if not ARTICLE.exists():
        pytest.skip("reference article not available")
    words = re.findall(r"[a-z]+", ARTICLE.read_text(encoding="utf-8").lower())
    shingles = {" ".join(words[i : i + 7]) for i in range(len(words) - 6)}
    for text in all_texts(knowledge):
        ours = re.findall(r"[a-z]+", text.lower())
        copied = [" ".join(ours[i : i + 7]) for i in range(len(ours) - 6) if " ".join(ours[i : i + 7]) in shingles]
        assert not copied, f"copied from the article: {copied[0]!r}"


@pytest.mark.parametrize(
    "text, weeks",
    [("since yesterday", 1 / 7), ("3 weeks", 3), ("a few months", 13), ("2 yrs", 104), ("10d", 10 / 7),
     ("half a year", 26), ("on and off for years", 104), ("3", None)],
)
def test_duration_reading(text, weeks) -> None:
    said = parse_duration(text)
    assert said.recognised
    assert said.weeks == (pytest.approx(weeks) if weeks is not None else None)


# --------------------------------------------------------------------------- the loader rejects


@pytest.fixture()
def copy_dir(tmp_path: Path) -> Path:
    for name in OUR_FILES:
        shutil.copy(KNOWLEDGE_DIR / name, tmp_path / name)
    return tmp_path


def edit(path: Path, change: Callable[[str], str]) -> None:
    before = path.read_text(encoding="utf-8")
    after = change(before)
    assert after != before, "the test's edit did not apply"
    path.write_text(after, encoding="utf-8")


BROKEN = [
    ("conditions.yml", lambda s: s.replace("source: katzman_2017_sheaf", "source: wikipedia", 1),
     ["conditions.yml:", "hyperkyphosis", "wikipedia", "sources.yml"]),
    ("conditions.yml", lambda s: s.replace("    section: Function\n", "", 1),
     ["conditions.yml:", "posture_strain", "`section`"]),
    ("conditions.yml", lambda s: s.replace("section: Rehabilitation", "section: Treatment", 1),
     ["conditions.yml:", "Treatment", "Rehabilitation"]),
    ("conditions.yml", lambda s: s.replace("  - id: hyperkyphosis", "  - id: sciatica", 1),
     ["conditions.yml:", "sciatica", "CONTENT.md"]),
    ("conditions.yml", lambda s: s.replace("self_care: [massage,", "self_care: [yoga,", 1),
     ["conditions.yml:", "muscle_spasm", "yoga", "self_care.yml"]),
    ("self_care.yml", lambda s: s.replace("Pain relief you can buy", "Take 400 mg of pain relief you can buy", 1),
     ["self_care.yml:", "otc_pain_relief", "dose", "pharmacist"]),
    ("self_care.yml", lambda s: s.replace("    source: harvard_foam_roller\n", "", 1),
     ["self_care.yml:", "foam_roller", "`source`"]),
    ("self_care.yml", lambda s: s.replace("  urgent: \"Because", "  urgnt: \"Because", 1),
     ["self_care.yml:", "urgent"]),
    ("questions.yml", lambda s: s.replace('    label: "Fever or chills"\n', "", 1),
     ["questions.yml:", "screen_fever", "`label`"]),
    ("questions.yml", lambda s: s.replace("  duration:\n", "  how_long:\n", 1),
     ["questions.yml:", "duration"]),
    ("sources.yml", lambda s: s.replace("  - id: vleeming_2014", "  - id: radiopaedia_paraspinal", 1),
     ["sources.yml:", "radiopaedia_paraspinal", "twice"]),
    ("sources.yml", lambda s: s.replace("sources:\n  - id", "sources:\n  - id: [unclosed\n  - id", 1),
     ["sources.yml:", "YAML"]),
    ("conditions.yml", lambda s: s.replace("  min_score: 1\n", "  min_score: 1\n  min_score: 2\n", 1),
     ["conditions.yml:", "min_score", "twice"]),
]


@pytest.mark.parametrize("filename, change, expected", BROKEN, ids=[f"{b[0]}-{i}" for i, b in enumerate(BROKEN)])
def test_loader_rejects_broken_files_clearly(copy_dir: Path, filename, change, expected) -> None:
    edit(copy_dir / filename, change)
    with pytest.raises(KnowledgeError) as caught:
        load_knowledge(copy_dir)
    message = str(caught.value)
    for part in expected:
        assert part in message, f"{part!r} missing from: {message}"
    assert "Fix" in message


def test_loader_names_a_missing_file(copy_dir: Path) -> None:
    (copy_dir / "questions.yml").unlink()
    with pytest.raises(KnowledgeError, match=r"questions\.yml: file not found"):
        load_knowledge(copy_dir)


def test_error_names_the_line(copy_dir: Path) -> None:
    edit(copy_dir / "self_care.yml", lambda s: s.replace("    source: harvard_foam_roller\n", "", 1))
    lines = (copy_dir / "self_care.yml").read_text(encoding="utf-8").splitlines()
    line = next(i for i, text in enumerate(lines, 1) if text.strip() == "- id: foam_roller")
    with pytest.raises(KnowledgeError, match=rf"self_care\.yml:{line}:"):
        load_knowledge(copy_dir)


    assert set(LEVELS) == {"info", "routine", "urgent", "emergency"}
