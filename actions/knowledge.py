"""Loads and validates the clinical knowledge base in knowledge/ (conditions, self-care,
questions, sources). Danger signs and their levels belong to the safety layer (bot/safety)."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple


logger = logging.getLogger(__name__)

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "knowledge"
ENV_DIR = "BACKLINE_KNOWLEDGE_DIR"
MODELS_ENV = "BACKLINE_MODELS_DIR"

LEVELS: Tuple[str, ...] = ("info", "routine", "urgent", "emergency")

# The article-condition ids of CONTENT.md; the `conditions` slot may only hold these.
CONDITION_IDS: Tuple[str, ...] = (
    "muscle_strain",
    "posture_strain",
    "muscle_spasm",
    "muscle_atrophy",
    "chronic_back_pain",
    "back_injury",
    "hyperkyphosis",
)

FORM_INFO_SLOTS: Tuple[str, ...] = ("body_part", "duration", "severity", "trigger")

# Advice must never carry a dose (DESIGN.md safety rule 5).
_DOSE = re.compile(
    r"\b\d+(\.\d+)?\s*(mg|milligrams?|mcg|micrograms?|g|grams?|ml|millilitres?|milliliters?|"
    r"tablets?|pills?|capsules?|caplets?)\b",
    re.IGNORECASE,
)


class KnowledgeError(ValueError):
    """A knowledge file is missing, malformed or inconsistent; the message says how to fix it."""


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class Source:
    id: str
    citation: str  # short, shown to users
    full: str = ""  # the reference as the article cites it
    topic: str = ""


@dataclass(frozen=True)
class SelfCareItem:
    id: str
    title: str
    text: str
    section: str
    source: str
    gap: bool = False


@dataclass(frozen=True)
class Condition:
    id: str
    name: str
    description: str
    section: str
    source: str
    self_care: Tuple[str, ...]
    phrases: Tuple[str, ...] = ()
    keywords: Tuple[str, ...] = ()
    triggers: Tuple[str, ...] = ()
    symptoms: Tuple[str, ...] = ()
    exclude: Tuple[str, ...] = ()
    duration_min_weeks: Optional[float] = None
    duration_words: Tuple[str, ...] = ()


@dataclass(frozen=True)
class Question:
    slot: str
    label: str
    why: str
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Matching:
    negation_cues: Tuple[str, ...]
    negation_window: int
    clause_breaks: Tuple[str, ...]
    min_score: int
    max_conditions: int


@dataclass(frozen=True)
class Fallback:
    text: str
    section: str
    source: str
    self_care: Tuple[str, ...]


@dataclass(frozen=True)
class Picture:
    """A triage picture that decides which self-care fits (self_care.yml `pictures`)."""

    id: str
    intro: str
    signs: Tuple[str, ...] = ()
    phrases: Tuple[str, ...] = ()
    conditions: Tuple[str, ...] = ()
    items: Tuple[str, ...] = ()
    first: Tuple[str, ...] = ()
    leave_out: Tuple[str, ...] = ()


@dataclass(frozen=True)
class ResultTexts:
    """The sentences of the result's first bubble around the condition names (conditions.yml `result`)."""

    linked: str
    linked_sign: str
    cause: str


@dataclass(frozen=True)
class Knowledge:
    sources: Dict[str, Source]
    sections: Tuple[str, ...]
    conditions: Dict[str, Condition]
    matching: Matching
    fallback: Fallback
    self_care: Dict[str, SelfCareItem]
    general_self_care: Tuple[str, ...]
    framing_before: str
    framing_after: str
    referral: Dict[str, str]
    referral_short: Dict[str, str]
    long_duration_weeks: float
    long_duration_text: str
    safety_net: str
    questions: Dict[str, Question]
    general_why: str
    result: ResultTexts
    referral_other: Dict[str, str] = field(default_factory=dict)
    long_duration_text_other: str = ""
    safety_net_other: str = ""
    safety_net_guidance: str = ""
    meanwhile: str = ""
    referral_source: str = ""
    pictures: Tuple[Picture, ...] = ()

    def screen_slots(self) -> List[str]:
        return [slot for slot, q in self.questions.items() if slot.startswith("screen_")]

    def citation(self, source_id: str) -> str:
        return self.sources[source_id].citation


# --------------------------------------------------------------------------- YAML with lines


def _read_yaml(path: Path) -> Dict[str, Any]:
    """One knowledge file through the project's YAML reader (line numbers, no repeated keys)."""
    from bot.yamlio import ProjectError, load_yaml

    if not path.is_file():
        raise KnowledgeError(f"{path}: file not found. Fix: create it (see CONTENT.md).")
    try:
        data = load_yaml(path)
    except ProjectError as exc:
        raise KnowledgeError(f"{exc}. Fix the file on that line.") from None
    if not isinstance(data, dict):
        raise KnowledgeError(f"{path}: expected a mapping at the top level. Fix: start with `version: 1`.")
    return data


class _Checker:
    """Field access that turns a missing or mistyped value into a KnowledgeError."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, node: Any, problem: str, fix: str) -> KnowledgeError:
        line = getattr(node, "line", 0)
        where = f"{self.path}:{line}" if line else str(self.path)
        return KnowledgeError(f"{where}: {problem}. Fix: {fix}.")

    def mapping(self, node: Mapping[str, Any], key: str, what: str) -> Mapping[str, Any]:
        value = node.get(key)
        if not isinstance(value, dict):
            raise self.fail(node, f"{what} needs a mapping `{key}`", f"add `{key}:` with its entries")
        return value

    def text(self, node: Mapping[str, Any], key: str, what: str) -> str:
        value = node.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, f"{what} has no `{key}`", f"add a non-empty `{key}:` text")
        return value.strip()

    def words(self, node: Mapping[str, Any], key: str, what: str, required: bool = False) -> Tuple[str, ...]:
        value = node.get(key, [] if not required else None)
        if value is None or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(node, f"{what}: `{key}` must be a list of texts", f"write `{key}: [word, \"a phrase\"]` (quote yes/no/on/off)")
        if required and not value:
            raise self.fail(node, f"{what}: `{key}` is empty", f"list at least one entry under `{key}`")
        return tuple(v.strip() for v in value if v.strip())

    def entries(self, node: Mapping[str, Any], key: str) -> List[Mapping[str, Any]]:
        value = node.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
            raise self.fail(node, f"`{key}` must be a non-empty list of mappings", f"write `{key}:` followed by `- id: ...` entries")
        return value

    def ref(self, node: Mapping[str, Any], key: str, what: str, known: Sequence[str], file_hint: str) -> str:
        value = node.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, f"{what} has no `{key}`", f"add `{key}:` naming one of {', '.join(known)} (from {file_hint})")
        value = value.strip()
        if value not in known:
            raise self.fail(
                node,
                f"{what}: `{key}: {value}` is not defined",
                f"use one of {', '.join(known)} (from {file_hint}) or add it there",
            )
        return value


# --------------------------------------------------------------------------- per file


def _load_sources(path: Path) -> Tuple[Dict[str, Source], Tuple[str, ...]]:
    data = _read_yaml(path)
    check = _Checker(path)
    sources: Dict[str, Source] = {}
    for entry in check.entries(data, "sources"):
        sid = check.text(entry, "id", "a source")
        if sid in sources:
            raise check.fail(entry, f"source id `{sid}` appears twice", "give each source its own id")
        sources[sid] = Source(
            sid,
            check.text(entry, "citation", f"source `{sid}`"),
            check.text(entry, "full", f"source `{sid}`"),
            str(entry.get("topic", "")),
        )
    sections = check.words(data, "sections", "sources.yml", required=True)
    return sources, sections


def _load_self_care(path: Path, sources: Mapping[str, Source], sections: Sequence[str]) -> Dict[str, Any]:
    data = _read_yaml(path)
    check = _Checker(path)
    items: Dict[str, SelfCareItem] = {}
    for entry in check.entries(data, "items"):
        iid = check.text(entry, "id", "a self-care item")
        what = f"self-care item `{iid}`"
        if iid in items:
            raise check.fail(entry, f"self-care id `{iid}` appears twice", "give each item its own id")
        text = check.text(entry, "text", what)
        if _DOSE.search(text):
            raise check.fail(entry, f"{what} gives a dose ({_DOSE.search(text).group(0)!r})", "remove it; say 'follow the label, ask a pharmacist or provider'")
        gap = entry.get("gap", False)
        if not isinstance(gap, bool):
            raise check.fail(entry, f"{what}: `gap` must be true or false", "write `gap: true` for items not from the article")
        items[iid] = SelfCareItem(
            id=iid,
            title=check.text(entry, "title", what),
            text=text,
            section=check.ref(entry, "section", what, sections, "sources.yml `sections`"),
            source=check.ref(entry, "source", what, list(sources), "sources.yml"),
            gap=gap,
        )
    general = check.words(data, "general", "self_care.yml", required=True)
    for iid in general:
        if iid not in items:
            raise check.fail(data, f"`general` names unknown self-care item `{iid}`", f"use one of {', '.join(items)}")
    framing = check.mapping(data, "framing", "self_care.yml")
    referral = check.mapping(data, "referral", "self_care.yml")
    short = check.mapping(data, "referral_short", "self_care.yml")
    for level in LEVELS:
        check.text(referral, level, "`referral`")
        check.text(short, level, "`referral_short`")
    referral_source = check.ref(data, "referral_source", "self_care.yml", list(sources), "sources.yml")
    check.ref(data, "referral_section", "self_care.yml", sections, "sources.yml `sections`")
    other = check.mapping(data, "referral_other", "self_care.yml")
    for level in LEVELS:
        check.text(other, level, "`referral_other`")
    long_duration = check.mapping(data, "long_duration", "self_care.yml")
    weeks = long_duration.get("weeks")
    if not isinstance(weeks, (int, float)) or weeks <= 0:
        raise check.fail(long_duration, "`long_duration.weeks` must be a positive number", "write e.g. `weeks: 6`")
    return {
        "self_care": items,
        "general_self_care": general,
        "framing_before": check.text(framing, "before", "`framing`"),
        "framing_after": check.text(framing, "after", "`framing`"),
        "referral": {lv: referral[lv].strip() for lv in LEVELS},
        "referral_short": {lv: short[lv].strip() for lv in LEVELS},
        "long_duration_weeks": float(weeks),
        "long_duration_text": check.text(long_duration, "text", "`long_duration`"),
        "safety_net": check.text(data, "safety_net", "self_care.yml"),
        "referral_other": {lv: other[lv].strip() for lv in LEVELS},
        "long_duration_text_other": check.text(long_duration, "text_other", "`long_duration`"),
        "safety_net_other": check.text(data, "safety_net_other", "self_care.yml"),
        "safety_net_guidance": check.text(data, "safety_net_guidance", "self_care.yml"),
        "meanwhile": check.text(data, "meanwhile", "self_care.yml"),
        "referral_source": referral_source,
        "pictures": _load_pictures(check, data, items),
    }


PICTURE_KEYS = {"id", "intro", "signs", "phrases", "conditions", "items", "first", "leave_out"}


def _load_pictures(check: "_Checker", data: Mapping[str, Any], items: Mapping[str, SelfCareItem]) -> Tuple[Picture, ...]:
    pictures: List[Picture] = []
    for entry in check.entries(data, "pictures"):
        pid = check.text(entry, "id", "a picture")
        what = f"picture `{pid}`"
        unknown = set(entry) - PICTURE_KEYS
        if unknown:
            raise check.fail(entry, f"{what} has unknown key(s) {', '.join(sorted(unknown))}",
                             f"use only {', '.join(sorted(PICTURE_KEYS))}")
        picture = Picture(
            id=pid, intro=check.text(entry, "intro", what),
            signs=check.words(entry, "signs", what), phrases=check.words(entry, "phrases", what),
            conditions=check.words(entry, "conditions", what), items=check.words(entry, "items", what),
            first=check.words(entry, "first", what), leave_out=check.words(entry, "leave_out", what),
        )
        if not (picture.signs or picture.phrases or picture.conditions):
            raise check.fail(entry, f"{what} can never apply", "add `signs`, `phrases` or `conditions`")
        if not (picture.items or picture.first):
            raise check.fail(entry, f"{what} offers nothing", "add `items` (exactly these) or `first`")
        for iid in picture.items + picture.first + picture.leave_out:
            if iid not in items:
                raise check.fail(entry, f"{what} names unknown self-care item `{iid}`", f"use one of {', '.join(items)}")
        for cid in picture.conditions:
            if cid not in CONDITION_IDS:
                raise check.fail(entry, f"{what}: `{cid}` is not an article condition", f"use one of {', '.join(CONDITION_IDS)}")
        pictures.append(picture)
    return tuple(pictures)


def _check_self_care_ids(
    check: "_Checker", node: Any, what: str, ids: Sequence[str], self_care: Mapping[str, SelfCareItem], hint: str = ""
) -> None:
    """Fail on the first id in `ids` that is not a self-care item; `hint` is appended to the fix."""
    for iid in ids:
        if iid not in self_care:
            raise check.fail(node, f"{what} names unknown self-care item `{iid}`", f"use one of {', '.join(self_care)}{hint}")


def _condition_min_weeks(check: "_Checker", entry: Mapping[str, Any], what: str) -> Tuple[Mapping[str, Any], Optional[float]]:
    """The entry's `duration` mapping (empty if absent) and its `min_weeks` as a float, or None."""
    duration = entry.get("duration") or {}
    if not isinstance(duration, dict):
        raise check.fail(entry, f"{what}: `duration` must be a mapping", "write `duration: {min_weeks: 12, words: [months]}`")
    min_weeks = duration.get("min_weeks")
    if min_weeks is not None and (not isinstance(min_weeks, (int, float)) or min_weeks <= 0):
        raise check.fail(entry, f"{what}: `duration.min_weeks` must be a positive number", "write e.g. `min_weeks: 12`")
    return duration, float(min_weeks) if min_weeks is not None else None


def _load_condition(
    check: "_Checker", entry: Mapping[str, Any], seen: Mapping[str, Condition],
    sources: Mapping[str, Source], sections: Sequence[str], self_care: Mapping[str, SelfCareItem],
) -> Condition:
    """One `conditions` entry; `seen` holds the conditions loaded before it (to catch duplicates)."""
    cid = check.text(entry, "id", "a condition")
    what = f"condition `{cid}`"
    if cid not in CONDITION_IDS:
        raise check.fail(entry, f"`{cid}` is not one of the article's conditions", f"use one of {', '.join(CONDITION_IDS)} (CONTENT.md)")
    if cid in seen:
        raise check.fail(entry, f"condition `{cid}` appears twice", "merge the two entries")
    care = check.words(entry, "self_care", what, required=True)
    _check_self_care_ids(check, entry, what, care, self_care, " (self_care.yml)")
    duration, min_weeks = _condition_min_weeks(check, entry, what)
    condition = Condition(
        id=cid,
        name=check.text(entry, "name", what),
        description=check.text(entry, "description", what),
        section=check.ref(entry, "section", what, sections, "sources.yml `sections`"),
        source=check.ref(entry, "source", what, list(sources), "sources.yml"),
        self_care=care,
        phrases=check.words(entry, "phrases", what),
        keywords=check.words(entry, "keywords", what),
        triggers=check.words(entry, "triggers", what),
        symptoms=check.words(entry, "symptoms", what),
        exclude=check.words(entry, "exclude", what),
        duration_min_weeks=min_weeks,
        duration_words=check.words(duration, "words", what) if duration else (),
    )
    if not (condition.phrases or condition.keywords or condition.triggers or condition.duration_min_weeks):
        raise check.fail(entry, f"{what} can never match", "add `phrases`, `keywords`, `triggers` or a `duration` rule")
    return condition


def _load_matching(check: "_Checker", data: Mapping[str, Any]) -> Matching:
    m = check.mapping(data, "matching", "conditions.yml")
    return Matching(
        negation_cues=check.words(m, "negation_cues", "`matching`", required=True),
        negation_window=int(m.get("negation_window", 4)),
        clause_breaks=check.words(m, "clause_breaks", "`matching`"),
        min_score=int(m.get("min_score", 1)),
        max_conditions=int(m.get("max_conditions", 3)),
    )


def _load_fallback(
    check: "_Checker", data: Mapping[str, Any], sources: Mapping[str, Source], sections: Sequence[str],
    self_care: Mapping[str, SelfCareItem],
) -> Fallback:
    f = check.mapping(data, "fallback", "conditions.yml")
    fallback = Fallback(
        text=check.text(f, "text", "`fallback`"),
        section=check.ref(f, "section", "`fallback`", sections, "sources.yml `sections`"),
        source=check.ref(f, "source", "`fallback`", list(sources), "sources.yml"),
        self_care=check.words(f, "self_care", "`fallback`", required=True),
    )
    _check_self_care_ids(check, f, "`fallback`", fallback.self_care, self_care)
    return fallback


def _load_conditions(
    path: Path, sources: Mapping[str, Source], sections: Sequence[str], self_care: Mapping[str, SelfCareItem]
) -> Tuple[Dict[str, Condition], Matching, Fallback, ResultTexts]:
    data = _read_yaml(path)
    check = _Checker(path)
    conditions: Dict[str, Condition] = {}
    for entry in check.entries(data, "conditions"):
        condition = _load_condition(check, entry, conditions, sources, sections, self_care)
        conditions[condition.id] = condition
    missing = [cid for cid in CONDITION_IDS if cid not in conditions]
    if missing:
        raise check.fail(data, f"missing condition(s) {', '.join(missing)}", "add an entry for each article condition of CONTENT.md")
    matching = _load_matching(check, data)
    fallback = _load_fallback(check, data, sources, sections, self_care)
    r = check.mapping(data, "result", "conditions.yml")
    result = ResultTexts(*(check.text(r, key, "`result`") for key in ("linked", "linked_sign", "cause")))
    return conditions, matching, fallback, result


def _load_questions(path: Path) -> Dict[str, Any]:
    data = _read_yaml(path)
    check = _Checker(path)
    raw = check.mapping(data, "questions", "questions.yml")
    questions: Dict[str, Question] = {}
    for slot, entry in raw.items():
        what = f"question `{slot}`"
        if not isinstance(entry, dict):
            raise check.fail(raw, f"{what} must be a mapping", "give it `label:` and `why:`")
        extra = {k: v for k, v in entry.items() if k not in ("label", "why")}
        questions[slot] = Question(
            slot=slot,
            label=check.text(entry, "label", what),
            why=check.text(entry, "why", what),
            extra=extra,
        )
    for slot in FORM_INFO_SLOTS:
        if slot not in questions:
            raise check.fail(raw, f"no entry for slot `{slot}`", f"add `{slot}:` with `label:` and `why:`")
    severity = questions["severity"].extra
    if not all(isinstance(severity.get(k), (int, float)) for k in ("min", "max")):
        raise check.fail(raw["severity"], "`severity` needs numeric `min` and `max`", "write `min: 0` and `max: 10`")
    body = questions["body_part"].extra
    for key in ("values", "sides"):
        table = body.get(key)
        if not isinstance(table, dict) or not all(isinstance(v, list) for v in table.values()):
            raise check.fail(raw["body_part"], f"`body_part.{key}` must map a value to a list of words", f"write `{key}: {{lower back: [low back, lumbar]}}`")
    return {
        "questions": questions,
        "general_why": check.text(data, "general_why", "questions.yml"),
    }


# --------------------------------------------------------------------------- entry points


def load_knowledge(directory: Optional[Path] = None) -> Knowledge:
    """Read and cross-check every knowledge file; raise KnowledgeError naming the file and fix."""
    directory = Path(directory or os.environ.get(ENV_DIR) or DEFAULT_DIR)
    sources, sections = _load_sources(directory / "sources.yml")
    care = _load_self_care(directory / "self_care.yml", sources, sections)
    conditions, matching, fallback, result = _load_conditions(directory / "conditions.yml", sources, sections,
                                                              care["self_care"])
    q = _load_questions(directory / "questions.yml")
    return Knowledge(
        sources=sources,
        sections=sections,
        conditions=conditions,
        matching=matching,
        fallback=fallback,
        result=result,
        **care,
        **q,
    )


@lru_cache(maxsize=1)
def get_knowledge() -> Knowledge:
    """The knowledge base for the running actions, loaded once per process."""
    return load_knowledge()


@lru_cache(maxsize=1)
def safety_layer() -> Any:
    """The safety layer (danger signs, levels, screening answers), from the same folder, with the
    learned backstop of the newest model `bot train` made (BACKLINE_MODELS_DIR, default the
    project's models/), so an action server under real Rasa asks what Backline would ask."""
    from bot.safety.decide import SafetyLayer

    knowledge_dir = Path(os.environ.get(ENV_DIR) or DEFAULT_DIR)
    return SafetyLayer.load(knowledge_dir, _newest_detector(knowledge_dir))


def _newest_detector(knowledge_dir: Path) -> Any:
    from bot.safety.detector import FILE, DangerDetector

    models = Path(os.environ.get(MODELS_ENV) or knowledge_dir.parent / "models")
    folders = sorted((p for p in models.glob("*") if (p / FILE).is_file()), key=lambda p: p.name) \
        if models.is_dir() else []
    if not folders:
        logger.warning("no trained danger-sign detector under %s: the safety layer runs on its rules only "
                    "(run `bot train`)", models)
        return None
    return DangerDetector.load(folders[-1])


@lru_cache(maxsize=1)
def output_guard() -> Any:
    """The output guard (guard.yml: never a diagnosis, a dose or a prescription), from the same folder."""
    from bot.safety.guard import OutputGuard

    return OutputGuard.load(Path(os.environ.get(ENV_DIR) or DEFAULT_DIR))


def guarded(text: str) -> str:
    """`text` as the output guard lets it out. Backline's engine guards every text it sends;
    real Rasa sends an action's text as it is, so the actions guard their own."""
    return output_guard().check(text)[0]


if __name__ == "__main__":  # `python -m actions.knowledge`: check the files after an edit
    import sys

    try:
        kb = load_knowledge()
    except KnowledgeError as exc:
        print(exc, file=sys.stderr)
        sys.exit(1)
    print(f"knowledge OK: {len(kb.conditions)} conditions, {len(kb.self_care)} self-care items, "
          f"{len(kb.questions)} questions, {len(kb.sources)} sources")
