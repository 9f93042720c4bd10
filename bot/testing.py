"""Replays conversation tests (Rasa test-stories YAML) against a real Agent and reports each
turn where the predicted intent, actions, loop, slots or bot text differ from the story."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.dialogue.stories import Story, load_stories
from bot.processor import UserMessage
from bot.yamlio import load_yaml

IGNORED_ACTIONS = {"action_listen", "action_session_start"}


@dataclass
class TurnFailure:
    story: str
    path: str
    line: int
    user: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: story `{self.story}`, after {self.user!r}: expected {self.expected}, got {self.actual}"


@dataclass
class StoryResult:
    story: Story
    failures: list[TurnFailure] = field(default_factory=list)
    bot_texts: list[str] = field(default_factory=list)
    transcript: list[tuple[str, str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures


def load_test_stories(folder: Path) -> list[Story]:
    stories: list[Story] = []
    for path in sorted(folder.glob("*.yml")):
        stories += load_stories(load_yaml(path), path, test=True)
    return stories


def _turns(story: Story) -> list[tuple[int, list[int]]]:
    """(index of the user step, indexes of the steps that follow it) for each user turn."""
    turns: list[tuple[int, list[int]]] = []
    for index, step in enumerate(story.steps):
        if step[0] == "intent":
            turns.append((index, []))
        elif turns:
            turns[-1][1].append(index)
    return turns


def _full_intent(parse_data: dict[str, Any]) -> str:
    name = (parse_data.get("intent") or {}).get("name") or ""
    selector = (parse_data.get("response_selector") or {}).get(name) or {}
    key = (selector.get("response") or {}).get("intent_response_key")
    return key or name


def _intent_matches(expected: str, actual: str) -> bool:
    return expected == actual or ("/" not in expected and actual.split("/")[0] == expected)


async def run_story(agent: Any, story: Story) -> StoryResult:
    result = StoryResult(story)
    sender = f"test-{uuid.uuid4().hex[:12]}"
    for user_index, following in _turns(story):
        expected_intent = story.steps[user_index][1]
        text = story.user_texts[user_index] or f"/{expected_intent}"
        line = story.step_lines[user_index]
        replies = await agent.handle_message(UserMessage(text, sender, input_channel="test"))
        tracker = await agent.tracker(sender)
        events = tracker.events
        start = max(i for i, e in enumerate(events) if e.get("event") == "user")
        user_event = events[start]
        actual_intent = _full_intent(user_event.get("parse_data") or {})
        texts = [r.get("text") or "" for r in replies]
        result.bot_texts += [t for t in texts if t]
        result.transcript.append((text, "\n".join(texts)))
        if expected_intent and not _intent_matches(expected_intent, actual_intent):
            result.failures.append(TurnFailure(story.name, story.path, line, text, f"intent `{expected_intent}`",
                                               f"intent `{actual_intent}`"))
        turn = events[start + 1:]
        actual_actions = [e["name"] for e in turn if e.get("event") == "action" and e["name"] not in IGNORED_ACTIONS]
        actual_loops = [e.get("name") for e in turn if e.get("event") == "active_loop"]
        expected_actions = [story.steps[i][1] for i in following if story.steps[i][0] == "action"]
        if expected_actions != actual_actions:
            result.failures.append(TurnFailure(story.name, story.path, story.step_lines[following[0]] if following else line,
                                               text, f"actions {expected_actions}", f"actions {actual_actions}"))
        for i in following:
            step = story.steps[i]
            if step[0] == "active_loop" and step[1] not in actual_loops and tracker.active_loop != step[1]:
                result.failures.append(TurnFailure(story.name, story.path, story.step_lines[i], text,
                                                   f"active_loop {step[1]}", f"active_loop {tracker.active_loop}"))
            elif step[0] == "slot" and not _slot_matches(tracker.slots.get(step[1]), step[2]):
                result.failures.append(TurnFailure(story.name, story.path, story.step_lines[i], text,
                                                   f"slot {step[1]}={step[2]!r}", f"{step[1]}={tracker.slots.get(step[1])!r}"))
            elif step[0] == "bot" and not any(step[1].lower() in t.lower() for t in texts):
                result.failures.append(TurnFailure(story.name, story.path, story.step_lines[i], text,
                                                   f"a bot text containing {step[1]!r}", repr(texts)))
    return result


def _slot_matches(actual: Any, expected: Any) -> bool:
    if expected is True and not isinstance(actual, bool):
        return actual not in (None, [], "")
    if isinstance(expected, list) and isinstance(actual, list):
        return all(item in actual for item in expected)
    return actual == expected
