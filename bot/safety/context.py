"""ConText (medspaCy's semantics, rules as data): which mentions are negated, possible, historical,
hypothetical or about someone else.

A trigger term ("no", "last year", "my mum") modifies the mentions inside its scope: FORWARD
reaches the words after it, BACKWARD the words before it, BIDIRECTIONAL both, each up to
`max_scope` tokens and never past the end of the sentence or a TERMINATE term (generic, or one
that ends only some categories, like "I" ending "my mum ..."). PSEUDO terms look like triggers
but are not ("no change", "not only"): where terms overlap, the longest wins. A trigger that
overlaps the mention itself does not modify it ("no feeling" in "no feeling down there").

medspaCy itself pins spaCy < 3.8 on Python 3.11 and brings QuickUMLS, so the same semantics
are kept here in ~100 lines (knowledge/context.yml holds the rules).
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.safety.terms import TermMatcher
from bot.safety.text import Text

NEGATED = "negated"
POSSIBLE = "possible"
HISTORICAL = "historical"
HYPOTHETICAL = "hypothetical"
OTHER = "other_person"
CATEGORIES = (NEGATED, POSSIBLE, HISTORICAL, HYPOTHETICAL, OTHER)
FORWARD, BACKWARD, BIDIRECTIONAL = "forward", "backward", "bidirectional"
DIRECTIONS = (FORWARD, BACKWARD, BIDIRECTIONAL)
PSEUDO, TERMINATE = "pseudo", "terminate"


@dataclass(frozen=True)
class Trigger:
    category: str          # one of CATEGORIES, PSEUDO or TERMINATE
    direction: str         # FORWARD | BACKWARD | BIDIRECTIONAL ("" for PSEUDO / TERMINATE)
    start: int
    end: int
    ends: frozenset[str] = frozenset()   # TERMINATE: the categories it ends (empty = all)


class ConText:
    """Finds triggers in a message and answers which categories reach a token span."""

    def __init__(self, matcher: TermMatcher, labels: dict[str, tuple[str, str, frozenset[str]]],
                 max_scope: dict[str, int]) -> None:
        self._matcher = matcher
        self._labels = labels          # matcher label -> (category, direction, categories ended)
        self._max_scope = max_scope    # category -> tokens

    def triggers(self, text: Text) -> list[Trigger]:
        """Every trigger, left to right; of overlapping terms the longest (then the first) wins."""
        found = [(s, e, self._labels[label]) for label, s, e in self._matcher(text.doc)]
        # A term listed both forward and backward ("last year") reaches both ways.
        directions: dict[tuple[int, int, str], set[str]] = {}
        for s, e, (category, direction, _) in found:
            directions.setdefault((s, e, category), set()).add(direction)
        found = [(s, e, (c, BIDIRECTIONAL if len(directions[(s, e, c)]) > 1 else d, ends))
                 for s, e, (c, d, ends) in found]
        found.sort(key=lambda f: (-(f[1] - f[0]), f[0]))
        taken = [False] * len(text)
        out: list[Trigger] = []
        for start, end, (category, direction, ends) in found:
            if category == TERMINATE:      # terminations never compete: each ends its own categories
                out.append(Trigger(category, direction, start, end, ends))
                continue
            if any(taken[start:end]):
                continue
            for i in range(start, end):
                taken[i] = True
            out.append(Trigger(category, direction, start, end, ends))
        out.sort(key=lambda t: t.start)
        return [t for t in out if t.category != PSEUDO]

    def modifiers(self, text: Text, triggers: list[Trigger], start: int, end: int,
                  own: tuple[tuple[int, int], ...] = ()) -> set[str]:
        """Categories whose scope reaches tokens [start, end). `own`: spans that belong to the
        matched sign itself; a trigger overlapping them is part of the sign, not a modifier.
        `triggers` may be just those of the mention's sentence: no scope crosses a sentence."""
        result: set[str] = set()
        sentence = text.sentence
        for trig in triggers:
            if trig.category in (TERMINATE, PSEUDO) or trig.category in result:
                continue
            if any(trig.start < e and s < trig.end for s, e in own + ((start, end),)):
                continue
            if self._reaches(trig, triggers, sentence, start, end):
                result.add(trig.category)
        return result

    def _reaches(self, trig: Trigger, triggers: list[Trigger], sentence: list[int], start: int, end: int) -> bool:
        """Whether the scope of `trig` reaches tokens [start, end): forward to words after it,
        backward to words before it, within its category's reach, sentence and terminations."""
        scope = self._max_scope[trig.category]
        if trig.direction in (FORWARD, BIDIRECTIONAL) and trig.end <= start:
            if start - trig.end < scope and sentence[trig.end - 1] == sentence[start] \
                    and not self._ended(triggers, trig.category, trig.end, start):
                return True
        if trig.direction in (BACKWARD, BIDIRECTIONAL) and trig.start >= end:
            if trig.start - end < scope and sentence[end - 1] == sentence[trig.start] \
                    and not self._ended(triggers, trig.category, end, trig.start):
                return True
        return False

    @staticmethod
    def _ended(triggers: list[Trigger], category: str, left: int, right: int) -> bool:
        """Is there a TERMINATE for `category` between token positions left and right?"""
        return any(t.category == TERMINATE and left <= t.start < right and (not t.ends or category in t.ends)
                   for t in triggers)
