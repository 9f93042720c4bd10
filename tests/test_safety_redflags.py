"""Red-flag screening, parametrized over the reviewed data itself (medspaCy style).

Every phrase of red_flags.yml is turned into a sample sentence and checked alone, buried in a
long message, negated, hedged and misspelt; every example sentence stored with a flag is checked
with its expected status; and a corpus of ordinary back-pain talk must raise nothing.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bot.safety import SafetyDataError
from bot.safety.redflags import Finding, RedFlagScreener, ScreenResult

ROOT = Path(__file__).resolve().parent.parent
KNOWLEDGE = ROOT / "knowledge"
SCREENER = RedFlagScreener.load(KNOWLEDGE)
DATA = yaml.safe_load((KNOWLEDGE / "red_flags.yml").read_text(encoding="utf-8"))
VOCAB = DATA["vocab"]

# CONTENT.md "Danger signs": id -> level, and the symptom_form slot a "yes" answers.
CONTENT_TABLE = {
    "bladder_bowel": ("emergency", "screen_bladder_bowel"),
    "saddle_numbness": ("emergency", "screen_saddle_numbness"),
    "leg_weakness": ("emergency", "screen_leg"),
    "major_trauma": ("emergency", "screen_injury"),
    "chest_pain": ("emergency", None),
    "tearing_pain": ("emergency", None),
    "self_harm": ("emergency", None),
    "fever": ("urgent", "screen_fever"),
    "cancer_history": ("urgent", "screen_cancer"),
    "weight_loss": ("urgent", "screen_weight_loss"),
    "night_pain": ("urgent", "screen_night_pain"),
    "leg_numbness": ("urgent", "screen_leg_numbness"),
    "minor_trauma_risk": ("urgent", None),
    "infection_risk": ("urgent", None),
    "severe_pain": ("urgent", None),
    "deformity": ("urgent", None),
}

# Ordinary back-pain talk: raises no flag. Also the filler a danger sign gets buried in.
FILLER = (
    "So I have been having this annoying ache in my lower back for a couple of weeks now. "
    "It started after I spent a whole weekend painting the spare room and moving some boxes around. "
    "It is mostly a dull ache on the left side just above my belt, and it gets stiff when I sit at my "
    "desk for too long. Stretching in the morning helps a little and a hot shower loosens it up. "
    "My partner thinks I should just rest more but I keep going to work because we are busy. "
    "I tried a heat pack last night and that was nice for a while. "
    "I also wonder whether my office chair is the problem because it is quite old. "
    "Anyway I wanted to ask you about it before I book anything. "
)
assert 120 <= len(FILLER.split()) <= 170


def _first(item: str) -> str:
    return item.split("|")[0]


def realize(phrase: str) -> str:
    """A plain sentence that a phrase must match: first choice everywhere, optional parts left out."""
    words = []
    for item in phrase.split():
        if item.startswith(("...", "!", "[")) and item != "!":
            continue
        alt = _first(item)
        if alt.startswith("@"):
            words.append(realize(VOCAB[alt[1:]][0]))
        elif alt == "#":
            words.append("5")
        elif alt.startswith("#"):
            words.append(alt[1:].split("-")[0])
        elif alt.endswith("*"):
            words.append(alt[:-1])
        else:
            words.append(alt.replace("_", " "))
    return " ".join(words)


def _phrases(kind: str) -> list[tuple[str, str]]:
    return [(flag, p) for flag, spec in DATA["flags"].items() for p in spec.get(kind) or []]


ORDINARY = _phrases("phrases")
DANGER = _phrases("negation_is_danger")
ALL_PHRASES = ORDINARY + DANGER
# A pronoun starts a new statement, so "no I ..." is not a negation of what follows.
_STARTS_CLAUSE = ("i ", "i'm ", "i've ", "i'd ", "it's ", "my ", "me ")


def _id(case: tuple[str, str]) -> str:
    return f"{case[0]}:{case[1][:40]}"


def _statuses(result: ScreenResult, flag: str) -> set[str]:
    return {f.status for f in result.findings if f.flag == flag}


# --- the data matches CONTENT.md and domain.yml -------------------------------------------

def test_every_content_flag_is_defined_with_its_level() -> None:
    assert set(SCREENER.flags) == set(CONTENT_TABLE)
    for flag, (level, _) in CONTENT_TABLE.items():
        assert SCREENER.level_of(flag) == level


@pytest.mark.parametrize("flag", sorted(CONTENT_TABLE))
def test_screen_slot_mapping(flag: str) -> None:
    slot = CONTENT_TABLE[flag][1]
    assert SCREENER.screen_slot(flag) == slot
    if slot:
        assert SCREENER.flag_for_slot(slot) == flag


def test_screen_slots_exist_in_domain() -> None:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    for flag in SCREENER.flags:
        slot = SCREENER.screen_slot(flag)
        if slot:
            assert slot in domain["slots"], f"{flag}: slot {slot} missing from domain.yml"
            assert slot in domain["forms"]["symptom_form"]["required_slots"]
    assert SCREENER.flag_for_slot("body_part") is None


def test_unknown_flag_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="fever"):
        SCREENER.level_of("no_such_flag")


@pytest.mark.parametrize("flag", sorted(CONTENT_TABLE))
def test_every_flag_has_description_and_examples(flag: str) -> None:
    assert len(SCREENER.description(flag)) > 10
    examples = SCREENER.examples(flag)
    assert len(examples.get("present", [])) >= 1
    assert examples.get("negated") or examples.get("absent")


# --- every phrase of the data -------------------------------------------------------------

@pytest.mark.parametrize("case", ALL_PHRASES, ids=_id)
def test_phrase_is_found_alone_and_buried_in_a_long_message(case: tuple[str, str]) -> None:
    flag, phrase = case
    text = realize(phrase)
    result = SCREENER.screen(text)
    assert flag in result.present, f"{text!r} -> {result.findings}"
    cut = FILLER.index(". ", len(FILLER) // 2) + 2
    long_text = f"{FILLER[:cut]}Oh and {text}. {FILLER[cut:]}"
    assert len(long_text.split()) >= 130
    assert flag in SCREENER.screen(long_text).present, text


@pytest.mark.parametrize("case", [c for c in ORDINARY if not realize(c[1]).startswith(_STARTS_CLAUSE)], ids=_id)
def test_phrase_negated(case: tuple[str, str]) -> None:
    flag, phrase = case
    for template in ("no {}", "denies {}", "there is no {}", "{} is gone"):
        text = template.format(realize(phrase))
        result = SCREENER.screen(text)
        assert flag not in result.present, f"{text!r} -> {result.findings}"
        assert flag in result.negated, text


@pytest.mark.parametrize("case", ALL_PHRASES, ids=_id)
def test_phrase_uncertain_counts_as_present(case: tuple[str, str]) -> None:
    flag, phrase = case
    for template in ("maybe {}", "I'm not sure if {}", "possibly {}", "I think {}"):
        text = template.format(realize(phrase))
        result = SCREENER.screen(text)
        assert flag in result.present, f"{text!r} -> {result.findings}"
        assert "uncertain" in _statuses(result, flag), text


@pytest.mark.parametrize("case", DANGER, ids=_id)
def test_negation_is_the_danger(case: tuple[str, str]) -> None:
    flag, phrase = case
    # ("never {}" is left out: "I would never kill myself" is a reviewed explicit denial.)
    for template in ("{}", "no, {}", "not really, {}", "I don't know why but {}", "{}, no fever",
                     "denies {}", "there is no {}"):
        text = template.format(realize(phrase))
        assert flag in SCREENER.screen(text).present, text


def _typo(word: str) -> str:
    return word[:-2] + word[-1]        # drop the second-to-last letter: "numbness" -> "numbnes"


def _typo_cases() -> list[tuple[str, str, str]]:
    cases = []
    for flag, phrase in ALL_PHRASES:
        text = realize(phrase)
        words = [w for w in re.findall(r"[a-z]+", text) if len(w) >= 6]
        if not words:
            continue
        word = max(words, key=len)
        typo_text = re.sub(rf"\b{word}\b", _typo(word), text, count=1)
        if word in SCREENER._normalize(typo_text).words:   # only typos that are not real words
            cases.append((flag, phrase, typo_text))
    return cases


TYPO_CASES = _typo_cases()


def test_enough_typo_cases() -> None:
    assert len(TYPO_CASES) >= 40


@pytest.mark.parametrize("case", TYPO_CASES, ids=lambda c: f"{c[0]}:{c[2][:40]}")
def test_one_typo_is_tolerated(case: tuple[str, str, str]) -> None:
    flag, _, text = case
    assert flag in SCREENER.screen(text).present, text


# --- the reviewed example sentences -------------------------------------------------------

def _examples(kind: str) -> list[tuple[str, str]]:
    return [(flag, text) for flag in SCREENER.flags for text in SCREENER.examples(flag).get(kind, [])]


@pytest.mark.parametrize("case", _examples("present"), ids=_id)
def test_example_present(case: tuple[str, str]) -> None:
    flag, text = case
    result = SCREENER.screen(text)
    assert flag in result.present and "present" in _statuses(result, flag), result.findings


@pytest.mark.parametrize("case", _examples("uncertain"), ids=_id)
def test_example_uncertain(case: tuple[str, str]) -> None:
    flag, text = case
    result = SCREENER.screen(text)
    assert flag in result.present and "uncertain" in _statuses(result, flag), result.findings


@pytest.mark.parametrize("case", _examples("negated") + _examples("absent"), ids=_id)
def test_example_negated(case: tuple[str, str]) -> None:
    flag, text = case
    result = SCREENER.screen(text)
    assert flag in result.negated and flag not in result.present, result.findings


@pytest.mark.parametrize("case", _examples("not_found"), ids=_id)
def test_example_not_found(case: tuple[str, str]) -> None:
    flag, text = case
    assert flag not in SCREENER.screen(text).present


# --- cases from the brief and the design --------------------------------------------------

def test_two_negated_signs() -> None:
    result = SCREENER.screen("no fever, no numbness")
    assert result.present == []
    assert set(result.negated) == {"fever", "leg_numbness"}
    assert result.level is None


def test_uncertain_leg_weakness_is_present() -> None:
    result = SCREENER.screen("I'm not sure if my legs are weaker")
    assert result.present == ["leg_weakness"]
    assert _statuses(result, "leg_weakness") == {"uncertain"}
    assert result.level == "emergency"


def test_cannot_control_bladder() -> None:
    result = SCREENER.screen("I can't control my bladder")
    assert result.present == ["bladder_bowel"]
    assert result.level == "emergency"


def test_termination_splits_negation() -> None:
    result = SCREENER.screen("no fever but I can't feel my legs")
    assert "fever" in result.negated and "fever" not in result.present
    assert "leg_weakness" in result.present
    assert result.level == "emergency"


def test_still_control_bladder_is_a_no() -> None:
    result = SCREENER.screen("I can still control my bladder")
    assert result.present == [] and result.negated == ["bladder_bowel"]
    assert SCREENER.slot_values(result) == {"screen_bladder_bowel": False}


def test_rambling_message_with_one_buried_sign() -> None:
    text = FILLER + "Oh also I peed myself yesterday which was weird. " + FILLER
    result = SCREENER.screen(text)
    assert result.present == ["bladder_bowel"]
    finding = next(f for f in result.findings if f.flag == "bladder_bowel")
    assert text[finding.start:finding.end] == finding.text == "peed myself"


@pytest.mark.parametrize("text", [
    "I want to end it all", "sometimes I think I should kill myself", "there's no reason to live",
    "everyone would be better off dead... I mean me", "kms", "honestly kms", "I feel suicidal",
    "I've thought about taking my own life", "I don't want to be here anymore",
    "I want to END IT ALL", "I want to kil myself",
])
def test_self_harm_is_a_crisis(text: str) -> None:
    result = SCREENER.screen(text)
    assert result.crisis and "self_harm" in result.present and result.level == "emergency"


FALSE_ALARMS = [
    "I lifted a box and my lower back hurts",
    "pain is 5/10",
    "my back is killing me",
    "this back pain is killing me lol",
    "I'm dying to know what's wrong",
    "it's been a pain for weeks",
    "my legs are fine",
    "I fell asleep on the couch",
    "I had a fever last year",
    "I had a fever years ago, nothing since",
    "it's a pain in the neck",
    "I've had it for 10 days",
    "my back aches after sitting at my desk all day",
    "I pulled something at the gym",
    "my back seized up this morning",
    "there's a knot under my shoulder blade",
    "I'm getting a bit hunched",
    "it hurts when I bend forward",
    "I feel stiff when I get out of bed",
    "I slept on it funny",
    "the pain is about a 4 out of 10",
    "it's a 6/10 today",
    "I walked 5 km yesterday",
    "my back is sore after gardening",
    "I had a wee bit of a twinge",
    "I need to lose some weight",
    "I go to the chemist for heat patches",
    "I did a chest stretch and it felt good",
    "hot and cold packs help a little",
    "I'm on my feet all day at work",
    "can you tell me about the paraspinal muscles?",
    "what stretches can I do for my lower back?",
    "my mum had cancer years ago",
    "I fell behind at work because of my back",
    "it's been on and off for years",
    "I'd kill for a massage",
    "I can't stand sitting for long",
    "the pain doesn't go away",
    "nothing serious, just sore",
    "I'm 45 and work in an office",
]


@pytest.mark.parametrize("text", FALSE_ALARMS)
def test_ordinary_back_talk_raises_nothing(text: str) -> None:
    result = SCREENER.screen(text)
    assert result.present == [], result.findings
    assert result.level is None and not result.crisis


def test_filler_raises_nothing() -> None:
    assert SCREENER.screen(FILLER).present == []


@pytest.mark.parametrize("text,expected", [
    ("I think I might have a fever", "uncertain"),
    ("I don't think I have a fever", "uncertain"),     # hedged "no" stays a maybe
    ("I don't have a fever", "negated"),
    ("no fever at all", "negated"),
    ("fever is gone now", "negated"),
    ("not only a fever but chills too", "present"),    # pseudo-negation
    ("I have a fever", "present"),
])
def test_fever_statuses(text: str, expected: str) -> None:
    assert _statuses(SCREENER.screen(text), "fever") == {expected}


@pytest.mark.parametrize("text,expected", [
    ("why do you ask about numbness?", []),                      # talking about a sign
    ("why the question about fever", []),
    ("my friend lost control of his bladder after a fall", []),  # someone else's sign
    ("she lost control of her bladder", []),
    ("my wife says I can't feel my legs", ["leg_weakness"]),     # ... unless it is mine
    ("he kicked me in the back", ["major_trauma"]),
    ("my mum had cancer and I had cancer too", ["cancer_history"]),
    ("I had a car accident 10 years ago and my back has hurt ever since", []),   # long past
    ("I fell off a ladder years ago, and I was in a car crash yesterday", ["major_trauma"]),
    ("If I lose control of my bladder what should I do?", ["bladder_bowel"]),    # "if" stays
])
def test_context_who_and_when(text: str, expected: list[str]) -> None:
    present = SCREENER.screen(text).present
    assert all(flag in present for flag in expected) and (present == [] if not expected else True), present


@pytest.mark.parametrize("text", [
    "I'm 82 and slipped on the ice", "I have osteoporosis and tripped over the cat",
    "been on prednisone for 10 years, bent down and felt a snap",
])
def test_minor_trauma_needs_both_parts(text: str) -> None:
    assert "minor_trauma_risk" in SCREENER.screen(text).present


@pytest.mark.parametrize("text", ["I slipped on the ice", "I have osteoporosis", "I'm 82"])
def test_minor_trauma_one_part_is_not_enough(text: str) -> None:
    assert "minor_trauma_risk" not in SCREENER.screen(text).present


@pytest.mark.parametrize("text", ["10/10", "9 out of 10", "unbearable", "worst pain of my life",
                                  "can't move at all", "it's 11/10", "the pain is a 9"])
def test_severe_pain(text: str) -> None:
    assert "severe_pain" in SCREENER.screen(text).present


@pytest.mark.parametrize("text", ["I wee'd myself", "can't hold my pee", "can't hold my wee",
                                  "numb bum", "my butt is numb", "went to A&E after a car crash",
                                  "bladdar problems", "numbnes in my leg", "peed myself",
                                  "I cannnot walk", "I wet myseelf", "I'm unabble to pee",
                                  "I'd be bettter off dead", "I fell off a laddder"])
def test_lay_words_slang_and_regional_terms(text: str) -> None:
    assert SCREENER.screen(text).present


@pytest.mark.parametrize("text", [
    "I fell off a ladder",                 # ladder is not a typo of bladder (that one is trauma)
    "I never had back pain before",        # never / fever
    "my daughter is a dancer",             # dancer / cancer
    "I play chess in the evenings",        # chess / chest
    "as set out herein",                   # herein / heroin
    "I ate chilis for dinner",             # chilis / chills
    "my team is unbeatable",               # unbeatable / unbearable
    "they dumbed it down for me",          # dumbed / numbed
    "I had a decent night",                # decent / recent
    "I sat down formally",                 # formally / normally
])
def test_real_words_are_not_corrected_into_danger_words(text: str) -> None:
    result = SCREENER.screen(text)
    assert [f for f in result.present if f != "major_trauma"] == [], result.findings


def test_loading_twice_shares_one_screener() -> None:
    assert RedFlagScreener.load(KNOWLEDGE) is SCREENER


# --- ScreenResult and Finding -------------------------------------------------------------

@pytest.mark.parametrize("flag", sorted(CONTENT_TABLE))
def test_finding_spans_point_into_the_text(flag: str) -> None:
    texts = [t for kind in SCREENER.examples(flag).values() for t in kind]
    texts += [realize(p) for f, p in ALL_PHRASES if f == flag]
    for text in texts + [FILLER + t for t in texts[:3]]:
        for finding in SCREENER.screen(text).findings:
            assert isinstance(finding, Finding)
            assert text[finding.start:finding.end] == finding.text
            assert finding.status in ("present", "negated", "uncertain")
            assert finding.level == SCREENER.level_of(finding.flag)


def test_result_summaries() -> None:
    result = SCREENER.screen("no fever. I have chest pain and I'm running a temperature, and chest pain again")
    assert result.present == ["chest_pain", "fever"]
    assert result.negated == []
    assert result.level == "emergency"
    assert not result.crisis
    assert result.present.count("chest_pain") == 1


def test_slot_values_from_free_text() -> None:
    result = SCREENER.screen("no fever, never had cancer, but my leg gave way")
    assert SCREENER.slot_values(result) == {"screen_fever": False, "screen_cancer": False, "screen_leg": True}


@pytest.mark.parametrize("text", ["", "   ", "?!", "12345", "\u2019\u2019"])
def test_empty_and_odd_input(text: str) -> None:
    result = SCREENER.screen(text)
    assert result.findings == [] and result.present == [] and result.level is None


def test_curly_apostrophes_and_capitals() -> None:
    assert SCREENER.screen("I CAN\u2019T CONTROL MY BLADDER").present == ["bladder_bowel"]


def test_load_errors_are_value_errors() -> None:
    assert issubclass(SafetyDataError, ValueError)
    with pytest.raises(SafetyDataError, match="negation.yml: file not found"):
        RedFlagScreener.load(ROOT / "tests")
