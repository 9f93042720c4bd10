"""Context around a matched phrase, NegEx / medspaCy ConText style: negated, uncertain,
long past (historical), talked about rather than reported (hypothetical), or someone else's.

The rules are data (`knowledge/negation.yml`); this module only applies them.
Triggers are found in one left-to-right pass (a word-sequence lookup, plus one regex for
the few triggers written with pattern syntax); overlapping triggers resolve to the longest,
so the pseudo-trigger "not only" beats "not" and "not sure if" is uncertainty, not
negation. Each trigger reaches forward or backward a few words until a termination
("but", "however", ";", a full stop, ...) or a break of its own kind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from bot.safety.data import LineMap, Where, load_yaml
from bot.safety.patterns import PhraseCompiler, PhraseError, Tokens, normalize_word, split_words

NEGATED = "negated"
UNCERTAIN = "uncertain"
HISTORICAL = "historical"
HYPOTHETICAL = "hypothetical"
OTHER_PERSON = "other_person"
PSEUDO = "pseudo"
TERMINATE = "terminate"

_MODIFIERS = {"negation": NEGATED, "uncertainty": UNCERTAIN, "historical": HISTORICAL,
              "hypothetical": HYPOTHETICAL, "experiencer": OTHER_PERSON}
_DIRECTIONS = ("forward", "backward")
_TOP_KEYS = {"version", "max_scope", "max_scope_backward", "normalize", "pseudo", "termination", "gap_stops",
             *_MODIFIERS}


@dataclass(frozen=True)
class Trigger:
    category: str          # negated | uncertain | historical | pseudo | terminate | end:<category>
    direction: str         # forward | backward | both | "" for pseudo and terminations
    start: int             # word indices [start, end)
    end: int


class ContextRules:
    """Applies the negation.yml rules to the words around a target phrase."""

    def __init__(self, table: dict[str, tuple[list[int], dict[tuple[str, ...], tuple[str, str]]]],
                 regex: re.Pattern[str] | None, groups: dict[str, tuple[str, str]],
                 replacements: dict[tuple[str, ...], tuple[str, ...]], gap_stops: set[str],
                 max_scope: int, max_scope_backward: int, words: set[str]) -> None:
        self._table = table        # first word -> (lengths longest first, {words: (category, direction)})
        self._regex = regex        # the few triggers that use pattern syntax
        self._groups = groups
        self.replacements = replacements
        self.gap_stops = gap_stops
        self.max_scope = max_scope
        self.max_scope_backward = max_scope_backward
        self.words = words        # every word the rules use; never typo-corrected

    @classmethod
    def load(cls, path: Path) -> "ContextRules":
        data = load_yaml(path)
        where = Where(path.name)
        where.check_keys(data, _TOP_KEYS, path.name)
        for key in ("negation", "uncertainty", "termination"):
            if key not in data:
                raise where.error(1, f"missing section `{key}:`; the screener cannot run without it")

        max_scope = cls._positive_int(where, data, "max_scope", 8)
        max_back = cls._positive_int(where, data, "max_scope_backward", 4)
        replacements = cls._replacements(where, data)

        # (category, direction, phrase, line)
        entries: list[tuple[str, str, str, int]] = []
        for section, category in _MODIFIERS.items():
            if section not in data:
                continue
            block = where.mapping(data[section], data.lines[section], f"`{section}`")
            where.check_keys(block, {*_DIRECTIONS, "terminate"}, f"`{section}`")
            if not any(d in block for d in _DIRECTIONS):
                raise where.error(data.lines[section], f"`{section}` needs `forward:` or `backward:` triggers")
            for direction in _DIRECTIONS:
                if direction in block:
                    for phrase, line in where.strings(block[direction], block.lines[direction],
                                                      f"`{section}.{direction}`"):
                        entries.append((category, direction, phrase, line))
            if "terminate" in block:
                # Clause breaks that stop only this kind of trigger.
                for phrase, line in where.strings(block["terminate"], block.lines["terminate"],
                                                  f"`{section}.terminate`"):
                    entries.append((f"end:{category}", "", phrase, line))
        for phrase, line in where.strings(data.get("pseudo"), data.lines.get("pseudo", 1),
                                          "`pseudo`", allow_empty=True):
            entries.append((PSEUDO, "", phrase, line))
        for phrase, line in where.strings(data["termination"], data.lines["termination"], "`termination`"):
            entries.append((TERMINATE, "", phrase, line))

        seen: dict[tuple[str, str, str], int] = {}
        for category, direction, phrase, line in entries:
            key = (category, direction, phrase.lower())
            if key in seen:
                raise where.error(line, f"trigger `{phrase}` is listed twice (also line {seen[key]}); "
                                        "remove one")
            seen[key] = line

        # A gap (`...`) in a red-flag phrase must never step over a negation or a
        # clause break, or "legs are not weak" would read as "legs ... weak".
        gap_stops: set[str] = set()
        for category, direction, phrase, _ in entries:
            if category == NEGATED and direction == "forward" and len(phrase.split()) == 1 \
                    and not any(c in phrase for c in "[]|*@#!"):
                gap_stops.update(normalize_word(phrase, replacements))
        for phrase, _ in where.strings(data.get("gap_stops"), data.lines.get("gap_stops", 1),
                                       "`gap_stops`", allow_empty=True):
            gap_stops.update(normalize_word(phrase, replacements))

        # A phrase listed both forward and backward ("last year") reaches both ways.
        # A clause break listed for several kinds ("i" ends negation and other-person) is
        # one trigger that ends all of them: "end:negated|other_person".
        merged: dict[tuple[str, str], list] = {}
        for category, direction, phrase, line in entries:
            text = " ".join(phrase.lower().split())
            if category.startswith("end:"):
                done = next((k for k in merged if k[0].startswith("end:") and k[1] == text), None)
                if done:
                    merged[(f"{done[0]}|{category[4:]}", text)] = merged.pop(done)
                    continue
            key = (category, text)
            if key in merged:
                merged[key][0] = "both"
            else:
                merged[key] = [direction, phrase, line]

        # Plain word sequences go in a lookup table (fast); the rest in one regex.
        compiler = PhraseCompiler(replacements=replacements)
        table: dict[str, list[tuple[tuple[str, ...], str, str]]] = {}
        pieces: list[tuple[int, str, str]] = []
        groups: dict[str, tuple[str, str]] = {}
        for index, ((category, _), (direction, phrase, line)) in enumerate(merged.items()):
            try:
                source = compiler.compile(phrase)
            except PhraseError as exc:
                raise where.error(line, f"trigger `{phrase}`: {exc}") from None
            items = phrase.lower().split()
            if all((len(i) == 1 and i != "#") or not any(c in i for c in "[]|*@#!") for i in items) \
                    and not any(i.startswith("...") for i in items):
                seq = tuple(w for i in items for w in normalize_word(i, replacements))
                table.setdefault(seq[0], []).append((seq, category, direction))
            else:
                name = f"t{index}"
                groups[name] = (category, direction)
                pieces.append((len(items), name, source))
        # first word -> (lengths, longest first; {word sequence: (category, direction)}).
        # The first entry of a sequence wins: data order breaks ties.
        lookup: dict[str, tuple[list[int], dict[tuple[str, ...], tuple[str, str]]]] = {}
        for first, entries_for_word in table.items():
            by_seq: dict[tuple[str, ...], tuple[str, str]] = {}
            for seq, category, direction in entries_for_word:
                by_seq.setdefault(seq, (category, direction))
            lookup[first] = (sorted({len(seq) for seq in by_seq}, reverse=True), by_seq)
        pieces.sort(key=lambda p: -p[0])
        regex = (re.compile("(?<= )(?:" + "|".join(f"(?P<{n}>{s})" for _, n, s in pieces) + ")")
                 if pieces else None)
        words = set(compiler.literals)
        for source, target in replacements.items():
            words.update(source)
            words.update(target)
        return cls(lookup, regex, groups, replacements, gap_stops, max_scope, max_back, words)

    @staticmethod
    def _positive_int(where: Where, data: LineMap, key: str, default: int) -> int:
        value = data.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 30:
            raise where.error(data.lines.get(key, 1), f"`{key}` must be a whole number of words from 1 to 30")
        return value

    @staticmethod
    def _replacements(where: Where, data: LineMap) -> dict[tuple[str, ...], tuple[str, ...]]:
        block = data.get("normalize")
        if block is None:
            return {}
        block = where.mapping(block, data.lines["normalize"], "`normalize`")
        out: dict[tuple[str, ...], tuple[str, ...]] = {}
        for source, target in block.items():
            line = block.lines[source]
            if not isinstance(source, str) or not isinstance(target, str):
                raise where.error(line, "`normalize` entries are `written form: standard form`, both text")
            src = tuple(w for w, _, _ in split_words(source))
            dst = tuple(w for w, _, _ in split_words(target))
            if not src or not dst:
                raise where.error(line, f"`{source}: {target}` has an empty side; write words on both sides")
            out[src] = dst
        for src, dst in out.items():
            if dst in out and out[dst] != dst:
                raise where.error(block.lines.get(" ".join(src), block.line),
                                  f"`{' '.join(src)}` maps to `{' '.join(dst)}`, which is itself "
                                  "rewritten; map it straight to the final form")
        return out

    def triggers(self, tokens: Tokens) -> list[Trigger]:
        """All triggers in the message, left to right; overlaps go to the longest."""
        from_regex: dict[int, tuple[int, str, str]] = {}
        if self._regex is not None:
            for match in self._regex.finditer(tokens.string):
                start, end = tokens.word_range(match.start(), match.end())
                from_regex[start] = (end, *self._groups[match.lastgroup])
        words = tokens.words
        found: list[Trigger] = []
        i, n = 0, len(words)
        while i < n:
            best: tuple[int, str, str] | None = None
            entry = self._table.get(words[i])
            if entry is not None:
                lengths, by_seq = entry
                for size in lengths:          # longest first
                    hit = by_seq.get(tuple(words[i:i + size])) if i + size <= n else None
                    if hit is not None:
                        best = (i + size, *hit)
                        break
            other = from_regex.get(i)
            if other and (best is None or other[0] > best[0]):
                best = other
            if best is None:
                i += 1
                continue
            found.append(Trigger(best[1], best[2], i, best[0]))
            i = best[0]
        return found

    def modifiers(self, triggers: list[Trigger], start: int, end: int) -> set[str]:
        """Which modifiers (negated, uncertain, historical, hypothetical, other_person) reach [start, end)."""
        result: set[str] = set()
        for trig in triggers:
            category = trig.category
            if category not in _MODIFIERS.values():
                continue
            if trig.start >= start and trig.end <= end:
                continue  # part of the phrase itself ("no reason to live")
            if trig.direction in ("forward", "both") and trig.start < start:
                # Someone else's sign stops being theirs at any "I/me/my", even inside the phrase.
                right = end if category == OTHER_PERSON else start
                if start - trig.end <= self.max_scope and not self._broken(triggers, category, trig.end, right):
                    result.add(category)
            elif trig.direction in ("backward", "both") and trig.end > end:
                if trig.start - end <= self.max_scope_backward and not self._broken(triggers, category, end, trig.start):
                    result.add(category)
        return result

    @staticmethod
    def _broken(triggers: list[Trigger], category: str, left: int, right: int) -> bool:
        """Is there a clause break between word positions left and right?"""
        for trig in triggers:
            if trig.category == TERMINATE or (trig.category.startswith("end:")
                                              and category in trig.category[4:].split("|")):
                if left <= trig.start < right:
                    return True
        return False
