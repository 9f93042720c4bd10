"""Red-flag screening: finds danger signs in one user message, negation-aware.

The phrases, levels and screening-question slots are data (`red_flags.yml`), the
negation rules too (`negation.yml`); this module compiles them once and scans each
message with a few precompiled regexes. It never lowers a danger sign on a guess:
uncertain mentions count as present, and phrases where the negation *is* the danger
("can't control my bladder") ignore negation around them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from bot.safety.context import (HISTORICAL, HYPOTHETICAL, NEGATED, OTHER_PERSON, UNCERTAIN, ContextRules,
                                Trigger)
from bot.safety.data import LineList, LineMap, Where, load_yaml
from bot.safety.patterns import NO_ANCHORS, Anchors, Normalizer, PhraseCompiler, PhraseError, Tokens, typo_map
from bot.safety.triage import LEVELS, level_rank

PRESENT = "present"
STATUSES = (PRESENT, NEGATED, UNCERTAIN)
FLAG_LEVELS = ("urgent", "emergency")
CRISIS_FLAG = "self_harm"

_TOP_KEYS = {"version", "vocab", "typo_words", "typo_protected", "flags"}
_FLAG_KEYS = {"level", "screen_slot", "description", "phrases", "negation_is_danger", "all_of",
              "absent", "negatable", "exclude", "historical_is_absent", "examples"}
_EXAMPLE_KEYS = {"present", "negated", "uncertain", "absent", "not_found"}


@dataclass(frozen=True)
class Finding:
    """One mention of a danger sign in the message."""

    flag: str
    level: str
    status: str                # present | negated | uncertain
    start: int
    end: int
    text: str


@dataclass
class ScreenResult:
    """All findings for one message, with the summaries the dialogue needs."""

    findings: list[Finding] = field(default_factory=list)

    @property
    def present(self) -> list[str]:
        """Flags mentioned as present or uncertain (uncertain counts as present)."""
        out: list[str] = []
        for f in self.findings:
            if f.status != NEGATED and f.flag not in out:
                out.append(f.flag)
        return out

    @property
    def negated(self) -> list[str]:
        """Flags only ever mentioned as absent in this message."""
        present = set(self.present)
        out: list[str] = []
        for f in self.findings:
            if f.status == NEGATED and f.flag not in present and f.flag not in out:
                out.append(f.flag)
        return out

    @property
    def level(self) -> str | None:
        levels = [f.level for f in self.findings if f.status != NEGATED]
        return max(levels, key=level_rank) if levels else None

    @property
    def crisis(self) -> bool:
        return CRISIS_FLAG in self.present


@dataclass(frozen=True)
class _Matcher:
    """One compiled phrase list; skipped at once when none of its first words is present."""

    regex: re.Pattern[str]
    anchors: Anchors

    def matches(self, tokens: Tokens, words: set[str]) -> list[re.Match[str]]:
        if not self.anchors.may_match(words):
            return []
        return list(self.regex.finditer(tokens.string))

    def spans(self, tokens: Tokens, words: set[str]) -> list[tuple[int, int]]:
        return [tokens.word_range(m.start(), m.end()) for m in self.matches(tokens, words)]


@dataclass(frozen=True)
class _Flag:
    id: str
    level: str
    screen_slot: str | None
    description: str
    phrases: _Matcher | None       # group `d`: negation is the danger, group `p`: ordinary
    all_of: tuple[_Matcher, ...]
    absent: _Matcher | None
    negatable: _Matcher | None
    exclude: _Matcher | None
    historical_is_absent: bool
    examples: dict[str, list[str]]
    anchors: Anchors = NO_ANCHORS   # union of its phrase lists' anchors: skip the whole flag fast


def _spans(matcher: _Matcher | None, tokens: Tokens, words: set[str]) -> list[tuple[int, int]]:
    return matcher.spans(tokens, words) if matcher is not None else []


def _overlaps(a: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(a[0] < e and s < a[1] for s, e in spans)


def _inside(a: tuple[int, int], spans: list[tuple[int, int]]) -> bool:
    return any(s <= a[0] and a[1] <= e for s, e in spans)


class RedFlagScreener:
    """Screens text for the danger signs of `red_flags.yml`."""

    def __init__(self, flags: list[_Flag], rules: ContextRules, normalizer: Normalizer) -> None:
        self._flags = flags
        self._by_id = {f.id: f for f in flags}
        self._by_slot = {f.screen_slot: f.id for f in flags if f.screen_slot}
        self._rules = rules
        self._normalize = normalizer
        # Anchor keys longer than this cannot match, so no longer word prefix is ever needed.
        self._longest_anchor = max((len(k) for f in flags
                                    for m in (f.phrases, f.absent, f.negatable, f.exclude, *f.all_of, f)
                                    if m is not None for k in m.anchors.keys), default=1)

    @property
    def flags(self) -> list[str]:
        """Every flag id, in data order (a fresh list: screeners are shared)."""
        return [f.id for f in self._flags]

    # --- public API ---------------------------------------------------------------------

    def screen(self, text: str) -> ScreenResult:
        """Every danger-sign mention in `text`, in the order they appear."""
        tokens = self._normalize(text or "")
        if not tokens.words:
            return ScreenResult([])
        triggers = self._rules.triggers(tokens)
        words = tokens.prefixes(self._longest_anchor)
        findings: list[Finding] = []
        for flag in self._flags:
            findings.extend(self._screen_flag(flag, tokens, words, triggers, text))
        findings.sort(key=lambda f: (f.start, f.end))
        return ScreenResult(findings)

    def level_of(self, flag: str) -> str:
        return self._get(flag).level

    def screen_slot(self, flag: str) -> str | None:
        return self._get(flag).screen_slot

    def flag_for_slot(self, slot: str) -> str | None:
        return self._by_slot.get(slot)

    def description(self, flag: str) -> str:
        return self._get(flag).description

    def slot_values(self, result: ScreenResult) -> dict[str, bool]:
        """Screening-question answers implied by a message: present -> True, negated -> False."""
        values: dict[str, bool] = {}
        for flag in result.negated:
            slot = self.screen_slot(flag)
            if slot:
                values[slot] = False
        for flag in result.present:
            slot = self.screen_slot(flag)
            if slot:
                values[slot] = True
        return values

    def examples(self, flag: str) -> dict[str, list[str]]:
        """The reviewed example sentences stored with a flag (used by the tests)."""
        return {kind: list(texts) for kind, texts in self._get(flag).examples.items()}

    def _get(self, flag: str) -> _Flag:
        try:
            return self._by_id[flag]
        except KeyError:
            raise KeyError(f"unknown red flag `{flag}`; known: {', '.join(self.flags)}") from None

    # --- scanning -----------------------------------------------------------------------

    def _status(self, triggers: list[Trigger], span: tuple[int, int], danger: bool,
                historical_is_absent: bool) -> str | None:
        mods = self._rules.modifiers(triggers, span[0], span[1])
        if HYPOTHETICAL in mods or OTHER_PERSON in mods:
            return None     # "why do you ask about numbness?", "my dad had cancer": not the user's sign
        if historical_is_absent and HISTORICAL in mods and not danger:
            return None     # e.g. "a fever last year": not a sign now; the form still asks
        if UNCERTAIN in mods:
            return UNCERTAIN  # "maybe", and also hedged negation ("I don't think"): stay safe
        if NEGATED in mods and not danger:
            return NEGATED
        return PRESENT

    def _screen_flag(self, flag: _Flag, tokens: Tokens, words: set[str], triggers: list[Trigger],
                     text: str) -> list[Finding]:
        if not flag.anchors.may_match(words):
            return []
        excluded = _spans(flag.exclude, tokens, words)
        absent = _spans(flag.absent, tokens, words)
        found: list[tuple[tuple[int, int], str]] = []

        if flag.phrases is not None:
            for m in flag.phrases.matches(tokens, words):
                span = tokens.word_range(m.start(), m.end())
                if _overlaps(span, excluded) or _inside(span, absent):
                    continue
                status = self._status(triggers, span, m.lastgroup == "d", flag.historical_is_absent)
                if status:
                    found.append((span, status))

        if flag.all_of:
            parts = []
            for group in flag.all_of:
                best = None
                for span in group.spans(tokens, words):
                    if _overlaps(span, excluded):
                        continue
                    status = self._status(triggers, span, False, flag.historical_is_absent)
                    if status and (best is None or _STATUS_ORDER[status] > _STATUS_ORDER[best[1]]):
                        best = (span, status)
                if best is None:
                    parts = []
                    break
                parts.append(best)
            if parts:
                statuses = {s for _, s in parts}
                status = NEGATED if NEGATED in statuses else UNCERTAIN if UNCERTAIN in statuses else PRESENT
                span = (min(p[0][0] for p in parts), max(p[0][1] for p in parts))
                found.append((span, status))

        positive = [span for span, _ in found]
        for span in _spans(flag.negatable, tokens, words):
            if _overlaps(span, positive) or _overlaps(span, excluded):
                continue
            if self._status(triggers, span, False, False) == NEGATED:
                found.append((span, NEGATED))
        for span in absent:
            # "my legs are fine" is a clear no; "maybe my legs are fine" or someone else's is not.
            if self._status(triggers, span, True, False) == PRESENT:
                found.append((span, NEGATED))

        out = []
        for (first, last), status in found:
            start, end = tokens.char_span(first, last)
            out.append(Finding(flag.id, flag.level, status, start, end, text[start:end]))
        return out

    # --- loading ------------------------------------------------------------------------

    @classmethod
    def load(cls, knowledge_dir: Path) -> "RedFlagScreener":
        """Read and validate red_flags.yml and negation.yml from `knowledge_dir`.

        A screener never changes once built, so loads of identical files share one (the
        engine, its workers and the tests load it many times).
        """
        knowledge_dir = Path(knowledge_dir)
        key = _content_key(knowledge_dir, ("red_flags.yml", "negation.yml"))
        if key is not None and key in _CACHE:
            return _CACHE[key]
        screener = cls._build(knowledge_dir)
        if key is not None:
            if len(_CACHE) >= 8:
                _CACHE.pop(next(iter(_CACHE)))
            _CACHE[key] = screener
        return screener

    @classmethod
    def _build(cls, knowledge_dir: Path) -> "RedFlagScreener":
        rules = ContextRules.load(knowledge_dir / "negation.yml")
        path = knowledge_dir / "red_flags.yml"
        data = load_yaml(path)
        where = Where(path.name)
        where.check_keys(data, _TOP_KEYS, path.name)
        if "flags" not in data:
            raise where.error(1, "missing section `flags:`; list the danger signs under it")

        compiler = PhraseCompiler(replacements=rules.replacements, gap_stops=rules.gap_stops)
        if "vocab" in data:
            vocab = where.mapping(data["vocab"], data.lines["vocab"], "`vocab`")
            for name, entries in vocab.items():
                line = vocab.lines[name]
                if not re.fullmatch(r"[a-z_]+", str(name)):
                    raise where.error(line, f"vocab name `{name}` must be lower-case letters and _")
                sources = []
                for phrase, item_line in where.strings(entries, line, f"vocab `{name}`"):
                    if "@" in phrase or "..." in phrase:
                        raise where.error(item_line, f"vocab `{name}`: `{phrase}` may not use @lists or `...`; "
                                                     "spell the words out")
                    sources.append(phrase.lower())
                try:
                    compiler.add_vocab(name, sources)
                except PhraseError as exc:
                    raise where.error(line, f"vocab `{name}`: {exc}") from None

        flags_block = where.mapping(data["flags"], data.lines["flags"], "`flags`")
        flags = []
        slots: dict[str, str] = {}
        for flag_id, spec in flags_block.items():
            line = flags_block.lines[flag_id]
            if not re.fullmatch(r"[a-z][a-z0-9_]*", str(flag_id)):
                raise where.error(line, f"flag id `{flag_id}` must be lower_snake_case")
            flag = cls._load_flag(compiler, where, str(flag_id), spec, line)
            if flag.screen_slot:
                if flag.screen_slot in slots:
                    raise where.error(spec_line(flags_block[flag_id], "screen_slot", line), f"screen_slot `{flag.screen_slot}` is already used by "
                                            f"`{slots[flag.screen_slot]}`; each slot answers one flag")
                slots[flag.screen_slot] = flag.id
            flags.append(flag)
        if CRISIS_FLAG not in {f.id for f in flags}:
            raise where.error(data.lines["flags"], f"flag `{CRISIS_FLAG}` is missing; the crisis "
                                                   "response depends on it")

        protected = set(rules.words)
        if "typo_protected" in data:
            protected.update(w.lower() for w, _ in where.strings(
                data["typo_protected"], data.lines["typo_protected"], "`typo_protected`"))
        keywords = set(compiler.literals)
        if "typo_words" in data:
            keywords.update(w.lower() for w, _ in where.strings(
                data["typo_words"], data.lines["typo_words"], "`typo_words`"))
        # Written forms the normaliser rewrites ("cannot", "unable to") get typo tolerance too.
        keywords.update(source[0] for source in rules.replacements if source[0].isalpha())
        normalizer = Normalizer(rules.replacements, typo_map(keywords, protected))
        return cls(flags, rules, normalizer)

    @staticmethod
    def _compile(compiler: PhraseCompiler, where: Where, phrase: str, line: int, what: str) -> tuple[str, Anchors]:
        try:
            return compiler.compile_anchored(phrase.lower())
        except PhraseError as exc:
            raise where.error(line, f"{what}: phrase `{phrase}`: {exc}") from None

    @classmethod
    def _matcher(cls, compiler: PhraseCompiler, where: Where, items: list[tuple[str, int]], what: str,
                 group: str | None = None) -> tuple[str, Anchors]:
        compiled = [cls._compile(compiler, where, p, l, what) for p, l in items]
        anchors = NO_ANCHORS
        for _, a in compiled:
            anchors = anchors | a
        body = "|".join(src for src, _ in compiled)
        return (f"(?P<{group}>{body})" if group else f"(?:{body})"), anchors

    @classmethod
    def _pattern(cls, compiler: PhraseCompiler, where: Where, spec: LineMap, key: str,
                 flag_id: str) -> _Matcher | None:
        if key not in spec:
            return None
        items = where.strings(spec[key], spec.lines[key], f"flag `{flag_id}` `{key}`")
        cls._no_duplicates(where, items, f"flag `{flag_id}` `{key}`")
        source, anchors = cls._matcher(compiler, where, items, f"flag `{flag_id}` `{key}`")
        return _Matcher(re.compile("(?<= )" + source), anchors)

    @staticmethod
    def _no_duplicates(where: Where, items: list[tuple[str, int]], what: str) -> None:
        seen: dict[str, int] = {}
        for phrase, line in items:
            key = " ".join(phrase.lower().split())
            if key in seen:
                raise where.error(line, f"{what}: `{phrase}` is listed twice (also line {seen[key]}); remove one")
            seen[key] = line

    @classmethod
    def _load_flag(cls, compiler: PhraseCompiler, where: Where, flag_id: str, spec: object, line: int) -> _Flag:
        spec = where.mapping(spec, line, f"flag `{flag_id}`")
        where.check_keys(spec, _FLAG_KEYS, f"flag `{flag_id}`")
        level = spec.get("level")
        if level not in FLAG_LEVELS:
            raise where.error(spec.lines.get("level", line),
                              f"flag `{flag_id}`: level `{level}` is not allowed; use one of "
                              f"{', '.join(FLAG_LEVELS)} (levels: {', '.join(LEVELS)})")
        slot = spec.get("screen_slot")
        if slot is not None and (not isinstance(slot, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", slot)):
            raise where.error(spec.lines["screen_slot"], f"flag `{flag_id}`: screen_slot must be a slot "
                                                         "name from domain.yml, or null")
        description = spec.get("description")
        if not isinstance(description, str) or not description.strip():
            raise where.error(spec.lines.get("description", line),
                              f"flag `{flag_id}`: add a plain-words `description:`")
        if not any(k in spec for k in ("phrases", "negation_is_danger", "all_of")):
            raise where.error(line, f"flag `{flag_id}` has nothing to match; add `phrases:` "
                                    "(or `negation_is_danger:` / `all_of:`)")

        what = f"flag `{flag_id}`"
        ordinary = where.strings(spec.get("phrases"), spec.lines.get("phrases", line),
                                 f"{what} `phrases`", allow_empty="phrases" not in spec)
        danger = where.strings(spec.get("negation_is_danger"), spec.lines.get("negation_is_danger", line),
                               f"{what} `negation_is_danger`", allow_empty="negation_is_danger" not in spec)
        cls._no_duplicates(where, ordinary + danger, f"{what} phrases")
        branches = []
        anchors = NO_ANCHORS
        for items, group in ((danger, "d"), (ordinary, "p")):
            if items:
                source, more = cls._matcher(compiler, where, items, what, group)
                branches.append(source)
                anchors = anchors | more
        phrases = _Matcher(re.compile("(?<= )(?:" + "|".join(branches) + ")"), anchors) if branches else None

        all_of: list[_Matcher] = []
        if "all_of" in spec:
            groups = spec["all_of"]
            if not isinstance(groups, LineList) or len(groups) < 2:
                raise where.error(spec.lines["all_of"], f"{what}: `all_of` is a list of at least two phrase "
                                                        "lists; every list must match for the flag to fire")
            for group, group_line in zip(groups, groups.lines):
                items = where.strings(group, group_line, f"{what} `all_of` group")
                source, group_anchors = cls._matcher(compiler, where, items, what)
                all_of.append(_Matcher(re.compile("(?<= )" + source), group_anchors))

        historical = spec.get("historical_is_absent", False)
        if not isinstance(historical, bool):
            raise where.error(spec.lines["historical_is_absent"], f"{what}: historical_is_absent is true or false")

        examples: dict[str, list[str]] = {}
        if "examples" in spec:
            block = where.mapping(spec["examples"], spec.lines["examples"], f"{what} `examples`")
            where.check_keys(block, _EXAMPLE_KEYS, f"{what} `examples`")
            for kind in block:
                examples[kind] = [p for p, _ in where.strings(block[kind], block.lines[kind], f"{what} examples")]

        absent = cls._pattern(compiler, where, spec, "absent", flag_id)
        negatable = cls._pattern(compiler, where, spec, "negatable", flag_id)
        flag_anchors = NO_ANCHORS
        for matcher in (phrases, absent, negatable, *all_of):
            if matcher is not None:
                flag_anchors = flag_anchors | matcher.anchors
        return _Flag(
            id=flag_id, level=level, screen_slot=slot, description=" ".join(description.split()),
            phrases=phrases, all_of=tuple(all_of), absent=absent, negatable=negatable,
            exclude=cls._pattern(compiler, where, spec, "exclude", flag_id),
            historical_is_absent=historical, examples=examples, anchors=flag_anchors,
        )


_STATUS_ORDER = {NEGATED: 0, UNCERTAIN: 1, PRESENT: 2}
_CACHE: dict[tuple, "RedFlagScreener"] = {}


def _content_key(folder: Path, names: tuple[str, ...]) -> tuple | None:
    try:
        return (str(folder.resolve()),) + tuple(hashlib.sha1((folder / n).read_bytes()).hexdigest() for n in names)
    except OSError:
        return None   # a missing file: let the loader report it


def spec_line(spec: object, key: str, default: int) -> int:
    return spec.lines.get(key, default) if isinstance(spec, LineMap) else default
