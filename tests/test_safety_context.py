"""Every rule of negation.yml, applied to one danger word, does what its section says.

Parametrized over the data itself (medspaCy style): add a trigger and it is tested.
The target is "fever" (flag `fever`); a second sign, "numbness", checks terminations.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from bot.safety.redflags import RedFlagScreener

KNOWLEDGE = Path(__file__).resolve().parent.parent / "knowledge"
SCREENER = RedFlagScreener.load(KNOWLEDGE)
RULES = yaml.safe_load((KNOWLEDGE / "negation.yml").read_text(encoding="utf-8"))


def realize(trigger: str) -> str:
    """A trigger as a user would write it: number ranges become a number in range."""
    return re.sub(r"#(\d+)-\d+", r"\1", trigger.replace("_", " "))


def triggers(section: str, direction: str) -> list[str]:
    return [realize(t) for t in (RULES.get(section) or {}).get(direction) or []]


def statuses(text: str) -> set[str]:
    return {f.status for f in SCREENER.screen(text).findings if f.flag == "fever"}


@pytest.mark.parametrize("trigger", triggers("negation", "forward"))
def test_forward_negation(trigger: str) -> None:
    text = f"{trigger} fever"
    assert statuses(text) == {"negated"}, text


@pytest.mark.parametrize("trigger", triggers("negation", "backward"))
def test_backward_negation(trigger: str) -> None:
    text = f"the fever {trigger}"
    assert statuses(text) == {"negated"}, text


@pytest.mark.parametrize("trigger", triggers("uncertainty", "forward"))
def test_forward_uncertainty_is_still_present(trigger: str) -> None:
    text = f"{trigger} fever"
    assert statuses(text) == {"uncertain"}, text
    assert "fever" in SCREENER.screen(text).present


@pytest.mark.parametrize("trigger", triggers("uncertainty", "backward"))
def test_backward_uncertainty_is_still_present(trigger: str) -> None:
    text = f"a fever {trigger}"
    assert statuses(text) == {"uncertain"}, text


@pytest.mark.parametrize("trigger", triggers("historical", "forward"))
def test_forward_history_drops_the_mention(trigger: str) -> None:
    assert statuses(f"{trigger} I had a fever") == set()


@pytest.mark.parametrize("trigger", triggers("historical", "backward"))
def test_backward_history_drops_the_mention(trigger: str) -> None:
    assert statuses(f"I had a fever {trigger}") == set()


@pytest.mark.parametrize("word", [realize(t) for t in RULES["historical"].get("terminate", [])])
def test_history_ends_at_its_breaks(word: str) -> None:
    assert statuses(f"I had a fever years ago and {word} a fever") == {"present"}


@pytest.mark.parametrize("trigger", triggers("hypothetical", "forward"))
def test_talking_about_a_sign_drops_it(trigger: str) -> None:
    assert SCREENER.screen(f"{trigger} fever").present == []


@pytest.mark.parametrize("trigger", triggers("experiencer", "forward"))
def test_someone_elses_sign_is_dropped(trigger: str) -> None:
    assert statuses(f"{trigger} has a fever") == set()
    assert statuses(f"{trigger} says I have a fever") == {"present"}


@pytest.mark.parametrize("trigger", [realize(t) for t in RULES["pseudo"]])
def test_pseudo_triggers_do_not_negate(trigger: str) -> None:
    text = f"{trigger} fever"
    assert "negated" not in statuses(text), text
    assert "fever" in SCREENER.screen(text).present, text


@pytest.mark.parametrize("term", [realize(t) for t in RULES["termination"]])
def test_termination_stops_negation(term: str) -> None:
    text = f"no numbness {term} fever"
    result = SCREENER.screen(text)
    assert "fever" in result.present, text
    assert "leg_numbness" in result.negated, text


@pytest.mark.parametrize("term", [realize(t) for t in RULES["negation"].get("terminate", [])])
def test_negation_only_breaks(term: str) -> None:
    assert "fever" in SCREENER.screen(f"no numbness {term} fever").present
    # ... but they do not stop uncertainty: "not sure if I have a fever" stays a maybe.
    assert statuses(f"not sure if {term} fever") == {"uncertain"}


@pytest.mark.parametrize("written,standard", list(RULES["normalize"].items()))
def test_normalize_table(written: str, standard: str) -> None:
    assert SCREENER._normalize(written).words == SCREENER._normalize(standard).words


def test_scope_is_limited() -> None:
    scope = RULES["max_scope"]
    near = "no " + "really " * (scope - 1) + "fever"
    far = "no " + "really " * (scope + 1) + "fever"
    assert statuses(near) == {"negated"}
    assert statuses(far) == {"present"}
