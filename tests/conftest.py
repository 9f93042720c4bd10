"""Shared fixtures: the real project, trained once per session, with an in-memory store."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def project():
    from bot.project import load_project

    return load_project(ROOT)


@pytest.fixture(scope="session")
def agent(project):
    """The real engine on the real project data (trains into models/ if the data changed)."""
    from bot.agent import Agent
    from bot.stores import InMemoryLockStore, InMemoryTrackerStore

    return Agent.load(ROOT, project=project, tracker_store=InMemoryTrackerStore(), lock_store=InMemoryLockStore())


@pytest.fixture(scope="session")
def loop():
    """One event loop for session-scoped async resources (the agent's stores)."""
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture
def chat(agent, loop):
    """chat(text, sender) -> list of bot messages, through the full engine."""
    from bot.agent import UserMessage

    def send(text: str, sender: str = "pytest") -> list[dict]:
        return loop.run_until_complete(agent.handle_message(UserMessage(text, sender, input_channel="test")))

    return send


@pytest.fixture(scope="session")
def domain() -> dict:
    """domain.yml as Rasa sends it to an action server (for the rasa-sdk action tests)."""
    import yaml

    return yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def executor():
    """rasa-sdk's ActionExecutor with the project's actions, as Rasa's action server runs them."""
    import sys

    from rasa_sdk.executor import ActionExecutor

    if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not add the project root
        sys.path.insert(0, str(ROOT))
    ex = ActionExecutor()
    ex.register_package("actions")
    return ex
