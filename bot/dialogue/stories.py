"""Rules and stories (Rasa 3.x YAML) as flat lists of steps the policies can match."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.yamlio import ProjectError, line_of, plain

# A step is ("intent", name) | ("action", name) | ("active_loop", name|None) | ("slot", name, value)
Step = tuple


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
    if "intent" in step and "user" not in step:
        return [("intent", str(step["intent"]))], None, plain(step.get("entities") or [])
    if "user" in step:
        if not test and "intent" not in step:
            raise ProjectError(path, line, "a `user:` step needs an `intent:` too")
        return [("intent", str(step.get("intent", "")))], str(step["user"]).strip(), plain(step.get("entities") or [])
    if "action" in step:
        return [("action", str(step["action"]))], None, []
    if "bot" in step:
        return [("bot", str(step["bot"]))], None, []
    if "active_loop" in step:
        value = step["active_loop"]
        return [("active_loop", None if value in (None, "null") else str(value))], None, []
    if "slot_was_set" in step:
        out = []
        for item in step["slot_was_set"] or []:
            if isinstance(item, dict):
                out += [("slot", str(k), plain(v)) for k, v in item.items()]
            else:
                out.append(("slot", str(item), True))
        return out, None, []
    if "checkpoint" in step or "or" in step:
        return [], None, []  # checkpoints join stories; Backline memoizes each story on its own
    raise ProjectError(path, line, f"unknown step {sorted(step)}; use intent, action, active_loop or slot_was_set")


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
            line = line_of(items, index) or 0
            key = "rule" if is_rule else "story"
            if not isinstance(item, dict) or key not in item:
                raise ProjectError(path, line, f"each item in `{section}:` needs a `{key}:` name")
            raw_steps = item.get("steps")
            if not isinstance(raw_steps, list):
                raise ProjectError(path, line, f"{key} `{item[key]}` needs a list of `steps:`")
            story = Story(str(item[key]), [], str(path), line, is_rule=is_rule,
                          conversation_start=bool(item.get("conversation_start", False)),
                          wait_for_user_input=bool(item.get("wait_for_user_input", True)))
            for s_index, raw in enumerate(raw_steps):
                s_line = line_of(raw_steps, s_index) or line
                steps, text, entities = _parse_step(raw, path, s_line, test=test)
                for s in steps:
                    story.steps.append(s)
                    story.step_lines.append(s_line)
                    story.user_texts.append(text if s[0] == "intent" else None)
                    story.entities.append(entities if s[0] == "intent" else [])
            for c_index, cond in enumerate(item.get("condition") or []):
                c_line = line_of(item["condition"], c_index) or line
                story.conditions += _parse_step(cond, path, c_line, test=test)[0]
            result.append(story)
    return result
