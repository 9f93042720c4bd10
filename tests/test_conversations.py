"""Every YAML conversation test in tests/conversations/ (Rasa test-stories format), replayed
turn by turn against the real engine; each bot text also passes the output guard."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.testing import load_test_stories, run_story

STORIES = load_test_stories(Path(__file__).parent / "conversations")


def test_there_are_conversation_tests():
    assert len(STORIES) >= 1


@pytest.mark.parametrize("story", STORIES, ids=[s.name for s in STORIES])
def test_conversation(story, agent, loop):
    result = loop.run_until_complete(run_story(agent, story))
    assert result.passed, "\n".join(map(str, result.failures))
    guard = agent.processor.guard
    for text in result.bot_texts:
        assert not guard.violations(text), f"bot text breaks the output guard: {text!r}"
