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


@dataclass
class _Seen:
    """What one user turn produced: its user event, the events after it, the bot's texts and
    the tracker after the turn."""
    user: dict[str, Any]
    turn: list[dict[str, Any]]
    texts: list[str]
    tracker: Any

    @classmethod
    def of(cls, tracker: Any, texts: list[str]) -> "_Seen":
        events = tracker.events
        start = max(i for i, e in enumerate(events) if e.get("event") == "user")
        return cls(events[start], events[start + 1:], texts, tracker)

    @property
    def actions(self) -> list[str]:
        return [e["name"] for e in self.turn if e.get("event") == "action" and e["name"] not in IGNORED_ACTIONS]

    @property
    def loops(self) -> list[str | None]:
        return [e.get("name") for e in self.turn if e.get("event") == "active_loop"]


# Each check of a story step after the user turn gives (expected, actual) when the step does not hold.

def _loop_mismatch(step: tuple[Any, ...], seen: _Seen) -> tuple[str, str] | None:
    if step[1] in seen.loops or seen.tracker.active_loop == step[1]:
        return None
    return f"active_loop {step[1]}", f"active_loop {seen.tracker.active_loop}"


def _slot_mismatch(step: tuple[Any, ...], seen: _Seen) -> tuple[str, str] | None:
    actual = seen.tracker.slots.get(step[1])
    if _slot_matches(actual, step[2]):
        return None
    return f"slot {step[1]}={step[2]!r}", f"{step[1]}={actual!r}"


def _bot_mismatch(step: tuple[Any, ...], seen: _Seen) -> tuple[str, str] | None:
    if any(step[1].lower() in t.lower() for t in seen.texts):
        return None
    return f"a bot text containing {step[1]!r}", repr(seen.texts)


STEP_CHECKS = {"active_loop": _loop_mismatch, "slot": _slot_mismatch, "bot": _bot_mismatch}


def _intent_mismatch(expected: str, seen: _Seen) -> tuple[str, str] | None:
    actual = _full_intent(seen.user.get("parse_data") or {})
    if not expected or _intent_matches(expected, actual):
        return None
    return f"intent `{expected}`", f"intent `{actual}`"


def _turn_failures(story: Story, user_index: int, following: list[int], text: str, seen: _Seen) -> list[TurnFailure]:
    """Every way the turn differs from the story: its intent, its actions, then each later step."""
    line = story.step_lines[user_index]
    found: list[tuple[int, str, str]] = []
    intent = _intent_mismatch(story.steps[user_index][1], seen)
    if intent:
        found.append((line, *intent))
    expected_actions = [story.steps[i][1] for i in following if story.steps[i][0] == "action"]
    if expected_actions != seen.actions:
        found.append((story.step_lines[following[0]] if following else line,
                      f"actions {expected_actions}", f"actions {seen.actions}"))
    for i in following:
        check = STEP_CHECKS.get(story.steps[i][0])
        mismatch = check(story.steps[i], seen) if check else None
        if mismatch:
            found.append((story.step_lines[i], *mismatch))
    return [TurnFailure(story.name, story.path, n, text, expected, actual) for n, expected, actual in found]


async def run_story(agent: Any, story: Story) -> StoryResult:
    result = StoryResult(story)
    sender = f"test-{uuid.uuid4().hex[:12]}"
    for user_index, following in _turns(story):
        text = story.user_texts[user_index] or f"/{story.steps[user_index][1]}"
        replies = await agent.handle_message(UserMessage(text, sender, input_channel="test"))
        tracker = await agent.tracker(sender)
        texts = [r.get("text") or "" for r in replies]
        result.bot_texts += [t for t in texts if t]
        result.transcript.append((text, "\n".join(texts)))
        result.failures += _turn_failures(story, user_index, following, text, _Seen.of(tracker, texts))
    return result


def _slot_matches(actual: Any, expected: Any) -> bool:
    if expected is True and not isinstance(actual, bool):
        return actual not in (None, [], "")
    if isinstance(expected, list) and isinstance(actual, list):
        return all(item in actual for item in expected)
    return actual == expected
