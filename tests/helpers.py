"""Test helpers: a throwaway copy of the project (so tests can break files safely)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = ("config.yml", "domain.yml", "endpoints.yml", "credentials.yml")


def copy_project(target: Path, *, with_models: bool = True) -> Path:
    """Copy config, domain, data/, knowledge/, actions/ (and trained models) into `target`."""
    target.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        shutil.copy(ROOT / name, target / name)
    shutil.copytree(ROOT / "data", target / "data")
    shutil.copytree(ROOT / "knowledge", target / "knowledge")
    shutil.copytree(ROOT / "actions", target / "actions", ignore=shutil.ignore_patterns("__pycache__"))
    if with_models and (ROOT / "models").is_dir():
        shutil.copytree(ROOT / "models", target / "models", ignore=shutil.ignore_patterns(".*"))
    return target


def run_bot(*args: str, cwd: Path | None = None, input: str | None = None, timeout: float = 120,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run `python -m bot ...` as a user would, capturing output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "bot", *args], cwd=cwd or ROOT, input=input, text=True,
                          capture_output=True, timeout=timeout, env=full_env)


@contextlib.contextmanager
def served_agent(tmp: Path):
    """The real engine with a throwaway SQLite store and a ServerLoop to start apps on.

    Yields (agent, loop); closes the agent and stops the loop afterwards."""
    from bot.agent import Agent
    from tests.servers import ServerLoop
    from bot.stores import create_tracker_store

    store = create_tracker_store({"type": "sql", "dialect": "sqlite", "db": str(tmp / "conversations.db")}, tmp)
    agent = Agent.load(ROOT, tracker_store=store)
    loop = ServerLoop()
    try:
        yield agent, loop
    finally:
        try:
            loop.run(agent.close())
        finally:
            loop.stop()
