"""Rules and stories (Rasa 3.x YAML) as flat lists of steps the policies can match."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.yamlio import ProjectError, line_of, plain

# A step is ("intent", name) | ("action", name) | ("active_loop", name|None) | ("slot", name, value)
Step = tuple
# A story or rule with `or:` steps is one variant per choice; more than this is an error.
MAX_VARIANTS = 1000


@dataclass
class Story:
    name: str
    steps: list[Step]
    path: str
    line: int
    is_rule: bool = False
    conditions: list[Step] = field(default_factory=list)
    conversation_start: bool = False
    wait_for_user_input: bool = True
    step_lines: list[int] = field(default_factory=list)
    # test stories: the user text of each intent step (same index as steps), else None
    user_texts: list[str | None] = field(default_factory=list)
    entities: list[list[dict[str, Any]]] = field(default_factory=list)


def _parse_step(step: Any, path: Path, line: int, *, test: bool) -> tuple[list[Step], str | None, list]:
    if not isinstance(step, dict):
        raise ProjectError(path, line, "each step must be a mapping such as `- intent: greet` or `- action: utter_greet`")
    if "intent" in step or "user" in step:
        return _parse_user_step(step, path, line, test=test)
    if "action" in step:
        return [("action", str(step["action"]))], None, []
    if "bot" in step:
        return [("bot", str(step["bot"]))], None, []
    if "active_loop" in step:
        value = step["active_loop"]
        return [("active_loop", None if value in (None, "null") else str(value))], None, []
    if "slot_was_set" in step:
        return _slot_steps(step["slot_was_set"]), None, []
    if "checkpoint" in step or "metadata" in step:
        return [], None, []  # checkpoints join stories; Backline memoizes each story on its own
    raise ProjectError(path, line, f"unknown step {sorted(step)}; use intent, action, active_loop or slot_was_set")


def _parse_user_step(step: dict, path: Path, line: int, *, test: bool) -> tuple[list[Step], str | None, list]:
    """`- intent: x`, or (test stories) `- user: text` with its `intent:`."""
    if "user" not in step:
        return [("intent", str(step["intent"]))], None, plain(step.get("entities") or [])
    if not test and "intent" not in step:
        raise ProjectError(path, line, "a `user:` step needs an `intent:` too")
    return [("intent", str(step.get("intent", "")))], str(step["user"]).strip(), plain(step.get("entities") or [])


def _slot_steps(items: Any) -> list[Step]:
    """`slot_was_set:` items, `- name: value` or a bare `- name` (set to True)."""
    out = []
    for item in items or []:
        if isinstance(item, dict):
            out += [("slot", str(k), plain(v)) for k, v in item.items()]
        else:
            out.append(("slot", str(item), True))
    return out


Parsed = tuple[list[Step], str | None, list, int]   # steps, user text, entities, line


def _choices(step: Any, path: Path, line: int, *, test: bool) -> list[Parsed]:
    """The parsed step, or for `- or: [...]` each of its alternatives (as Rasa: any of them)."""
    if not (isinstance(step, dict) and "or" in step):
        return [(*_parse_step(step, path, line, test=test), line)]
    options = step["or"]
    if not isinstance(options, list) or not options or any(isinstance(o, dict) and "or" in o for o in options):
        raise ProjectError(path, line, "`or:` needs a list of steps such as `- intent: affirm`")
    return [(*_parse_step(option, path, line_of(options, i) or line, test=test), line_of(options, i) or line)
            for i, option in enumerate(options)]


def _variants(raw_steps: list, path: Path, line: int, name: str, *, test: bool) -> list[list[Parsed]]:
    variants: list[list[Parsed]] = [[]]
    for index, raw in enumerate(raw_steps):
        choices = _choices(raw, path, line_of(raw_steps, index) or line, test=test)
        variants = [variant + [choice] for variant in variants for choice in choices]
        if len(variants) > MAX_VARIANTS:
            raise ProjectError(path, line, f"`{name}`: its `or:` steps make more than {MAX_VARIANTS} variants; "
                                           "split it into several")
    return variants


def load_stories(data: Any, path: Path, *, test: bool = False) -> list[Story]:
    """Parse the `rules:` and `stories:` sections of one file."""
    result: list[Story] = []
    if not isinstance(data, dict):
        return result
    for section, is_rule in (("rules", True), ("stories", False)):
        items = data.get(section)
        if not items:
            continue
        if not isinstance(items, list):
            raise ProjectError(path, line_of(data, section), f"`{section}:` must be a list")
        for index, item in enumerate(items):
            result += _load_item(item, section, is_rule, path, line_of(items, index) or 0, test=test)
    return result


def _load_item(item: Any, section: str, is_rule: bool, path: Path, line: int, *, test: bool) -> list[Story]:
    """One rule or story of a section: a Story per variant of its `or:` steps."""
    key = "rule" if is_rule else "story"
    if not isinstance(item, dict) or key not in item:
        raise ProjectError(path, line, f"each item in `{section}:` needs a `{key}:` name")
    raw_steps = item.get("steps")
    if not isinstance(raw_steps, list):
        raise ProjectError(path, line, f"{key} `{item[key]}` needs a list of `steps:`")
    conditions = _conditions(item, path, line, test=test)
    stories = []
    for variant in _variants(raw_steps, path, line, str(item[key]), test=test):
        story = Story(str(item[key]), [], str(path), line, is_rule=is_rule, conditions=list(conditions),
                      conversation_start=bool(item.get("conversation_start", False)),
                      wait_for_user_input=bool(item.get("wait_for_user_input", True)))
        for steps, text, entities, s_line in variant:
            for s in steps:
                _add_step(story, s, s_line, text if s[0] == "intent" else None,
                          entities if s[0] == "intent" else [])
        stories.append(story)
    return stories


def _conditions(item: dict, path: Path, line: int, *, test: bool) -> list[Step]:
    """A rule's `condition:` steps."""
    conditions: list[Step] = []
    for c_index, cond in enumerate(item.get("condition") or []):
        c_line = line_of(item["condition"], c_index) or line
        conditions += _parse_step(cond, path, c_line, test=test)[0]
    return conditions


def _add_step(story: Story, step: Step, line: int, text: str | None, entities: list) -> None:
    story.steps.append(step)
    story.step_lines.append(line)
    story.user_texts.append(text)
    story.entities.append(entities)
