"""Loads and checks the safety rules: concepts.yml, context.yml and danger_signs.yml.

Every problem is reported as file:line with the fix; the loaded rules are plain frozen data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from bot.safety.context import CATEGORIES, DIRECTIONS, PSEUDO, TERMINATE
from bot.safety.data import LineList, LineMap, SafetyDataError, Where, load_yaml
from bot.safety.terms import TermError, check_unique, parse_term
from bot.safety.triage import LEVELS

CONCEPTS_FILE, CONTEXT_FILE, SIGNS_FILE = "concepts.yml", "context.yml", "danger_signs.yml"
RULE_FILES = (CONCEPTS_FILE, CONTEXT_FILE, SIGNS_FILE)
# Numbers stand in for concepts (bot/safety/quantities.py decides what a number measures).
QUANTITY_CONCEPTS = ("temperature_high", "score_severe", "age_70", "weight_lost")
MASK_SUFFIX = "_not"       # `pee_not` terms hide `pee` mentions they overlap ("a wee bit")
SIGN_LEVELS = ("urgent", "emergency")
CRISIS_SIGN = "self_harm"
DEFAULT_WINDOW = 12
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_SIGN_KEYS = {"level", "screen_slot", "question", "reason", "source", "topic", "when", "unless", "suspect",
              "whose", "back_only", "historical", "facts", "window", "negation", "denied_by", "denial",
              "lesser", "asks_age", "lost", "suspect_lost", "examples"}
_EXAMPLE_KINDS = {"present", "absent", "asked"}


@dataclass(frozen=True)
class Combo:
    """Concepts that must all appear: one of each group (`chest & pain|squeeze`)."""

    groups: tuple[frozenset[str], ...]
    text: str
    line: int
    unless: frozenset[str] = frozenset()     # `a & b ! c|d`: c or d in the clause vetoes this one

    @property
    def concepts(self) -> frozenset[str]:
        return frozenset().union(*self.groups)


@dataclass(frozen=True)
class Sign:
    id: str
    level: str
    screen_slot: str | None
    question: str
    reason: str
    source: str
    topic: frozenset[str]
    when: tuple[Combo, ...]
    unless: frozenset[str] = frozenset()
    suspect: tuple[Combo, ...] = ()
    anyone: bool = False             # counts when it is happening to someone else too
    back_only: bool = False
    keep_historical: bool = False
    facts: frozenset[str] = frozenset()
    window: int = DEFAULT_WINDOW
    ignore_negation: bool = False    # negation words don't cancel it; only `denied_by` concepts do
    denied_by: frozenset[str] = frozenset()
    denial: frozenset[str] = frozenset()   # a clear "no" about these answers the question unasked
    lesser: frozenset[str] = frozenset()   # in an answer to its question, a lesser version: a no
    asks_age: int | None = None            # its question asks "are you over N?": an age answers that
    lost: frozenset[str] = frozenset()     # a normal function said to be lost is the sign ("won't take my weight")
    suspect_lost: frozenset[str] = frozenset()   # ... only makes it possible: asked ("no reason to go on")
    examples: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class ContextRules:
    terms: tuple[tuple[str, str, str, frozenset[str], int], ...]   # (term, category, direction, ends, line)
    max_scope: dict[str, int]


@dataclass(frozen=True)
class Rules:
    concepts: dict[str, tuple[tuple[str, int], ...]]     # concept -> (term, line)
    context: ContextRules
    signs: dict[str, Sign]
    guidance: dict[str, str]
    checklists: dict[str, tuple[str, ...]] = field(default_factory=dict)   # slot -> signs

    @property
    def words(self) -> set[str]:
        """Every plain word of the rules: what the typo normaliser corrects towards."""
        from bot.safety.terms import term_words

        out: set[str] = set()
        for terms in self.concepts.values():
            for term, _ in terms:
                out.update(term_words(term))
        for term, *_ in self.context.terms:
            out.update(term_words(term))
        return out

    def by_slot(self, slot: str) -> Sign | None:
        return next((s for s in self.signs.values() if s.screen_slot == slot), None)


def _terms(where: Where, value: object, line: int, what: str) -> tuple[tuple[str, int], ...]:
    items = where.strings(value, line, what)
    for term, item_line in items:
        try:
            parse_term(term)
        except TermError as exc:
            raise where.error(item_line, f"{what}: term `{term}`: {exc}") from None
    dupe = check_unique(items)
    if dupe:
        raise where.error(dupe[1], f"{what}: `{dupe[0]}` is listed twice (also line {dupe[2]}); remove one")
    return tuple(items)


def load_concepts(path: Path) -> dict[str, tuple[tuple[str, int], ...]]:
    data = load_yaml(path)
    where = Where(path.name)
    where.check_keys(data, {"version", "concepts"}, path.name)
    block = where.mapping(data.get("concepts"), data.lines.get("concepts", 1), "`concepts`")
    concepts: dict[str, tuple[tuple[str, int], ...]] = {}
    for name, terms in block.items():
        line = block.lines[name]
        if not isinstance(name, str) or not _NAME.match(name):
            raise where.error(line, f"concept name `{name}` must be lower_snake_case")
        if name in QUANTITY_CONCEPTS:
            raise where.error(line, f"`{name}` is a quantity concept (numbers); choose another name")
        concepts[name] = _terms(where, terms, line, f"concept `{name}`")
    for name in concepts:
        if name.endswith(MASK_SUFFIX) and name[:-len(MASK_SUFFIX)] not in concepts:
            raise where.error(block.lines[name], f"`{name}` masks `{name[:-len(MASK_SUFFIX)]}`, which is not a "
                                                 "concept; rename it or add that concept")
    return concepts


def _whole(value: object, low: int, high: int) -> bool:
    """A whole number from `low` to `high` (YAML's true/false are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def load_context(path: Path) -> ContextRules:
    data = load_yaml(path)
    where = Where(path.name)
    where.check_keys(data, {"version", "max_scope", PSEUDO, TERMINATE, *CATEGORIES}, path.name)
    scopes = where.mapping(data.get("max_scope"), data.lines.get("max_scope", 1), "`max_scope`")
    max_scope: dict[str, int] = {}
    for category in CATEGORIES:
        value = scopes.get(category)
        if not _whole(value, 1, 40):
            raise where.error(scopes.lines.get(category, scopes.line),
                              f"`max_scope.{category}` must be a whole number of tokens from 1 to 40")
        max_scope[category] = value
    terms: list[tuple[str, str, str, frozenset[str], int]] = []
    for category in CATEGORIES:
        if category not in data:
            raise where.error(1, f"missing section `{category}:` (forward/backward/bidirectional triggers)")
        block = where.mapping(data[category], data.lines[category], f"`{category}`")
        where.check_keys(block, {*DIRECTIONS, TERMINATE}, f"`{category}`")
        if not any(d in block for d in DIRECTIONS):
            raise where.error(block.line, f"`{category}` needs forward:, backward: or bidirectional: triggers")
        for direction in (*DIRECTIONS, TERMINATE):
            if direction in block:
                for term, line in _terms(where, block[direction], block.lines[direction], f"`{category}.{direction}`"):
                    if direction == TERMINATE:
                        terms.append((term, TERMINATE, "", frozenset({category}), line))
                    else:
                        terms.append((term, category, direction, frozenset(), line))
    for section in (PSEUDO, TERMINATE):
        for term, line in _terms(where, data.get(section), data.lines.get(section, 1), f"`{section}`"):
            terms.append((term, section, "", frozenset(), line))
    return ContextRules(tuple(terms), max_scope)


def _combos(where: Where, value: object, line: int, what: str, known: set[str]) -> tuple[Combo, ...]:
    out = []
    for text, item_line in where.strings(value, line, what):
        groups = []
        body, _, veto = text.partition("!")
        unless = frozenset(n.strip() for n in veto.split("|") if n.strip())
        for name in unless:
            if name not in known:
                raise where.error(item_line, f"{what}: `{name}` (after !) is not a concept in {CONCEPTS_FILE}")
        for part in body.split("&"):
            names = frozenset(n.strip() for n in part.split("|"))
            for name in names:
                if name not in known:
                    raise where.error(item_line, f"{what}: `{name}` is not a concept; add it to "
                                                 f"{CONCEPTS_FILE} or use one of the quantity concepts "
                                                 f"({', '.join(QUANTITY_CONCEPTS)})")
            groups.append(names)
        if len(set(groups)) != len(groups):
            raise where.error(item_line, f"{what}: `{text}` names the same part twice")
        out.append(Combo(tuple(groups), " ".join(text.split()), item_line, unless))
    dupe = check_unique((c.text, c.line) for c in out)
    if dupe:
        raise where.error(dupe[1], f"{what}: `{dupe[0]}` is listed twice (also line {dupe[2]}); remove one")
    return tuple(out)


def _names(where: Where, spec: LineMap, key: str, what: str, known: set[str]) -> frozenset[str]:
    if key not in spec:
        return frozenset()
    value = spec[key]
    if not isinstance(value, LineList):
        raise where.error(spec.lines[key], f"{what} `{key}` is a list of concept names, like [pee, defecate]")
    for name in value:
        if name not in known:
            raise where.error(spec.lines[key], f"{what} `{key}`: `{name}` is not a concept in {CONCEPTS_FILE}")
    return frozenset(value)


def _text(where: Where, spec: LineMap, key: str, what: str, line: int) -> str:
    value = spec.get(key)
    if not isinstance(value, str) or not value.strip():
        raise where.error(spec.lines.get(key, line), f"{what}: add `{key}:` in plain words")
    return " ".join(value.split())


def _choice(where: Where, spec: LineMap, key: str, options: tuple[str, str], what: str) -> str:
    """One of two words; the first when `key` is left out."""
    value = spec.get(key, options[0])
    if value not in options:
        raise where.error(spec.lines[key], f"{what}: {key} is `{options[0]}` or `{options[1]}`")
    return value


def _sign_level(where: Where, spec: LineMap, what: str, line: int) -> str:
    level = spec.get("level")
    if level not in SIGN_LEVELS:
        raise where.error(spec.lines.get("level", line), f"{what}: level `{level}` is not allowed; use one "
                                                         f"of {', '.join(SIGN_LEVELS)} (levels: {', '.join(LEVELS)})")
    return level


def _screen_slot(where: Where, spec: LineMap, what: str, sign_id: str, slots: dict[str, str]) -> str | None:
    """The sign's screen_slot, claimed in `slots` (slot -> sign): each slot answers one sign."""
    slot = spec.get("screen_slot")
    if slot is not None and (not isinstance(slot, str) or not _NAME.match(slot)):
        raise where.error(spec.lines["screen_slot"], f"{what}: screen_slot is a slot name from domain.yml, or null")
    if slot in slots:
        raise where.error(spec.lines["screen_slot"], f"{what}: screen_slot `{slot}` already answers "
                                                     f"`{slots[slot]}`; each slot answers one sign")
    if slot:
        slots[slot] = sign_id
    return slot


def _source(where: Where, spec: LineMap, what: str, line: int, guidance: dict[str, str]) -> str:
    source = spec.get("source")
    if source not in guidance:
        raise where.error(spec.lines.get("source", line), f"{what}: source `{source}` is not listed under "
                                                          "`guidance:`; add it there")
    return source


def _back_only(where: Where, spec: LineMap, what: str) -> bool:
    back_only = spec.get("back_only", False)
    if not isinstance(back_only, bool):
        raise where.error(spec.lines["back_only"], f"{what}: back_only is true or false")
    return back_only


def _window(where: Where, spec: LineMap, what: str) -> int:
    window = spec.get("window", DEFAULT_WINDOW)
    if not _whole(window, 2, 40):
        raise where.error(spec.lines["window"], f"{what}: window is a number of tokens from 2 to 40")
    return window


def _asks_age(where: Where, spec: LineMap, what: str) -> int | None:
    asks_age = spec.get("asks_age")
    if asks_age is not None and not _whole(asks_age, 1, 120):
        raise where.error(spec.lines["asks_age"], f"{what}: asks_age is an age in years (1 to 120)")
    return asks_age


def _examples(where: Where, spec: LineMap, what: str) -> dict[str, tuple[str, ...]]:
    examples: dict[str, tuple[str, ...]] = {}
    if "examples" in spec:
        ex = where.mapping(spec["examples"], spec.lines["examples"], f"{what} `examples`")
        where.check_keys(ex, _EXAMPLE_KINDS, f"{what} `examples`")
        for kind in ex:
            examples[kind] = tuple(t for t, _ in where.strings(ex[kind], ex.lines[kind], f"{what} examples"))
    return examples


def _sign(where: Where, sign_id: object, spec: object, line: int, guidance: dict[str, str],
          slots: dict[str, str], known: set[str]) -> Sign:
    """One entry of `signs:`, checked in file order so the first problem is the one reported."""
    what = f"sign `{sign_id}`"
    if not isinstance(sign_id, str) or not _NAME.match(sign_id):
        raise where.error(line, f"sign id `{sign_id}` must be lower_snake_case")
    spec = where.mapping(spec, line, what)
    where.check_keys(spec, _SIGN_KEYS, what)
    level = _sign_level(where, spec, what, line)
    slot = _screen_slot(where, spec, what, sign_id, slots)
    source = _source(where, spec, what, line, guidance)
    if "when" not in spec:
        raise where.error(line, f"{what} has nothing to match; add `when:` combinations")
    whose = _choice(where, spec, "whose", ("patient", "anyone"), what)
    historical = _choice(where, spec, "historical", ("drop", "keep"), what)
    back_only = _back_only(where, spec, what)
    window = _window(where, spec, what)
    negation = _choice(where, spec, "negation", ("applies", "ignore"), what)
    asks_age = _asks_age(where, spec, what)
    examples = _examples(where, spec, what)
    return Sign(
        id=sign_id, level=level, screen_slot=slot,
        question=_text(where, spec, "question", what, line), reason=_text(where, spec, "reason", what, line),
        source=source, topic=_names(where, spec, "topic", what, known),
        when=_combos(where, spec["when"], spec.lines["when"], f"{what} `when`", known),
        unless=_names(where, spec, "unless", what, known),
        suspect=_combos(where, spec["suspect"], spec.lines["suspect"], f"{what} `suspect`", known)
        if "suspect" in spec else (),
        anyone=whose == "anyone", back_only=back_only, keep_historical=historical == "keep",
        facts=_names(where, spec, "facts", what, known), window=window,
        ignore_negation=negation == "ignore", denied_by=_names(where, spec, "denied_by", what, known),
        denial=_names(where, spec, "denial", what, known),
        lesser=_names(where, spec, "lesser", what, known), asks_age=asks_age,
        lost=_names(where, spec, "lost", what, known),
        suspect_lost=_names(where, spec, "suspect_lost", what, known),
        examples=examples)


def load_signs(path: Path, concepts: set[str]) -> tuple[dict[str, Sign], dict[str, str]]:
    data = load_yaml(path)
    where = Where(path.name)
    where.check_keys(data, {"version", "answers", "checklists", "guidance", "signs"}, path.name)
    guidance_block = where.mapping(data.get("guidance"), data.lines.get("guidance", 1), "`guidance`")
    guidance = {str(k): str(v) for k, v in guidance_block.items()}
    block = where.mapping(data.get("signs"), data.lines.get("signs", 1), "`signs`")
    known = concepts | set(QUANTITY_CONCEPTS)
    signs: dict[str, Sign] = {}
    slots: dict[str, str] = {}
    for sign_id, spec in block.items():
        signs[sign_id] = _sign(where, sign_id, spec, block.lines[sign_id], guidance, slots, known)
    if CRISIS_SIGN not in signs:
        raise where.error(block.line, f"sign `{CRISIS_SIGN}` is missing; the crisis reply depends on it")
    return signs, guidance


def load_checklists(path: Path, signs: dict[str, Sign]) -> dict[str, tuple[str, ...]]:
    """Grouped screening questions: slot -> the signs it asks about (file:line on errors)."""
    data = load_yaml(path)
    where = Where(path.name)
    if "checklists" not in data:
        return {}
    block = where.mapping(data["checklists"], data.lines["checklists"], "`checklists`")
    out: dict[str, tuple[str, ...]] = {}
    for slot, names in block.items():
        line = block.lines[slot]
        if not isinstance(slot, str) or not _NAME.match(slot):
            raise where.error(line, f"checklist slot `{slot}` must be a slot name from domain.yml")
        if not isinstance(names, list) or len(names) < 2:
            raise where.error(line, f"checklist `{slot}` lists at least two sign ids, like [fever, cancer_history]")
        for name in names:
            if name not in signs:
                raise where.error(line, f"checklist `{slot}`: `{name}` is not a sign in {path.name}")
        if slot in {s.screen_slot for s in signs.values()}:
            raise where.error(line, f"checklist `{slot}` is already a sign's screen_slot; use a new slot name")
        out[str(slot)] = tuple(names)
    return out


def load_rules(knowledge_dir: Path) -> Rules:
    """Read and check the three rule files in `knowledge_dir`."""
    knowledge_dir = Path(knowledge_dir)
    concepts = load_concepts(knowledge_dir / CONCEPTS_FILE)
    context = load_context(knowledge_dir / CONTEXT_FILE)
    signs, guidance = load_signs(knowledge_dir / SIGNS_FILE, set(concepts))
    for name in ("back", "other_site"):
        if name not in concepts:
            raise SafetyDataError(f"{CONCEPTS_FILE}:1: concept `{name}` is missing; the screen needs it to tell "
                                  "back complaints from other ones")
    checklists = load_checklists(knowledge_dir / SIGNS_FILE, signs)
    return Rules(concepts, context, signs, guidance, checklists)
