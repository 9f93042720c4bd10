"""NLU training data in Rasa 3.x YAML: intent examples with entity annotations, synonyms, lookups, regexes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from bot.yamlio import ProjectError, line_of

# [text](entity) | [text](entity:value) | [text]{"entity": "x", "value": "y"}
_ANNOTATION = re.compile(r"\[(?P<text>[^\]]+)\](?:\((?P<short>[^)]+)\)|(?P<json>\{[^}]*\}))")


@dataclass
class Example:
    text: str
    intent: str
    entities: list[dict[str, Any]] = field(default_factory=list)
    path: str = ""
    line: int = 0


@dataclass
class TrainingData:
    examples: list[Example] = field(default_factory=list)
    synonyms: dict[str, str] = field(default_factory=dict)       # lower-cased surface text -> value
    lookups: dict[str, list[str]] = field(default_factory=dict)  # entity -> phrases
    regexes: dict[str, list[str]] = field(default_factory=dict)  # entity (or name) -> patterns

    @property
    def intents(self) -> list[str]:
        return sorted({e.intent for e in self.examples})

    def merge(self, other: "TrainingData") -> None:
        self.examples += other.examples
        self.synonyms.update(other.synonyms)
        for key, values in other.lookups.items():
            self.lookups.setdefault(key, []).extend(values)
        for key, values in other.regexes.items():
            self.regexes.setdefault(key, []).extend(values)


def parse_annotated(text: str) -> tuple[str, list[dict[str, Any]]]:
    """'my [lower back](body_part) hurts' -> ('my lower back hurts', [{entity, value, start, end}])."""
    plain_parts: list[str] = []
    entities: list[dict[str, Any]] = []
    cursor = 0
    offset = 0
    for match in _ANNOTATION.finditer(text):
        plain_parts.append(text[cursor:match.start()])
        offset += match.start() - cursor
        surface = match.group("text")
        if match.group("short"):
            entity, _, value = match.group("short").partition(":")
            spec: dict[str, Any] = {"entity": entity.strip()}
            if value:
                spec["value"] = value.strip()
        else:
            try:
                spec = json.loads(match.group("json"))
            except json.JSONDecodeError as exc:
                raise ValueError(f"entity annotation {match.group(0)!r} is not valid JSON ({exc.msg})")
            if not isinstance(spec, dict) or "entity" not in spec:
                raise ValueError(f"entity annotation {match.group(0)!r} needs an \"entity\" key")
        entities.append({
            "entity": spec["entity"],
            "value": spec.get("value", surface),
            "start": offset,
            "end": offset + len(surface),
            **({"role": spec["role"]} if "role" in spec else {}),
            **({"group": spec["group"]} if "group" in spec else {}),
        })
        plain_parts.append(surface)
        offset += len(surface)
        cursor = match.end()
    plain_parts.append(text[cursor:])
    return "".join(plain_parts), entities


def _example_lines(block: Any, path: Path, line: int) -> list[tuple[str, int]]:
    if isinstance(block, list):  # examples given as a YAML list
        return [(str(item.get("text") if isinstance(item, dict) else item), line + i + 1) for i, item in enumerate(block)]
    if not isinstance(block, str):
        raise ProjectError(path, line, "`examples:` must be a block of `- example` lines (use `examples: |`)")
    result = []
    for i, raw in enumerate(block.splitlines()):
        stripped = raw.strip()
        if not stripped:
            continue
        if not stripped.startswith("- "):
            raise ProjectError(path, line + i + 1, f"example {stripped!r} must start with '- '")
        result.append((stripped[2:].strip(), line + i + 1))
    return result


def load_nlu_file(data: Any, path: Path) -> TrainingData:
    """Parse the `nlu:` section of one data file (other sections are ignored here)."""
    td = TrainingData()
    items = data.get("nlu") if isinstance(data, dict) else None
    if not items:
        return td
    if not isinstance(items, list):
        raise ProjectError(path, line_of(data, "nlu"), "`nlu:` must be a list of `- intent:` / `- synonym:` / `- lookup:` / `- regex:` items")
    for index, item in enumerate(items):
        line = line_of(items, index) or 0
        if not isinstance(item, dict):
            raise ProjectError(path, line, "each nlu item must be a mapping like `- intent: greet`")
        examples = _example_lines(item.get("examples", ""), path, line_of(item, "examples") or line)
        _load_item(td, item, examples, path, line)
    return td


def _load_item(td: TrainingData, item: dict[str, Any], examples: list[tuple[str, int]], path: Path,
               line: int) -> None:
    """Add one nlu item to `td`; its kind is the first of `_ITEM_LOADERS`' keys it has."""
    for key, loader in _ITEM_LOADERS.items():
        if key in item:
            loader(td, str(item[key]), examples, path)
            return
    raise ProjectError(path, line, "unknown nlu item; use `intent:`, `synonym:`, `lookup:` or `regex:`")


def _load_intent(td: TrainingData, intent: str, examples: list[tuple[str, int]], path: Path) -> None:
    for text, ex_line in examples:
        try:
            plain_text, entities = parse_annotated(text)
        except ValueError as exc:
            raise ProjectError(path, ex_line, str(exc))
        td.examples.append(Example(plain_text, intent, entities, str(path), ex_line))
        for ent in entities:
            surface = plain_text[ent["start"]:ent["end"]]
            if ent["value"] != surface:
                td.synonyms[surface.lower()] = ent["value"]


def _load_synonym(td: TrainingData, value: str, examples: list[tuple[str, int]], path: Path) -> None:
    for text, _ in examples:
        td.synonyms[text.lower()] = value


def _load_lookup(td: TrainingData, name: str, examples: list[tuple[str, int]], path: Path) -> None:
    td.lookups.setdefault(name, []).extend(t for t, _ in examples)


def _load_regex(td: TrainingData, name: str, examples: list[tuple[str, int]], path: Path) -> None:
    for pattern, ex_line in examples:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ProjectError(path, ex_line, f"regex {pattern!r} for `{name}` does not compile: {exc}")
        td.regexes.setdefault(name, []).append(pattern)


# In this order: an item with several of these keys is read as the first one.
_ITEM_LOADERS: dict[str, Callable[[TrainingData, str, list[tuple[str, int]], Path], None]] = {
    "intent": _load_intent,
    "synonym": _load_synonym,
    "lookup": _load_lookup,
    "regex": _load_regex,
}
