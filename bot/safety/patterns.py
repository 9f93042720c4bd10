"""Text normalisation and the small phrase language the safety data is written in.

A phrase is words separated by spaces, matched on whole words after normalisation:

    word          that word                       pee
    a|b|c         any one of these                pee|wee|urine
    a_b           several words inside one choice came_back|returned
    [a|b]         optional: one of these, or none  [my|the] bladder
    numb*         a word starting with "numb"      numb*  (numb, numbness, numbed)
    @leg          any phrase of vocab list `leg`  @leg gave way
    ...  ...N     up to 3 (or N) other words, never a negation, "but" or punctuation
    #9-10         a whole number in that range    #9-10 out of 10
    #             any number                      # kms
    !asleep|ill   the next word is none of these (uses up no word)  fell !asleep

Everything is compiled once into regular expressions over a normalised string
" word word word " so one message is scanned with a handful of precompiled regexes.
"""

from __future__ import annotations

import bisect
import functools
import gzip
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

# Words are letters (with inner apostrophes: can't, i'm) or numbers; other marks are
# one-character tokens except hyphens and quotes, which only separate words.
TOKEN_RE = re.compile(r"[a-z]+(?:'[a-z]+)*|\d+(?:\.\d+)?|[^\sa-z0-9'\-\"_`]")
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "\u00b4": "'", "`": "'"})
_ITEM_SYNTAX = re.compile(r"[\[\]|*@#!]|^\.\.\.")
MAX_NUMBER_RANGE = 500


class PhraseError(ValueError):
    """A phrase does not follow the phrase language; the message says what to change."""


@dataclass(frozen=True)
class Tokens:
    """A normalised message: words, their spans in the original text, and the scan string."""

    words: list[str]
    spans: list[tuple[int, int]]
    string: str            # " w0 w1 ... wn " - every word has a space on both sides
    offsets: list[int]     # where each word starts in `string`

    def prefixes(self, longest: int | None = None) -> set[str]:
        """Every word and every prefix of a word, plus "#" if there is a number: what the
        anchor check of a phrase list looks up. `longest` (the longest anchor) caps the
        prefix length, so a long word costs O(longest), not O(len(word)^2)."""
        out: set[str] = set()
        for word in self.words:
            if word[0].isdigit():
                out.add("#")
            for k in range(1, min(len(word), longest or len(word)) + 1):
                out.add(word[:k])
        return out

    def word_range(self, start: int, end: int) -> tuple[int, int]:
        """Word indices [first, last+1) covered by the match string[start:end]."""
        first = bisect.bisect_right(self.offsets, start) - 1
        last = bisect.bisect_left(self.offsets, end)
        return max(first, 0), max(last, first + 1)

    def char_span(self, first: int, last: int) -> tuple[int, int]:
        """Span in the original text of words [first, last)."""
        return self.spans[first][0], self.spans[last - 1][1]


def _lower(text: str) -> str:
    lowered = text.lower()
    if len(lowered) == len(text):
        return lowered
    # A few characters lower-case to two; keep offsets aligned with the original text.
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)


def split_words(text: str) -> list[tuple[str, int, int]]:
    """Raw words of a text with their character spans (lower-cased)."""
    low = _lower(text).translate(_APOSTROPHES)
    return [(m.group(), m.start(), m.end()) for m in TOKEN_RE.finditer(low)]


class Normalizer:
    """Turns raw text into `Tokens`: spelling variants unified, one-letter typos fixed."""

    def __init__(self, replacements: dict[tuple[str, ...], tuple[str, ...]], typos: dict[str, str]):
        self._by_first: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {}
        for source, target in sorted(replacements.items(), key=lambda kv: -len(kv[0])):
            self._by_first.setdefault(source[0], []).append((source, target))
        self._typos = typos

    def __call__(self, text: str) -> Tokens:
        raw = split_words(text)
        typos = self._typos
        fixed = [typos.get(w, w) for w, _, _ in raw]     # typos first: "cannnot" -> "cannot" -> "can't"
        words: list[str] = []
        spans: list[tuple[int, int]] = []
        i, n = 0, len(raw)
        while i < n:
            word = fixed[i]
            for source, target in self._by_first.get(word, ()):
                size = len(source)
                if i + size <= n and all(fixed[i + k] == source[k] for k in range(1, size)):
                    span = (raw[i][1], raw[i + size - 1][2])
                    for out in target:
                        words.append(out)
                        spans.append(span)
                    i += size
                    break
            else:
                words.append(word)
                spans.append((raw[i][1], raw[i][2]))
                i += 1
        offsets = []
        pos = 1
        for word in words:
            offsets.append(pos)
            pos += len(word) + 1
        return Tokens(words, spans, " " + " ".join(words) + " ", offsets)


def normalize_word(word: str, replacements: dict[tuple[str, ...], tuple[str, ...]]) -> list[str]:
    """How the normaliser would spell a phrase's literal word (may split it: '10/10')."""
    parts = [w for w, _, _ in split_words(word)]
    out: list[str] = []
    for part in parts:
        out.extend(replacements.get((part,), (part,)))
    return out


@dataclass(frozen=True)
class Anchors:
    """Words (or word prefixes) one of which is in any match: lets a scan skip regexes that cannot match."""

    words: frozenset[str] = frozenset()
    stems: tuple[str, ...] = ()
    number: bool = False

    def __or__(self, other: "Anchors") -> "Anchors":
        return Anchors(self.words | other.words, tuple(sorted(set(self.stems) | set(other.stems))),
                       self.number or other.number)

    @functools.cached_property
    def keys(self) -> frozenset[str]:
        return self.words | frozenset(self.stems)

    def may_match(self, prefixes: "set[str]") -> bool:
        """`prefixes`: every word of the message and every prefix of it (see `Tokens.prefixes`);
        "#" stands for "the message has a number"."""
        return not self.keys.isdisjoint(prefixes) or (self.number and "#" in prefixes)


NO_ANCHORS = Anchors()

# Words in almost every message about a back: poor anchors for skipping a regex.
_COMMON = frozenset("""i i'm i've i'd my me it it's the a an and to of in on at is are was be been
back pain pains hurt hurts hurting ache aches aching sore no not have had has got feel feels felt like
so but with for when after can't don't this that very really just up down out get go going leg legs
lower upper bit some all now""".split())


def _anchor_cost(anchors: Anchors) -> tuple[int, int]:
    common = len(anchors.words & _COMMON) + (5 if anchors.number else 0)
    return common, len(anchors.words) + 3 * len(anchors.stems)


class PhraseCompiler:
    """Compiles phrases into regex sources over the `Tokens.string` form."""

    def __init__(
        self,
        vocab: dict[str, str] | None = None,
        replacements: dict[tuple[str, ...], tuple[str, ...]] | None = None,
        gap_stops: Iterable[str] = (),
    ) -> None:
        self.vocab: dict[str, tuple[str, Anchors]] = {}   # name -> (regex source, anchors)
        self.replacements = replacements or {}
        stops = sorted({re.escape(s) for s in gap_stops}, key=len, reverse=True)
        stop_alt = "|".join(stops + [r"[^ ]*n't", r"[.,;:!?]"])
        self._gap_word = f"(?!(?:{stop_alt}) )[^ ]+ "
        self.literals: set[str] = set()          # every literal word seen (for typo tolerance)

    def compile(self, phrase: str) -> str:
        return self.compile_anchored(phrase)[0]

    def add_vocab(self, name: str, phrases: list[str]) -> None:
        compiled = [self.compile_anchored(p) for p in phrases]
        anchors = NO_ANCHORS
        for _, a in compiled:
            anchors = anchors | a
        self.vocab[name] = ("(?:" + "|".join(src for src, _ in compiled) + ")", anchors)

    def compile_anchored(self, phrase: str) -> tuple[str, Anchors]:
        items = phrase.split()
        if not items:
            raise PhraseError("the phrase is empty")
        joined = f" {' '.join(items)} "
        for source, target in self.replacements.items():
            if len(source) > 1 and f" {' '.join(source)} " in joined:
                raise PhraseError(f"write `{' '.join(target)}` instead of `{' '.join(source)}` "
                                  "(negation.yml `normalize` rewrites it before matching)")
        parts = [self._item(item) for item in items]
        if all(kind in ("gap", "not", "optional") for kind, _, _ in parts):
            raise PhraseError("the phrase has no word that must be present")
        if parts[0][0] == "gap" or parts[-1][0] == "gap":
            raise PhraseError("a phrase cannot start or end with `...`; put words on both sides")
        # Any match contains a word of every required item; index the phrase by the rarest.
        required = [item_anchors for kind, _, item_anchors in parts if kind == "word"]
        anchors = min(required, key=_anchor_cost)
        return "".join(src for _, src, _ in parts), anchors

    def _item(self, item: str) -> tuple[str, str, Anchors]:
        if len(item) == 1 and not item.isalnum() and item not in "#@[]*|":
            # a lone mark: "!", "?", ";", "/"
            return "word", re.escape(item) + " ", Anchors(frozenset([item]))
        gap = re.fullmatch(r"\.\.\.(\d)?", item)
        if gap:
            return "gap", f"(?:{self._gap_word}){{0,{int(gap.group(1) or 3)}}}", NO_ANCHORS
        if item.startswith("!"):
            return "not", f"(?!{self._alternatives(item[1:], item)[0]})", NO_ANCHORS
        if item.startswith("["):
            if not item.endswith("]") or len(item) < 3:
                raise PhraseError(f"`{item}`: an optional part is written [a|b] with both brackets")
            src, anchors = self._alternatives(item[1:-1], item)
            return "optional", f"{src}?", anchors
        if "[" in item or "]" in item:
            raise PhraseError(f"`{item}`: brackets must wrap the whole item, like [my|the]")
        return ("word", *self._alternatives(item, item))

    def _alternatives(self, body: str, item: str) -> tuple[str, Anchors]:
        alts = body.split("|")
        if any(not a for a in alts):
            raise PhraseError(f"`{item}`: empty alternative; remove the extra `|`")
        compiled = [self._alternative(a, item) for a in alts]
        anchors = NO_ANCHORS
        for _, a in compiled:
            anchors = anchors | a
        return "(?:" + "|".join(src for src, _ in compiled) + ")", anchors

    def _alternative(self, alt: str, item: str) -> tuple[str, Anchors]:
        if alt.startswith("@"):
            name = alt[1:]
            if name not in self.vocab:
                known = ", ".join(sorted(self.vocab)) or "none defined"
                raise PhraseError(f"`{item}`: unknown vocab list `@{name}` (known: {known})")
            return self.vocab[name]
        if alt == "#":
            return r"\d+(?:\.\d+)? ", Anchors(number=True)
        if alt.startswith("#"):
            rng = re.fullmatch(r"#(\d+)-(\d+)", alt)
            if not rng or int(rng.group(1)) > int(rng.group(2)):
                raise PhraseError(f"`{item}`: a number range is written #LOW-HIGH, like #9-10")
            low, high = int(rng.group(1)), int(rng.group(2))
            if high - low > MAX_NUMBER_RANGE:
                raise PhraseError(f"`{item}`: number range wider than {MAX_NUMBER_RANGE}; narrow it")
            return "(?:" + "|".join(str(v) for v in range(high, low - 1, -1)) + ") ", Anchors(number=True)
        if alt.endswith("*"):
            stem = alt[:-1]
            if not re.fullmatch(r"[a-z][a-z']*", stem or "-"):
                raise PhraseError(f"`{item}`: a prefix is letters followed by *, like numb*")
            return re.escape(stem) + "[^ ]* ", Anchors(stems=(stem,))
        if _ITEM_SYNTAX.search(alt):
            raise PhraseError(f"`{item}`: cannot read `{alt}`; see the phrase language at the top of the file")
        words = [w for part in alt.split("_") for w in normalize_word(part, self.replacements)]
        if not words:
            raise PhraseError(f"`{item}`: `{alt}` has no letters or digits to match")
        self.literals.update(w for w in words if w.isalpha())
        return "".join(re.escape(w) + " " for w in words), Anchors(frozenset(words[:1]))


def join_alternatives(sources: Iterable[str]) -> str:
    return "(?:" + "|".join(sources) + ")"


# --- typo tolerance -------------------------------------------------------------------

_ALPHABET = "abcdefghijklmnopqrstuvwxyz"


def one_edit_variants(word: str) -> set[str]:
    """Every string one deletion, insertion, substitution or swap away from `word`."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    swaps = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    subs = {a + c + b[1:] for a, b in splits if b for c in _ALPHABET}
    inserts = {a + c + b for a, b in splits for c in _ALPHABET}
    return (deletes | swaps | subs | inserts) - {word}


@functools.lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Real English words, so a real word is never 'corrected' into a danger word.

    Read from spacy-lookups-data's lemma table and spaCy's English stop words (declared
    dependencies; no spaCy pipeline is loaded or imported). Empty when those are missing:
    the data's `typo_protected` list then is the only guard.
    """
    words: set[str] = set()
    path = _package_file("spacy_lookups_data", "data/en_lemma_lookup.json.gz")
    if path is not None:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            table = json.load(fh)
        words.update(table)
        words.update(table.values())
    # The lemma table lacks function words ("here", "either"); spaCy's stop-word list has them.
    # Read as text: importing spaCy here would cost a second for one word list.
    path = _package_file("spacy", "lang/en/stop_words.py")
    if path is not None:
        source = path.read_text(encoding="utf-8")
        block = re.search(r'STOP_WORDS = set\(\s*"""(.*?)"""', source, re.S)
        if block:
            words.update(block.group(1).split())
    return frozenset(words)


def _package_file(package: str, relative: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / relative
    return path if path.is_file() else None


def typo_map(keywords: Iterable[str], protected: Iterable[str], min_length: int = 5) -> dict[str, str]:
    """Map each one-edit misspelling of a keyword (5+ letters) back to the keyword (cached)."""
    return dict(_typo_map(frozenset(keywords), frozenset(protected), min_length))


@functools.lru_cache(maxsize=8)
def _typo_map(keywords: frozenset[str], protected: frozenset[str], min_length: int) -> dict[str, str]:
    """Map each one-edit misspelling of a keyword (5+ letters) back to the keyword.

    Misspellings that are real words ("ladder" for "bladder", "never" for "fever") are
    left alone; so are the protected words and the keywords themselves.
    """
    keys = sorted({k for k in keywords if len(k) >= min_length and k.isalpha()})
    blocked = set(keys) | set(protected)
    words = english_words()
    mapping: dict[str, str] = {}
    for key in keys:
        for variant in one_edit_variants(key):
            if len(variant) < 4 or variant in blocked or variant in mapping or variant in words:
                continue
            mapping[variant] = key
    return mapping
