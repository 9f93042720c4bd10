"""kill -9 a `bot run` process under load: every turn that got HTTP 200 survives the crash.

A reply is only sent after the turn's events were committed, so an acknowledged turn must be
in the store after a restart; a turn in flight at the crash is either fully there or absent.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.stores import create_tracker_store
from tests.stores_fixtures import (  # noqa: F401  (fixtures)
    BotServer,
    half_saved_turns,
    make_project,
    pg_config,
    pg_database,
    pg_reset,
    project_template,
    user_texts,
)

pytestmark = [pytest.mark.services, pytest.mark.slow]

CLIENTS = 8
ACKS_BEFORE_CRASH = 40
SCRIPT = ["hello", "my lower back is stiff", "it started two days ago", "it is mild", "thanks"]


@pytest.fixture(params=["sqlite", "postgresql"])
def tracker_config(request: pytest.FixtureRequest) -> dict:
    if request.param == "sqlite":
        return {"type": "sql", "dialect": "sqlite", "db": ".bot/conversations.db"}
    database = request.getfixturevalue("pg_database")
    asyncio.run(pg_reset(database))
    return pg_config(database)


@pytest.fixture
def project(project_template: Path, tracker_config: dict, tmp_path: Path) -> Path:
    return make_project(project_template, tmp_path, {"tracker_store": tracker_config})


@pytest.fixture
def servers(project: Path, tmp_path: Path) -> Iterator[list[BotServer]]:
    started: list[BotServer] = []
    yield started
    for server in started:
        server.stop()


def test_acknowledged_turns_survive_kill_9(project: Path, tracker_config: dict, servers: list[BotServer],
                                           tmp_path: Path) -> None:
    import httpx

    server = BotServer(project, tmp_path, "before-crash")
    servers.append(server)
    server.start()
    run = uuid.uuid4().hex[:6]
    acknowledged: dict[str, list[str]] = {}
    attempted: dict[str, list[str]] = {}
    cut_off: list[str] = []  # conversations whose request was in flight at the kill

    async def client_loop(number: int, client: httpx.AsyncClient, crashed: asyncio.Event) -> None:
        turn = 0
        while not crashed.is_set():
            sender = f"crash-{run}-{number}-{turn // len(SCRIPT)}"
            text = SCRIPT[turn % len(SCRIPT)]
            attempted.setdefault(sender, []).append(text)
            try:
                reply = await client.post(f"{server.url}/webhooks/rest/webhook",
                                          json={"sender": sender, "message": text}, timeout=30)
            except httpx.HTTPError:
                cut_off.append(sender)  # the server died under us
                return
            if reply.status_code == 200 and not crashed.is_set():
                acknowledged.setdefault(sender, []).append(text)
            turn += 1

    async def load_then_crash() -> None:
        crashed = asyncio.Event()
        async with httpx.AsyncClient() as client:
            loops = [asyncio.create_task(client_loop(n, client, crashed)) for n in range(CLIENTS)]
            deadline = time.monotonic() + 120
            while sum(map(len, acknowledged.values())) < ACKS_BEFORE_CRASH and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            # Acks counted before this point are the ones we hold the store to.
            crashed.set()
            server.kill()
            await asyncio.wait_for(asyncio.gather(*loops), 60)

    asyncio.run(load_then_crash())
    assert sum(map(len, acknowledged.values())) >= ACKS_BEFORE_CRASH, server.log_tail()
    assert cut_off, "no request was in flight at the kill; the test proved nothing"

    restarted = BotServer(project, tmp_path, "after-crash")
    servers.append(restarted)
    restarted.start()

    async def check() -> None:
        store = create_tracker_store(tracker_config, project)
        try:
            for sender, texts in attempted.items():
                events = await store.load(sender)
                stored = user_texts(events)
                acked = acknowledged.get(sender, [])
                for text in acked:
                    assert stored.count(text) == 1, f"{sender}: acknowledged {text!r} stored {stored.count(text)}x"
                assert all(stored.count(text) <= 1 for text in texts), f"{sender}: duplicated turns {stored}"
                assert stored == [text for text in texts if text in stored], f"{sender}: order {stored}"
                assert half_saved_turns(events) == [], f"{sender}: half-saved turn in {events}"
        finally:
            await store.close()
        async with httpx.AsyncClient() as client:
            for sender in list(acknowledged)[:4]:
                reply = await client.post(f"{restarted.url}/webhooks/rest/webhook",
                                          json={"sender": sender, "message": "hello again"}, timeout=60)
                assert reply.status_code == 200
        store = create_tracker_store(tracker_config, project)
        try:
            for sender in list(acknowledged)[:4]:
                assert user_texts(await store.load(sender))[-1] == "hello again"
        finally:
            await store.close()

    asyncio.run(check())
