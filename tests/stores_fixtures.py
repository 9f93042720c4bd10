"""Real PostgreSQL and Redis servers on loopback for the store tests, each test isolated.

PostgreSQL: one temporary database `backline_test_<random>` per test run, dropped at the end.
Redis: db 15 with a random key prefix per test, whose keys are deleted afterwards.
Without a server the tests skip; with CI=true set they fail instead.
Also: `bot run` processes on a copy of the project, for the multi-worker and crash tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port

PG_HOST = os.environ.get("BACKLINE_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BACKLINE_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("BACKLINE_TEST_PG_USER", "postgres")
REDIS_HOST = os.environ.get("BACKLINE_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("BACKLINE_TEST_REDIS_PORT", "6379"))
REDIS_DB = 15

STORE_KINDS = ["memory", "sqlite", "postgresql", "redis"]


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def missing_service(message: str) -> None:
    """Skip, or fail in CI, where the services must be there."""
    if in_ci():
        pytest.fail(f"{message} (CI is set, so the server must be running: see .ci/services.sh)")
    pytest.skip(message)


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


async def pg_admin(database: str = "postgres") -> Any:
    import asyncpg

    return await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=5)


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run; dropped afterwards."""
    if not port_open(PG_HOST, PG_PORT):
        missing_service(f"PostgreSQL is not running on {PG_HOST}:{PG_PORT}")
    name = f"backline_test_{uuid.uuid4().hex[:12]}"

    async def create() -> None:
        conn = await pg_admin()
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await pg_admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    try:
        asyncio.run(create())
    except OSError as error:
        missing_service(f"PostgreSQL on {PG_HOST}:{PG_PORT} refused the connection: {error}")
    yield name
    asyncio.run(drop())


async def pg_reset(database: str) -> None:
    conn = await pg_admin(database)
    try:
        await conn.execute("DROP TABLE IF EXISTS conversation_events, conversations")
    finally:
        await conn.close()


def pg_config(database: str) -> dict[str, Any]:
    return {"type": "sql", "dialect": "postgresql", "url": PG_HOST, "port": PG_PORT,
            "username": PG_USER, "db": database}


@pytest.fixture(scope="session")
def redis_available() -> None:
    if not port_open(REDIS_HOST, REDIS_PORT):
        missing_service(f"Redis is not running on {REDIS_HOST}:{REDIS_PORT}")


async def redis_cleanup(prefix: str) -> None:
    import redis.asyncio as aioredis

    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture
def redis_prefix(redis_available: None) -> Iterator[str]:
    """A key prefix no other test uses; its keys are removed afterwards."""
    prefix = f"backline_test_{uuid.uuid4().hex[:12]}"
    yield prefix
    asyncio.run(redis_cleanup(prefix))


def redis_config(prefix: str, kind: str = "redis") -> dict[str, Any]:
    return {"type": kind, "url": REDIS_HOST, "port": REDIS_PORT, "db": REDIS_DB, "key_prefix": prefix}


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_config(store_kind: str, request: pytest.FixtureRequest, tmp_path: Any) -> dict[str, Any]:
    """endpoints.yml `tracker_store` section for the parametrized store kind, isolated."""
    if store_kind == "memory":
        return {"type": "memory"}
    if store_kind == "sqlite":
        return {"type": "sql", "dialect": "sqlite", "db": "store/conversations.db"}
    if store_kind == "postgresql":
        database = request.getfixturevalue("pg_database")
        asyncio.run(pg_reset(database))
        return pg_config(database)
    return redis_config(request.getfixturevalue("redis_prefix"))


async def stored_senders(kind: str, store: Any, config: dict[str, Any], sqlite_file: Path | None = None) -> list[str]:
    """The ids of the conversations a backend holds (sorted), read around the store itself."""
    if kind == "memory":
        return sorted(store._events)
    if kind == "sqlite":
        import sqlite3

        with contextlib.closing(sqlite3.connect(sqlite_file)) as conn:
            return sorted(s for (s,) in conn.execute("SELECT sender_id FROM conversations"))
    if kind == "postgresql":
        conn = await pg_admin(config["db"])
        try:
            return sorted(row[0] for row in await conn.fetch("SELECT sender_id FROM conversations"))
        finally:
            await conn.close()
    import redis.asyncio as aioredis

    client = aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB, decode_responses=True)
    try:
        lists = f"{config['key_prefix']}:tracker:"
        held = {key[len(lists):] async for key in client.scan_iter(match=f"{lists}*")}
        held |= set(await client.zrange(f"{config['key_prefix']}:tracker-activity", 0, -1))
        return sorted(held)
    finally:
        await client.aclose()


# -- real `bot run` processes (multi-worker and crash tests) ---------------------------------

ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = ("config.yml", "domain.yml", "credentials.yml", "data", "knowledge", "actions")


@pytest.fixture(scope="session")
def project_template(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A copy of the project with a trained model, made once per session.

    The model comes from the repository's models/ or pytest's cache when one fits the data;
    otherwise `bot train` runs once (minutes) and the result is cached for later sessions.
    """
    template = tmp_path_factory.mktemp("project-template")
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, template / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, template / name)
    (template / "endpoints.yml").write_text("tracker_store:\n  type: memory\n")
    pytest_cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    cache = pytest_cache.mkdir("backline-models") if pytest_cache is not None else None
    models = template / "models"
    models.mkdir()
    for source in (ROOT / "models", cache):
        if source is None or not source.is_dir():
            continue
        for folder in source.iterdir():
            if (folder / "fingerprint.json").exists() and not (models / folder.name).exists():
                shutil.copytree(folder, models / folder.name)
    train = subprocess.run(
        [sys.executable, "-m", "bot", "train", "--project", str(template), "--quiet"],
        cwd=ROOT, env=bot_env(), capture_output=True, text=True, timeout=1200,
    )
    if train.returncode != 0:
        pytest.fail(f"bot train failed:\n{train.stdout}\n{train.stderr}")
    if cache is not None:
        for folder in models.iterdir():
            if not (cache / folder.name).exists():
                shutil.copytree(folder, cache / folder.name)
    return template


def bot_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("BACKLINE_AUTH_TOKEN", None)
    return env


def make_project(template: Path, where: Path, endpoints: dict[str, Any]) -> Path:
    """A project folder of its own (sharing the template's files) with `endpoints`."""
    import yaml

    project = where / "project"
    shutil.copytree(template, project, symlinks=True)
    (project / "endpoints.yml").write_text(yaml.safe_dump(endpoints, sort_keys=False))
    return project


class BotServer:
    """One `bot run` process on a loopback port, its output in a log file."""

    def __init__(self, project: Path, log_dir: Path, name: str) -> None:
        self.project = project
        self.log_path = log_dir / f"{name}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 180.0) -> "BotServer":
        return self.launch().wait_ready(ready_timeout)

    def launch(self) -> "BotServer":
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--project", str(self.project), "--port", str(self.port)],
            cwd=ROOT, env=bot_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        return self

    def wait_ready(self, ready_timeout: float = 180.0) -> "BotServer":
        import httpx

        assert self.process is not None
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"`bot run` exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        pytest.fail(f"`bot run` did not answer /health within {ready_timeout:.0f} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """kill -9: no shutdown handlers, no flushing."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def user_texts(events: list[dict]) -> list[str]:
    return [event.get("text") for event in events if event.get("event") == "user"]


def half_saved_turns(events: list[dict]) -> list[int]:
    """Positions of user events whose turn did not end in action_listen (a half-saved turn)."""
    broken = []
    starts = [index for index, event in enumerate(events) if event.get("event") == "user"]
    for number, start in enumerate(starts):
        end = starts[number + 1] if number + 1 < len(starts) else len(events)
        turn = events[start:end]
        if not any(event.get("event") == "action" and event.get("name") == "action_listen" for event in turn):
            broken.append(start)
    return broken
