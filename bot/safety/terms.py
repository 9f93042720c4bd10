"""The one rule dialect of the safety data: short terms, compiled to spaCy matchers.

A term is words separated by spaces, matched token by token on lemmas (so "squeeze" also
matches "squeezing" and "squeezed"):

    word        that word, by lemma                 pee       (pee, peed, peeing)
    a|b|c       any one of these                    pee|wee|urine
    [a|b]       optional: one of these or nothing   [my|the] bladder
    numb*       a word starting with "numb"         tingl*    (tingle, tingly, tingling)
    ...  ...N   up to 3 (or N) other words, never   lose ... control
                a negation, "but" or punctuation
    =word       that exact word, not its lemma      =left     (never "leave")

Plain terms (no `*` and no `...`) are expanded and go to a PhraseMatcher on lemmas, the rest to
a token Matcher: both are spaCy's own, prepared once when the rules load.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass
from typing import Callable, Iterable

from spacy.language import Language
from spacy.matcher import Matcher, PhraseMatcher
from spacy.tokens import Doc

MAX_EXPANSIONS = 512      # a stretch with more word sequences than this goes to the token Matcher
GAP_STOPS = ("not", "no", "never", "but", "without", "nor")
_ITEM = re.compile(r"^(?:\[(?P<opt>[^\[\]]+)\]|(?P<gap>\.\.\.(?P<n>\d)?)|(?P<alts>[^\[\]]+))$")
_WORD = re.compile(r"^=?[a-z0-9][a-z0-9'&/.\-]*\*?$|^[&/,:;?!()+\-]$")


class TermError(ValueError):
    """A term does not follow the term language; the message says what to change."""


@dataclass(frozen=True)
class Item:
    alternatives: tuple[str, ...]    # words as written ("numb*", "=left", "pee")
    optional: bool = False
    gap: int = 0                     # > 0: up to this many other words


def parse_term(term: str) -> list[Item]:
    """Split a term into items, checking the syntax (a TermError says what is wrong)."""
    words = term.strip().lower().split()
    if not words:
        raise TermError("the term is empty")
    items = [_parse_item(word) for word in words]
    if all(i.gap or i.optional for i in items):
        raise TermError("the term has no word that must be present")
    if items[0].gap or items[-1].gap:
        raise TermError("a term cannot start or end with `...`; put words on both sides")
    return items


def _parse_item(word: str) -> Item:
    """One space-separated item of a term: a gap, or alternatives (optional in brackets)."""
    m = _ITEM.match(word)
    if not m:
        raise TermError(f"`{word}`: brackets must wrap a whole item, like [my|the]")
    if m.group("gap"):
        return Item((), gap=int(m.group("n") or 3))
    body = m.group("opt") or m.group("alts")
    alts = tuple(body.split("|"))
    _check_alternatives(word, alts)
    return Item(alts, optional=bool(m.group("opt")))


def _check_alternatives(word: str, alts: tuple[str, ...]) -> None:
    if any(not a for a in alts):
        raise TermError(f"`{word}`: empty alternative; remove the extra `|`")
    for alt in alts:
        if not _WORD.match(alt) or alt.count("*") > 1 or ("*" in alt and alt.startswith("=")):
            raise TermError(f"`{alt}` in `{word}`: write plain words, word* for a prefix or =word "
                            "for an exact form")
    dupes = {a for a in alts if alts.count(a) > 1}
    if dupes:
        raise TermError(f"`{word}`: `{sorted(dupes)[0]}` is listed twice; remove one")


def term_words(term: str) -> list[str]:
    """The plain words of a term (typo-correction targets)."""
    out = []
    for item in parse_term(term):
        out += [a.lstrip("=").rstrip("*") for a in item.alternatives]
    return [w for w in out if w.isalpha()]


@dataclass(frozen=True)
class _Chain:
    """A term with gaps: segments matched by the PhraseMatchers, joined here."""

    label: str
    segments: tuple[str, ...]        # segment keys, in order
    gaps: tuple[int, ...]            # the gap after each segment but the last
    part: str                        # all | head | tail: which words the match reports


class TermMatcher:
    """Finds every term of many labelled lists in a Doc, as (label, start, end) token spans.

    Every gap-free stretch of a term goes to one of spaCy's PhraseMatchers (on lemmas, or on
    exact forms for `=word` stretches); terms with `...` are joined from their stretches here.
    Prefixes (`tingl*`) are expanded against the lemma lexicon once, at load. What cannot be
    expanded within MAX_EXPANSIONS goes to spaCy's token Matcher.
    """

    def __init__(self, nlp: Language, lemma_of: Callable[[str], str], lexicon: Iterable[str] = ()) -> None:
        self._nlp = nlp
        self._lemma_of = lemma_of
        self._lexicon = sorted(set(lexicon))
        self._phrases = PhraseMatcher(nlp.vocab, attr="LEMMA")
        self._lower = PhraseMatcher(nlp.vocab, attr="LOWER")
        self._tokens = Matcher(nlp.vocab)
        self._plain: dict[str, list[Doc]] = {}
        self._exact: dict[str, list[Doc]] = {}
        self._patterns: dict[str, list[list[dict]]] = {}
        self._chains: list[_Chain] = []
        self._direct: dict[str, list[str]] = {}   # segment key -> labels of the gap-free terms it is
        self._keep: dict[str, tuple[str, int, int]] = {}   # token-Matcher key -> (label, head, tail)
        self._segments: dict[tuple, str] = {}   # (exact, sequences) -> segment key, shared by terms
        self._built = False

    def add(self, label: str, term: str, part: str = "all") -> None:
        """Add one term under `label`; raises TermError for bad syntax. `part`: which words of
        a term with a gap the match reports: all, its head (before the first `...`) or its tail
        (after the last): a trigger "why would ... your" sits at "why would", not over the gap."""
        items = parse_term(term)
        segments: list[list[Item]] = [[]]
        gaps: list[int] = []
        for item in items:
            if item.gap:
                segments.append([])
                gaps.append(item.gap)
            else:
                segments[-1].append(item)
        expanded = [self._expand(segment) for segment in segments]
        if any(e is None for e in expanded):
            self._add_token_pattern(label, items, part)
            return
        keys = [self._segment(seqs) for seqs in expanded]
        if any(a.endswith("*") for item in items for a in item.alternatives):
            # words the lexicon lacks ("suicidal") still start with the prefix: the token
            # Matcher keeps the regex form of the term as well
            self._add_token_pattern(label, items, part)
        if len(keys) == 1:
            self._direct.setdefault(keys[0], []).append(label)
        else:
            self._chains.append(_Chain(label, tuple(keys), tuple(gaps), part))
        self._built = False

    def _segment(self, sequences: list[tuple[str, ...]]) -> str:
        """The key of a gap-free stretch (its word sequences registered once)."""
        exact = any(w.startswith("=") for seq in sequences for w in seq)
        signature = (exact, tuple(sorted(set(sequences))))
        if signature in self._segments:
            return self._segments[signature]
        key = f"s{len(self._segments)}"
        self._segments[signature] = key
        for seq in set(sequences):
            if exact:
                self._exact.setdefault(key, []).append(self._nlp.make_doc(" ".join(w.lstrip("=") for w in seq)))
            else:
                doc = Doc(self._nlp.vocab, words=list(seq))
                for token in doc:
                    token.lemma_ = self._lemma_of(token.text)
                self._plain.setdefault(key, []).append(doc)
        return key

    def _expand(self, items: list[Item]) -> list[tuple[str, ...]] | None:
        """Every word sequence a gap-free stretch stands for; None when too many, or when it mixes
        exact forms and lemmas (the token Matcher handles those)."""
        choices = self._word_choices(items)
        if choices is None:
            return None
        count = 1
        for c in choices:
            count *= len(c)
        if count > MAX_EXPANSIONS:
            return None
        out = []
        for combo in itertools.product(*choices):
            out += self._sequences(combo)
        exact = {w.startswith("=") for seq in out for w in seq}
        return None if len(exact) > 1 else out

    def _word_choices(self, items: list[Item]) -> list[list[str]] | None:
        """Per item, the words it may be (prefixes looked up in the lexicon; "" when it is
        optional); None when a prefix starts no word of the lexicon."""
        choices = []
        for item in items:
            words: list[str] = []
            for alt in item.alternatives:
                words += self._prefixed(alt[:-1]) if alt.endswith("*") else [alt]
            if not words:
                return None
            choices.append(words + ([""] if item.optional else []))
        return choices

    def _sequences(self, combo: tuple[str, ...]) -> list[tuple[str, ...]]:
        """The token sequences of one choice of words: as spaCy splits them, and unsplit."""
        out = []
        words = tuple(w for part in combo if part for w in self._split(part))
        if words:
            out.append(words)
        whole = tuple(part for part in combo if part)    # "cannot" as one token, as a typo fix leaves it
        if whole and whole != words and all(" " not in w for w in whole):
            out.append(whole)
        return out

    def _prefixed(self, stem: str) -> list[str]:
        """Lexicon words starting with `stem` (tingl* -> tingle, tingling, tingly, ...)."""
        i = bisect.bisect_left(self._lexicon, stem)
        out = []
        while i < len(self._lexicon) and self._lexicon[i].startswith(stem):
            out.append(self._lexicon[i])
            i += 1
        return out if len(out) <= MAX_EXPANSIONS else []

    def _add_token_pattern(self, label: str, items: list[Item], part: str) -> None:
        for pattern in self._patterns_for(items):
            gaps = [i for i, spec in enumerate(pattern) if str(spec.get("OP", "")).startswith("{")]
            if part == "all" or not gaps or any("OP" in spec for spec in pattern if spec is not pattern[gaps[0]]
                                                and not str(spec.get("OP", "")).startswith("{")):
                self._patterns.setdefault(label, []).append(pattern)
                continue
            key = f"{label}#{len(self._keep)}"
            head, tail = (gaps[0], 0) if part == "head" else (0, len(pattern) - gaps[-1] - 1)
            self._keep[key] = (label, head, tail)
            self._patterns.setdefault(key, []).append(pattern)
        self._built = False

    def _split(self, word: str) -> list[str]:
        """A written word as spaCy tokenises it ("can't" -> "ca", "n't"; "10/10" stays)."""
        exact = word.startswith("=")
        parts = [t.text for t in self._nlp.make_doc(word.lstrip("="))]
        return ["=" + p for p in parts] if exact else parts

    def _patterns_for(self, items: list[Item]) -> list[list[dict]]:
        """Token-Matcher patterns for a term with prefixes or gaps (one per choice of any
        alternative spaCy splits in two, like can't)."""
        choices = [self._gap_options(item.gap) if item.gap else self._item_options(item) for item in items]
        return [[spec for part in combo for spec in part] for combo in itertools.product(*choices)]

    @staticmethod
    def _gap_options(gap: int) -> list[list[dict]]:
        """Up to `gap` other words, never a negation, "but", "n't" or punctuation."""
        return [[{"IS_PUNCT": False, "LEMMA": {"NOT_IN": list(GAP_STOPS)},
                  "LOWER": {"NOT_IN": ["n't"]}, "OP": f"{{0,{gap}}}"}]]

    def _item_options(self, item: Item) -> list[list[dict]]:
        """The token specs an item may match: one sequence per alternative spaCy splits in two,
        the one-token alternatives together, and nothing when the item is optional."""
        options: list[list[dict]] = []
        prefixes = [a[:-1] for a in item.alternatives if a.endswith("*")]
        singles: list[str] = []
        for word in (a for a in item.alternatives if not a.endswith("*")):
            split = self._split(word)
            if len(split) == 1:
                singles.append(split[0])
            else:
                options.append([self._token(w) for w in split])
        options += self._single_options(prefixes, singles)
        if item.optional:
            options.append([])
        return options

    def _single_options(self, prefixes: list[str], singles: list[str]) -> list[list[dict]]:
        """One-token specs: a regex when there are prefixes, else a lemma list and an exact-form list."""
        if prefixes:
            alternatives = prefixes + [re.escape(w.lstrip("=")) + "$" for w in singles]
            return [[{"LOWER": {"REGEX": "^(?:" + "|".join(alternatives) + ")"}}]]
        exact = [w[1:] for w in singles if w.startswith("=")]
        lemmas = [self._lemma_of(w) for w in singles if not w.startswith("=")]
        options: list[list[dict]] = []
        if lemmas:
            options.append([{"LEMMA": {"IN": lemmas}}])
        if exact:
            options.append([{"LOWER": {"IN": exact}}])
        return options

    def _token(self, word: str) -> dict:
        return {"LOWER": word[1:]} if word.startswith("=") else {"LEMMA": self._lemma_of(word)}

    def _build(self) -> None:
        for key, docs in self._plain.items():
            self._phrases.add(key, docs)
        for key, docs in self._exact.items():
            self._lower.add(key, docs)
        for key, patterns in self._patterns.items():
            self._tokens.add(key, patterns)
        self._plain, self._exact, self._patterns = {}, {}, {}
        self._built = True

    def __call__(self, doc: Doc) -> list[tuple[str, int, int]]:
        if not self._built:
            self._build()
        spans = self._phrase_spans(doc)
        found: set[tuple[str, int, int]] = set()
        for key, where in spans.items():
            for label in self._direct.get(key, ()):
                found.update((label, s, e) for s, e in where)
        if self._chains:
            stops = [t.is_punct or t.lemma_ in GAP_STOPS or t.lower_ == "n't" for t in doc]
            for chain in self._chains:
                found.update(self._join(chain, spans, stops))
        found.update(self._token_matches(doc))
        return self._shortest(found)

    def _phrase_spans(self, doc: Doc) -> dict[str, list[tuple[int, int]]]:
        """Segment key -> its (start, end) spans, from both PhraseMatchers."""
        strings = self._nlp.vocab.strings
        spans: dict[str, list[tuple[int, int]]] = {}
        for matcher in (self._phrases, self._lower):
            for k, s, e in matcher(doc):
                spans.setdefault(strings[k], []).append((s, e))
        return spans

    def _token_matches(self, doc: Doc) -> list[tuple[str, int, int]]:
        """The token Matcher's (label, start, end); a head/tail key reports only those words."""
        if not len(self._tokens):
            return []
        strings = self._nlp.vocab.strings
        out = []
        for k, s, e in self._tokens(doc):
            key = strings[k]
            if key in self._keep:
                label, head, tail = self._keep[key]
                s, e = (s, s + head) if head else (e - tail, e)
                key = label
            out.append((key, s, e))
        return out

    @staticmethod
    def _shortest(found: set[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
        """Several lengths can match from one start; keep the shortest per start, in text order."""
        best: dict[tuple[str, int], int] = {}
        for label, start, end in found:
            if (label, start) not in best or end < best[(label, start)]:
                best[(label, start)] = end
        return sorted(((label, s, e) for (label, s), e in best.items()), key=lambda m: (m[1], m[2], m[0]))

    @staticmethod
    def _join(chain: _Chain, spans: dict[str, list[tuple[int, int]]], stops: list[bool]) -> list[tuple[str, int, int]]:
        """Matches of a gapped term: each stretch within its gap of the one before, never
        across a negation, "but" or punctuation."""
        firsts = spans.get(chain.segments[0])
        if not firsts:
            return []
        out = []
        starts = {key: sorted(spans.get(key, ())) for key in chain.segments[1:]}
        for s0, e0 in firsts:
            ends = [(s0, e0)]
            for key, gap in zip(chain.segments[1:], chain.gaps):
                nxt = next(((s, e) for s, e in starts[key] if ends[-1][1] <= s <= ends[-1][1] + gap
                            and not any(stops[ends[-1][1]:s])), None)
                if nxt is None:
                    break
                ends.append(nxt)
            else:
                if chain.part == "head":
                    out.append((chain.label, s0, e0))
                elif chain.part == "tail":
                    out.append((chain.label, ends[-1][0], ends[-1][1]))
                else:
                    out.append((chain.label, s0, ends[-1][1]))
        return out


def check_unique(terms: Iterable[tuple[str, int]]) -> tuple[str, int, int] | None:
    """The first term listed twice (same words once normalised), with both lines; None if none."""
    seen: dict[str, int] = {}
    for term, line in terms:
        key = " ".join(term.lower().split())
        if key in seen:
            return term, line, seen[key]
        seen[key] = line
    return None
