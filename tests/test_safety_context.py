"""Every rule of context.yml, applied to one danger word, does what its section says.

Parametrized over the data itself (medspaCy style): add a trigger and it is tested. The target
is "fever" (sign `fever`); terminations are checked with a second mention after them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bot.safety.context import BIDIRECTIONAL, FORWARD, NEGATED, ConText, Trigger
from bot.safety.screen import NEGATED_SIGN, PRESENT, SUSPECTED, Screener
from bot.safety.terms import parse_term

KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"
SCREENER = Screener.load(KNOWLEDGE)
RULES = yaml.safe_load((KNOWLEDGE / "context.yml").read_text(encoding="utf-8"))


def realize(term: str) -> str:
    """A term as a user would write it: the first choice of each item, gaps and options left out."""
    words = []
    for item in parse_term(term):
        if item.gap or item.optional:
            continue
        word = item.alternatives[0].lstrip("=")
        if word.endswith("*"):
            word = word[:-1] + ("5" if word[-2].isdigit() else "ed")
        words.append(word)
    return " ".join(words)


def terms(section: str, direction: str) -> list[str]:
    block = RULES.get(section) or {}
    return [realize(t) for t in (block.get(direction) if isinstance(block, dict) else block) or []]


def fever(text: str) -> set[str]:
    return {f.status for f in SCREENER.screen(text).findings if f.sign == "fever"}


def possible(text: str) -> set[bool]:
    return {f.possible for f in SCREENER.screen(text).findings if f.sign == "fever"}


@pytest.mark.parametrize("trigger", terms("negated", "forward") + terms("negated", "bidirectional"))
def test_forward_negation(trigger: str) -> None:
    assert fever(f"{trigger} fever") == {NEGATED_SIGN}, trigger


@pytest.mark.parametrize("trigger", terms("negated", "backward") + terms("negated", "bidirectional"))
def test_backward_negation(trigger: str) -> None:
    assert fever(f"fever {trigger}") == {NEGATED_SIGN}, trigger


@pytest.mark.parametrize("trigger", terms("possible", "forward"))
def test_forward_doubt_still_counts(trigger: str) -> None:
    text = f"{trigger} fever"
    assert fever(text) == {PRESENT} and possible(text) == {True}, text


@pytest.mark.parametrize("trigger", terms("possible", "backward"))
def test_backward_doubt_still_counts(trigger: str) -> None:
    text = f"fever {trigger}"
    assert fever(text) == {PRESENT} and possible(text) == {True}, text


@pytest.mark.parametrize("trigger", terms("historical", "forward"))
def test_forward_history_is_no_sign_now(trigger: str) -> None:
    assert fever(f"{trigger} i had a fever") == set(), trigger


@pytest.mark.parametrize("trigger", terms("historical", "backward"))
def test_backward_history_is_no_sign_now(trigger: str) -> None:
    assert fever(f"i had a fever {trigger}") == set(), trigger


@pytest.mark.parametrize("trigger", terms("hypothetical", "forward"))
def test_hypothetical_is_asked_about(trigger: str) -> None:
    assert fever(f"{trigger} fever") == {SUSPECTED}, trigger


@pytest.mark.parametrize("trigger", terms("hypothetical", "backward"))
def test_hypothetical_after_is_asked_about(trigger: str) -> None:
    assert fever(f"fever {trigger}") == {SUSPECTED}, trigger


@pytest.mark.parametrize("trigger", terms("other_person", "forward"))
def test_someone_elses_fever_is_theirs(trigger: str) -> None:
    assert fever(f"{trigger} has a fever") == set(), trigger


@pytest.mark.parametrize("trigger", [realize(t) for t in RULES["terminate"]])
def test_termination_ends_negation(trigger: str) -> None:
    assert fever(f"no numbness {trigger} fever") == {PRESENT}, trigger


@pytest.mark.parametrize("trigger", terms("negated", "terminate"))
def test_negation_only_terminations(trigger: str) -> None:
    assert fever(f"no numbness {trigger} fever") == {PRESENT}, trigger


@pytest.mark.parametrize("trigger", terms("other_person", "terminate"))
def test_first_person_ends_someone_elses_reach(trigger: str) -> None:
    assert fever(f"my friend said {trigger} fever") == {PRESENT}, trigger


@pytest.mark.parametrize("pseudo", [realize(t) for t in RULES["pseudo"]])
def test_pseudo_triggers_negate_nothing(pseudo: str) -> None:
    text = SCREENER.text(f"{pseudo} fever")
    assert not any(t.category == NEGATED for t in SCREENER.context.triggers(text)), pseudo


# -- the engine's semantics, on hand-made triggers -------------------------------------------------

def _engine(text: str, triggers: list[Trigger]) -> tuple[ConText, object, list[Trigger]]:
    parsed = SCREENER.text(text)
    context = ConText(SCREENER.context._matcher, {}, {c: 3 for c in ("negated", "possible", "historical",
                                                                         "hypothetical", "other_person")})
    return context, parsed, triggers


def test_scope_stops_at_max_scope_and_at_the_sentence_end() -> None:
    context, text, triggers = _engine("no a b c fever. fever", [Trigger(NEGATED, FORWARD, 0, 1)])
    assert context.modifiers(text, triggers, 2, 3) == {NEGATED}       # "b": 1 token away
    assert context.modifiers(text, triggers, 4, 5) == set()           # "fever": 3 tokens away, max 3
    assert context.modifiers(text, triggers, 6, 7) == set()           # next sentence


def test_a_trigger_inside_the_sign_is_part_of_it() -> None:
    context, text, triggers = _engine("no feeling there", [Trigger(NEGATED, FORWARD, 0, 1)])
    assert context.modifiers(text, triggers, 1, 3) == {NEGATED}
    assert context.modifiers(text, triggers, 1, 3, own=((0, 2),)) == set()


def test_bidirectional_reaches_both_ways() -> None:
    context, text, triggers = _engine("fever x fever", [Trigger(NEGATED, BIDIRECTIONAL, 1, 2)])
    assert context.modifiers(text, triggers, 0, 1) == {NEGATED} == context.modifiers(text, triggers, 2, 3)


def test_longest_trigger_wins_so_not_sure_is_doubt() -> None:
    found = {t.category for t in SCREENER.context.triggers(SCREENER.text("not sure"))}
    assert found == {"possible"}


def test_every_section_has_rules() -> None:
    assert all(terms(section, "forward") or terms(section, "backward") for section in
               ("negated", "possible", "historical", "hypothetical", "other_person"))
    assert re.search(r"\bbut\b", " ".join(realize(t) for t in RULES["terminate"]))
