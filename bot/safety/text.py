"""The safety layer's text path: spaCy tokens and lookup lemmas, one-typo correction towards the
rule vocabulary, and the sentence and clause each token belongs to."""

from __future__ import annotations

import functools
import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import spacy
from spacy.language import Language
from spacy.tokens import Doc

from bot.nlu import components  # noqa: F401 - registers backline_normalizer (the NLU's own corrector)

MAX_SCREEN_CHARS = 100_000       # bounded work: the channels refuse far shorter messages anyway
SENTENCE_BREAKS = frozenset({".", "!", "?", ";", "\n", "...", "…", "!!", "??", "?!"})
CLAUSE_BREAKS = frozenset({"but", "although", "though", "however", "whereas", "except", "apart"})
ANSWER_WORDS = frozenset({"no", "none", "nope", "nah", "never", "nil", "yes", "yeah", "yep", "n/a", "negative"})
# Verb negation, as tokens or plain words: "won't take my weight" (wo + n't), "dont", "cannot".
VERB_NEGATORS = frozenset({"not", "n't", "nt", "never", "cannot", "unable", "cant", "wont", "dont", "doesnt",
                           "didnt", "isnt", "arent", "wasnt", "havent", "hasnt", "couldnt", "wouldnt"})
FRAGMENT_TOKENS = 4     # a sentence this short ("Numb." "In my chest.") continues its neighbour
MAX_SENTENCE_TOKENS = 80   # a run-on sentence is cut here, so the work per sentence stays bounded
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'", "`": "'",
                              "\u201c": '"', "\u201d": '"'})


@dataclass
class Text:
    """One message, tokenised: the Doc plus the sentence and clause number of every token."""

    doc: Doc
    sentence: list[int]
    clause: list[int]
    sentence_words: dict[int, int]       # sentence -> number of word tokens in it
    string: str = ""                     # the text the tokens index into (Doc.text rebuilds it)

    def fragment(self, sentence: int) -> bool:
        return self.sentence_words.get(sentence, 0) <= FRAGMENT_TOKENS

    def __len__(self) -> int:
        return len(self.doc)

    def lemma(self, i: int) -> str:
        return self.doc[i].lemma_

    def char_span(self, start: int, end: int) -> tuple[int, int]:
        return self.doc[start].idx, self.doc[end - 1].idx + len(self.doc[end - 1].text)


def _lower(text: str) -> str:
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)   # keep offsets aligned


class TextPath:
    """spacy.blank("en") + lookup lemmatizer + the typo normaliser trained on the rule words."""

    def __init__(self, words: Iterable[str]) -> None:
        nlp = spacy.blank("en")
        nlp.add_pipe("lemmatizer", config={"mode": "lookup"})
        nlp.get_pipe("lemmatizer").initialize(lookups=components.lemma_lookups())
        normalizer = nlp.add_pipe("backline_normalizer", config={"max_edits": 1, "min_length": 5})
        # Every word the rules use is a correction target and is never itself "corrected".
        normalizer.set_targets(words)
        self.nlp: Language = nlp
        self._table = nlp.get_pipe("lemmatizer").lookups.get_table("lemma_lookup")

    @property
    def lexicon(self) -> set[str]:
        """English words the lookup lemmatizer knows (what `numb*` prefixes expand to)."""
        return english_lexicon()

    def lemma_of(self, word: str) -> str:
        return "be" if word == "'s" else self._table.get(word, word)

    def make_doc(self, text: str) -> Doc:
        return self.nlp.make_doc(text)

    def __call__(self, text: str) -> Text:
        clean = _lower((text or "")[:MAX_SCREEN_CHARS]).translate(_APOSTROPHES)
        doc = self.nlp(clean)
        for token in doc:
            if token.lower_ == "'s" and token.lemma_ != "be":
                token.lemma_ = "be"      # "bladder's fine", "it's gone": is, for the context rules
        sentence, clause = _number_sentences(doc)
        _join_short_answers(doc, sentence, clause)
        order = {n: i for i, n in enumerate(dict.fromkeys(sentence))}
        sentence = [order[n] for n in sentence]
        return Text(doc, sentence, clause, _sentence_words(doc, sentence), clean)


def _number_sentences(doc: Doc) -> tuple[list[int], list[int]]:
    """The sentence and clause number of every token: a break token ends its sentence, a
    clause word ("but") starts a clause, and a run-on sentence is cut at MAX_SENTENCE_TOKENS."""
    sentence, clause = [], []
    s = c = length = 0
    for token in doc:
        word = token.text
        if word in CLAUSE_BREAKS:
            c += 1
        sentence.append(s)
        clause.append(c)
        length += 1
        if word in SENTENCE_BREAKS or (token.is_space and "\n" in word) or length >= MAX_SENTENCE_TOKENS:
            s += 1
            c += 1
            length = 0
    return sentence, clause


def _sentence_words(doc: Doc, sentence: list[int]) -> dict[int, int]:
    """Sentence -> how many word tokens (not punctuation or space) it has."""
    words: dict[int, int] = {}
    for token, number in zip(doc, sentence):
        if not (token.is_punct or token.is_space):
            words[number] = words.get(number, 0) + 1
    return words


@functools.lru_cache(maxsize=1)
def english_lexicon() -> frozenset[str]:
    """The words of spacy-lookups-data's English lemma table (forms and lemmas) and spaCy's
    English stop words: read from the installed files, never downloaded."""
    from spacy.lang.en.stop_words import STOP_WORDS

    words: set[str] = set(STOP_WORDS)
    try:
        from spacy_lookups_data import en

        path = Path(str(en["lemma_lookup"]))
        opener = gzip.open if not path.is_file() else open
        source = path if path.is_file() else path.with_suffix(".json.gz")
        with opener(source, "rt", encoding="utf-8") as fh:
            table = json.load(fh)
        words.update(w for w in table if w.replace("'", "").isalpha())
        words.update(v for v in table.values() if isinstance(v, str) and v.replace("'", "").isalpha())
    except (ImportError, OSError, ValueError):
        pass                       # prefixes then match only the rule words themselves
    return frozenset(words)


def _join_short_answers(doc: Doc, sentence: list[int], clause: list[int]) -> None:
    """"Cancer? None." is one statement: an answer-word sentence joins the one before it."""
    starts: dict[int, int] = {}
    for i, number in enumerate(sentence):
        starts.setdefault(number, i)
    for number in sorted(starts)[1:]:
        members = [i for i in range(starts[number], len(sentence)) if sentence[i] == number]
        words = [doc[i].lower_ for i in members if not (doc[i].is_punct or doc[i].is_space)]
        if words and len(words) <= 2 and all(w in ANSWER_WORDS for w in words):
            previous = sentence[starts[number] - 1]
            previous_clause = clause[starts[number] - 1]
            for i in members:
                sentence[i] = previous
                clause[i] = previous_clause
