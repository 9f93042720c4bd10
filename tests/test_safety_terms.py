"""The term language of the safety rules, compiled to spaCy matchers (bot/safety/terms.py)."""

from __future__ import annotations

import pytest

from bot.safety.terms import TermError, TermMatcher, parse_term, term_words
from bot.safety.text import TextPath

TEXT = TextPath(["numbness", "bladder", "cannot"])


def matches(term: str, text: str, part: str = "all") -> list[tuple[int, int]]:
    matcher = TermMatcher(TEXT.nlp, TEXT.lemma_of, TEXT.lexicon)
    matcher.add("x", term, part)
    return [(s, e) for _, s, e in matcher(TEXT(text).doc)]


@pytest.mark.parametrize("term,text,found", [
    ("squeeze", "it's squeezing", True),                 # lemmas: squeezing -> squeeze
    ("squeeze", "a squeezed feeling", True),
    ("pee|wee", "I can't wee", True),
    ("[my|the] bladder", "the bladder", True),
    ("[my|the] bladder", "bladder", True),
    ("tingl*", "it's tingly", True),                     # prefix, expanded from the lexicon
    ("suicid*", "suicidal thoughts", True),              # prefix, word missing from the lexicon
    ("lose ... control", "I lost all the control", True),
    ("lose ... control", "I lost all of my bowel control", False),   # gap of 3 at most
    ("lose ...4 control", "I lost all of my bowel control", True),
    ("lose ... control", "lost it, control", False),     # never across punctuation
    ("lose ... control", "lost no control", False),      # ... or a negation
    ("=left leg", "my left leg", True),
    ("=left leg", "he leaves leg", False),               # exact form, not the lemma
    ("can't|cannot feel", "I cannot feel it", True),     # each written form is its own choice
    ("can't|cannot feel", "I cannnot feel it", True),    # a typo fixed into one token
    ("can't feel", "I cannot feel it", False),
    ("be =gone", "it is gone", True),
])
def test_terms_match(term: str, text: str, found: bool) -> None:
    assert bool(matches(term, text)) is found, (term, text)


def test_head_and_tail_of_a_gapped_term() -> None:
    assert matches("why would ... your", "why would numbness in your groin", "head") == [(0, 2)]
    assert matches("why would ... your", "why would numbness in your groin", "tail") == [(4, 5)]
    assert matches("why would ... your", "why would numbness in your groin") == [(0, 5)]


@pytest.mark.parametrize("term,message", [
    ("", "empty"), ("fever ...", "cannot start or end"), ("... fever", "cannot start or end"),
    ("[fever]", "no word that must be present"), ("fe*ver", "prefix"), ("pee||wee", "empty alternative"),
    ("pee|pee", "listed twice"), ("[my bladder", "brackets"),
])
def test_bad_terms_say_what_to_change(term: str, message: str) -> None:
    with pytest.raises(TermError, match=message):
        parse_term(term)


def test_term_words_are_the_typo_targets() -> None:
    assert term_words("[my|the] numb* pins and needles") == ["my", "the", "numb", "pins", "and", "needles"]
